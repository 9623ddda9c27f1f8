import type { AuditRecord } from '../integrity/record.js';
import { uuidv7Time } from '../integrity/uuidv7.js';
import { LineageGraph, type LineageKind, type LineageResult } from '../lineage/lineage-graph.js';
import { RELATION_KINDS } from '../lineage/record-lineage.js';
// The generated constants alone: the semconv index also loads the zod schemas.
import * as attributes from '../semconv/attributes.js';
import * as events from '../semconv/events.js';
import { type LokiSourceOptions, readLokiRecords } from './loki-source.js';

const sc = { ...attributes, ...events };

/**
 * Lineage from Loki one hop at a time, each hop a `query_range` over a short time window instead of the
 * whole retention: the record that defines an id is looked up by that id (a structured-metadata matcher
 * on the key the collector ships it under, and the event that defines it), inside the window the id's own
 * time gives. A UUIDv7 id (predictions, decisions, feedback, deployments, runs, transforms, evaluations,
 * drift events) carries the millisecond it was made: its record is searched from that time minus
 * {@link LokiLineageOptions.skewMs} on, in windows that widen (1 hour after it, 1 day, 7, 30, 365 days,
 * then the rest), never past the time of the record that named it (plus the margin). An id without a time (a model version `name@version`, a data set
 * version, a digest) is searched backwards from the time of the record that named it (what a record names
 * was recorded before it), in windows that widen (1 hour, 1 day, 7, 30, 365 days) up to
 * {@link LokiLineageOptions.lookbackMs}, each window asking only for the slice the previous one did not
 * cover. docs/lineage.md lists the exact queries.
 */

/** Options of {@link lokiLineage}: where Loki is, and the time rules of the windows. */
export interface LokiLineageOptions extends Omit<LokiSourceOptions, 'start' | 'end'> {
  /**
   * Clock skew allowed between the process that made an id and the one that wrote the record naming it
   * (default 5 minutes): every window starts this much before the id's time and ends this much after the
   * naming record's time.
   */
  skewMs?: number;
  /** How far back an id without a time is searched before it is given up on (default 400 days). */
  lookbackMs?: number;
  /** The present (default: now); windows never reach past it. */
  now?: Date;
  /** Called with each request's query and window (a caller that wants to show or log them). */
  onRequest?: (request: LokiWindowRequest) => void;
}

/** One `query_range` request a lineage hop sent. */
export interface LokiWindowRequest {
  query: string;
  /** Window [start, end), milliseconds since the epoch. */
  start: number;
  end: number;
}

/** Default clock-skew margin around an id's time. */
export const LOKI_SKEW_MS = 5 * 60_000;
/** Default furthest look back for an id without a time. */
export const LOKI_LOOKBACK_MS = 400 * 86_400_000;
/** The widening windows of a backward search. */
const BACKWARD_STEPS_MS = [3_600_000, 86_400_000, 7 * 86_400_000, 30 * 86_400_000, 365 * 86_400_000];

/**
 * How the record defining a node of each kind is found: the events that define it and the
 * structured-metadata matchers (Loki's names: dots become `_`) that select it by its id. Kinds defined by
 * two different records (a data set: its registration, or the transform that wrote it) have two lookups.
 */
const DEFINITIONS: Partial<Record<LineageKind, ((id: string) => Lookup | undefined)[]>> = {
  prediction: [(id) => ({ events: [sc.EVENT_ML_PREDICTION], match: { [sc.ATTR_ML_PREDICTION_ID]: id } })],
  decision: [(id) => ({ events: [sc.EVENT_ML_DECISION], match: { [sc.ATTR_ML_DECISION_ID]: id } })],
  feedback: [(id) => ({ events: [sc.EVENT_ML_FEEDBACK], match: { [sc.ATTR_ML_FEEDBACK_ID]: id } })],
  deployment: [
    (id) => ({ events: [sc.EVENT_ML_DEPLOYMENT_COMPLETED], match: { [sc.ATTR_ML_DEPLOYMENT_ID]: id } }),
  ],
  drift: [(id) => ({ events: [sc.EVENT_ML_DRIFT_DETECTED], match: { [sc.ATTR_ML_DRIFT_ID]: id } })],
  run: [
    (id) => ({
      events: [sc.EVENT_ML_TRAINING_COMPLETED, sc.EVENT_ML_STAGE_FAILED],
      match: { [sc.ATTR_ML_RUN_ID]: id },
    }),
    // A run retrained because of drift has the retraining record upstream of it.
    (id) => ({ events: [sc.EVENT_ML_RETRAINING_TRIGGERED], match: { [sc.ATTR_ML_RUN_ID]: id } }),
  ],
  transform: [
    (id) => ({
      events: [sc.EVENT_ML_TRANSFORM_COMPLETED, sc.EVENT_ML_STAGE_FAILED],
      match: { [sc.ATTR_ML_TRANSFORM_ID]: id },
    }),
  ],
  evaluation: [
    (id) => ({ events: [sc.EVENT_ML_EVALUATION_COMPLETED], match: { [sc.ATTR_ML_EVALUATION_ID]: id } }),
  ],
  model: [
    (id) => {
      const at = id.lastIndexOf('@');
      if (at <= 0) return undefined;
      return {
        events: [sc.EVENT_ML_MODEL_REGISTERED],
        match: { [sc.ATTR_ML_MODEL_NAME]: id.slice(0, at), [sc.ATTR_ML_MODEL_VERSION]: id.slice(at + 1) },
      };
    },
  ],
  dataset: [
    (id) => ({ events: [sc.EVENT_ML_DATASET_REGISTERED], match: { [sc.ATTR_ML_DATASET_ID]: id } }),
    (id) => ({ events: [sc.EVENT_ML_TRANSFORM_COMPLETED], match: { [sc.ATTR_ML_TRANSFORM_OUTPUT_ID]: id } }),
  ],
  retraining: [
    (id) =>
      id.startsWith('retraining:')
        ? { events: [sc.EVENT_ML_RETRAINING_TRIGGERED], match: { [sc.ATTR_ML_RUN_ID]: id.slice(11) } }
        : undefined,
  ],
};

/** The kinds an id given on the command line may be, tried in this order. */
const UUID_KINDS: LineageKind[] = [
  'prediction',
  'decision',
  'feedback',
  'deployment',
  'drift',
  'run',
  'transform',
  'evaluation',
];
const NAMED_KINDS: LineageKind[] = ['model', 'dataset'];
/** Nodes whose downstream is the records of that one request: the answer needs no impact query. */
const PER_REQUEST = new Set<LineageKind>(['prediction', 'decision', 'feedback']);

interface Lookup {
  events: string[];
  match: Record<string, string>;
}

const UUIDV7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** The millisecond a UUIDv7 id was made, undefined for any other id. */
export function idTime(id: string): number | undefined {
  return UUIDV7.test(id) ? uuidv7Time(id) : undefined;
}

/** The LogQL of one lookup: the user's stream selector, then the event and the id as metadata matchers. */
export function lookupQuery(selector: string, lookup: Lookup): string {
  const label = (key: string) => key.replaceAll('.', '_');
  const event =
    lookup.events.length === 1
      ? `${label(sc.ATTR_EVENT_NAME)}=${logqlString(lookup.events[0])}`
      : `${label(sc.ATTR_EVENT_NAME)}=~${logqlString(lookup.events.map(escapeRegex).join('|'))}`;
  const matchers = Object.entries(lookup.match).map(([k, v]) => `${label(k)}=${logqlString(v)}`);
  return [selector, event, ...matchers].join(' | ');
}

/** What {@link lokiLineage} answered with, and how. */
export interface LokiLineageAnswer {
  result: LineageResult;
  /** `windowed`: every hop by id inside its window; `full-range`: the whole range had to be read. */
  mode: 'windowed' | 'full-range';
  /** Why the whole range was read. */
  reason?: string;
  requests: LokiWindowRequest[];
  /** Entries in the answers that were not audit records. */
  malformed: number;
}

/**
 * The lineage of `id` from Loki, hop by hop in time windows (see the module comment). Upstream of any id,
 * and both directions of a prediction, decision or feedback, are answered that way; the downstream of a
 * pipeline node (an impact query: every prediction a data set led to) needs every record after it, so
 * it reads the whole range (`full-range`), as does an id no window finds (for its close matches).
 */
export async function lokiLineage(
  opts: LokiLineageOptions,
  id: string,
  direction: 'upstream' | 'downstream' | 'both',
  fullRangeStart?: Date,
): Promise<LokiLineageAnswer> {
  const skew = opts.skewMs ?? LOKI_SKEW_MS;
  const lookback = opts.lookbackMs ?? LOKI_LOOKBACK_MS;
  const now = (opts.now ?? new Date()).getTime();
  const requests: LokiWindowRequest[] = [];
  const graph = new LineageGraph();
  const held = new Set<string>();
  let malformed = 0;

  /** Records matching one lookup in [start, end); true when there was any. */
  const fetch = async (lookup: Lookup, start: number, end: number): Promise<boolean> => {
    if (end <= start) return false;
    const query = lookupQuery(opts.query, lookup);
    const request = { query, start, end };
    requests.push(request);
    opts.onRequest?.(request);
    let found = false;
    await readLokiRecords(
      { ...opts, query, start: new Date(start), end: new Date(end) },
      {
        record: (r: AuditRecord) => {
          found = true;
          const key = `${r.chain}:${r.seq}`;
          if (held.has(key)) return;
          held.add(key);
          graph.add(r);
        },
        problem: () => malformed++,
      },
    );
    return found;
  };

  /** Whether a record fetched so far defines `nodeId` (not only names it). */
  const isDefined = (nodeId: string) => graph.nodes.get(nodeId)?.record !== undefined;

  /**
   * Finds the records defining `nodeId` as any of `kinds`: from the id's own time when it has one (up to
   * `before`, the time of the record naming it, when known), else backwards from `before` (or now); each
   * window asks for every kind before the next, wider one is tried.
   */
  const define = async (nodeId: string, kinds: readonly LineageKind[], before: number | undefined) => {
    const lookups = kinds
      .flatMap((k) => DEFINITIONS[k] ?? [])
      .map((d) => d(nodeId))
      .filter((l) => l !== undefined);
    if (lookups.length === 0) return false;
    const t = idTime(nodeId);
    const slice = async (start: number, end: number) => {
      for (const l of lookups) await fetch(l, start, Math.min(end, now + 1));
      return isDefined(nodeId);
    };
    if (t !== undefined) {
      // From the id's time on, widening (a stage records its id when it ends, which can be hours after
      // it began), never past the record that named it (plus the margin) or now.
      const cap = Math.min(before !== undefined ? Math.max(before, t) + skew : now + 1, now + 1);
      let from = t - skew;
      for (const step of [...BACKWARD_STEPS_MS, Number.POSITIVE_INFINITY]) {
        const to = Math.min(t + skew + step, cap);
        if (await slice(from, to)) return true;
        from = to;
        if (to >= cap) break;
      }
      return false;
    }
    const anchor = Math.min((before ?? now) + skew, now + 1);
    let to = anchor;
    for (const step of [...BACKWARD_STEPS_MS, lookback]) {
      const from = Math.max(anchor - skew - step, anchor - lookback);
      if (await slice(from, to)) return true;
      to = from;
      if (from <= anchor - lookback) break;
    }
    return false;
  };

  const fullRange = async (reason: string): Promise<LokiLineageAnswer> => {
    const g = new LineageGraph();
    await readLokiRecords(
      { ...opts, start: fullRangeStart },
      { record: (r) => g.add(r), problem: () => malformed++ },
    );
    return { result: g.query(id, direction), mode: 'full-range', reason, requests, malformed };
  };

  // The root: every kind its form allows, window by window, until a record defines it.
  const candidates =
    idTime(id) !== undefined
      ? UUID_KINDS
      : id.startsWith('retraining:')
        ? (['retraining'] as const)
        : NAMED_KINDS;
  const rootKind = (await define(id, candidates, undefined)) ? graph.nodes.get(id)?.kind : undefined;
  if (rootKind === undefined) return fullRange(`no record defines "${id}" in the windows its id allows`);
  if (direction !== 'upstream' && !PER_REQUEST.has(rootKind))
    return fullRange(`the downstream of a ${rootKind} is every record after it (an impact query)`);

  // Upstream, hop by hop: every node above the root that no record fetched yet defines.
  const defined = new Set<string>([id]);
  for (;;) {
    const pending: { id: string; kind: LineageKind; before: number | undefined }[] = [];
    const seen = new Set<string>([id]);
    const queue = [id];
    for (let head = 0; head < queue.length; head++) {
      const cur = queue[head];
      const at = graph.nodes.get(cur)?.time;
      for (const e of graph.inputsOf(cur)) {
        if (seen.has(e.from)) continue;
        seen.add(e.from);
        queue.push(e.from);
        if (!defined.has(e.from)) {
          const kind = RELATION_KINDS[e.relation]?.[0];
          if (kind !== undefined)
            pending.push({ id: e.from, kind, before: at === undefined ? undefined : Date.parse(at) });
        }
      }
    }
    if (pending.length === 0) break;
    for (const p of pending) {
      defined.add(p.id);
      await define(p.id, [p.kind], p.before);
    }
  }

  // Downstream of a prediction: the decisions and feedback that name it, recorded after it.
  if (direction !== 'upstream') {
    const node = graph.resolve(id);
    const t = idTime(id) ?? (node?.time !== undefined ? Date.parse(node.time) : undefined);
    if (node?.kind === 'prediction' && t !== undefined)
      await fetch(
        { events: [sc.EVENT_ML_DECISION, sc.EVENT_ML_FEEDBACK], match: { [sc.ATTR_ML_PREDICTION_ID]: id } },
        t - skew,
        now + 1,
      );
  }
  return { result: graph.query(id, direction), mode: 'windowed', requests, malformed };
}

/** A LogQL string literal: raw (backticks) when it can be, else double-quoted with escapes. */
function logqlString(s: string): string {
  return s.includes('`') ? JSON.stringify(s) : `\`${s}\``;
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
