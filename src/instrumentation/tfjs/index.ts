export { TfjsInstrumentation } from './instrumentation.js';
export {
  type GraphModelLike,
  type LayersModelLike,
  tfjsGraphModelDigest,
  tfjsLayersModelDigest,
} from './model-digest.js';
export type { TfjsInstrumentationConfig } from './types.js';
