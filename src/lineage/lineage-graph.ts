import { type AuditRecord, lineEventName, parseRecordLine } from '../integrity/record.js';
// The generated constants alone: the semconv index also loads the zod schemas.
import * as attributes from '../semconv/attributes.js';
import * as events from '../semconv/events.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { JournalReader, listSegments } from '../sources/journal-reader.js';
import {
  type LineageEdge,
  type LineageKind,
  lineLineage,
  RELATION_KINDS,
  type RecordLineage,
  recordBody,
  recordLineage,
} from './record-lineage.js';
import { type LineageStream, lineageStream, SERVED, type SegmentPass } from './served-stream.js';

const sc = { ...attributes, ...events };

export type { LineageEdge, LineageKind };

/** One node: an id, its kind and the key facts an auditor needs (digests, versions, times, actors). */
export interface LineageNode {
  id: string;
  kind: LineageKind;
  label: string;
  /** Key facts from the record(s) that defined the node. */
  facts: Record<string, unknown>;
  /** `<chain>:<seq>` of the defining record (for `mltrail verify` and inclusion proofs). */
  record?: string;
  time?: string;
}

/** The result of a lineage query. */
export interface LineageResult {
  root: LineageNode;
  nodes: LineageNode[];
  edges: LineageEdge[];
}

/** Thrown for an id the graph does not know; carries close matches. */
export class UnknownLineageIdError extends Error {
  readonly suggestions: string[];
  /** `hint`: what to do instead, when close matches were not looked for. */
  constructor(id: string, suggestions: string[], hint?: string) {
    super(
      `no lineage node "${id}"${suggestions.length > 0 ? `; did you mean ${suggestions.map((s) => `"${s}"`).join(', ')}?` : ''}${hint !== undefined ? `; ${hint}` : ''}`,
    );
    this.name = 'UnknownLineageIdError';
    this.suggestions = suggestions;
  }
}

// Facts kept per node kind: everything an auditor asks about, nothing high-volume.
const FACT_KEYS: Record<LineageKind, string[]> = {
  source: [],
  dataset: [
    sc.ATTR_ML_DATASET_NAME,
    sc.ATTR_ML_DATASET_VERSION,
    sc.ATTR_ML_DATASET_DIGEST,
    sc.ATTR_ML_DATASET_ROW_COUNT,
    sc.ATTR_ML_DATASET_SOURCE,
    sc.ATTR_ML_DATASET_URI,
    sc.ATTR_ML_DATASET_ROLE,
    sc.ATTR_ML_DATASET_SCHEMA_DIGEST,
  ],
  transform: [sc.ATTR_ML_TRANSFORM_NAME, sc.ATTR_ML_TRANSFORM_DESCRIPTION, sc.ATTR_ML_TRANSFORM_CODE_DIGEST],
  run: [
    sc.ATTR_ML_RUN_TYPE,
    sc.ATTR_ML_MODEL_NAME,
    sc.ATTR_ML_MODEL_DIGEST,
    sc.ATTR_ML_TRAINING_ALGORITHM,
    sc.ATTR_ML_TRAINING_FRAMEWORK,
    sc.ATTR_ML_TRAINING_FRAMEWORK_VERSION,
    sc.ATTR_ML_TRAINING_HYPERPARAMETERS,
    sc.ATTR_ML_TRAINING_SEED,
    sc.ATTR_ML_TRAINING_PROFILE_DIGEST,
    sc.ATTR_ML_TRAINING_DURATION_MS,
  ],
  evaluation: [
    sc.ATTR_ML_EVALUATION_METRIC_NAME,
    sc.ATTR_ML_EVALUATION_METRIC_VALUE,
    sc.ATTR_ML_EVALUATION_THRESHOLD,
    sc.ATTR_ML_EVALUATION_PASSED,
    sc.ATTR_ML_EVALUATION_METRICS,
  ],
  model: [
    sc.ATTR_ML_MODEL_NAME,
    sc.ATTR_ML_MODEL_VERSION,
    sc.ATTR_ML_MODEL_DIGEST,
    sc.ATTR_ML_MODEL_FORMAT,
    sc.ATTR_ML_MODEL_URI,
    sc.ATTR_ML_MODEL_APPROVED_BY,
  ],
  deployment: [
    sc.ATTR_ML_DEPLOYMENT_ENVIRONMENT,
    sc.ATTR_ML_DEPLOYMENT_ENDPOINT,
    sc.ATTR_ML_DEPLOYMENT_REPLACED_VERSION,
    sc.ATTR_ML_DEPLOYMENT_DEPLOYED_BY,
    sc.ATTR_ML_MODEL_NAME,
    sc.ATTR_ML_MODEL_VERSION,
  ],
  prediction: [
    sc.ATTR_ML_PREDICTION_OUTPUT_LABEL,
    sc.ATTR_ML_PREDICTION_OUTPUT_SCORE,
    sc.ATTR_ML_PREDICTION_INPUT_DIGEST,
    sc.ATTR_ML_PREDICTION_SUBJECT_ID,
    sc.ATTR_ML_MODEL_VERSION,
  ],
  decision: [
    sc.ATTR_ML_DECISION_OUTCOME,
    sc.ATTR_ML_DECISION_REASON,
    sc.ATTR_ML_DECISION_THRESHOLD,
    sc.ATTR_ML_DECISION_ATTRIBUTIONS,
    sc.ATTR_ML_DECISION_REVIEWER,
    sc.ATTR_ML_DECISION_OVERRIDE,
    sc.ATTR_ML_DECISION_AUTOMATED,
  ],
  feedback: [sc.ATTR_ML_FEEDBACK_GROUND_TRUTH, sc.ATTR_ML_FEEDBACK_CORRECT, sc.ATTR_ML_FEEDBACK_SOURCE],
  drift: [
    sc.ATTR_ML_DRIFT_FEATURE,
    sc.ATTR_ML_DRIFT_TEST,
    sc.ATTR_ML_DRIFT_STATISTIC,
    sc.ATTR_ML_DRIFT_P_VALUE,
    sc.ATTR_ML_DRIFT_THRESHOLD,
    sc.ATTR_ML_DRIFT_WINDOW_START,
    sc.ATTR_ML_DRIFT_WINDOW_END,
    sc.ATTR_ML_DRIFT_REFERENCE_DIGEST,
  ],
  retraining: [
    sc.ATTR_ML_RETRAINING_REASON,
    sc.ATTR_ML_RETRAINING_TRIGGER,
    sc.ATTR_ML_RETRAINING_PREVIOUS_VERSION,
  ],
};

// The record kinds there is one of per prediction: nearly all of a busy journal.
const PER_PREDICTION_EVENTS = new Set<string>([
  sc.EVENT_ML_PREDICTION,
  sc.EVENT_ML_DECISION,
  sc.EVENT_ML_FEEDBACK,
]);

/**
 * The lineage graph of a trail, built from audit records by the ids they name: sources → dataset versions →
 * transforms → training runs → model versions → deployments → predictions → decisions and feedback, with
 * evaluations, drift events and retraining runs. Built in one streaming pass; queries walk edges.
 *
 * @example
 * const graph = LineageGraph.fromJournal('.mltrail');
 * const { nodes, edges } = graph.query(predictionId, 'upstream');
 */
export class LineageGraph {
  readonly nodes = new Map<string, LineageNode>();
  readonly #out = new Map<string, LineageEdge[]>();
  readonly #in = new Map<string, LineageEdge[]>();
  readonly #alias = new Map<string, string>();
  /** Records read. */
  records = 0;

  /** Builds the graph from every record of a journal directory. */
  static fromJournal(dir: string): LineageGraph {
    return LineageGraph.#read(dir, undefined);
  }

  /**
   * Answers one query from a journal, reading the per-prediction records (predictions, decisions,
   * feedback — nearly all of a busy journal) only when the answer needs them: the upstream of a prediction
   * needs the pipeline and the few records that name it. Same result as `fromJournal(dir).query(id,
   * direction)`, held in memory: for an answer that fans out to every prediction a deployment served, use
   * {@link streamJournal}.
   */
  static queryJournal(
    dir: string,
    id: string,
    direction: 'upstream' | 'downstream' | 'both' = 'both',
  ): LineageResult {
    return LineageGraph.streamJournal(dir, id, direction).collect();
  }

  /**
   * {@link queryJournal} with bounded memory: the pipeline part in memory (read with the records that name
   * the id), and the predictions served by a deployment or model in the answer, with their decisions and
   * feedback, streamed by one more sequential pass over the journal each time the answer is read. An
   * unknown id throws {@link UnknownLineageIdError} with close matches found by one more pass that keeps
   * only the best few.
   */
  static streamJournal(
    dir: string,
    id: string,
    direction: 'upstream' | 'downstream' | 'both' = 'both',
  ): LineageStream {
    const needles = new Set([id]);
    for (;;) {
      const g = LineageGraph.#read(dir, needles);
      // Unknown here may be a prediction named by nothing we kept: the whole journal decides (and suggests).
      if (g.resolve(id) === undefined) throw new UnknownLineageIdError(id, suggestFromJournal(dir, id));
      const expanded = new Set<string>();
      const result = g.query(id, direction, expanded);
      // A decision or feedback names its prediction; that prediction's own record holds its upstream.
      const missing = result.nodes.filter((n) => n.facts.recorded === false && !needles.has(n.id));
      if (missing.length === 0) {
        const servers = result.nodes
          .filter((n) => expanded.has(n.id) && (n.kind === 'deployment' || n.kind === 'model'))
          .map((n) => n.id);
        return lineageStream(result, scanPass(dir), servers);
      }
      for (const n of missing) needles.add(n.id);
    }
  }

  static #read(dir: string, needles: Set<string> | undefined): LineageGraph {
    const g = new LineageGraph();
    // An id inside a record line appears JSON-escaped once (attrs) or twice (inside the body string).
    const forms =
      needles === undefined
        ? undefined
        : [
            ...new Set(
              [...needles].flatMap((n) => {
                const once = JSON.stringify(n).slice(1, -1);
                return [once, JSON.stringify(once).slice(1, -1)];
              }),
            ),
          ];
    for (const l of new JournalReader(dir).lines()) {
      // Cheap pre-filter on the raw line: only ml.* stage events define lineage.
      const event = lineEventName(l.text);
      if (event !== undefined && !event.startsWith(sc.ML_NAMESPACE)) continue;
      if (
        needles !== undefined &&
        forms !== undefined &&
        event !== undefined &&
        PER_PREDICTION_EVENTS.has(event)
      ) {
        if (!forms.some((f) => l.text.includes(f))) continue;
        // A prediction that names a needle only as the deployment or model that served it is part of that
        // server's fan-out, which streams: held here, a deployment's downstream would hold every prediction.
        const r = parseRecordLine(l.text, l);
        const b = recordBody(r);
        if (b === undefined) continue;
        const lineage = recordLineage(r, b);
        if (!namesNeedle(lineage, needles)) continue;
        g.#addLineage(b, lineage);
        g.records++;
        continue;
      }
      g.add(parseRecordLine(l.text, l));
    }
    return g;
  }

  /**
   * Adds one audit record. A record without a body (an erased tombstone) defines nothing: its id survives
   * only in the records that name it, where {@link resolve} finds it as a placeholder.
   */
  add(r: AuditRecord): void {
    this.records++;
    const b = recordBody(r);
    if (b === undefined) return;
    this.#addLineage(b, recordLineage(r, b));
  }

  #addLineage(b: Record<string, unknown>, { nodes, edges, aliases }: RecordLineage): void {
    for (const n of nodes) {
      this.#node(n.id, n.kind, n.label, n.body, n.record, n.time);
      if (n.failed) {
        const node = this.nodes.get(n.id)!;
        node.facts.status = 'failed';
        for (const k of [sc.ATTR_ERROR_TYPE, sc.ATTR_EXCEPTION_MESSAGE])
          if (b[k] !== undefined) node.facts[k] = b[k];
      }
    }
    for (const e of edges) this.#edge(e.from, e.to, e.relation);
    for (const [digest, id] of aliases) this.#aliasDigest(digest, id);
  }

  /**
   * The node for an id, a digest, or `name@version`; undefined when unknown. An id that other records name
   * but whose own record is absent (erased under GDPR Art. 17, or not in this journal) resolves to a
   * placeholder node with `facts.recorded: false`, its kind inferred from the edges that name it.
   */
  resolve(id: string): LineageNode | undefined {
    return this.nodes.get(id) ?? this.nodes.get(this.#alias.get(id) ?? '') ?? this.#placeholder(id);
  }

  /** Ids that look like `id` (prefix, substring, or small edit distance), for "did you mean". */
  suggest(id: string, max = 5): string[] {
    const best = new Suggestions(id, max);
    for (const k of this.nodes.keys()) best.consider(k);
    return best.list();
  }

  /**
   * Upstream (what it came from), downstream (what came of it) or both, from any id. Throws
   * {@link UnknownLineageIdError} with close matches for an unknown id. `expandedDownstream` collects the
   * nodes whose outgoing edges the walk followed (for the indexed query, which streams what fans out).
   */
  query(
    id: string,
    direction: 'upstream' | 'downstream' | 'both' = 'both',
    expandedDownstream?: Set<string>,
  ): LineageResult {
    const root = this.resolve(id);
    if (root === undefined) throw new UnknownLineageIdError(id, this.suggest(id));
    const seen = new Set<string>([root.id]);
    const edges: LineageEdge[] = [];
    const walk = (start: string, dir: 'up' | 'down') => {
      // An index, not shift(): a downstream walk from a popular dataset visits millions of predictions.
      const queue = [start];
      for (let head = 0; head < queue.length; head++) {
        const cur = queue[head];
        if (dir === 'down') expandedDownstream?.add(cur);
        const next = dir === 'up' ? this.#in.get(cur) : this.#out.get(cur);
        for (const e of next ?? []) {
          edges.push(e);
          const other = dir === 'up' ? e.from : e.to;
          if (!seen.has(other)) {
            seen.add(other);
            queue.push(other);
          }
        }
      }
    };
    if (direction !== 'downstream') walk(root.id, 'up');
    if (direction !== 'upstream') walk(root.id, 'down');
    const nodes = [...seen].map((n) => this.nodes.get(n) ?? this.#placeholder(n)!);
    return { root, nodes, edges: dedupe(edges) };
  }

  /** Direct edges into a node. */
  inputsOf(id: string): LineageEdge[] {
    return this.#in.get(id) ?? [];
  }

  /** Direct edges out of a node. */
  outputsOf(id: string): LineageEdge[] {
    return this.#out.get(id) ?? [];
  }

  #node(
    id: string,
    kind: LineageKind,
    label: string,
    b: Record<string, unknown>,
    record: string | undefined,
    time: string | undefined,
  ): void {
    const existing = this.nodes.get(id);
    const facts = nodeFacts(kind, b, existing?.facts ?? {});
    if (existing !== undefined) {
      existing.facts = facts;
      // A registration record defines a dataset better than a mention as a transform output.
      if (record !== undefined && existing.record === undefined)
        Object.assign(existing, { record, time, label });
      return;
    }
    this.nodes.set(id, { id, kind, label, facts, record, time });
  }

  #placeholder(id: string): LineageNode | undefined {
    const named = this.#out.get(id)?.[0] ?? this.#in.get(id)?.[0];
    if (named === undefined) return undefined;
    const kinds = RELATION_KINDS[named.relation];
    const kind = (named.from === id ? kinds?.[0] : kinds?.[1]) ?? 'dataset';
    return {
      id,
      kind,
      label: `${kind} ${id} (no record: erased or not in this journal)`,
      facts: { recorded: false },
    };
  }

  #edge(from: string, to: string, relation: string): void {
    const e = { from, to, relation };
    const out = this.#out.get(from);
    if (out === undefined) this.#out.set(from, [e]);
    else out.push(e);
    const inn = this.#in.get(to);
    if (inn === undefined) this.#in.set(to, [e]);
    else inn.push(e);
  }

  #aliasDigest(digest: string | undefined, id: string): void {
    if (digest !== undefined && !this.#alias.has(digest)) this.#alias.set(digest, id);
  }
}

/**
 * The facts a record gives a node of this kind (added to `facts`, which it returns): the kind's auditor
 * fields from the body, and the first actor named.
 */
export function nodeFacts(
  kind: LineageKind,
  b: Record<string, unknown>,
  facts: Record<string, unknown> = {},
): Record<string, unknown> {
  for (const k of FACT_KEYS[kind]) if (b[k] !== undefined) facts[k] = b[k];
  if (b[sc.ATTR_ML_ACTOR_ID] !== undefined && facts.actor === undefined) facts.actor = b[sc.ATTR_ML_ACTOR_ID];
  return facts;
}

function dedupe(edges: LineageEdge[]): LineageEdge[] {
  // Keyed by the target id (most nodes have one incoming edge), so no key string is built per edge: a
  // downstream walk from a popular dataset returns millions of edges.
  const byTarget = new Map<string, LineageEdge | LineageEdge[]>();
  const same = (a: LineageEdge, b: LineageEdge) => a.from === b.from && a.relation === b.relation;
  return edges.filter((e) => {
    const known = byTarget.get(e.to);
    if (known === undefined) {
      byTarget.set(e.to, e);
      return true;
    }
    const list = Array.isArray(known) ? known : [known];
    if (list.some((k) => same(k, e))) return false;
    list.push(e);
    if (!Array.isArray(known)) byTarget.set(e.to, list);
    return true;
  });
}

/**
 * The best few ids like `id` among those offered (prefix or substring first, then by edit distance up to 3,
 * ties by id), in memory bounded by `max`: offered one by one from a graph or a pass over a journal.
 */
class Suggestions {
  readonly #id: string;
  readonly #max: number;
  #best: [number, string][] = [];

  constructor(id: string, max: number) {
    this.#id = id;
    this.#max = max;
  }

  consider(k: string): void {
    const id = this.#id;
    let score: number | undefined;
    if (k.startsWith(id) || id.startsWith(k)) score = 0;
    else if (k.includes(id)) score = 1;
    else if (Math.abs(k.length - id.length) <= 3) {
      const d = editDistance(k, id, 3);
      if (d <= 3) score = 1 + d;
    }
    if (score === undefined) return;
    const worst = this.#best.at(-1);
    if (this.#best.length >= this.#max && worst !== undefined && compare([score, k], worst) >= 0) return;
    if (this.#best.some(([, b]) => b === k)) return;
    this.#best.push([score, k]);
    this.#best.sort(compare);
    if (this.#best.length > this.#max) this.#best.length = this.#max;
  }

  list(): string[] {
    return this.#best.map(([, k]) => k);
  }
}

function compare(a: [number, string], b: [number, string]): number {
  return a[0] - b[0] || a[1].localeCompare(b[1]);
}

/** Close matches of `id` among every node id a journal's records define: one pass, bounded memory. */
function suggestFromJournal(dir: string, id: string, max = 5): string[] {
  const best = new Suggestions(id, max);
  for (const l of new JournalReader(dir).lines()) {
    const event = lineEventName(l.text);
    if (event !== undefined && !event.startsWith(sc.ML_NAMESPACE)) continue;
    const line = lineLineage(l.text);
    if (line !== undefined) for (const n of line.lineage.nodes) best.consider(n.id);
  }
  return best.list();
}

/** Whether a per-prediction record defines a needle, or names one other than as the server of a prediction. */
function namesNeedle(lineage: RecordLineage, needles: Set<string>): boolean {
  if (lineage.nodes.some((n) => needles.has(n.id))) return true;
  return lineage.edges.some((e) => needles.has(e.to) || (needles.has(e.from) && e.relation !== SERVED));
}

/** Every segment of a journal, read whole: what a full scan streams from. */
function scanPass(dir: string): SegmentPass {
  const paths = listSegments(dir).flatMap((c) => c.files);
  return {
    files: new EvidenceDir(dir),
    paths,
    mayServe: () => true,
    mayFollow: () => true,
  };
}

function editDistance(a: string, b: string, cap: number): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      best = Math.min(best, cur[j]);
    }
    if (best > cap) return cap + 1;
    prev = cur;
  }
  return prev[b.length];
}
