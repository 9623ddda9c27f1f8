import { readFile } from 'node:fs/promises';
import { isWrapped } from '@opentelemetry/instrumentation';
import { readOnnxModelInfo } from '../../onnx/model-info.js';
import * as sc from '../../semconv/index.js';
import { digestBytes, getTrail, type PredictSpec, type Trail } from '../../trail/index.js';
import { bindModel, type LoadedModel } from '../model-binding.js';
import { ModuleInstrumentation } from '../module-instrumentation.js';
import { canonicalTensorsJson, dtypeOf, plainValues, shapeOf, type TensorLike } from '../tensor-view.js';
import { MLTRAIL_VERSION } from '../version.js';
import type { OnnxRuntimeInstrumentationConfig } from './types.js';

/** The onnxruntime-node versions the instrumentation is tested against (the session API is stable in 1.x). */
const SUPPORTED = ['>=1.14.0 <2'];

/** An onnxruntime tensor, as far as the instrumentation reads it. */
interface OrtTensor extends TensorLike {
  readonly data?: unknown;
}
type Feeds = Record<string, OrtTensor>;
type RunResult = Record<string, OrtTensor>;
type RunFn = (this: object, feeds: Feeds, ...rest: unknown[]) => Promise<RunResult>;
type CreateFn = (this: unknown, ...args: unknown[]) => Promise<object>;

/** The `InferenceSession` class of onnxruntime-common, as re-exported by onnxruntime-node. */
interface InferenceSessionClass {
  create: CreateFn;
  prototype: { run: RunFn };
}

/** What the instrumentation learned when a session was created. */
interface SessionModel extends LoadedModel {
  producer?: string;
  opsets?: string[];
}

/**
 * Auto-instrumentation for onnxruntime-node: `InferenceSession.create` records which model was loaded (sha256
 * of the model bytes, producer, opsets) and every `session.run` becomes an audited prediction through the
 * trail (`ml.prediction` record with a UUIDv7 id, latency, tensor names, shapes and dtypes, registry
 * tie-in; values only per the capture policy). A failing run is recorded as `ml.stage.failed` and the
 * original error is rethrown. Any internal problem falls back to the unobserved call.
 *
 * @example
 * registerInstrumentations({ instrumentations: [new OnnxRuntimeInstrumentation({ trail })] });
 */
export class OnnxRuntimeInstrumentation extends ModuleInstrumentation<OnnxRuntimeInstrumentationConfig> {
  /** Sessions this instrumentation saw created, with their model; weak so sessions are collected. */
  readonly #sessions = new WeakMap<object, SessionModel>();

  constructor(config: OnnxRuntimeInstrumentationConfig = {}) {
    super('mltrail-instrumentation-onnxruntime', MLTRAIL_VERSION, config);
  }

  protected target() {
    return { module: 'onnxruntime-node', versions: SUPPORTED };
  }

  /** The model a session was created from, when this instrumentation saw the creation. */
  modelOf(session: object): Readonly<SessionModel> | undefined {
    return this.#sessions.get(session);
  }

  // Patching path: prototype methods only (see ModuleInstrumentation.patchModule).
  private sessionClass(moduleExports: unknown): InferenceSessionClass | undefined {
    const mod = unwrapNamespace(moduleExports) as { InferenceSession?: InferenceSessionClass } | undefined;
    const cls =
      mod?.InferenceSession ??
      (moduleExports as { InferenceSession?: InferenceSessionClass }).InferenceSession;
    if (typeof cls?.create !== 'function' || typeof cls.prototype?.run !== 'function') {
      this._diag.warn('onnxruntime-node has no InferenceSession.create/run; not instrumented');
      return undefined;
    }
    return cls;
  }

  protected patchModule(moduleExports: unknown): void {
    const cls = this.sessionClass(moduleExports);
    if (cls === undefined) return;
    // The class is shared by the CJS exports and the ESM namespace of the same module; patch it once.
    if (!isWrapped(cls.create)) this._wrap(cls, 'create', (original) => this.wrapCreate(original));
    if (!isWrapped(cls.prototype.run)) this._wrap(cls.prototype, 'run', (original) => this.wrapRun(original));
  }

  protected unpatchModule(moduleExports: unknown): void {
    const cls = this.sessionClass(moduleExports);
    if (cls === undefined) return;
    if (isWrapped(cls.create)) this._unwrap(cls, 'create');
    if (isWrapped(cls.prototype.run)) this._unwrap(cls.prototype, 'run');
  }

  #trail(): Trail | undefined {
    return this.getConfig().trail ?? getTrail();
  }

  private wrapCreate(original: CreateFn): CreateFn {
    const instrumentation = this;
    return function create(this: unknown, ...args: unknown[]): Promise<object> {
      const session = Reflect.apply(original, this, args) as Promise<object>;
      let model: Promise<SessionModel | undefined>;
      try {
        model = describeModel(args).catch((err: unknown) => {
          instrumentation._diag.error('could not read the ONNX model for its digest', err);
          return undefined;
        });
      } catch (err) {
        instrumentation._diag.error('could not read the ONNX model for its digest', err);
        return session;
      }
      // The session resolves exactly as the original one does; only a known model is remembered.
      return session.then(async (s) => {
        const m = await model;
        if (m !== undefined && s !== null && typeof s === 'object') instrumentation.#sessions.set(s, m);
        return s;
      });
    };
  }

  private wrapRun(original: RunFn): RunFn {
    const instrumentation = this;
    return function run(this: object, ...args: [Feeds, ...unknown[]]): Promise<RunResult> {
      let predicted: RunFn;
      try {
        const trail = instrumentation.#trail();
        if (trail === undefined) return Reflect.apply(original, this, args);
        const spec = instrumentation.#predictSpec(trail, instrumentation.#sessions.get(this), args[0]);
        predicted = trail.predict(spec, original) as RunFn;
      } catch (err) {
        instrumentation._diag.error('could not observe session.run; it runs unobserved', err);
        return Reflect.apply(original, this, args);
      }
      return Reflect.apply(predicted, this, args);
    };
  }

  #predictSpec(
    trail: Trail,
    model: SessionModel | undefined,
    feeds: Feeds,
  ): PredictSpec<[Feeds], Promise<RunResult>> {
    const bound = bindModel(trail, model);
    const names: string[] = [];
    const shapes: string[] = [];
    const tensors: OrtTensor[] = [];
    if (isRecord(feeds)) {
      for (const name of Object.keys(feeds)) {
        const t = feeds[name];
        names.push(name);
        shapes.push(`${name}:${shapeOf(t)}`);
        tensors.push(t);
      }
    }
    const fields: Record<string, unknown> = {
      ...bound.fields,
      [sc.ATTR_ML_PREDICTION_INPUT_NAMES]: names,
      [sc.ATTR_ML_PREDICTION_INPUT_SHAPES]: shapes,
    };
    const batch = batchSize(tensors);
    if (batch !== undefined) fields[sc.ATTR_ML_PREDICTION_BATCH_SIZE] = batch;
    // The callbacks are the same functions for every call: only the model and the feeds' fields vary.
    return {
      ...RUN_CALLBACKS,
      model: bound.model,
      modelDigest: bound.modelDigest,
      capture: this.getConfig().capture,
      fields,
    };
  }
}

/** What the trail asks of every `session.run` (module-level: no closures per call). */
const RUN_CALLBACKS: Pick<
  PredictSpec<[Feeds], Promise<RunResult>>,
  'input' | 'inputJson' | 'outputContent' | 'resultFields' | 'output'
> = {
  input: (f) => tensorsView(f),
  inputJson: (f) => tensorsJson(f),
  outputContent: (result) => tensorsView(result),
  resultFields: (result) => {
    const names: string[] = [];
    const dtypes: string[] = [];
    if (isRecord(result)) {
      for (const name of Object.keys(result)) {
        names.push(name);
        dtypes.push(`${name}:${dtypeOf(result[name])}`);
      }
    }
    return { [sc.ATTR_ML_PREDICTION_OUTPUT_NAMES]: names, [sc.ATTR_ML_PREDICTION_OUTPUT_DTYPES]: dtypes };
  },
  output: (result) => singleScore(result),
};

/** Reads what the session will be created from: a path (read again for the digest) or bytes. */
async function describeModel(args: unknown[]): Promise<SessionModel | undefined> {
  const [first, second, third] = args;
  let bytes: Uint8Array;
  let uri: string | undefined;
  if (typeof first === 'string') {
    uri = first;
    bytes = await readFile(first);
  } else if (first instanceof Uint8Array) {
    bytes = first;
  } else if (first instanceof ArrayBuffer || first instanceof SharedArrayBuffer) {
    const offset = typeof second === 'number' ? second : 0;
    const length = typeof third === 'number' ? third : first.byteLength - offset;
    bytes = new Uint8Array(first, offset, length);
  } else {
    return undefined;
  }
  const info = readOnnxModelInfo(bytes);
  return {
    digest: digestBytes(bytes),
    format: 'onnx',
    uri,
    producer:
      info?.producerName === undefined
        ? undefined
        : `${info.producerName}${info.producerVersion ? ` ${info.producerVersion}` : ''}`,
    opsets: info?.opsets,
  };
}

/** ESM namespaces of CJS modules carry the exports object as `default`. */
function unwrapNamespace(moduleExports: unknown): unknown {
  if (moduleExports === null || typeof moduleExports !== 'object') return moduleExports;
  const ns = moduleExports as { [Symbol.toStringTag]?: string; default?: unknown };
  return ns[Symbol.toStringTag] === 'Module' && ns.default !== undefined ? ns.default : moduleExports;
}

function isRecord(v: unknown): v is Record<string, OrtTensor> {
  return v !== null && typeof v === 'object';
}

/** The common first dimension of all inputs of rank >= 2, the usual batch axis. */
function batchSize(tensors: OrtTensor[]): number | undefined {
  let batch: number | undefined;
  for (const t of tensors) {
    const dims = t?.dims;
    if (!Array.isArray(dims) || dims.length < 2) return undefined;
    if (batch !== undefined && dims[0] !== batch) return undefined;
    batch = dims[0];
  }
  return batch;
}

/** A plain JSON view of named tensors (dtype, dims, values) for digests and capture. */
function tensorsView(tensors: unknown): unknown {
  if (!isRecord(tensors)) return null;
  const out: Record<string, unknown> = {};
  for (const [name, t] of Object.entries(tensors)) {
    out[name] = { dims: t?.dims ?? null, type: dtypeOf(t), data: plainValues(safeData(t)) };
  }
  return out;
}

/** The canonical JSON of {@link tensorsView}, written from the tensors without copying their values. */
function tensorsJson(tensors: unknown): string | undefined {
  if (!isRecord(tensors)) return 'null';
  return canonicalTensorsJson(Object.entries(tensors), TENSOR_PARTS);
}

const TENSOR_PARTS = {
  dims: (t: OrtTensor | undefined) => t?.dims,
  type: (t: OrtTensor | undefined) => dtypeOf(t),
  data: (t: OrtTensor | undefined) => safeData(t),
};

function safeData(t: OrtTensor | undefined): unknown {
  try {
    return t?.data;
  } catch {
    // A tensor on a GPU location throws on .data; its values are not captured.
    return undefined;
  }
}

/** The score when the model returns exactly one number (a binary classifier's probability). */
function singleScore(result: unknown): { score?: number } | undefined {
  if (!isRecord(result)) return undefined;
  const outputs = Object.values(result);
  if (outputs.length !== 1) return undefined;
  const data = safeData(outputs[0]);
  if (!ArrayBuffer.isView(data) || (data as unknown as ArrayLike<unknown>).length !== 1) return undefined;
  const v = (data as unknown as ArrayLike<unknown>)[0];
  return typeof v === 'number' && Number.isFinite(v) ? { score: v } : undefined;
}
