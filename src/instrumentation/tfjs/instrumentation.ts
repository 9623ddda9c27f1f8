import { isWrapped } from '@opentelemetry/instrumentation';
import * as sc from '../../semconv/index.js';
import { getTrail, type PredictSpec, type Trail } from '../../trail/index.js';
import { bindModel, type LoadedModel } from '../model-binding.js';
import { ModuleInstrumentation } from '../module-instrumentation.js';
import { dtypeOf, plainValues, shapeOf, type TensorLike } from '../tensor-view.js';
import { MLTRAIL_VERSION } from '../version.js';
import {
  type GraphModelLike,
  type LayersModelLike,
  tfjsGraphModelDigest,
  tfjsLayersModelDigest,
} from './model-digest.js';
import type { TfjsInstrumentationConfig } from './types.js';

const SUPPORTED = ['>=4.0.0 <5'];

/** A tfjs tensor, as far as the instrumentation reads it. */
interface TfTensor extends TensorLike {
  dataSync?(): unknown;
}
type AnyFn = (this: object, ...args: unknown[]) => unknown;
interface Proto {
  [method: string]: AnyFn;
}
interface TfModule {
  LayersModel?: { prototype: Proto };
  Sequential?: { prototype: Proto };
  GraphModel?: { prototype: Proto };
}

/** The methods patched, by class: `format` is recorded as `ml.model.format`. */
const TARGETS = [
  { cls: 'LayersModel', method: 'predict', format: 'tfjs-layers' },
  { cls: 'Sequential', method: 'predict', format: 'tfjs-layers' },
  { cls: 'GraphModel', method: 'execute', format: 'tfjs-graph' },
  { cls: 'GraphModel', method: 'executeAsync', format: 'tfjs-graph' },
] as const;

/**
 * Auto-instrumentation for TensorFlow.js (`@tensorflow/tfjs`, pure JS): `LayersModel.predict`,
 * `GraphModel.execute` and `executeAsync` become audited predictions through the trail, with input/output
 * names, shapes and dtypes, and the model's content digest (see {@link tfjsLayersModelDigest}) tied to the
 * registry. The digest is computed once per model object at its first prediction, so it covers models
 * loaded through any IO handler (`loadLayersModel`, `loadGraphModel`) and models built in code.
 */
export class TfjsInstrumentation extends ModuleInstrumentation<TfjsInstrumentationConfig> {
  readonly #models = new WeakMap<object, LoadedModel>();
  /** Sequential.predict delegates to its inner LayersModel.predict: only the outermost call is recorded. */
  #depth = 0;

  constructor(config: TfjsInstrumentationConfig = {}) {
    super('mltrail-instrumentation-tfjs', MLTRAIL_VERSION, config);
  }

  protected target() {
    return { module: '@tensorflow/tfjs', versions: SUPPORTED };
  }

  // Patching path: prototype methods only (see ModuleInstrumentation.patchModule).
  private tfModule(moduleExports: unknown): TfModule {
    const ns = moduleExports as { [Symbol.toStringTag]?: string; default?: TfModule } & TfModule;
    if (ns?.[Symbol.toStringTag] === 'Module' && ns.default?.LayersModel !== undefined) return ns.default;
    return ns ?? {};
  }

  protected patchModule(moduleExports: unknown): void {
    const tf = this.tfModule(moduleExports);
    for (const t of TARGETS) {
      const proto = tf[t.cls]?.prototype;
      if (proto === undefined || typeof proto[t.method] !== 'function') continue;
      // Only a class's own method: Sequential's predict is its own, GraphModel's are its own.
      if (!Object.hasOwn(proto, t.method) || isWrapped(proto[t.method])) continue;
      this._wrap(proto, t.method, (original) => this.wrapPredict(original, t.format));
    }
  }

  protected unpatchModule(moduleExports: unknown): void {
    const tf = this.tfModule(moduleExports);
    for (const t of TARGETS) {
      const proto = tf[t.cls]?.prototype;
      if (proto !== undefined && isWrapped(proto[t.method])) this._unwrap(proto, t.method);
    }
  }

  #trail(): Trail | undefined {
    return this.getConfig().trail ?? getTrail();
  }

  private wrapPredict(original: AnyFn, format: string): AnyFn {
    const instrumentation = this;
    return function predict(this: object, ...args: unknown[]): unknown {
      if (instrumentation.#depth > 0) return Reflect.apply(original, this, args);
      let predicted: AnyFn;
      try {
        const trail = instrumentation.#trail();
        if (trail === undefined) return Reflect.apply(original, this, args);
        const spec = instrumentation.#predictSpec(trail, this, format, args[0]);
        predicted = trail.predict(spec, original);
      } catch (err) {
        instrumentation._diag.error('could not observe the tfjs prediction; it runs unobserved', err);
        return Reflect.apply(original, this, args);
      }
      instrumentation.#depth++;
      try {
        return Reflect.apply(predicted, this, args);
      } finally {
        instrumentation.#depth--;
      }
    };
  }

  #loaded(model: object, format: string): LoadedModel {
    let loaded = this.#models.get(model);
    if (loaded === undefined) {
      let digest: string | undefined;
      try {
        digest =
          format === 'tfjs-graph'
            ? tfjsGraphModelDigest(model as GraphModelLike)
            : tfjsLayersModelDigest(model as LayersModelLike);
      } catch (err) {
        this._diag.error('could not compute the tfjs model digest', err);
      }
      loaded = { digest, format };
      this.#models.set(model, loaded);
    }
    return loaded;
  }

  #predictSpec(trail: Trail, model: object, format: string, input: unknown): PredictSpec<unknown[], unknown> {
    const bound = bindModel(trail, this.#loaded(model, format));
    const inputNames = namesOf(model, 'inputNames', 'inputNodes');
    const outputNames = namesOf(model, 'outputNames', 'outputNodes');
    const named = namedTensors(input, inputNames, 'input');
    const fields: Record<string, unknown> = {
      ...bound.fields,
      [sc.ATTR_ML_PREDICTION_INPUT_NAMES]: named.map(([n]) => n),
      [sc.ATTR_ML_PREDICTION_INPUT_SHAPES]: named.map(([n, t]) => `${n}:${shapeOf(t)}`),
    };
    const first = named[0]?.[1]?.shape;
    if (Array.isArray(first) && first.length >= 2 && typeof first[0] === 'number')
      fields[sc.ATTR_ML_PREDICTION_BATCH_SIZE] = first[0];
    return {
      model: bound.model,
      modelDigest: bound.modelDigest,
      capture: this.getConfig().capture,
      fields,
      input: (x) => tensorsView(namedTensors(x, inputNames, 'input')),
      outputContent: (result) => tensorsView(namedTensors(result, outputNames, 'output')),
      resultFields: (result) => {
        const out = namedTensors(result, outputNames, 'output');
        return {
          [sc.ATTR_ML_PREDICTION_OUTPUT_NAMES]: out.map(([n]) => n),
          [sc.ATTR_ML_PREDICTION_OUTPUT_DTYPES]: out.map(([n, t]) => `${n}:${dtypeOf(t)}`),
        };
      },
      output: (result) => {
        const out = namedTensors(result, outputNames, 'output');
        if (out.length !== 1) return undefined;
        const data = safeData(out[0]?.[1]);
        return ArrayBuffer.isView(data) && (data as unknown as ArrayLike<number>).length === 1
          ? { score: (data as unknown as ArrayLike<number>)[0] }
          : undefined;
      },
    };
  }
}

/**
 * LayersModel has `inputNames`/`outputNames`, GraphModel `inputNodes`/`outputNodes`; a Sequential keeps
 * empty name lists and delegates to an inner LayersModel (built lazily), so its symbolic inputs/outputs
 * are the last resort.
 */
function namesOf(model: object, layers: string, graph: string): string[] | undefined {
  const m = model as Record<string, unknown>;
  const inner = m.model as Record<string, unknown> | undefined;
  const symbolic = m[layers === 'inputNames' ? 'inputs' : 'outputs'];
  const candidates = [
    m[layers],
    m[graph],
    inner?.[layers],
    Array.isArray(symbolic) ? symbolic.map((t: { name?: unknown }) => t?.name) : undefined,
  ];
  for (const v of candidates)
    if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) return v;
  return undefined;
}

function isTensor(v: unknown): v is TfTensor {
  return v !== null && typeof v === 'object' && Array.isArray((v as TfTensor).shape);
}

/** Pairs tensors (one, an array, or a name → tensor map) with names (the model's, else `input_<i>`). */
function namedTensors(
  value: unknown,
  names: readonly string[] | undefined,
  prefix: 'input' | 'output',
): [string, TfTensor][] {
  if (isTensor(value)) return [[names?.[0] ?? `${prefix}_0`, value]];
  if (Array.isArray(value))
    return value.filter(isTensor).map((t, i) => [names?.[i] ?? `${prefix}_${i}`, t] as [string, TfTensor]);
  if (value !== null && typeof value === 'object')
    return Object.entries(value).filter((e): e is [string, TfTensor] => isTensor(e[1]));
  return [];
}

function safeData(t: TfTensor | undefined): unknown {
  try {
    return t?.dataSync?.();
  } catch {
    // A disposed tensor throws; its values are not captured.
    return undefined;
  }
}

function tensorsView(named: [string, TfTensor][]): unknown {
  const out: Record<string, unknown> = {};
  for (const [name, t] of named)
    out[name] = { dims: t.shape ?? null, type: dtypeOf(t), data: plainValues(safeData(t)) };
  return out;
}
