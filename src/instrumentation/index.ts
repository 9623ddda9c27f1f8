export { type AutoInstrumentation, startAutoInstrumentation } from './auto-instrumentation.js';
export { bindModel, type LoadedModel } from './model-binding.js';
export { OnnxRuntimeInstrumentation, type OnnxRuntimeInstrumentationConfig } from './onnxruntime/index.js';
export { PredictionHeaderGlue } from './prediction-header.js';
export { type RegisterOptions, readRegisterOptions } from './register-options.js';
export {
  type GraphModelLike,
  type LayersModelLike,
  TfjsInstrumentation,
  type TfjsInstrumentationConfig,
  tfjsGraphModelDigest,
  tfjsLayersModelDigest,
} from './tfjs/index.js';
