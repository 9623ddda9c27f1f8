export { OnnxRuntimeInstrumentation } from './instrumentation.js';
export type { OnnxRuntimeInstrumentationConfig } from './types.js';
