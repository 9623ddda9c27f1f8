import type { InstrumentationConfig } from '@opentelemetry/instrumentation';
import type { CaptureMode, Trail } from '../../trail/index.js';

/** Options of {@link TfjsInstrumentation}. */
export interface TfjsInstrumentationConfig extends InstrumentationConfig {
  /**
   * The trail predictions are recorded through. Default: the process trail (`getTrail()`, set by
   * `mltrail/register`). With neither, models run unobserved.
   */
  trail?: Trail;
  /** What is kept of input and output tensors. Default: the trail's policy (`MLTRAIL_CAPTURE`, else `digest`). */
  capture?: CaptureMode;
}
