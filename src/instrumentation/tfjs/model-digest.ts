import { createHash } from 'node:crypto';
import { canonicalize } from '../../integrity/index.js';

/** A tfjs LayersModel, as far as the digest reads it. */
export interface LayersModelLike {
  toJSON(unused?: unknown, returnString?: boolean): unknown;
  getWeights(): { dataSync(): ArrayLike<number> & ArrayBufferView }[];
}

/** A tfjs GraphModel, as far as the digest reads it. */
export interface GraphModelLike {
  artifacts?: { modelTopology?: unknown; weightSpecs?: unknown; weightData?: ArrayBuffer | ArrayBuffer[] };
}

/**
 * The content digest of a tfjs LayersModel: sha256 over the canonical JSON of its topology
 * (`model.toJSON(null, false)`), a newline, then the bytes of every weight in `getWeights()` order. It
 * depends only on architecture and weight values, so the same model loaded from any IO handler (memory,
 * HTTP, files) has the same digest. Register a trained model with it (`trail.register({ digest })`) and
 * the instrumentation names that version at inference.
 */
export function tfjsLayersModelDigest(model: LayersModelLike): string {
  const hash = createHash('sha256');
  hash.update(canonicalize(model.toJSON(null, false)));
  hash.update('\n');
  for (const w of model.getWeights()) {
    const data = w.dataSync();
    hash.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return `sha256:${hash.digest('hex')}`;
}

/**
 * The content digest of a tfjs GraphModel: sha256 over the canonical JSON of `{ modelTopology, weightSpecs }`
 * of its loaded artifacts, a newline, then the weight bytes. Undefined when the artifacts are not available.
 */
export function tfjsGraphModelDigest(model: GraphModelLike): string | undefined {
  const a = model.artifacts;
  if (a?.modelTopology === undefined) return undefined;
  const hash = createHash('sha256');
  hash.update(canonicalize({ modelTopology: a.modelTopology, weightSpecs: a.weightSpecs ?? [] }));
  hash.update('\n');
  const parts = a.weightData === undefined ? [] : Array.isArray(a.weightData) ? a.weightData : [a.weightData];
  for (const p of parts) hash.update(new Uint8Array(p));
  return `sha256:${hash.digest('hex')}`;
}
