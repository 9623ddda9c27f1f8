import { type AuditRecord, parseRecordLine } from '../integrity/record.js';
// The generated constants alone: the semconv index also loads the zod schemas.
import * as attributes from '../semconv/attributes.js';
import * as events from '../semconv/events.js';

const sc = { ...attributes, ...events };

/** What a lineage node stands for. */
export type LineageKind =
  | 'source'
  | 'dataset'
  | 'transform'
  | 'run'
  | 'evaluation'
  | 'model'
  | 'deployment'
  | 'prediction'
  | 'decision'
  | 'feedback'
  | 'drift'
  | 'retraining';

/** A directed edge: `from` was used to produce, or led to, `to`. */
export interface LineageEdge {
  from: string;
  to: string;
  relation: string;
}

/** A node one record defines (or, for a source, mentions), before it is merged with other records' facts. */
export interface NodeDefinition {
  id: string;
  kind: LineageKind;
  label: string;
  /** The record's body (the facts are picked from it per kind). */
  body: Record<string, unknown>;
  /** `<chain>:<seq>` of the record; undefined for a node the record only mentions (a dataset's source). */
  record: string | undefined;
  time: string | undefined;
  /** A failed stage: the node gets `facts.status = 'failed'` and the error fields. */
  failed?: boolean;
}

/** Everything one audit record says about lineage: the nodes it defines, its edges and digest aliases. */
export interface RecordLineage {
  nodes: NodeDefinition[];
  edges: LineageEdge[];
  /** `[digest, id]`: the id a content digest stands for (the first record naming it wins). */
  aliases: [string, string][];
}

/**
 * Every relation, in a fixed order: the journal index stores an edge's relation as its position here, so
 * the order is part of the index format (append only).
 */
export const RELATIONS = [
  'provides',
  'input',
  'produces',
  'trained on',
  'evaluated on',
  'evaluated',
  'produced',
  'deployed',
  'served',
  'decided',
  'ground truth',
  'drifted',
  'triggered',
  'retrained because of drift',
] as const;

/** The kinds at both ends of each relation, to name a node known only from the records that point at it. */
export const RELATION_KINDS: Record<string, [LineageKind, LineageKind]> = {
  provides: ['source', 'dataset'],
  input: ['dataset', 'transform'],
  produces: ['transform', 'dataset'],
  'trained on': ['dataset', 'run'],
  'evaluated on': ['dataset', 'evaluation'],
  evaluated: ['run', 'evaluation'],
  produced: ['run', 'model'],
  deployed: ['model', 'deployment'],
  served: ['deployment', 'prediction'],
  decided: ['prediction', 'decision'],
  'ground truth': ['prediction', 'feedback'],
  drifted: ['deployment', 'drift'],
  triggered: ['drift', 'retraining'],
  'retrained because of drift': ['retraining', 'run'],
};

/**
 * What one record contributes to the lineage graph, read from its body by the ids it names. This is the one
 * place that knows which event defines which node and edge: the in-memory graph and the journal index both
 * use it, so an indexed answer and a full scan cannot disagree on what a record means. A record without a
 * body (an erased tombstone) contributes nothing.
 */
export function recordLineage(r: AuditRecord, b: Record<string, unknown>): RecordLineage {
  const out: RecordLineage = { nodes: [], edges: [], aliases: [] };
  const ref = `${r.chain}:${r.seq}`;
  const s = (k: string) => (typeof b[k] === 'string' ? (b[k] as string) : undefined);
  // Only the strings of a list are ids: a record written with something else in one (an app's bug the
  // validator noted in the record) adds no edge for it, and cannot stop its segment from being indexed.
  const list = (k: string) => {
    const v = b[k];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  };
  const node = (id: string, kind: LineageKind, label: string, failed?: boolean) =>
    out.nodes.push({ id, kind, label, body: b, record: ref, time: r.ts, ...(failed ? { failed } : {}) });
  const edge = (from: string, to: string, relation: string) => out.edges.push({ from, to, relation });
  const alias = (digest: string | undefined, id: string) => {
    if (digest !== undefined) out.aliases.push([digest, id]);
  };
  const modelKey = (name?: string, version?: string) =>
    name !== undefined && version !== undefined ? `${name}@${version}` : undefined;
  switch (r.event) {
    case sc.EVENT_ML_DATASET_REGISTERED: {
      const id = s(sc.ATTR_ML_DATASET_ID);
      if (id === undefined) break;
      node(
        id,
        'dataset',
        `dataset ${s(sc.ATTR_ML_DATASET_NAME) ?? id}@${s(sc.ATTR_ML_DATASET_VERSION) ?? '?'}`,
      );
      const source = s(sc.ATTR_ML_DATASET_SOURCE) ?? s(sc.ATTR_ML_DATASET_URI);
      if (source !== undefined) {
        out.nodes.push({
          id: `source:${source}`,
          kind: 'source',
          label: `source ${source}`,
          body: {},
          record: undefined,
          time: undefined,
        });
        edge(`source:${source}`, id, 'provides');
      }
      alias(s(sc.ATTR_ML_DATASET_DIGEST), id);
      break;
    }
    case sc.EVENT_ML_TRANSFORM_COMPLETED: {
      const id = s(sc.ATTR_ML_TRANSFORM_ID);
      const output = s(sc.ATTR_ML_TRANSFORM_OUTPUT_ID);
      if (id === undefined) break;
      node(id, 'transform', `transform ${s(sc.ATTR_ML_TRANSFORM_NAME) ?? id}`);
      for (const input of list(sc.ATTR_ML_TRANSFORM_INPUT_IDS)) edge(input, id, 'input');
      if (output !== undefined) {
        node(
          output,
          'dataset',
          `dataset ${s(sc.ATTR_ML_DATASET_NAME) ?? output}@${s(sc.ATTR_ML_DATASET_VERSION) ?? '?'}`,
        );
        edge(id, output, 'produces');
        alias(s(sc.ATTR_ML_DATASET_DIGEST), output);
      }
      break;
    }
    case sc.EVENT_ML_TRAINING_COMPLETED: {
      const id = s(sc.ATTR_ML_RUN_ID);
      if (id === undefined) break;
      node(id, 'run', `${s(sc.ATTR_ML_RUN_TYPE) ?? 'training'} run of ${s(sc.ATTR_ML_MODEL_NAME) ?? '?'}`);
      for (const input of list(sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS)) edge(input, id, 'trained on');
      break;
    }
    case sc.EVENT_ML_EVALUATION_COMPLETED: {
      const id = s(sc.ATTR_ML_EVALUATION_ID);
      if (id === undefined) break;
      node(id, 'evaluation', `evaluation ${s(sc.ATTR_ML_EVALUATION_METRIC_NAME) ?? ''}`.trim());
      const ds = s(sc.ATTR_ML_EVALUATION_DATASET_ID);
      if (ds !== undefined) edge(ds, id, 'evaluated on');
      const run = s(sc.ATTR_ML_RUN_ID);
      if (run !== undefined) edge(run, id, 'evaluated');
      break;
    }
    case sc.EVENT_ML_MODEL_REGISTERED: {
      const key = modelKey(s(sc.ATTR_ML_MODEL_NAME), s(sc.ATTR_ML_MODEL_VERSION));
      if (key === undefined) break;
      node(key, 'model', `model ${key}`);
      const run = s(sc.ATTR_ML_RUN_ID);
      if (run !== undefined) edge(run, key, 'produced');
      alias(s(sc.ATTR_ML_MODEL_DIGEST), key);
      break;
    }
    case sc.EVENT_ML_DEPLOYMENT_COMPLETED: {
      const id = s(sc.ATTR_ML_DEPLOYMENT_ID);
      if (id === undefined) break;
      node(id, 'deployment', `deployment to ${s(sc.ATTR_ML_DEPLOYMENT_ENVIRONMENT) ?? '?'}`);
      const key = modelKey(s(sc.ATTR_ML_MODEL_NAME), s(sc.ATTR_ML_MODEL_VERSION));
      if (key !== undefined) edge(key, id, 'deployed');
      break;
    }
    case sc.EVENT_ML_PREDICTION: {
      const id = s(sc.ATTR_ML_PREDICTION_ID);
      if (id === undefined) break;
      node(id, 'prediction', `prediction ${id}`);
      const dep = s(sc.ATTR_ML_DEPLOYMENT_ID);
      const key = modelKey(s(sc.ATTR_ML_MODEL_NAME), s(sc.ATTR_ML_MODEL_VERSION));
      if (dep !== undefined) edge(dep, id, 'served');
      else if (key !== undefined) edge(key, id, 'served');
      break;
    }
    case sc.EVENT_ML_DECISION: {
      const id = s(sc.ATTR_ML_DECISION_ID);
      const pred = s(sc.ATTR_ML_PREDICTION_ID);
      if (id === undefined) break;
      node(id, 'decision', `decision ${s(sc.ATTR_ML_DECISION_OUTCOME) ?? ''}`.trim());
      if (pred !== undefined) edge(pred, id, 'decided');
      break;
    }
    case sc.EVENT_ML_FEEDBACK: {
      const id = s(sc.ATTR_ML_FEEDBACK_ID);
      const pred = s(sc.ATTR_ML_PREDICTION_ID);
      if (id === undefined) break;
      node(id, 'feedback', `feedback ${s(sc.ATTR_ML_FEEDBACK_GROUND_TRUTH) ?? ''}`.trim());
      if (pred !== undefined) edge(pred, id, 'ground truth');
      break;
    }
    case sc.EVENT_ML_DRIFT_DETECTED: {
      const id = s(sc.ATTR_ML_DRIFT_ID);
      if (id === undefined) break;
      node(id, 'drift', `drift on ${s(sc.ATTR_ML_DRIFT_FEATURE) ?? '?'}`);
      const dep = s(sc.ATTR_ML_DEPLOYMENT_ID);
      const key = modelKey(s(sc.ATTR_ML_MODEL_NAME), s(sc.ATTR_ML_MODEL_VERSION));
      if (dep !== undefined) edge(dep, id, 'drifted');
      else if (key !== undefined) edge(key, id, 'drifted');
      break;
    }
    case sc.EVENT_ML_STAGE_FAILED: {
      // A failed transform or training run is part of the lineage (an auditor asks what was attempted on
      // the data); failed predictions are not nodes, they produced nothing.
      const stage = s(sc.ATTR_ML_STAGE_NAME);
      const train = stage === 'train';
      const id =
        stage === 'train'
          ? s(sc.ATTR_ML_RUN_ID)
          : stage === 'transform'
            ? s(sc.ATTR_ML_TRANSFORM_ID)
            : undefined;
      if (id === undefined) break;
      node(
        id,
        train ? 'run' : 'transform',
        `failed ${train ? `${s(sc.ATTR_ML_RUN_TYPE) ?? 'training'} run of ${s(sc.ATTR_ML_MODEL_NAME) ?? '?'}` : `transform ${s(sc.ATTR_ML_TRANSFORM_NAME) ?? id}`}`,
        true,
      );
      const inputs = list(train ? sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS : sc.ATTR_ML_TRANSFORM_INPUT_IDS);
      for (const input of inputs) edge(input, id, train ? 'trained on' : 'input');
      break;
    }
    case sc.EVENT_ML_RETRAINING_TRIGGERED: {
      const run = s(sc.ATTR_ML_RUN_ID);
      if (run === undefined) break;
      const id = `retraining:${run}`;
      node(id, 'retraining', `retraining (${s(sc.ATTR_ML_RETRAINING_TRIGGER) ?? '?'})`);
      for (const t of list(sc.ATTR_ML_RETRAINING_TRIGGER_IDS)) edge(t, id, 'triggered');
      edge(id, run, 'retrained because of drift');
      break;
    }
  }
  return out;
}

/**
 * The body keys whose values decide what {@link recordLineage} returns as node ids, edges and aliases (the
 * other keys it reads only make labels). The index builder reads these from a line's bytes instead of
 * parsing the whole body (src/journal-index/line-fields.ts); a test checks that a body cut down to them
 * gives the same ids, edges and aliases. A key read here for ids must be added to this list.
 */
export const LINEAGE_KEYS: readonly string[] = [
  sc.ATTR_ML_DATASET_ID,
  sc.ATTR_ML_DATASET_SOURCE,
  sc.ATTR_ML_DATASET_URI,
  sc.ATTR_ML_DATASET_DIGEST,
  sc.ATTR_ML_TRANSFORM_ID,
  sc.ATTR_ML_TRANSFORM_OUTPUT_ID,
  sc.ATTR_ML_TRANSFORM_INPUT_IDS,
  sc.ATTR_ML_RUN_ID,
  sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS,
  sc.ATTR_ML_EVALUATION_ID,
  sc.ATTR_ML_EVALUATION_DATASET_ID,
  sc.ATTR_ML_MODEL_NAME,
  sc.ATTR_ML_MODEL_VERSION,
  sc.ATTR_ML_MODEL_DIGEST,
  sc.ATTR_ML_DEPLOYMENT_ID,
  sc.ATTR_ML_PREDICTION_ID,
  sc.ATTR_ML_DECISION_ID,
  sc.ATTR_ML_FEEDBACK_ID,
  sc.ATTR_ML_DRIFT_ID,
  sc.ATTR_ML_STAGE_NAME,
  sc.ATTR_ML_RETRAINING_TRIGGER_IDS,
];

/**
 * The body of a record as an object, or undefined when it is not JSON. A tombstone (erased body) reads as
 * its lookup attrs: format 1 kept copies of the ids there, format 2 keeps none.
 */
export function recordBody(r: AuditRecord): Record<string, unknown> | undefined {
  if (r.body === '') return { ...r.attrs };
  try {
    return JSON.parse(r.body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** What one journal line says about lineage, with the record it is. */
export interface LineLineage {
  chain: string;
  seq: number;
  lineage: RecordLineage;
}

const NOTHING: RecordLineage = { nodes: [], edges: [], aliases: [] };

// The fixed head of a format 2 line with a body, as the record parser checks it (src/integrity/record.ts).
const V2_BODY_HEAD =
  /^\{"v":2,"chain":"([^"\\\u0000-\u001f]+)","seq":(0|[1-9][0-9]{0,15}),"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}","body":/;

/**
 * What one journal line says about lineage ({@link recordLineage}), or undefined when the line is not a
 * record (the record parser would reject it). A format 2 line with a body is parsed once and not hashed (a
 * lineage read re-reads what it trusts; hashing is `mltrail verify`'s job); anything else — format 1, an
 * erased record, which contributes nothing — goes through the record parser.
 */
export function lineLineage(text: string): LineLineage | undefined {
  const head = V2_BODY_HEAD.exec(text);
  if (head !== null && text.endsWith('}')) {
    let b: unknown;
    try {
      b = JSON.parse(text.slice(head[0].length, -1));
    } catch {
      return undefined;
    }
    if (b === null || typeof b !== 'object' || Array.isArray(b)) return undefined;
    const body = b as Record<string, unknown>;
    const event = body['event.name'];
    if (typeof event !== 'string') return undefined;
    const chain = head[1];
    const seq = Number(head[2]);
    const ts = typeof body.timestamp === 'string' ? body.timestamp : '';
    // recordLineage reads the record's place, event and time; the body it is given.
    const r = { chain, seq, event, ts } as AuditRecord;
    return { chain, seq, lineage: recordLineage(r, body) };
  }
  let r: AuditRecord;
  try {
    r = parseRecordLine(text);
  } catch {
    return undefined;
  }
  const body = recordBody(r);
  return { chain: r.chain, seq: r.seq, lineage: body === undefined ? NOTHING : recordLineage(r, body) };
}
