export {
  buildLinearClassifierOnnx,
  LINEAR_CLASSIFIER_OPSET,
  type LinearClassifierSpec,
} from './linear-model.js';
export { type OnnxModelInfo, readOnnxModelInfo } from './model-info.js';
