/**
 * mltrail: tamper-evident, privacy-safe audit trails for machine-learning systems, on OpenTelemetry.
 *
 * The root entry exports the stage API; areas have subpath exports (`mltrail/semconv`,
 * `mltrail/integrity`, `mltrail/journal`, ...) so an application loads only what it uses.
 */

export { AuditLog, type AuditLogOptions } from './journal/index.js';
export type {
  AuditSink,
  BodyRedactor,
  CaptureMode,
  ContentSource,
  DatasetSpec,
  DatasetVersion,
  DecisionSpec,
  Deployment,
  DeploySpec,
  Digest,
  DriftRecordInput,
  EvaluateSpec,
  EvaluationResult,
  EventIssue,
  FeedbackSpec,
  ModelArtifact,
  ModelVersion,
  PredictionRecord,
  PredictSpec,
  RegisterSpec,
  RetrainingTrigger,
  RetrainSpec,
  Trail,
  TrailOptions,
  TrailRuntimeOptions,
  TrainingRun,
  TrainSpec,
  TransformSpec,
  UnregisteredModelSpec,
} from './trail/index.js';
export {
  AuditWriteError,
  createTrail,
  createTrailSync,
  digestBytes,
  digestFile,
  digestRows,
  getTrail,
  PREDICTION_DURATION_BUCKETS,
  remoteSpanContext,
  setGlobalTrail,
  TrailRegistry,
  TrailValidationError,
} from './trail/index.js';
