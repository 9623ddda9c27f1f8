import { AsyncLocalStorage } from 'node:async_hooks';
import { resolve as resolvePath } from 'node:path';
import {
  type Context,
  type Counter,
  context,
  diag,
  type Histogram,
  INVALID_SPAN_CONTEXT,
  type Link,
  metrics,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';
import { canonicalize, parseRecordLine, uuidv7 } from '../integrity/index.js';
import { AuditLog, probeJournalDir, resolveDir } from '../journal/index.js';
import { createRedactor } from '../privacy/index.js';
import * as sc from '../semconv/index.js';
import { JournalReader } from '../sources/journal-reader.js';
import {
  AuditEmitter,
  type AuditSeverity,
  type AuditSink,
  type BodyRedactor,
  commonFields,
} from './audit-emitter.js';
import { type Digest, digestBytes, digestFile, digestRows, isDigest } from './digest.js';
import { AuditWriteError } from './errors.js';
import type {
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
  ModelVersion,
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
import { type CallOutcome, callObserved, OPAQUE_CALLEE } from './wrap.js';

/** One `trail.predict()` call, as its record is written from it. */
interface PredictionCall {
  // biome-ignore lint/suspicious/noExplicitAny: the call's argument and result types do not matter here
  spec: PredictSpec<any, any>;
  id: string;
  model: ModelVersion | undefined;
  base: Record<string, unknown>;
  inputFields: Record<string, unknown>;
}

/** What a prediction's record reads from the call's result. */
interface PredictionResult {
  label: string | undefined;
  score: number | undefined;
  outputFields: Record<string, unknown> | undefined;
  resultFields: Record<string, unknown> | undefined;
}

/** The stage name of each span and record (`ml.stage.name`). */
type Stage =
  | 'dataset'
  | 'transform'
  | 'train'
  | 'evaluate'
  | 'register'
  | 'deploy'
  | 'predict'
  | 'decide'
  | 'feedback'
  | 'retrain'
  | 'drift';

/** What a drift monitor reports for `trail.recordDrift()` (see `mltrail/drift`). */
export interface DriftRecordInput {
  feature?: string;
  test?: string;
  statistic?: number;
  pValue?: number;
  threshold?: number;
  score?: number;
  datasetDrift?: boolean;
  driftShare?: number;
  windowStart?: string;
  windowEnd?: string;
  windowSize?: number;
  referenceDigest?: string;
  method?: string;
  model?: { name: string; version: string };
  deploymentId?: string;
}

/** Options that need the journal and privacy rooms. */
export interface TrailRuntimeOptions extends TrailOptions {
  /** Where audit records go. Defaults to the on-disk journal (`./.mltrail` or MLTRAIL_DIR). */
  sink?: AuditSink;
  /**
   * Redacts every audit body (and the prediction subject on spans) before it is written. Default: the
   * built-in policy of `mltrail/privacy` (detectors for personal data and secrets, secret-named keys masked,
   * `ml.prediction.subject_id` pseudonymised with MLTRAIL_PSEUDONYM_KEY, or masked without a key). `false`
   * turns redaction off.
   */
  redactor?: BodyRedactor | false;
  /**
   * Fail-closed (default false): an audited call fails, where the caller can catch it, when its record
   * cannot be made durable. While the journal is failing (a write failed and none has succeeded since, or
   * the trail was shut down) every audited call throws {@link AuditWriteError} (synchronous stages) or
   * rejects with it (asynchronous ones) and leaves no record; an asynchronous call made while the journal
   * works resolves only once its record is durable. Creating the trail fails when the journal directory
   * cannot take a write. See docs/security.md, "Fail-closed and fail-open".
   */
  failClosed?: boolean;
}

/** What {@link Trail.shutdown} resolves to. */
export interface TrailShutdownReport {
  /**
   * Audit records that will never be in the journal: dropped while writes failed, still unwritten when it
   * closed, or made after shutdown. 0 when every record is durable.
   */
  lost: number;
  /** The first write error of the last failure, if there was one. */
  error: string | undefined;
  /** The journal directory, when the sink is the journal. */
  dir: string | undefined;
}

/** The trail: one function per ML lifecycle stage. Create it with {@link createTrail}. */
export interface Trail {
  /** Registers a dataset version with its content digest. */
  dataset(spec: DatasetSpec): Promise<DatasetVersion>;
  /** Wraps a transformation; each call registers its output data set with a span link to the inputs. */
  transform<A extends unknown[], R>(
    spec: TransformSpec<Awaited<R>>,
    fn: (...args: A) => R,
  ): (...args: A) => R;
  /** Wraps a training function; each call is a training run. */
  train<A extends unknown[], R>(spec: TrainSpec<Awaited<R>>, fn: (...args: A) => R): (...args: A) => R;
  /** Wraps an evaluation; the result (or `spec.metrics(result)`) is compared with the threshold. */
  evaluate<A extends unknown[], R>(spec: EvaluateSpec<Awaited<R>>, fn: (...args: A) => R): (...args: A) => R;
  /** Registers a model version produced by a run. */
  register(spec: RegisterSpec): Promise<ModelVersion>;
  /** Records a deployment of a model version. */
  deploy(spec: DeploySpec): Deployment;
  /** Wraps an inference call; each call is a prediction with a UUIDv7 id. */
  predict<A extends unknown[], R>(spec: PredictSpec<A, R>, fn: (...args: A) => R): (...args: A) => R;
  /** Records a decision taken on a prediction. Returns the decision id. */
  decide(spec: DecisionSpec): { id: string };
  /** Records ground truth for a prediction. */
  feedback(spec: FeedbackSpec): { id: string };
  /** Records why a model is retrained; pass the result to the new run's `train({ retraining })`. */
  retrain(spec: RetrainSpec): RetrainingTrigger;
  /** Records a drift detection (used by `DriftMonitor`). */
  recordDrift(detail: DriftRecordInput): { id: string };
  /** Records, once per digest, that a model matching no registered version is serving traffic. */
  reportUnregisteredModel(model: UnregisteredModelSpec): void;
  /** Loads registered models and deployments from a journal (so a separate inference process can match digests). */
  loadRegistry(dir?: string): number;
  /** Looks up registered models, runs and deployments seen by this trail. */
  readonly registry: TrailRegistry;
  /** Ids of the predictions made so far in the current {@link Trail.withPredictionScope} scope. */
  currentPredictionIds(): readonly string[];
  /** Runs `fn` in a scope that collects prediction ids (the HTTP glue returns them in a header). */
  withPredictionScope<R>(fn: () => R): R;
  /** Resolves when every record appended so far is durable. */
  flush(): Promise<void>;
  /**
   * Flushes, writes a final checkpoint and closes the journal. Safe to call twice. Never rejects: it
   * resolves to a report whose `lost` counts the records that never reached the journal (also written to
   * standard error when not 0). Check it where losing records matters:
   * `const { lost } = await trail.shutdown(); if (lost > 0) process.exitCode = 1;`
   */
  shutdown(): Promise<TrailShutdownReport>;
}

/** In-memory index of what this trail recorded, used for lineage hints and digest matching. */
export class TrailRegistry {
  readonly datasets = new Map<string, DatasetVersion>();
  readonly runs = new Map<string, TrainingRun>();
  readonly models: Map<string, ModelVersion> = new VersionedMap<string, ModelVersion>(() =>
    this.#byDigest.clear(),
  );
  readonly deployments: Map<string, Deployment> = new VersionedMap<string, Deployment>(() =>
    this.#byDigest.clear(),
  );
  /**
   * Digest lookups run on every instrumented inference call: answers are cached until the models or
   * deployments change (a registry loaded from a long journal holds thousands of deployments).
   */
  readonly #byDigest = new Map<
    string,
    { model: ModelVersion | undefined; deployment: Deployment | undefined }
  >();

  /** The registered model version with this digest, if any. */
  modelByDigest(digest: string): ModelVersion | undefined {
    return this.#lookup(digest).model;
  }

  /** The latest deployment of a model version with this digest, if any. */
  deploymentByDigest(digest: string): Deployment | undefined {
    return this.#lookup(digest).deployment;
  }

  #lookup(digest: string) {
    let hit = this.#byDigest.get(digest);
    if (hit === undefined) {
      let model: ModelVersion | undefined;
      for (const m of this.models.values()) {
        if (m.digest === digest) {
          model = m;
          break;
        }
      }
      let deployment: Deployment | undefined;
      for (const d of this.deployments.values()) if (d.model.digest === digest) deployment = d;
      hit = { model, deployment };
      // Bounded: digests that are asked for but never registered must not grow the cache forever.
      if (this.#byDigest.size >= 1024) this.#byDigest.clear();
      this.#byDigest.set(digest, hit);
    }
    return hit;
  }
}

/** A Map that reports every change, so caches derived from it can be dropped. */
class VersionedMap<K, V> extends Map<K, V> {
  readonly #changed: () => void;

  constructor(changed: () => void) {
    super();
    this.#changed = changed;
  }

  override set(key: K, value: V): this {
    // Map's constructor calls set() before #changed exists; there is nothing cached yet then.
    this.#changed?.();
    return super.set(key, value);
  }

  override delete(key: K): boolean {
    this.#changed();
    return super.delete(key);
  }

  override clear(): void {
    this.#changed();
    super.clear();
  }
}

const predictionScope = new AsyncLocalStorage<string[]>();

/**
 * Creates a trail. With no options it journals to `./.mltrail` (or MLTRAIL_DIR), uses the global OTel
 * providers, and never throws into the host.
 *
 * @example
 * const trail = createTrail({ serviceName: 'credit-scoring', pipeline: 'weekly-retrain' });
 * const data = await trail.dataset({ name: 'applications', file: 'data/applications.csv' });
 * const train = trail.train({ model: 'credit', inputs: [data], seed: 7 }, fitModel);
 */
export async function createTrail(options: TrailRuntimeOptions = {}): Promise<Trail> {
  return createTrailSync(options);
}

/** {@link createTrail} without the promise, for setup code that cannot await (e.g. `--require` hooks). */
export function createTrailSync(options: TrailRuntimeOptions = {}): Trail {
  const sink = options.sink ?? openJournal(options.failClosed === true);
  const redactor = options.redactor === false ? undefined : (options.redactor ?? createRedactor());
  return new TrailImpl({ ...options, redactor }, sink);
}

/**
 * The default sink. Fail-closed: a journal directory that cannot take a write now (read-only, full, not a
 * directory, a file size limit) is an {@link AuditWriteError} naming the directory and the cause, so an
 * app that must not run unaudited does not start.
 */
function openJournal(failClosed: boolean): AuditLog {
  if (!failClosed) return new AuditLog();
  const dir = resolveDir();
  const problem = probeJournalDir(dir);
  const fail = (cause: string, err?: unknown) =>
    new AuditWriteError(
      `mltrail: fail-closed: the audit journal directory ${resolvePath(dir)} cannot be used (${cause}); set MLTRAIL_DIR to a writable directory with free space`,
      { dir, cause: err },
    );
  if (problem !== undefined) throw fail(problem);
  try {
    return new AuditLog({ failClosed: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw fail(e.code !== undefined ? `${e.code}: ${e.message}` : String(err), err);
  }
}

const GLOBAL_TRAIL = Symbol.for('mltrail:global-trail');

/** The trail `mltrail/register` created (or one set with {@link setGlobalTrail}), if any. */
export function getTrail(): Trail | undefined {
  return (globalThis as Record<symbol, Trail | undefined>)[GLOBAL_TRAIL];
}

/** Makes a trail the process-wide one returned by {@link getTrail}. */
export function setGlobalTrail(trail: Trail | undefined): void {
  (globalThis as Record<symbol, Trail | undefined>)[GLOBAL_TRAIL] = trail;
}

class TrailImpl implements Trail {
  readonly registry = new TrailRegistry();
  readonly #emitter: AuditEmitter;
  readonly #tracer;
  readonly #strict: boolean;
  readonly #failClosed: boolean;
  readonly #capture: CaptureMode;
  /** The last durability promise given a failure reporter (records committed together share one). */
  #reported: Promise<void> | undefined;
  readonly #actor: string | undefined;
  readonly #redactor: BodyRedactor | undefined;

  #closed: Promise<TrailShutdownReport> | undefined;
  readonly #unregistered = new Set<string>();
  readonly #predictions: Counter;
  readonly #predictionErrors: Counter;
  readonly #predictionDuration: Histogram;
  /** Model versions whose zero error series has been started. */
  readonly #errorSeries = new WeakSet<ModelVersion>();
  #errorSeriesUnnamed = false;
  /**
   * Span contexts of recent predictions by id, so a decision on one links to it: the latest ones, and the
   * generation before them (deleting the oldest entry of one map on every prediction costs several times
   * the insertion).
   */
  #predictionSpans = new Map<string, SpanContext>();
  #olderPredictionSpans = new Map<string, SpanContext>();
  /**
   * Spans and records queued to the end of the event-loop turn, in call order (see {@link TrailImpl.#defer}):
   * predictions of callees that run no JavaScript, and the record-only stages called while they wait.
   */
  #queue: (() => void)[] = [];
  #drainScheduled = false;
  #draining = false;
  /** Trails with queued work, drained when the process exits without `shutdown()`. */
  static readonly #queued = new Set<TrailImpl>();
  static #exitHooked = false;

  constructor(options: TrailRuntimeOptions, sink: AuditSink) {
    const tracerProvider = options.tracerProvider ?? trace.getTracerProvider();
    this.#tracer = tracerProvider.getTracer('mltrail');
    const meter = (options.meterProvider ?? metrics.getMeterProvider()).getMeter('mltrail');
    this.#predictions = meter.createCounter(sc.METRIC_ML_PREDICTION_COUNT, {
      description: 'Predictions made',
    });
    this.#predictionErrors = meter.createCounter(sc.METRIC_ML_PREDICTION_ERRORS, {
      description: 'Failed predictions',
    });
    this.#predictionDuration = meter.createHistogram(sc.METRIC_ML_PREDICTION_DURATION, {
      description: 'Inference latency',
      unit: 's',
      advice: { explicitBucketBoundaries: [...PREDICTION_DURATION_BUCKETS] },
    });
    this.#strict = options.strict === true;
    this.#failClosed = options.failClosed === true;
    this.#capture = options.capture ?? 'digest';
    this.#actor = options.actor;
    this.#redactor = options.redactor === false ? undefined : options.redactor;
    this.#emitter = new AuditEmitter({
      sink,
      redactor: this.#redactor,
      logger: options.loggerProvider?.getLogger('mltrail'),
      strict: this.#strict,
      common: commonFields({
        serviceName: options.serviceName ?? process.env.OTEL_SERVICE_NAME ?? 'unknown_service:node',
        environment: options.environment ?? process.env.MLTRAIL_ENVIRONMENT ?? 'development',
        extra: { [sc.ATTR_ML_PIPELINE_NAME]: options.pipeline },
      }),
      validationFailures: meter.createCounter(sc.METRIC_MLTRAIL_VALIDATION_FAILURES, {
        description: 'Audit events recorded with schema violations',
      }),
    });
  }

  #countPrediction(model: ModelVersion | undefined, latencyMs: number, error: unknown): void {
    try {
      const attrs: Record<string, string> = {};
      if (model !== undefined) {
        attrs[sc.ATTR_ML_MODEL_NAME] = model.name;
        attrs[sc.ATTR_ML_MODEL_VERSION] = model.version;
      }
      this.#predictions.add(1, attrs);
      this.#predictionDuration.record(latencyMs / 1000, attrs);
      // The error series of a model version exists from its first prediction, at zero, so an error rate
      // reads 0 (not "no data") until something fails.
      if (model === undefined ? !this.#errorSeriesUnnamed : !this.#errorSeries.has(model)) {
        if (model === undefined) this.#errorSeriesUnnamed = true;
        else this.#errorSeries.add(model);
        this.#predictionErrors.add(0, attrs);
      }
      if (error !== undefined) {
        this.#predictionErrors.add(1, {
          ...attrs,
          [sc.ATTR_ERROR_TYPE]: error instanceof Error ? error.name : typeof error,
        });
      }
    } catch (err) {
      diag.error('mltrail: prediction metrics failed', err);
    }
  }

  // ---------------------------------------------------------------- record-only stages

  async dataset(spec: DatasetSpec): Promise<DatasetVersion> {
    const digest = await this.#safeDigest(spec);
    const version = spec.version ?? (digest !== undefined ? digest.slice(7, 19) : undefined);
    const id = spec.id ?? (version !== undefined ? `${text(spec.name)}@${version}` : uuidv7());
    const rowCount = spec.rowCount ?? spec.rows?.length;
    let schemaDigest: string | undefined;
    if (spec.schema !== undefined) schemaDigest = this.#digestJson(spec.schema);
    const fields = {
      [sc.ATTR_ML_DATASET_ID]: id,
      [sc.ATTR_ML_DATASET_NAME]: spec.name,
      [sc.ATTR_ML_DATASET_VERSION]: version,
      [sc.ATTR_ML_DATASET_DIGEST]: digest,
      [sc.ATTR_ML_DATASET_URI]: spec.uri,
      [sc.ATTR_ML_DATASET_SOURCE]: spec.source,
      [sc.ATTR_ML_DATASET_FORMAT]: spec.format,
      [sc.ATTR_ML_DATASET_ROLE]: spec.role,
      [sc.ATTR_ML_DATASET_ROW_COUNT]: rowCount,
      [sc.ATTR_ML_DATASET_SCHEMA_DIGEST]: schemaDigest,
      [sc.ATTR_ML_DATASET_PROFILE_DIGEST]: spec.profileDigest,
    };
    const { spanContext, durable } = this.#recordStage(
      'dataset',
      sc.EVENT_ML_DATASET_REGISTERED,
      fields,
      [],
      spec.actor,
    );
    // Fail-closed: resolves only once the record is durable.
    if (this.#failClosed) await durable;
    const ds: DatasetVersion = {
      kind: 'dataset',
      id,
      name: spec.name,
      version: version ?? '',
      digest,
      rowCount,
      spanContext,
    };
    this.registry.datasets.set(id, ds);
    return ds;
  }

  async register(spec: RegisterSpec): Promise<ModelVersion> {
    const digest = await this.#safeDigest(spec);
    const runId = typeof spec.run === 'string' ? spec.run : spec.run?.id;
    const run = typeof spec.run === 'string' ? this.registry.runs.get(spec.run) : spec.run;
    const fields = {
      [sc.ATTR_ML_MODEL_NAME]: spec.name,
      [sc.ATTR_ML_MODEL_VERSION]: spec.version,
      [sc.ATTR_ML_MODEL_DIGEST]: digest,
      [sc.ATTR_ML_MODEL_FORMAT]: spec.format,
      [sc.ATTR_ML_MODEL_URI]: spec.uri,
      [sc.ATTR_ML_MODEL_APPROVED_BY]: spec.approvedBy,
      [sc.ATTR_ML_RUN_ID]: runId,
    };
    const { spanContext, durable } = this.#recordStage(
      'register',
      sc.EVENT_ML_MODEL_REGISTERED,
      fields,
      links(run?.spanContext),
      spec.actor,
    );
    if (this.#failClosed) await durable;
    const model: ModelVersion = {
      kind: 'model',
      name: spec.name,
      version: spec.version,
      digest,
      runId,
      spanContext,
    };
    this.registry.models.set(`${text(spec.name)}@${text(spec.version)}`, model);
    return model;
  }

  deploy(spec: DeploySpec): Deployment {
    const id = spec.id ?? uuidv7();
    const replaced = typeof spec.replaces === 'string' ? spec.replaces : spec.replaces?.version;
    const fields = {
      [sc.ATTR_ML_DEPLOYMENT_ID]: id,
      [sc.ATTR_ML_DEPLOYMENT_ENVIRONMENT]: spec.environment,
      [sc.ATTR_ML_DEPLOYMENT_ENDPOINT]: spec.endpoint,
      [sc.ATTR_ML_DEPLOYMENT_REPLACED_VERSION]: replaced,
      [sc.ATTR_ML_DEPLOYMENT_DEPLOYED_BY]: spec.deployedBy,
      [sc.ATTR_ML_MODEL_NAME]: spec.model?.name,
      [sc.ATTR_ML_MODEL_VERSION]: spec.model?.version,
      [sc.ATTR_ML_MODEL_DIGEST]: spec.model?.digest,
    };
    const { spanContext } = this.#recordStage(
      'deploy',
      sc.EVENT_ML_DEPLOYMENT_COMPLETED,
      fields,
      links(spec.model?.spanContext),
      spec.actor,
    );
    const deployment: Deployment = {
      kind: 'deployment',
      id,
      model: spec.model,
      environment: spec.environment,
      spanContext,
    };
    this.registry.deployments.set(id, deployment);
    return deployment;
  }

  decide(spec: DecisionSpec): { id: string } {
    const id = uuidv7();
    const fields = {
      [sc.ATTR_ML_DECISION_ID]: id,
      [sc.ATTR_ML_PREDICTION_ID]: spec.predictionId,
      [sc.ATTR_ML_DECISION_OUTCOME]: spec.outcome,
      [sc.ATTR_ML_DECISION_REASON]: spec.reason,
      [sc.ATTR_ML_DECISION_THRESHOLD]: spec.threshold,
      [sc.ATTR_ML_DECISION_ATTRIBUTIONS]:
        spec.attributions === undefined ? undefined : this.#json(spec.attributions),
      [sc.ATTR_ML_DECISION_REVIEWER]: spec.reviewer,
      [sc.ATTR_ML_DECISION_OVERRIDE]: spec.override,
      [sc.ATTR_ML_DECISION_AUTOMATED]: spec.automated,
    };
    // While predictions are queued the decision joins them (its prediction's span may not exist yet).
    const given = spec.predictionSpanContext;
    const predictionId = spec.predictionId;
    if (
      !this.#joinQueue('decide', sc.EVENT_ML_DECISION, fields, spec.actor, 'INFO', () =>
        links(given ?? this.#predictionSpan(predictionId)),
      )
    )
      this.#recordStage(
        'decide',
        sc.EVENT_ML_DECISION,
        fields,
        links(given ?? this.#predictionSpan(predictionId)),
        spec.actor,
      );
    return { id };
  }

  feedback(spec: FeedbackSpec): { id: string } {
    const id = uuidv7();
    const fields = {
      [sc.ATTR_ML_FEEDBACK_ID]: id,
      [sc.ATTR_ML_PREDICTION_ID]: spec.predictionId,
      [sc.ATTR_ML_FEEDBACK_GROUND_TRUTH]: spec.groundTruth === undefined ? undefined : text(spec.groundTruth),
      [sc.ATTR_ML_FEEDBACK_CORRECT]: spec.correct,
      [sc.ATTR_ML_FEEDBACK_SOURCE]: spec.source,
    };
    if (!this.#joinQueue('feedback', sc.EVENT_ML_FEEDBACK, fields, undefined, 'INFO', noLinks))
      this.#recordStage('feedback', sc.EVENT_ML_FEEDBACK, fields, []);
    return { id };
  }

  retrain(spec: RetrainSpec): RetrainingTrigger {
    const id = uuidv7();
    const runId = uuidv7();
    const triggerIds = [...(spec.triggerIds ?? [])];
    const fields = {
      [sc.ATTR_ML_RUN_ID]: runId,
      [sc.ATTR_ML_RUN_TYPE]: 'retraining',
      [sc.ATTR_ML_RETRAINING_REASON]: spec.reason,
      [sc.ATTR_ML_RETRAINING_TRIGGER]: spec.trigger,
      [sc.ATTR_ML_RETRAINING_TRIGGER_IDS]: triggerIds,
      [sc.ATTR_ML_RETRAINING_PREVIOUS_VERSION]: spec.previous?.version,
      [sc.ATTR_ML_MODEL_NAME]: spec.previous?.name,
    };
    const { spanContext } = this.#recordStage(
      'retrain',
      sc.EVENT_ML_RETRAINING_TRIGGERED,
      fields,
      links(spec.previous?.spanContext, ...(spec.triggerSpanContexts ?? [])),
      spec.actor,
    );
    return { kind: 'retraining', id, runId, triggerIds, spanContext };
  }

  recordDrift(detail: DriftRecordInput): { id: string } {
    const id = uuidv7();
    const fields = {
      [sc.ATTR_ML_DRIFT_ID]: id,
      [sc.ATTR_ML_DRIFT_FEATURE]: detail.feature,
      [sc.ATTR_ML_DRIFT_TEST]: detail.test,
      // χ² is +Infinity for a category the reference never saw: not a JSON number. p-value 0 and score 1
      // already record the certainty, so the statistic is left out rather than failing validation.
      [sc.ATTR_ML_DRIFT_STATISTIC]:
        detail.statistic === undefined || Number.isFinite(detail.statistic) ? detail.statistic : undefined,
      [sc.ATTR_ML_DRIFT_P_VALUE]: detail.pValue,
      [sc.ATTR_ML_DRIFT_THRESHOLD]: detail.threshold,
      [sc.ATTR_ML_DRIFT_SCORE]: detail.score,
      [sc.ATTR_ML_DRIFT_DETECTED]: true,
      [sc.ATTR_ML_DRIFT_DATASET_DRIFT]: detail.datasetDrift,
      [sc.ATTR_ML_DRIFT_DRIFT_SHARE]: detail.driftShare,
      [sc.ATTR_ML_DRIFT_WINDOW_START]: detail.windowStart,
      [sc.ATTR_ML_DRIFT_WINDOW_END]: detail.windowEnd,
      [sc.ATTR_ML_DRIFT_WINDOW_SIZE]: detail.windowSize,
      [sc.ATTR_ML_DRIFT_REFERENCE_DIGEST]: detail.referenceDigest,
      [sc.ATTR_ML_DRIFT_METHOD]: detail.method,
      [sc.ATTR_ML_MODEL_NAME]: detail.model?.name,
      [sc.ATTR_ML_MODEL_VERSION]: detail.model?.version,
      [sc.ATTR_ML_DEPLOYMENT_ID]: detail.deploymentId,
    };
    if (!this.#joinQueue('drift', sc.EVENT_ML_DRIFT_DETECTED, fields, undefined, 'WARN', noLinks))
      this.#recordStage('drift', sc.EVENT_ML_DRIFT_DETECTED, fields, [], undefined, 'WARN');
    return { id };
  }

  reportUnregisteredModel(model: UnregisteredModelSpec): void {
    if (this.#unregistered.has(model.digest)) return;
    this.#unregistered.add(model.digest);
    this.#recordStage(
      'predict',
      sc.EVENT_ML_MODEL_UNREGISTERED,
      {
        [sc.ATTR_ML_MODEL_DIGEST]: model.digest,
        [sc.ATTR_ML_MODEL_NAME]: model.name,
        [sc.ATTR_ML_MODEL_FORMAT]: model.format,
        [sc.ATTR_ML_MODEL_URI]: model.uri,
      },
      [],
      undefined,
      'WARN',
      // Reported from inside instrumentations, not an app's call: the prediction it accompanies is the
      // call that fails when the journal does.
      false,
    );
  }

  loadRegistry(dir?: string): number {
    let loaded = 0;
    try {
      for (const l of new JournalReader(dir ?? process.env.MLTRAIL_DIR ?? '.mltrail').lines()) {
        const isModel = l.text.includes(sc.EVENT_ML_MODEL_REGISTERED);
        const isDeployment = l.text.includes(sc.EVENT_ML_DEPLOYMENT_COMPLETED);
        if (!isModel && !isDeployment) continue;
        const r = parseRecordLine(l.text, l);
        if (r.body === '') continue;
        const b = JSON.parse(r.body) as Record<string, unknown>;
        // The stage span that wrote the record, as a remote span context: what the serving process links
        // its predictions to (through the deployment) when the pipeline ran in another process.
        const spanContext = remoteSpanContext(r.trace_id ?? b.trace_id, r.span_id ?? b.span_id);
        const name = String(b[sc.ATTR_ML_MODEL_NAME] ?? '');
        const version = String(b[sc.ATTR_ML_MODEL_VERSION] ?? '');
        const digest = b[sc.ATTR_ML_MODEL_DIGEST] as Digest | undefined;
        if (r.event === sc.EVENT_ML_MODEL_REGISTERED) {
          const runId = b[sc.ATTR_ML_RUN_ID] as string | undefined;
          this.registry.models.set(`${name}@${version}`, {
            kind: 'model',
            name,
            version,
            digest,
            runId,
            spanContext,
          });
          loaded++;
        } else if (r.event === sc.EVENT_ML_DEPLOYMENT_COMPLETED) {
          const model = this.registry.models.get(`${name}@${version}`) ?? {
            kind: 'model' as const,
            name,
            version,
            digest,
            runId: undefined,
            spanContext: undefined,
          };
          const id = String(b[sc.ATTR_ML_DEPLOYMENT_ID]);
          const environment = String(b[sc.ATTR_ML_DEPLOYMENT_ENVIRONMENT] ?? '');
          this.registry.deployments.set(id, {
            kind: 'deployment',
            id,
            model,
            environment,
            spanContext,
          });
          loaded++;
        }
      }
    } catch (err) {
      diag.error('mltrail: could not load the model registry from the journal', err);
    }
    return loaded;
  }

  // ---------------------------------------------------------------- wrapping stages

  transform<A extends unknown[], R>(
    spec: TransformSpec<Awaited<R>>,
    fn: (...args: A) => R,
  ): (...args: A) => R {
    const self = this;
    return function transformed(this: unknown, ...args: A): R {
      const id = uuidv7();
      return self.#observe(
        'transform',
        spec.inputs.map((d) => d.spanContext),
        fn,
        this,
        args,
        (span, outcome) => {
          if (!outcome.ok)
            return self.#failed('transform', span, outcome.error, { [sc.ATTR_ML_TRANSFORM_ID]: id });
          const value = outcome.value as Awaited<R>;
          const content = spec.output.content?.(value) ?? defaultContent(value);
          const digest = self.#digestSync(content);
          const version = spec.output.version ?? (digest !== undefined ? digest.slice(7, 19) : id);
          const outId = spec.output.id ?? `${text(spec.output.name)}@${version}`;
          const rowCount = spec.output.rowCount ?? content.rows?.length;
          const inputIds = spec.inputs.map((d) => d.id);
          const fields = {
            [sc.ATTR_ML_TRANSFORM_ID]: id,
            [sc.ATTR_ML_TRANSFORM_NAME]: spec.name,
            [sc.ATTR_ML_TRANSFORM_DESCRIPTION]: spec.description,
            [sc.ATTR_ML_TRANSFORM_INPUT_IDS]: inputIds,
            [sc.ATTR_ML_TRANSFORM_OUTPUT_ID]: outId,
            [sc.ATTR_ML_TRANSFORM_CODE_DIGEST]: spec.codeDigest,
            [sc.ATTR_ML_DATASET_ID]: outId,
            [sc.ATTR_ML_DATASET_NAME]: spec.output.name,
            [sc.ATTR_ML_DATASET_VERSION]: version,
            [sc.ATTR_ML_DATASET_DIGEST]: digest,
            [sc.ATTR_ML_DATASET_ROW_COUNT]: rowCount,
            [sc.ATTR_ML_DATASET_ROLE]: spec.output.role,
          };
          setSpanAttrs(span, fields);
          const emitted = self.#emit(sc.EVENT_ML_TRANSFORM_COMPLETED, 'INFO', fields, span);
          const output: DatasetVersion = {
            kind: 'dataset',
            id: outId,
            name: spec.output.name,
            version,
            digest,
            rowCount,
            spanContext: span.spanContext(),
          };
          self.registry.datasets.set(outId, output);
          safeCall(() => spec.onRecorded?.(output));
          return emitted;
        },
      );
    };
  }

  train<A extends unknown[], R>(spec: TrainSpec<Awaited<R>>, fn: (...args: A) => R): (...args: A) => R {
    const self = this;
    return function trained(this: unknown, ...args: A): R {
      const runId = spec.runId ?? spec.retraining?.runId ?? uuidv7();
      const started = performance.now();
      const inputLinks = [...spec.inputs.map((d) => d.spanContext), spec.retraining?.spanContext];
      const base = {
        [sc.ATTR_ML_RUN_ID]: runId,
        [sc.ATTR_ML_RUN_TYPE]: spec.retraining !== undefined ? 'retraining' : 'training',
        [sc.ATTR_ML_MODEL_NAME]: spec.model,
        [sc.ATTR_ML_TRAINING_ALGORITHM]: spec.algorithm,
        [sc.ATTR_ML_TRAINING_FRAMEWORK]: spec.framework,
        [sc.ATTR_ML_TRAINING_FRAMEWORK_VERSION]: spec.frameworkVersion,
        [sc.ATTR_ML_TRAINING_SEED]: spec.seed,
        [sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS]: spec.inputs.map((d) => d.id),
      };
      return self.#observe('train', inputLinks, fn, this, args, (span, outcome) => {
        if (!outcome.ok) return self.#failed('train', span, outcome.error, base);
        let artifact: (ContentSource & { format?: string; uri?: string }) | undefined;
        try {
          artifact = spec.artifact?.(outcome.value as Awaited<R>);
        } catch (err) {
          diag.error('mltrail: train() artifact callback threw', err);
        }
        const modelDigest = artifact !== undefined ? self.#digestSync(artifact) : undefined;
        const fields = {
          ...base,
          [sc.ATTR_ML_TRAINING_HYPERPARAMETERS]:
            spec.hyperparameters === undefined ? undefined : self.#json(spec.hyperparameters),
          [sc.ATTR_ML_TRAINING_DURATION_MS]: round3(performance.now() - started),
          [sc.ATTR_ML_TRAINING_PROFILE_DIGEST]: spec.profileDigest,
          [sc.ATTR_ML_MODEL_DIGEST]: modelDigest,
          [sc.ATTR_ML_MODEL_FORMAT]: artifact?.format,
          [sc.ATTR_ML_MODEL_URI]: artifact?.uri,
          [sc.ATTR_ML_RETRAINING_TRIGGER_IDS]: spec.retraining?.triggerIds,
        };
        setSpanAttrs(span, fields);
        const emitted = self.#emit(sc.EVENT_ML_TRAINING_COMPLETED, 'INFO', fields, span, spec.actor);
        const run: TrainingRun = {
          kind: 'run',
          id: runId,
          model: spec.model,
          modelDigest,
          inputIds: spec.inputs.map((d) => d.id),
          spanContext: span.spanContext(),
        };
        self.registry.runs.set(runId, run);
        safeCall(() => spec.onRecorded?.(run));
        return emitted;
      });
    };
  }

  evaluate<A extends unknown[], R>(spec: EvaluateSpec<Awaited<R>>, fn: (...args: A) => R): (...args: A) => R {
    const self = this;
    return function evaluated(this: unknown, ...args: A): R {
      const id = uuidv7();
      const run = typeof spec.run === 'string' ? self.registry.runs.get(spec.run) : spec.run;
      const runId = typeof spec.run === 'string' ? spec.run : spec.run?.id;
      const base = {
        [sc.ATTR_ML_EVALUATION_ID]: id,
        [sc.ATTR_ML_RUN_ID]: runId,
        [sc.ATTR_ML_EVALUATION_DATASET_ID]: spec.dataset.id,
        [sc.ATTR_ML_EVALUATION_METRIC_NAME]: spec.metric,
        [sc.ATTR_ML_EVALUATION_THRESHOLD]: spec.threshold,
        [sc.ATTR_ML_MODEL_NAME]: spec.model?.name ?? run?.model,
        [sc.ATTR_ML_MODEL_VERSION]: spec.model?.version,
      };
      const inputLinks = [spec.dataset.spanContext, run?.spanContext, spec.model?.spanContext];
      return self.#observe('evaluate', inputLinks, fn, this, args, (span, outcome) => {
        if (!outcome.ok) return self.#failed('evaluate', span, outcome.error, base);
        let all: Record<string, number> | undefined;
        try {
          all = spec.metrics?.(outcome.value as Awaited<R>);
        } catch (err) {
          diag.error('mltrail: evaluate() metrics callback threw', err);
        }
        if (all === undefined && typeof outcome.value === 'number') all = { [spec.metric]: outcome.value };
        const value = all?.[spec.metric];
        const passed =
          spec.threshold === undefined || typeof value !== 'number'
            ? undefined
            : spec.higherIsBetter === false
              ? value <= spec.threshold
              : value >= spec.threshold;
        const fields = {
          ...base,
          [sc.ATTR_ML_EVALUATION_METRIC_VALUE]: value,
          [sc.ATTR_ML_EVALUATION_METRICS]: all === undefined ? undefined : self.#json(all),
          [sc.ATTR_ML_EVALUATION_PASSED]: passed,
        };
        setSpanAttrs(span, fields);
        const emitted = self.#emit(
          sc.EVENT_ML_EVALUATION_COMPLETED,
          passed === false ? 'WARN' : 'INFO',
          fields,
          span,
          spec.actor,
        );
        const result: EvaluationResult = {
          kind: 'evaluation',
          id,
          metric: spec.metric,
          value,
          passed,
          spanContext: span.spanContext(),
        };
        safeCall(() => spec.onRecorded?.(result));
        return emitted;
      });
    };
  }

  predict<A extends unknown[], R>(spec: PredictSpec<A, R>, fn: (...args: A) => R): (...args: A) => R {
    const self = this;
    // A callee that runs no JavaScript on the app's behalf is recorded at the end of the event-loop turn
    // (default mode only, see #observeOpaque); onRecorded is app code, so such a spec is recorded at once.
    const opaque =
      (spec as { [OPAQUE_CALLEE]?: boolean })[OPAQUE_CALLEE] === true && spec.onRecorded === undefined;
    return function predicted(this: unknown, ...args: A): R {
      const id = uuidv7();
      predictionScope.getStore()?.push(id);
      const started = performance.now();
      const model =
        spec.model === undefined
          ? undefined
          : spec.model.kind === 'deployment'
            ? spec.model.model
            : spec.model;
      const deploymentId = spec.model?.kind === 'deployment' ? spec.model.id : undefined;
      const capture = spec.capture ?? self.#capture;
      // What is read from the inputs is read here, at the call: the app may reuse its tensors afterwards.
      let inputFields: Record<string, unknown> = {};
      let subject: string | undefined;
      try {
        inputFields = self.#captureInput(spec, args, capture);
        subject = spec.subject?.(...args);
        // The subject also goes on the span: pseudonymise it here, not only in the audit body.
        if (subject !== undefined && self.#redactor !== undefined) {
          const redacted = self.#redactor.redact({ [sc.ATTR_ML_PREDICTION_SUBJECT_ID]: subject })
            .value as Record<string, unknown>;
          subject = String(redacted[sc.ATTR_ML_PREDICTION_SUBJECT_ID]);
        }
      } catch (err) {
        diag.error('mltrail: predict() input/subject callback threw', err);
      }
      let extra: Record<string, unknown> | undefined;
      try {
        extra = spec.attributes?.(...args);
      } catch (err) {
        diag.error('mltrail: predict() attributes callback threw', err);
      }
      const base = {
        ...extra,
        [sc.ATTR_ML_PREDICTION_ID]: id,
        [sc.ATTR_ML_MODEL_NAME]: model?.name,
        [sc.ATTR_ML_MODEL_VERSION]: model?.version,
        [sc.ATTR_ML_MODEL_DIGEST]: model?.digest ?? spec.modelDigest,
        [sc.ATTR_ML_DEPLOYMENT_ID]: deploymentId,
        [sc.ATTR_ML_PREDICTION_SUBJECT_ID]: subject,
      };
      const call: PredictionCall = { spec, id, model, base, inputFields };
      if (opaque && self.#queues())
        return self.#observeOpaque(spec.model?.spanContext, fn, this, args, started, (outcome, at) => {
          // What the record needs from the result is read now (the app may reuse it afterwards); the
          // span's attributes and the record are written when the queue runs, with `at` as the record's time.
          const latency = round3(performance.now() - started);
          if (!outcome.ok) return (span) => self.#predictionFailed(call, span, latency, outcome.error, at);
          const result = self.#readPrediction(call.spec, outcome.value, capture);
          return (span) => self.#predictionRecord(call, span, latency, result, at);
        });
      return self.#observe('predict', [spec.model?.spanContext], fn, this, args, (span, outcome) => {
        const latency = round3(performance.now() - started);
        if (!outcome.ok) return self.#predictionFailed(call, span, latency, outcome.error);
        return self.#predictionRecord(
          call,
          span,
          latency,
          self.#readPrediction(spec, outcome.value, capture),
        );
      });
    };
  }

  /** What a prediction's record needs from its result, read when the call settles. */
  #readPrediction<A extends unknown[], R>(
    spec: PredictSpec<A, R>,
    value: unknown,
    capture: CaptureMode,
  ): PredictionResult {
    let out: { label?: string | number | boolean; score?: number } | undefined;
    try {
      out = spec.output?.(value as Awaited<R>);
    } catch (err) {
      diag.error('mltrail: predict() output callback threw', err);
    }
    let outputFields: Record<string, unknown> | undefined;
    let resultFields: Record<string, unknown> | undefined;
    try {
      if (capture === 'redacted' || capture === 'full') {
        const content = spec.outputContent !== undefined ? spec.outputContent(value as Awaited<R>) : value;
        outputFields = this.#captureOutput(content, capture);
      }
      if (spec.resultFields !== undefined) resultFields = spec.resultFields(value as Awaited<R>);
    } catch (err) {
      diag.error('mltrail: predict() outputContent/resultFields callback threw', err);
    }
    const label = out?.label === undefined ? undefined : text(out.label);
    return { label, score: out?.score, outputFields, resultFields };
  }

  /** The span's attributes and the `ml.prediction` record of a call that returned (`at`: the record's time). */
  #predictionRecord(
    call: PredictionCall,
    span: Span,
    latency: number,
    r: PredictionResult,
    at?: number,
  ): Promise<void> | undefined {
    const { spec, base, inputFields } = call;
    this.#countPrediction(call.model, latency, undefined);
    // One object for the record (the spec's fields, then what was read from the result, then the trail's
    // own); span attributes are set from the same values without intermediate copies (this runs on every
    // prediction).
    const fields: Record<string, unknown> = { ...spec.fields, ...r.resultFields };
    assignDefined(fields, base);
    Object.assign(fields, inputFields, r.outputFields);
    fields[sc.ATTR_ML_PREDICTION_LATENCY_MS] = latency;
    fields[sc.ATTR_ML_PREDICTION_OUTPUT_LABEL] = r.label;
    fields[sc.ATTR_ML_PREDICTION_OUTPUT_SCORE] = r.score;
    if (spec.fields !== undefined) setSpanAttrs(span, spec.fields);
    if (r.resultFields !== undefined) setSpanAttrs(span, r.resultFields);
    setSpanAttrs(span, base);
    setSpanAttr(span, sc.ATTR_ML_PREDICTION_INPUT_DIGEST, inputFields[sc.ATTR_ML_PREDICTION_INPUT_DIGEST]);
    setSpanAttr(span, sc.ATTR_ML_PREDICTION_LATENCY_MS, latency);
    setSpanAttr(span, sc.ATTR_ML_PREDICTION_OUTPUT_LABEL, r.label);
    setSpanAttr(span, sc.ATTR_ML_PREDICTION_OUTPUT_SCORE, r.score);
    const emitted = this.#emit(sc.EVENT_ML_PREDICTION, 'INFO', fields, span, undefined, at);
    this.#rememberPrediction(call.id, span.spanContext());
    if (spec.onRecorded !== undefined)
      safeCall(() =>
        spec.onRecorded?.({
          kind: 'prediction',
          id: call.id,
          latencyMs: latency,
          ok: true,
          spanContext: span.spanContext(),
        }),
      );
    return emitted;
  }

  /** The `ml.stage.failed` record of a call that threw or rejected (`at`: the record's time). */
  #predictionFailed(
    call: PredictionCall,
    span: Span,
    latency: number,
    error: unknown,
    at?: number,
  ): Promise<void> | undefined {
    this.#countPrediction(call.model, latency, error);
    const emitted = this.#failed(
      'predict',
      span,
      error,
      { ...call.base, [sc.ATTR_ML_PREDICTION_LATENCY_MS]: latency },
      at,
    );
    if (call.spec.onRecorded !== undefined)
      safeCall(() =>
        call.spec.onRecorded?.({
          kind: 'prediction',
          id: call.id,
          latencyMs: latency,
          ok: false,
          spanContext: span.spanContext(),
        }),
      );
    return emitted;
  }

  // ---------------------------------------------------------------- scope, flush, shutdown

  currentPredictionIds(): readonly string[] {
    return predictionScope.getStore() ?? [];
  }

  withPredictionScope<R>(fn: () => R): R {
    return predictionScope.run([], fn);
  }

  flush(): Promise<void> {
    this.#drain();
    return this.#emitter.flush().catch((err: unknown) => {
      diag.error('mltrail: flush failed', err);
      if (this.#failClosed) throw err;
    });
  }

  shutdown(): Promise<TrailShutdownReport> {
    // Queued records first; from here on nothing is queued (#queues() is false once #closed is set).
    this.#drain();
    this.#closed ??= this.#emitter.close().then(
      (loss) => ({ lost: loss?.lost ?? 0, error: loss?.error, dir: loss?.dir }),
      (err: unknown) => {
        diag.error('mltrail: shutdown failed', err);
        return { lost: 0, error: err instanceof Error ? err.message : String(err), dir: undefined };
      },
    );
    return this.#closed;
  }

  // ---------------------------------------------------------------- internals

  /** Keeps the span context of the latest predictions (bounded) for the link from a decision. */
  #rememberPrediction(id: string, spanContext: SpanContext): void {
    this.#predictionSpans.set(id, spanContext);
    if (this.#predictionSpans.size >= RECENT_PREDICTION_SPANS) {
      this.#olderPredictionSpans = this.#predictionSpans;
      this.#predictionSpans = new Map();
    }
  }

  #predictionSpan(id: string): SpanContext | undefined {
    return this.#predictionSpans.get(id) ?? this.#olderPredictionSpans.get(id);
  }

  /**
   * Fail-closed only: the error an audited call fails with while the journal is failing (a write failed
   * and none has succeeded since, or it is closed), or undefined when the call may proceed.
   */
  #refusal(what: { event: string } | { stage: Stage }): AuditWriteError | undefined {
    if (!this.#failClosed) return undefined;
    const f = this.#emitter.failure();
    if (f === undefined) return undefined;
    const where = f.dir !== undefined ? ` ${resolvePath(f.dir)}` : '';
    const subject =
      'event' in what ? `${what.event} not recorded` : `the ${what.stage} call was not recorded`;
    return new AuditWriteError(
      `mltrail: ${subject}: the audit journal${where} is failing (${f.error}); fail-closed mode fails audited calls until a write succeeds`,
      { event: 'event' in what ? what.event : undefined, dir: f.dir },
    );
  }

  /**
   * Runs `fn` inside a new stage span and settles it through `record`, which returns the emitted record's
   * durability. In fail-closed mode an async call waits for it and rejects if the record cannot be written.
   */
  #observe<A extends unknown[], R>(
    stage: Stage,
    linkFrom: readonly (SpanContext | undefined)[],
    fn: (...args: A) => R,
    thisArg: unknown,
    args: A,
    record: (
      span: Span,
      outcome: { ok: true; value: unknown } | { ok: false; error: unknown },
    ) => Promise<void> | undefined,
  ): R {
    let span: Span;
    let ctx: Context;
    try {
      span = this.#tracer.startSpan(spanName(stage), {
        kind: stage === 'predict' ? SpanKind.INTERNAL : SpanKind.INTERNAL,
        links: links(...linkFrom),
        attributes: { [sc.ATTR_ML_STAGE_NAME]: stage },
      });
      ctx = trace.setSpan(context.active(), span);
    } catch (err) {
      diag.error('mltrail: could not start a span; the call runs unobserved', err);
      return Reflect.apply(fn, thisArg, args) as R;
    }
    return context.with(ctx, () =>
      callObserved(fn as unknown as (...a: never[]) => R, thisArg, args, (outcome, isAsync) => {
        // Fail-closed while the journal is failing: no record, and the call fails (a sync one throws
        // here, an async one rejects); a call that failed on its own keeps its own error.
        const refused = this.#refusal({ stage });
        if (refused !== undefined) {
          try {
            span.setStatus({ code: SpanStatusCode.ERROR, message: refused.message });
          } catch (err) {
            diag.error('mltrail: could not mark the span as failed', err);
          }
          endSpan(span);
          if (!outcome.ok) return undefined;
          if (isAsync) return Promise.reject(refused);
          throw refused;
        }
        let durable: Promise<void> | undefined;
        try {
          durable = record(span, outcome);
        } catch (err) {
          if (this.#strict) {
            endSpan(span);
            throw err;
          }
          diag.error(`mltrail: recording the ${stage} stage failed`, err);
        }
        endSpan(span);
        if (isAsync && this.#failClosed && durable !== undefined) return durable;
        return undefined;
      }),
    );
  }

  // ---------------------------------------------------------------- queued records

  /**
   * Whether predictions of callees that run no JavaScript are queued: only in the default mode. Strict
   * mode must throw at the call, fail-closed callers await durability or are refused at the call, and
   * after `shutdown()` a record is counted as lost at once; those keep the path where the record is made
   * when the call settles.
   */
  #queues(): boolean {
    return !this.#strict && !this.#failClosed && this.#closed === undefined;
  }

  /**
   * Queues span and record work to the end of the event-loop turn (a `setImmediate`), or runs the queue
   * now once it holds {@link MAX_QUEUED} items. Every other record drains the queue first (#emit), as do
   * `flush()`, `shutdown()` and the process's exit, so the chain keeps call order and nothing is lost
   * short of a hard crash.
   */
  #defer(work: () => void): void {
    const n = this.#queue.push(work);
    if (n === 1) {
      TrailImpl.#queued.add(this);
      if (!TrailImpl.#exitHooked) {
        TrailImpl.#exitHooked = true;
        // Before the journal's own exit hook, which reports what is not on disk.
        process.prependListener('exit', () => {
          for (const t of TrailImpl.#queued) t.#drain();
        });
      }
    }
    if (n >= MAX_QUEUED) this.#drain();
    else if (!this.#drainScheduled) {
      this.#drainScheduled = true;
      setImmediate(() => {
        this.#drainScheduled = false;
        this.#drain();
      });
    }
  }

  /** Runs the queued work in order. Errors go to diag; work queued meanwhile runs after it. */
  #drain(): void {
    if (this.#draining || this.#queue.length === 0) return;
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue;
        this.#queue = [];
        for (const work of batch) {
          try {
            work();
          } catch (err) {
            diag.error('mltrail: a queued record failed', err);
          }
        }
      }
    } finally {
      this.#draining = false;
      TrailImpl.#queued.delete(this);
    }
  }

  /**
   * A record-only stage whose result names no span (decide, feedback, recordDrift) called while records
   * are queued: joins the queue, so its record follows theirs, with its span started under the call's
   * context at the call's time and its links (a decision's to its prediction's span, which may itself be
   * queued) resolved when it is written. False when nothing is queued: the caller records at once.
   */
  #joinQueue(
    stage: Stage,
    event: string,
    fields: Record<string, unknown>,
    actor: string | undefined,
    sev: AuditSeverity,
    linkTo: () => Link[],
  ): boolean {
    if (this.#queue.length === 0 || this.#draining) return false;
    const parent = context.active();
    const time = performance.now();
    const at = Date.now();
    this.#defer(() => {
      const span = this.#spanAt(stage, linkTo(), time, parent);
      try {
        setSpanAttrs(span, fields);
        this.#emit(event, sev, fields, span, actor, at);
      } finally {
        endSpan(span, time);
      }
    });
    return true;
  }

  /**
   * predict() of a callee that runs no JavaScript on the app's behalf (see OPAQUE_CALLEE), in the default
   * mode. Nothing in the callee can see an active span, so none is made active around it; what the record
   * needs from the result is read when the call settles; the span (under the context of the call, with its
   * start and end times) and the record are made at the end of the event-loop turn, in one batch with the
   * other predictions and decisions of that turn. A failed call is recorded when it settles.
   */
  #observeOpaque<A extends unknown[], R>(
    linkFrom: SpanContext | undefined,
    fn: (...args: A) => R,
    thisArg: unknown,
    args: A,
    started: number,
    settled: (outcome: CallOutcome, at: number) => (span: Span) => Promise<void> | undefined,
  ): R {
    const parent = context.active();
    return callObserved(fn as unknown as (...a: never[]) => R, thisArg, args, (outcome) => {
      const ended = performance.now();
      const write = settled(outcome, Date.now());
      const record = () => {
        const span = this.#spanAt('predict', links(linkFrom), started, parent);
        try {
          write(span);
        } catch (err) {
          diag.error('mltrail: recording the predict stage failed', err);
        }
        endSpan(span, ended);
      };
      if (outcome.ok) this.#defer(record);
      else {
        this.#drain();
        record();
      }
      return undefined;
    });
  }

  /** A stage span started at `time` (performance.now()) under `parent`; a non-recording one if that fails. */
  #spanAt(stage: Stage, spanLinks: Link[], time: number, parent: Context): Span {
    try {
      return this.#tracer.startSpan(
        spanName(stage),
        {
          kind: SpanKind.INTERNAL,
          links: spanLinks,
          attributes: { [sc.ATTR_ML_STAGE_NAME]: stage },
          startTime: time,
        },
        parent,
      );
    } catch (err) {
      diag.error('mltrail: could not start a span', err);
      return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    }
  }

  /**
   * Records a stage that wraps no function: a span that starts and ends around the record. Fail-closed:
   * throws {@link AuditWriteError} while the journal is failing (unless `mayRefuse` is false), and
   * `durable` rejects with it if the record cannot be written.
   */
  #recordStage(
    stage: Stage,
    event: string,
    fields: Record<string, unknown>,
    spanLinks: Link[],
    actor?: string,
    sev: AuditSeverity = 'INFO',
    mayRefuse = true,
  ): { spanContext: SpanContext | undefined; durable: Promise<void> | undefined } {
    if (mayRefuse) {
      const refused = this.#refusal({ event });
      if (refused !== undefined) throw refused;
    }
    let span: Span | undefined;
    try {
      span = this.#tracer.startSpan(spanName(stage), {
        links: spanLinks,
        attributes: { [sc.ATTR_ML_STAGE_NAME]: stage },
      });
      // Set one by one after the start, as predict() does: the SDK cleans attributes given to startSpan
      // twice (before and after its sampler), allocating a WeakSet per value each time, and copies them
      // through Object.entries; setAttribute cleans each value once.
      setSpanAttrs(span, fields);
    } catch (err) {
      diag.error('mltrail: could not start a span', err);
    }
    let durable: Promise<void> | undefined;
    try {
      durable = this.#emit(event, sev, fields, span, actor);
    } finally {
      if (span !== undefined) endSpan(span);
    }
    return { spanContext: span?.spanContext(), durable };
  }

  #emit(
    event: string,
    sev: AuditSeverity,
    fields: Record<string, unknown>,
    span: Span | undefined,
    actor?: string,
    at?: number,
  ) {
    // Chain order is call order: records queued by earlier calls go first.
    if (this.#queue.length > 0 && !this.#draining) this.#drain();
    const who = actor ?? this.#actor;
    const all = who !== undefined ? { ...fields, [sc.ATTR_ML_ACTOR_ID]: who } : fields;
    try {
      const emitted = this.#emitter.emit(event, sev, all, span?.spanContext(), at);
      // A write failure must be reported, never surface as an unhandled rejection that would crash the
      // host. Records committed together share one promise, so each promise is observed once.
      if (emitted.durable !== this.#reported) {
        this.#reported = emitted.durable;
        emitted.durable.catch((err: unknown) => diag.error(`mltrail: could not record ${event}`, err));
      }
      // Only fail-closed async calls await durability; they get the error wrapped. Synchronous stages
      // drop this promise: it must never become an unhandled rejection that would crash the host.
      if (!this.#failClosed) return emitted.durable;
      const failed = emitted.durable.catch((err: unknown) => {
        throw new AuditWriteError(`mltrail: the ${event} record could not be made durable`, {
          cause: err,
          event,
        });
      });
      failed.catch(() => undefined);
      return failed;
    } catch (err) {
      if (this.#strict) throw err;
      diag.error(`mltrail: could not record ${event}`, err);
      return undefined;
    }
  }

  #failed(stage: Stage, span: Span, error: unknown, fields: Record<string, unknown>, at?: number) {
    const type = error instanceof Error ? error.name : typeof error;
    const message = error instanceof Error ? error.message : String(error);
    try {
      span.setStatus({ code: SpanStatusCode.ERROR, message });
      if (error instanceof Error) span.recordException(error);
      setSpanAttrs(span, fields);
    } catch (err) {
      diag.error('mltrail: could not mark the span as failed', err);
    }
    return this.#emit(
      sc.EVENT_ML_STAGE_FAILED,
      'ERROR',
      {
        ...fields,
        [sc.ATTR_ML_STAGE_NAME]: stage,
        [sc.ATTR_ERROR_TYPE]: type,
        [sc.ATTR_EXCEPTION_MESSAGE]: message,
      },
      span,
      undefined,
      at,
    );
  }

  #captureInput<A extends unknown[], R>(
    spec: PredictSpec<A, R>,
    args: A,
    capture: CaptureMode,
  ): Record<string, unknown> {
    if (capture === 'none') return {};
    // Instrumentations write the canonical JSON of their tensors directly (no copy of the values).
    let canonical = spec.inputJson?.(...args);
    let input: unknown;
    if (canonical === undefined || capture === 'redacted')
      input = spec.input !== undefined ? spec.input(...args) : args[0];
    canonical ??= this.#json(input);
    const fields: Record<string, unknown> = { [sc.ATTR_ML_PREDICTION_INPUT_DIGEST]: digestBytes(canonical) };
    if (capture === 'full') fields[sc.ATTR_ML_PREDICTION_INPUT] = canonical;
    if (capture === 'redacted') {
      const redacted =
        this.#redactor !== undefined ? this.#redactor.redact(safeJson(input)).value : '[REDACTED]';
      fields[sc.ATTR_ML_PREDICTION_INPUT] = this.#json(redacted);
    }
    return fields;
  }

  #captureOutput(output: unknown, capture: CaptureMode): Record<string, unknown> {
    const value =
      capture === 'redacted' && this.#redactor !== undefined
        ? this.#redactor.redact(safeJson(output)).value
        : output;
    return { [sc.ATTR_ML_PREDICTION_OUTPUT]: this.#json(value) };
  }

  /** Canonical JSON of any value, made JSON-safe first so it never throws. */
  #json(value: unknown): string {
    return flatCanonicalJson(value) ?? canonicalize(safeJson(value));
  }

  #digestJson(value: unknown): string {
    return digestBytes(this.#json(value));
  }

  async #safeDigest(src: ContentSource): Promise<Digest | undefined> {
    try {
      if (src.file !== undefined && src.data === undefined && src.rows === undefined)
        return await digestFile(src.file);
      return this.#digestSync(src);
    } catch (err) {
      if (this.#strict) throw err;
      diag.error('mltrail: could not compute a content digest', err);
      return undefined;
    }
  }

  #digestSync(src: ContentSource): Digest | undefined {
    try {
      if (src.data !== undefined) return digestBytes(src.data);
      if (src.rows !== undefined) return digestRows(src.rows, (row) => this.#json(row));
      if (src.file !== undefined) {
        diag.warn('mltrail: file digests are computed asynchronously; pass data or a digest here');
        return undefined;
      }
      if (src.digest !== undefined) {
        if (isDigest(src.digest)) return src.digest;
        diag.warn(`mltrail: "${src.digest}" is not a sha256:<hex> digest; ignored`);
      }
    } catch (err) {
      diag.error('mltrail: could not compute a content digest', err);
    }
    return undefined;
  }
}

/**
 * `ml.prediction.duration` bucket boundaries in seconds: from 10 µs (a small ONNX model in process) to a
 * minute (a large LLM call), about 1.5x apart so an interpolated quantile is never off by more than that.
 * The SDK's default boundaries (0, 5, 10 … 10000) are sized for milliseconds and put every sub-second
 * inference in the first bucket.
 */
export const PREDICTION_DURATION_BUCKETS: readonly number[] = [
  ...[1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1].flatMap((d) =>
    [1, 1.5, 2, 3, 5, 7.5].map((m) => Number((m * d).toPrecision(2))),
  ),
  10,
  15,
  20,
  30,
  60,
];

/**
 * How many recent predictions a decision can be linked to without being given the span context (at least
 * this many, at most twice as many).
 */
const RECENT_PREDICTION_SPANS = 4096;

/**
 * At most this many spans and records wait for the end of the event-loop turn; the next one runs them at
 * once (with a decision each, 64 predictions).
 */
const MAX_QUEUED = 128;

const noLinks = (): Link[] => [];

function spanName(stage: Stage): string {
  return sc.SPAN_NAMES[stage];
}

/**
 * The span context a journal record names (its `trace_id` and `span_id`), marked remote and sampled;
 * undefined when the record has none (its stage ran without a tracer provider).
 */
export function remoteSpanContext(traceId: unknown, spanId: unknown): SpanContext | undefined {
  if (typeof traceId !== 'string' || typeof spanId !== 'string') return undefined;
  const c: SpanContext = { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true };
  return trace.isSpanContextValid(c) ? c : undefined;
}

function links(...from: readonly (SpanContext | undefined)[]): Link[] {
  const out: Link[] = [];
  for (const c of from) if (c !== undefined && trace.isSpanContextValid(c)) out.push({ context: c });
  return out;
}

/**
 * Sets the members that have a span value one by one (no intermediate object): span attributes take
 * primitives and homogeneous arrays only; JSON strings stay strings.
 */
function setSpanAttrs(span: Span, fields: Record<string, unknown>): void {
  for (const k of Object.keys(fields)) setSpanAttr(span, k, fields[k]);
}

function setSpanAttr(span: Span, k: string, v: unknown): void {
  if (typeof v === 'string' || typeof v === 'boolean') span.setAttribute(k, v);
  else if (typeof v === 'number' && Number.isFinite(v)) span.setAttribute(k, v);
  else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) span.setAttribute(k, v as string[]);
}

/** Copies the defined values of `from` into `to`, so undefined never hides a field supplied earlier. */
function assignDefined(to: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const k of Object.keys(from)) {
    const v = from[k];
    if (v !== undefined) to[k] = v;
  }
}

function endSpan(span: Span, time?: number): void {
  try {
    span.end(time);
  } catch (err) {
    diag.error('mltrail: could not end a span', err);
  }
}

function safeCall(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    diag.error('mltrail: an onRecorded callback threw', err);
  }
}

function defaultContent(value: unknown): ContentSource {
  if (Array.isArray(value)) return { rows: value };
  if (typeof value === 'string' || value instanceof Uint8Array) return { data: value };
  return {};
}

function safeJson(value: unknown): unknown {
  return toJsonSafeQuiet(value);
}

/** String(v) that never throws (null-prototype objects, throwing toString): the host's values are untrusted. */
function text(v: unknown): string {
  try {
    return typeof v === 'string' ? v : String(v);
  } catch {
    return '[unprintable]';
  }
}

function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

import { flatCanonicalJson, toJsonSafe } from './json-safe.js';

function toJsonSafeQuiet(value: unknown): unknown {
  const v = toJsonSafe(value, [], []);
  return v === undefined ? null : v;
}
