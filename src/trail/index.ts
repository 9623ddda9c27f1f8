export type {
  AuditEventInput,
  AuditSeverity,
  AuditSink,
  BodyRedactor,
  ChainedRecord,
  EmittedRecord,
  SinkFailure,
  SinkLoss,
} from './audit-emitter.js';
export { AuditEmitter } from './audit-emitter.js';
export { type Digest, digestBytes, digestFile, digestRows, isDigest } from './digest.js';
export { AuditWriteError, type EventIssue, TrailValidationError } from './errors.js';
export {
  createTrail,
  createTrailSync,
  type DriftRecordInput,
  getTrail,
  setGlobalTrail,
  type Trail,
  TrailRegistry,
  type TrailRuntimeOptions,
  type TrailShutdownReport,
} from './trail.js';
export type {
  CaptureMode,
  ContentSource,
  DatasetSpec,
  DatasetVersion,
  DecisionSpec,
  Deployment,
  DeploySpec,
  EvaluateSpec,
  EvaluationResult,
  FeedbackSpec,
  ModelArtifact,
  ModelVersion,
  PredictionRecord,
  PredictSpec,
  RegisterSpec,
  RetrainingTrigger,
  RetrainSpec,
  TrailOptions,
  TrainingRun,
  TrainSpec,
  TransformSpec,
  UnregisteredModelSpec,
} from './types.js';
