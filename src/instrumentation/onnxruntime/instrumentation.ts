import { readFile } from 'node:fs/promises';
import { isWrapped } from '@opentelemetry/instrumentation';
import { readOnnxModelInfo } from '../../onnx/model-info.js';
import * as sc from '../../semconv/index.js';
import {
  type CaptureMode,
  type Deployment,
  digestBytes,
  getTrail,
  type ModelVersion,
  type PredictSpec,
  type Trail,
} from '../../trail/index.js';
import { OPAQUE_CALLEE } from '../../trail/wrap.js';
import { bindingOf, type LoadedModel, registeredModel } from '../model-binding.js';
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
    // What was prepared for each session's runs (see RunPlan); weak, so sessions are still collected.
    const plans = new WeakMap<object, RunPlan>();
    return function run(this: object, ...args: [Feeds, ...unknown[]]): Promise<RunResult> {
      let predicted: RunFn;
      try {
        const trail = instrumentation.#trail();
        if (trail === undefined) return Reflect.apply(original, this, args);
        predicted = instrumentation.#plan(plans, trail, this, args[0], original).predicted;
      } catch (err) {
        instrumentation._diag.error('could not observe session.run; it runs unobserved', err);
        return Reflect.apply(original, this, args);
      }
      return Reflect.apply(predicted, this, args);
    };
  }

  /**
   * The plan for one run: the previous run's of this session while the trail, the capture policy, the
   * registry's answer for the model and the feeds' names and dims are the same (a serving loop's runs),
   * else a new one. The registry is asked on every run, so a model registered after it was loaded is
   * named from the next run on.
   */
  #plan(
    plans: WeakMap<object, RunPlan>,
    trail: Trail,
    session: object,
    feeds: Feeds,
    original: RunFn,
  ): RunPlan {
    const loaded = this.#sessions.get(session);
    const registered = registeredModel(trail, loaded);
    const capture = this.getConfig().capture;
    const cacheable = session !== null && typeof session === 'object';
    const known = cacheable ? plans.get(session) : undefined;
    if (
      known !== undefined &&
      known.trail === trail &&
      known.capture === capture &&
      known.registered === registered &&
      known.feeds.matches(feeds)
    )
      return known;
    const signature = FeedsSignature.of(feeds);
    const plan: RunPlan = {
      trail,
      capture,
      registered,
      feeds: signature,
      predicted: trail.predict(runSpec(bindingOf(loaded, registered), signature, capture), original) as RunFn,
    };
    if (cacheable) plans.set(session, plan);
    return plan;
  }
}

/** What {@link OnnxRuntimeInstrumentation} prepares once for the runs of a session that look alike. */
interface RunPlan {
  trail: Trail;
  capture: CaptureMode | undefined;
  registered: Deployment | ModelVersion | undefined;
  feeds: FeedsSignature;
  /** The audited run (`trail.predict` of the original), with the fields that follow from the above. */
  predicted: RunFn;
}

/**
 * The feeds' names (in order) and dims: everything the prediction's input fields (names, shapes, batch
 * size) are made of, so runs whose feeds match it share those fields.
 */
class FeedsSignature {
  readonly names: readonly string[];
  /** Each tensor's dims (a copy), or its shape notation when it has none of the onnxruntime kind. */
  readonly dims: readonly (readonly number[] | string)[];
  readonly fields: Readonly<Record<string, unknown>>;

  private constructor(
    names: string[],
    dims: (readonly number[] | string)[],
    fields: Record<string, unknown>,
  ) {
    this.names = names;
    this.dims = dims;
    this.fields = fields;
  }

  static of(feeds: Feeds): FeedsSignature {
    const names: string[] = [];
    const shapes: string[] = [];
    const dims: (readonly number[] | string)[] = [];
    const tensors: OrtTensor[] = [];
    if (isRecord(feeds)) {
      for (const name of Object.keys(feeds)) {
        const t = feeds[name];
        const shape = shapeOf(t);
        names.push(name);
        shapes.push(`${name}:${shape}`);
        const d = t?.dims;
        dims.push(Array.isArray(d) && t?.shape === undefined ? Array.from(d as number[]) : `\0${shape}`);
        tensors.push(t);
      }
    }
    // Shared by every record of the plan, so frozen: nothing may change them under a later record.
    const fields: Record<string, unknown> = {
      [sc.ATTR_ML_PREDICTION_INPUT_NAMES]: Object.freeze(names.slice()),
      [sc.ATTR_ML_PREDICTION_INPUT_SHAPES]: Object.freeze(shapes),
    };
    const batch = batchSize(tensors);
    if (batch !== undefined) fields[sc.ATTR_ML_PREDICTION_BATCH_SIZE] = batch;
    return new FeedsSignature(names, dims, fields);
  }

  /** True when `feeds` has the same names in the same order, each with the same dims. */
  matches(feeds: Feeds): boolean {
    if (!isRecord(feeds)) return false;
    let i = 0;
    for (const name of Object.keys(feeds)) {
      if (i >= this.names.length || name !== this.names[i]) return false;
      const want = this.dims[i++];
      const t = feeds[name];
      if (typeof want === 'string' || t?.shape !== undefined) return false;
      const d = t?.dims;
      if (!Array.isArray(d) || d.length !== want.length) return false;
      for (let j = 0; j < d.length; j++) if (d[j] !== want[j]) return false;
    }
    return i === this.names.length;
  }
}

/**
 * The `trail.predict` spec of a plan's runs: the model's binding, the feeds' fields, the policy. Marked
 * {@link OPAQUE_CALLEE}: `session.run` runs native inference and calls back into no app code, so in the
 * default mode the trail records a run at the end of the event-loop turn instead of on the call's path.
 */
function runSpec(
  bound: ReturnType<typeof bindingOf>,
  feeds: FeedsSignature,
  capture: CaptureMode | undefined,
): PredictSpec<[Feeds], Promise<RunResult>> & { [OPAQUE_CALLEE]: true } {
  const fields = Object.freeze({ ...bound.fields, ...feeds.fields });
  // Output names and dtypes repeat from run to run too: the last ones are kept and handed out again.
  let outputs: { names: string[]; dtypes: string[]; fields: Readonly<Record<string, unknown>> } | undefined;
  return {
    ...RUN_CALLBACKS,
    resultFields: (result) => {
      if (outputs !== undefined && sameOutputs(result, outputs.names, outputs.dtypes)) return outputs.fields;
      const names: string[] = [];
      const dtypes: string[] = [];
      if (isRecord(result)) {
        for (const name of Object.keys(result)) {
          names.push(name);
          dtypes.push(`${name}:${dtypeOf(result[name])}`);
        }
      }
      outputs = {
        names,
        dtypes,
        fields: Object.freeze({
          [sc.ATTR_ML_PREDICTION_OUTPUT_NAMES]: Object.freeze(names.slice()),
          [sc.ATTR_ML_PREDICTION_OUTPUT_DTYPES]: Object.freeze(dtypes.slice()),
        }),
      };
      return outputs.fields;
    },
    model: bound.model,
    modelDigest: bound.modelDigest,
    capture,
    fields,
    [OPAQUE_CALLEE]: true,
  };
}

/** True when `result` has exactly these output names, in order, with these `name:dtype` entries. */
function sameOutputs(result: unknown, names: readonly string[], dtypes: readonly string[]): boolean {
  if (!isRecord(result)) return false;
  let i = 0;
  for (const name of Object.keys(result)) {
    if (i >= names.length || name !== names[i]) return false;
    const dtype = dtypes[i++];
    // `name:dtype`, compared without building the string.
    const t = dtypeOf(result[name]);
    if (dtype.length !== name.length + 1 + t.length || !dtype.endsWith(t)) return false;
  }
  return i === names.length;
}

/** What the trail asks of every `session.run` (module-level: no closures per call). */
const RUN_CALLBACKS: Pick<
  PredictSpec<[Feeds], Promise<RunResult>>,
  'input' | 'inputJson' | 'outputContent' | 'output'
> = {
  input: (f) => tensorsView(f),
  inputJson: (f) => tensorsJson(f),
  outputContent: (result) => tensorsView(result),
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
