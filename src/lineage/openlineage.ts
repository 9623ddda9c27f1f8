import { createHash } from 'node:crypto';
import { type AuditRecord, lineEventName, parseRecordLine } from '../integrity/index.js';
import * as sc from '../semconv/index.js';
import { JournalReader } from '../sources/journal-reader.js';

/** OpenLineage spec version the events follow. */
export const OPENLINEAGE_SCHEMA_URL = 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent';
/** The `$id` of mltrail's custom run facet (schemas/openlineage/MltrailMlRunFacet.json in the package). */
export const MLTRAIL_FACET_SCHEMA_URL =
  'https://mltrail.dev/spec/facets/1-0-0/MltrailMlRunFacet.json#/$defs/MltrailMlRunFacet';
const PRODUCER = 'https://mltrail.dev/producer/0.1.0';
const facet = (schema: string) => ({ _producer: PRODUCER, _schemaURL: schema });

/** An OpenLineage RunEvent (subset of fields mltrail fills). */
export interface RunEvent {
  eventType: 'START' | 'COMPLETE' | 'FAIL';
  eventTime: string;
  producer: string;
  schemaURL: string;
  run: { runId: string; facets?: Record<string, unknown> };
  job: { namespace: string; name: string; facets?: Record<string, unknown> };
  inputs: { namespace: string; name: string; facets?: Record<string, unknown> }[];
  outputs: { namespace: string; name: string; facets?: Record<string, unknown> }[];
}

interface DatasetInfo {
  namespace: string;
  name: string;
  facets: Record<string, unknown>;
}

/**
 * Converts an mltrail journal into OpenLineage RunEvents: each transform, training run and evaluation
 * becomes a START and a COMPLETE event (START and FAIL for `ml.stage.failed`), with input and output datasets and the
 * standard facets mltrail knows (version, dataSource, documentation, ownership, errorMessage), plus the
 * `mltrail_ml` run facet carrying ML specifics and the journal position of the audit record.
 */
export function* openLineageEvents(records: Iterable<AuditRecord>): Generator<RunEvent> {
  const datasets = new Map<string, DatasetInfo>();
  for (const r of records) {
    if (r.body === '') continue;
    let b: Record<string, unknown>;
    try {
      b = JSON.parse(r.body) as Record<string, unknown>;
    } catch {
      continue;
    }
    const s = (k: string) => (typeof b[k] === 'string' ? (b[k] as string) : undefined);
    const namespace = `mltrail://${s(sc.ATTR_SERVICE_NAME) ?? 'unknown'}`;
    const pipeline = s(sc.ATTR_ML_PIPELINE_NAME) ?? 'default';
    const audit = { chainId: r.chain, seq: r.seq, hash: r.hash, bodyDigest: r.digest };
    const owner = s(sc.ATTR_ML_ACTOR_ID);
    const jobFacets = (description?: string) => ({
      ...(description !== undefined
        ? {
            documentation: {
              ...facet(
                'https://openlineage.io/spec/facets/1-1-0/DocumentationJobFacet.json#/$defs/DocumentationJobFacet',
              ),
              description,
            },
          }
        : {}),
      ...(owner !== undefined
        ? {
            ownership: {
              ...facet(
                'https://openlineage.io/spec/facets/1-0-1/OwnershipJobFacet.json#/$defs/OwnershipJobFacet',
              ),
              owners: [{ name: `user:${owner}`, type: 'MAINTAINER' }],
            },
          }
        : {}),
    });
    const dataset = (id: string | undefined): DatasetInfo | undefined =>
      id === undefined ? undefined : (datasets.get(id) ?? { namespace, name: id, facets: {} });
    const remember = (id: string | undefined) => {
      if (id === undefined) return;
      const source = s(sc.ATTR_ML_DATASET_SOURCE);
      const version = s(sc.ATTR_ML_DATASET_VERSION);
      const facets: Record<string, unknown> = {};
      if (version !== undefined)
        facets.version = {
          ...facet(
            'https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet',
          ),
          datasetVersion: version,
        };
      if (source !== undefined && /^[a-z][a-z0-9+.-]*:/i.test(source)) {
        facets.dataSource = {
          ...facet(
            'https://openlineage.io/spec/facets/1-0-1/DatasourceDatasetFacet.json#/$defs/DatasourceDatasetFacet',
          ),
          name: source,
          uri: source,
        };
      }
      datasets.set(id, { namespace, name: s(sc.ATTR_ML_DATASET_NAME) ?? id, facets });
    };
    const ml = (stage: string, extra: Record<string, unknown>) => ({
      mltrail_ml: { ...facet(MLTRAIL_FACET_SCHEMA_URL), stage, ...extra, auditRecord: audit },
    });
    const events = (
      runId: string,
      job: string,
      description: string | undefined,
      inputs: (DatasetInfo | undefined)[],
      outputs: (DatasetInfo | undefined)[],
      runFacets: Record<string, unknown>,
      durationMs?: number,
    ): RunEvent[] => {
      const base = {
        producer: PRODUCER,
        schemaURL: OPENLINEAGE_SCHEMA_URL,
        job: { namespace, name: `${pipeline}.${job}`, facets: jobFacets(description) },
        inputs: inputs.filter((d): d is DatasetInfo => d !== undefined),
        outputs: outputs.filter((d): d is DatasetInfo => d !== undefined),
      };
      const end = r.ts;
      const start = durationMs !== undefined ? new Date(Date.parse(end) - durationMs).toISOString() : end;
      return [
        { ...base, eventType: 'START', eventTime: start, run: { runId } },
        { ...base, eventType: 'COMPLETE', eventTime: end, run: { runId, facets: runFacets } },
      ];
    };
    switch (r.event) {
      case sc.EVENT_ML_DATASET_REGISTERED:
        remember(s(sc.ATTR_ML_DATASET_ID));
        break;
      case sc.EVENT_ML_TRANSFORM_COMPLETED: {
        remember(s(sc.ATTR_ML_TRANSFORM_OUTPUT_ID));
        const inputs = ((b[sc.ATTR_ML_TRANSFORM_INPUT_IDS] as string[]) ?? []).map(dataset);
        yield* events(
          asUuid(s(sc.ATTR_ML_TRANSFORM_ID), r),
          `transform.${s(sc.ATTR_ML_TRANSFORM_NAME)}`,
          s(sc.ATTR_ML_TRANSFORM_DESCRIPTION),
          inputs,
          [dataset(s(sc.ATTR_ML_TRANSFORM_OUTPUT_ID))],
          ml('transform', {}),
        );
        break;
      }
      case sc.EVENT_ML_TRAINING_COMPLETED: {
        const name = s(sc.ATTR_ML_MODEL_NAME) ?? 'model';
        const digest = s(sc.ATTR_ML_MODEL_DIGEST);
        let hyperparameters: unknown;
        try {
          hyperparameters =
            s(sc.ATTR_ML_TRAINING_HYPERPARAMETERS) !== undefined
              ? JSON.parse(s(sc.ATTR_ML_TRAINING_HYPERPARAMETERS)!)
              : undefined;
        } catch {
          hyperparameters = undefined;
        }
        const modelOut: DatasetInfo = {
          namespace: `${namespace}/models`,
          name,
          facets:
            digest !== undefined
              ? {
                  version: {
                    ...facet(
                      'https://openlineage.io/spec/facets/1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet',
                    ),
                    datasetVersion: digest,
                  },
                }
              : {},
        };
        const extra = clean({
          algorithm: s(sc.ATTR_ML_TRAINING_ALGORITHM),
          framework: s(sc.ATTR_ML_TRAINING_FRAMEWORK),
          frameworkVersion: s(sc.ATTR_ML_TRAINING_FRAMEWORK_VERSION),
          hyperparameters:
            typeof hyperparameters === 'object' && hyperparameters !== null ? hyperparameters : undefined,
          seed: typeof b[sc.ATTR_ML_TRAINING_SEED] === 'number' ? b[sc.ATTR_ML_TRAINING_SEED] : undefined,
          model: clean({ name, digest }),
          retrainingTriggerIds: b[sc.ATTR_ML_RETRAINING_TRIGGER_IDS],
        });
        const inputs = ((b[sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS] as string[]) ?? []).map(dataset);
        yield* events(
          asUuid(s(sc.ATTR_ML_RUN_ID), r),
          `train.${name}`,
          undefined,
          inputs,
          [modelOut],
          ml('train', extra),
          b[sc.ATTR_ML_TRAINING_DURATION_MS] as number | undefined,
        );
        break;
      }
      case sc.EVENT_ML_EVALUATION_COMPLETED: {
        let metrics: Record<string, number> | undefined;
        try {
          metrics =
            s(sc.ATTR_ML_EVALUATION_METRICS) !== undefined
              ? JSON.parse(s(sc.ATTR_ML_EVALUATION_METRICS)!)
              : undefined;
        } catch {
          metrics = undefined;
        }
        const extra = clean({
          metrics,
          threshold: b[sc.ATTR_ML_EVALUATION_THRESHOLD],
          passed: b[sc.ATTR_ML_EVALUATION_PASSED],
          model:
            s(sc.ATTR_ML_MODEL_NAME) !== undefined
              ? clean({ name: s(sc.ATTR_ML_MODEL_NAME), version: s(sc.ATTR_ML_MODEL_VERSION) })
              : undefined,
        });
        yield* events(
          asUuid(s(sc.ATTR_ML_EVALUATION_ID), r),
          `evaluate.${s(sc.ATTR_ML_EVALUATION_METRIC_NAME) ?? 'metric'}`,
          undefined,
          [dataset(s(sc.ATTR_ML_EVALUATION_DATASET_ID))],
          [],
          ml('evaluate', extra),
        );
        break;
      }
      case sc.EVENT_ML_STAGE_FAILED: {
        const stage = s(sc.ATTR_ML_STAGE_NAME) ?? 'stage';
        if (stage === 'predict') break; // predictions are not pipeline runs
        const runId = asUuid(
          s(sc.ATTR_ML_RUN_ID) ?? s(sc.ATTR_ML_TRANSFORM_ID) ?? s(sc.ATTR_ML_EVALUATION_ID),
          r,
        );
        // A START first, so consumers see the run's whole life (START → FAIL) as for any other run.
        yield {
          eventType: 'START',
          eventTime: r.ts,
          producer: PRODUCER,
          schemaURL: OPENLINEAGE_SCHEMA_URL,
          run: { runId },
          job: { namespace, name: `${pipeline}.${stage}`, facets: jobFacets(undefined) },
          inputs: [],
          outputs: [],
        };
        yield {
          eventType: 'FAIL',
          eventTime: r.ts,
          producer: PRODUCER,
          schemaURL: OPENLINEAGE_SCHEMA_URL,
          run: {
            runId,
            facets: {
              errorMessage: {
                ...facet(
                  'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
                ),
                message: `${s(sc.ATTR_ERROR_TYPE) ?? 'Error'}: ${s(sc.ATTR_EXCEPTION_MESSAGE) ?? ''}`,
                programmingLanguage: 'JavaScript',
              },
              ...ml(stage, {}),
            },
          },
          job: { namespace, name: `${pipeline}.${stage}`, facets: jobFacets(undefined) },
          inputs: [],
          outputs: [],
        };
        break;
      }
    }
  }
}

// The only events that become OpenLineage events; predictions (nearly all of a busy journal) are skipped
// on the raw line, before any parsing (lineEventName).
const PIPELINE_EVENTS = new Set<string>([
  sc.EVENT_ML_DATASET_REGISTERED,
  sc.EVENT_ML_TRANSFORM_COMPLETED,
  sc.EVENT_ML_TRAINING_COMPLETED,
  sc.EVENT_ML_EVALUATION_COMPLETED,
  sc.EVENT_ML_STAGE_FAILED,
]);

/** Every OpenLineage event of a journal directory. */
export function openLineageFromJournal(dir: string): RunEvent[] {
  const records = function* () {
    for (const l of new JournalReader(dir).lines()) {
      const event = lineEventName(l.text);
      if (event !== undefined && !PIPELINE_EVENTS.has(event)) continue;
      yield parseRecordLine(l.text, l);
    }
  };
  return [...openLineageEvents(records())];
}

function asUuid(id: string | undefined, r: AuditRecord): string {
  if (id !== undefined && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id))
    return id;
  // A stable UUID (version 8, name-based) from the record hash when the stage has no UUID of its own.
  const h = createHash('sha256')
    .update(id ?? r.hash)
    .digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-8${h.slice(13, 16)}-${((Number.parseInt(h[16], 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function clean<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
