import type { LoggerProvider, MeterProvider, SpanContext, TracerProvider } from '@opentelemetry/api';
import type { Digest } from './digest.js';

/** Content inputs mltrail can digest: raw bytes, a file on disk, or rows (canonical JSON lines). */
export interface ContentSource {
  /** Raw bytes or text; hashed as bytes. */
  data?: Uint8Array | string;
  /** A file path; streamed. */
  file?: string;
  /** Rows of a table; each row's canonical JSON plus a newline is hashed, in order. */
  rows?: readonly unknown[];
  /** A digest computed elsewhere (`sha256:<hex>`), used when no content is given. */
  digest?: string;
}

/** What `trail.dataset()` registers. */
export interface DatasetSpec extends ContentSource {
  name: string;
  /** Defaults to the first 12 hex digits of the content digest, so the same bytes get the same version. */
  version?: string;
  /** Defaults to `<name>@<version>`. */
  id?: string;
  uri?: string;
  source?: string;
  format?: string;
  role?: 'raw' | 'train' | 'validation' | 'test' | 'reference';
  /** Defaults to `rows.length` when rows are given. */
  rowCount?: number;
  /** A schema description (any JSON); its canonical-JSON digest is recorded. */
  schema?: unknown;
  /** Digest of a drift reference profile built from this data (see `mltrail/drift`). */
  profileDigest?: string;
  actor?: string;
}

/** A registered dataset version; pass it as an input to later stages for lineage and span links. */
export interface DatasetVersion {
  readonly kind: 'dataset';
  readonly id: string;
  readonly name: string;
  readonly version: string;
  readonly digest: Digest | undefined;
  readonly rowCount: number | undefined;
  readonly spanContext: SpanContext | undefined;
}

/** How `trail.transform()` describes a transformation of input data sets into an output data set. */
export interface TransformSpec<R> {
  name: string;
  description?: string;
  inputs: readonly DatasetVersion[];
  /** The output data set: its name and how to read its content from the wrapped function's result. */
  output: Omit<DatasetSpec, keyof ContentSource> & {
    /** Defaults to: arrays are rows, strings/bytes are data. */
    content?: (result: R) => ContentSource;
  };
  codeDigest?: string;
  onRecorded?: (output: DatasetVersion) => void;
}

/** A model artifact produced by training or named at registration. */
export type ModelArtifact = ContentSource & { format?: string; uri?: string };

/** How `trail.train()` describes a training run. */
export interface TrainSpec<R> {
  /** The model name the run produces. */
  model: string;
  inputs: readonly DatasetVersion[];
  algorithm?: string;
  framework?: string;
  frameworkVersion?: string;
  /** Recorded as canonical JSON; must be JSON-serialisable. */
  hyperparameters?: Record<string, unknown>;
  seed?: number;
  /** Defaults to a new UUIDv7 per call. */
  runId?: string;
  /** Set when this run is a retraining (links the run to its trigger). */
  retraining?: RetrainingTrigger;
  profileDigest?: string;
  /** Reads the produced model artifact from the result, for its digest. */
  artifact?: (result: R) => ModelArtifact | undefined;
  actor?: string;
  onRecorded?: (run: TrainingRun) => void;
}

/** A completed training run. */
export interface TrainingRun {
  readonly kind: 'run';
  readonly id: string;
  readonly model: string;
  readonly modelDigest: Digest | undefined;
  readonly inputIds: readonly string[];
  readonly spanContext: SpanContext | undefined;
}

/** How `trail.evaluate()` describes an evaluation. */
export interface EvaluateSpec<R> {
  run?: TrainingRun | string;
  model?: ModelVersion;
  dataset: DatasetVersion;
  /** The headline metric compared with `threshold`. */
  metric: string;
  threshold?: number;
  /** Defaults to true: passed means value >= threshold. */
  higherIsBetter?: boolean;
  /** Reads all metrics from the result; defaults to `{ [metric]: result }` for a number. */
  metrics?: (result: R) => Record<string, number>;
  actor?: string;
  onRecorded?: (evaluation: EvaluationResult) => void;
}

/** A recorded evaluation. */
export interface EvaluationResult {
  readonly kind: 'evaluation';
  readonly id: string;
  readonly metric: string;
  readonly value: number | undefined;
  readonly passed: boolean | undefined;
  readonly spanContext: SpanContext | undefined;
}

/** What `trail.register()` records: a model version, tied to the run that produced it. */
export interface RegisterSpec extends ModelArtifact {
  name: string;
  version: string;
  run?: TrainingRun | string;
  approvedBy?: string;
  actor?: string;
}

/** A registered model version. */
export interface ModelVersion {
  readonly kind: 'model';
  readonly name: string;
  readonly version: string;
  readonly digest: Digest | undefined;
  readonly runId: string | undefined;
  readonly spanContext: SpanContext | undefined;
}

/** What `trail.deploy()` records. */
export interface DeploySpec {
  model: ModelVersion;
  environment: string;
  endpoint?: string;
  /** Defaults to a new UUIDv7. */
  id?: string;
  replaces?: ModelVersion | string;
  deployedBy?: string;
  actor?: string;
}

/** A deployment of a model version. */
export interface Deployment {
  readonly kind: 'deployment';
  readonly id: string;
  readonly model: ModelVersion;
  readonly environment: string;
  readonly spanContext: SpanContext | undefined;
}

/** Capture policy for inference inputs and outputs (see `mltrail/privacy`). */
export type CaptureMode = 'none' | 'digest' | 'redacted' | 'full';

/** How `trail.predict()` wraps an inference call. */
export interface PredictSpec<A extends unknown[], R> {
  /** The deployment or model version serving the call. */
  model?: Deployment | ModelVersion;
  /** Defaults to the trail's capture policy (`digest` unless configured). */
  capture?: CaptureMode;
  /** Picks the input to capture/digest from the call's arguments; defaults to the first argument. */
  input?: (...args: A) => unknown;
  /**
   * The canonical JSON (RFC 8785) of what `input` picks, written directly by a caller that can do it
   * without copying the values (the onnxruntime instrumentation writes its tensors this way). It must be
   * exactly what canonicalizing the JSON-safe copy of `input(...args)` gives; undefined falls back to that.
   */
  inputJson?: (...args: A) => string | undefined;
  /** Reads the output label/score from the result. */
  output?: (result: Awaited<R>) => { label?: string | number | boolean; score?: number } | undefined;
  /** Who the prediction is about (pseudonymised by the redactor's `hash` rules when configured). */
  subject?: (...args: A) => string | undefined;
  /**
   * Picks what to capture of the result under the `redacted`/`full` capture policies; defaults to the whole
   * result (instrumentations pass a plain view of output tensors).
   */
  outputContent?: (result: Awaited<R>) => unknown;
  /**
   * Digest of the model serving the call when `model` is not given (an unregistered model seen by an
   * instrumentation); recorded as `ml.model.digest` on the prediction and on a failure record.
   */
  modelDigest?: string;
  /**
   * Further semconv fields for the `ml.prediction` record and the span, e.g. tensor names and shapes,
   * `ml.model.format`, `ml.prediction.registered`. They never replace the fields the trail sets itself.
   */
  fields?: Record<string, unknown>;
  /** Further semconv fields read from the result (e.g. output tensor dtypes). */
  resultFields?: (result: Awaited<R>) => Record<string, unknown>;
  /** Extra semconv attributes known before the call (e.g. tensor names and shapes). */
  attributes?: (...args: A) => Record<string, unknown>;
  /** Extra semconv attributes read from the result (e.g. output dtypes). */
  resultAttributes?: (result: Awaited<R>) => Record<string, unknown>;
  onRecorded?: (prediction: PredictionRecord) => void;
}

/** What an instrumentation knows about a model that matches no registered version. */
export interface UnregisteredModelSpec {
  /** `sha256:<hex>` of the model artifact. */
  digest: string;
  name?: string;
  format?: string;
  uri?: string;
}

/** A recorded prediction. */
export interface PredictionRecord {
  readonly kind: 'prediction';
  readonly id: string;
  readonly latencyMs: number;
  readonly ok: boolean;
  readonly spanContext: SpanContext | undefined;
}

/** What `trail.decide()` records: a decision taken on a prediction, and why. */
export interface DecisionSpec {
  predictionId: string;
  outcome: string;
  reason?: string;
  threshold?: number;
  /** Feature attributions (e.g. SHAP values) by feature name. */
  attributions?: Record<string, number>;
  reviewer?: string;
  override?: boolean;
  automated?: boolean;
  actor?: string;
  /**
   * The span of the prediction decided on, for the decision span's link. Defaults to the span of a recent
   * prediction with `predictionId` made through this trail.
   */
  predictionSpanContext?: SpanContext;
}

/** What `trail.feedback()` records: the ground truth for a prediction, learned later. */
export interface FeedbackSpec {
  predictionId: string;
  groundTruth: string | number | boolean;
  correct?: boolean;
  source?: string;
}

/** What `trail.retrain()` records: why a model is being retrained. */
export interface RetrainSpec {
  reason: string;
  trigger: 'drift' | 'schedule' | 'manual' | 'performance';
  /** Ids of the records that caused it, e.g. drift event ids. */
  triggerIds?: readonly string[];
  /**
   * Span contexts of the records that caused it (e.g. of the `ml.drift` spans, read from their journal
   * records' trace and span ids): the retraining span links to each.
   */
  triggerSpanContexts?: readonly SpanContext[];
  previous?: ModelVersion;
  actor?: string;
}

/** A retraining trigger; pass it as `retraining` to the `train()` of the new run. */
export interface RetrainingTrigger {
  readonly kind: 'retraining';
  readonly id: string;
  readonly runId: string;
  readonly triggerIds: readonly string[];
  readonly spanContext: SpanContext | undefined;
}

/** What `createTrail()` accepts. Every field has a working default. */
export interface TrailOptions {
  /** `service.name` on every record; defaults to OTEL_SERVICE_NAME or `unknown_service:node`. */
  serviceName?: string;
  /** `deployment.environment.name`; defaults to MLTRAIL_ENVIRONMENT or `development`. */
  environment?: string;
  /** `ml.pipeline.name` on every record, when set. */
  pipeline?: string;
  /** The default actor (`ml.actor.id`), e.g. the OS user or a service account. */
  actor?: string;
  /** Providers; default to the global OTel providers. */
  tracerProvider?: TracerProvider;
  meterProvider?: MeterProvider;
  /**
   * When set, every audit record is also emitted as an OTel log record through this provider (in addition
   * to the journal). Leave unset when the journal shipper delivers audit records, to avoid duplicates.
   */
  loggerProvider?: LoggerProvider;
  /** Throw a typed error on invalid events instead of recording the violation (tests, CI). */
  strict?: boolean;
  /** Capture policy for inference inputs/outputs; default `digest`. */
  capture?: CaptureMode;
}
