import { lineEventName } from '../integrity/record.js';
import { type FanOutTable, keyHash } from '../journal-index/segment-index.js';
import { segmentLines } from '../journal-index/segment-lines.js';
import * as events from '../semconv/events.js';
import type { EvidenceDir } from '../sources/evidence-files.js';
import { type LineageEdge, type LineageNode, type LineageResult, nodeFacts } from './lineage-graph.js';
import { type LineageKind, lineLineage, RELATION_KINDS, type RecordLineage } from './record-lineage.js';

/** The one relation that fans out to every prediction a deployment or model served. */
export const SERVED = 'served';
/** What follows a prediction: its decisions and feedback. */
export const AFTER_PREDICTION: readonly string[] = ['decided', 'ground truth'];

/** One streamed node of an impact answer, with the edge that reached it (node undefined: already known). */
export interface StreamedItem {
  node: LineageNode | undefined;
  edge: LineageEdge;
}

/**
 * A streamed node as the journal index knows it, without the facts its record's body holds: its id, its
 * kind, and its record's `<chain>:<seq>` (for `mltrail verify` and inclusion proofs).
 */
export interface LeanNode {
  id: string;
  kind: LineageKind;
  record: string;
}

/** One streamed node of a lean impact answer (see {@link LeanNode}), with the edge that reached it. */
export interface LeanItem {
  node: LeanNode | undefined;
  edge: LineageEdge;
}

/**
 * Receives a lean answer's streamed part (see {@link LineageStream.visitLean}), in answer order. Rows of a
 * fan-out table come as they are, so a writer can copy them out without making an object per row; every
 * other item comes whole.
 */
export interface LeanVisitor {
  /**
   * Served row `row` of `table`: the prediction it names, served by `table.servers[server]`, defined by the
   * record `<chain>:<table.servedSeq(row)>`; `known`: the node is already in the answer (only the edge is new).
   */
  servedRow(table: FanOutTable, row: number, server: number, chain: string, known: boolean): void;
  item(node: LeanNode | undefined, edge: LineageEdge): void;
  /** Set to stop the visit (a reader that has gone). */
  readonly stopped?: boolean;
}

/**
 * A lineage answer that may be too large to hold: the pipeline part (datasets, runs, models, deployments,
 * drift…) is small and in memory; the predictions a deployment or model served, and their decisions and
 * feedback, are read from the journal, in one sequential pass, each time {@link streamed} is iterated.
 */
export interface LineageStream {
  root: LineageNode;
  /** The in-memory part: the whole answer unless {@link fansOut}. */
  result: LineageResult;
  /** True when the answer streams predictions (an impact query); false when it is all in memory. */
  readonly fansOut: boolean;
  /** The streamed part, each node with the edge that reached it (empty unless {@link fansOut}). */
  streamed(): Generator<StreamedItem>;
  /**
   * The streamed part as lean nodes ({@link LeanNode}), the same nodes and edges as {@link streamed} in the
   * same order: from the journal index's fan-out tables where a current index has them (no record is read),
   * else from the records.
   */
  visitLean(visitor: LeanVisitor): void;
  /** {@link visitLean} collected (fine unless {@link fansOut}). */
  collectLean(): LeanItem[];
  /** The whole answer in memory (fine unless {@link fansOut}). */
  collect(): LineageResult;
}

/** The answer made of an in-memory part and the predictions `servers` served (see {@link streamServed}). */
export function lineageStream(result: LineageResult, pass: SegmentPass, servers: string[]): LineageStream {
  const known = new Set(result.nodes.map((n) => n.id));
  return {
    root: result.root,
    result,
    fansOut: servers.length > 0,
    streamed: () => streamServed(pass, servers, known),
    visitLean: (v) => visitServedLean(pass, servers, known, v),
    collectLean() {
      const items: LeanItem[] = [];
      visitServedLean(pass, servers, known, {
        servedRow(t, row, server, chain, isKnown) {
          const id = t.servedPrediction(row);
          items.push({
            node: isKnown ? undefined : { id, kind: 'prediction', record: `${chain}:${t.servedSeq(row)}` },
            edge: { from: t.servers[server], to: id, relation: SERVED },
          });
        },
        item: (node, edge) => items.push({ node, edge }),
      });
      return items;
    },
    collect() {
      if (servers.length === 0) return result;
      const nodes = [...result.nodes];
      const edges = [...result.edges];
      for (const { node, edge } of streamServed(pass, servers, known)) {
        if (node !== undefined) nodes.push(node);
        edges.push(edge);
      }
      return { root: result.root, nodes, edges };
    },
  };
}

/**
 * The segments a streamed answer reads, in journal order, and what is known about each without reading it
 * (from the journal index; a full scan knows nothing and reads them all).
 */
export interface SegmentPass {
  files: EvidenceDir;
  paths: readonly string[];
  /** False when segment `i` certainly holds no prediction served by one of `servers`. */
  mayServe(i: number, servers: readonly string[]): boolean;
  /** False when segment `i` certainly holds no decision or feedback. */
  mayFollow(i: number): boolean;
  /**
   * Segment `i`'s fan-out tables (from its current index) and the part of the segment they cover,
   * `[0, from)`; the rest is read. Absent, or `table` undefined: the whole segment is read.
   */
  fanOut?(i: number): { table: FanOutTable | undefined; from: number; chain: string };
}

/**
 * Every prediction served by the given deployments or models, then every decision and feedback on those
 * predictions, each with the edge that reached it: one sequential read of the segments that may hold them
 * (big reads, each line's event name checked before anything is parsed, each candidate parsed once), so
 * the cost follows the segments read and memory stays bounded: 8 bytes per served prediction (its key hash,
 * for the join with decisions and feedback), and none when no segment can hold a decision or feedback.
 * Each record is interpreted by {@link recordLineage}, as a full scan does. Lines that are not records are
 * skipped (`mltrail verify` reports them).
 */
export function* streamServed(
  pass: SegmentPass,
  servers: readonly string[],
  known: ReadonlySet<string>,
): Generator<StreamedItem> {
  if (servers.length === 0) return;
  const serving = new Set(servers);
  const follows: number[] = [];
  for (let i = 0; i < pass.paths.length; i++) if (pass.mayFollow(i)) follows.push(i);
  const served = follows.length > 0 ? new HashSet() : undefined;
  for (let i = 0; i < pass.paths.length; i++) {
    if (!pass.mayServe(i, servers)) continue;
    for (const f of candidates(pass, i, PREDICTION_EVENTS)) {
      const edge = f.lineage.edges.find((e) => e.relation === SERVED && serving.has(e.from));
      if (edge === undefined) continue;
      const node = definition(f.lineage, edge.to);
      if (node === undefined) continue;
      served?.add(node.id);
      yield { node: known.has(node.id) ? undefined : node, edge: { ...edge } };
    }
  }
  if (served === undefined || served.size === 0) return;
  served.seal();
  for (const i of follows)
    for (const f of candidates(pass, i, FOLLOW_EVENTS))
      for (const e of f.lineage.edges) {
        if (!AFTER_PREDICTION.includes(e.relation) || !served.has(e.from)) continue;
        const node = definition(f.lineage, e.to);
        if (node === undefined) continue;
        yield { node: known.has(node.id) ? undefined : node, edge: { ...e } };
      }
}

/**
 * {@link streamServed} as lean nodes, to a visitor: what a segment's fan-out tables hold is taken from them
 * (no record read, nothing parsed), the rest of the segment (a tail the index does not cover) or a segment
 * without tables from its records. Memory: as {@link streamServed}, plus one segment's tables.
 */
export function visitServedLean(
  pass: SegmentPass,
  servers: readonly string[],
  known: ReadonlySet<string>,
  v: LeanVisitor,
): void {
  if (servers.length === 0) return;
  const serving = new Set(servers);
  const follows: number[] = [];
  for (let i = 0; i < pass.paths.length; i++) if (pass.mayFollow(i)) follows.push(i);
  const served = follows.length > 0 ? new HashSet() : undefined;
  // A row's id is spelled out only when it is needed: for the join, or when an id of the in-memory part
  // ends with the same 32 bits (a UUID's last 8 hex digits; an id that is not one, always).
  const knownTails = new Set<number>();
  for (const id of known) if (LOWER_UUID.test(id)) knownTails.add(Number.parseInt(id.slice(-8), 16));
  for (let i = 0; i < pass.paths.length && !v.stopped; i++) {
    if (!pass.mayServe(i, servers)) continue;
    const fan = pass.fanOut?.(i);
    const t = fan?.table;
    if (fan !== undefined && t !== undefined) {
      const wanted = t.servers.map((s) => serving.has(s));
      if (wanted.includes(true))
        for (let r = 0; r < t.served && !v.stopped; r++) {
          const s = t.servedServer(r);
          if (wanted[s] !== true) continue;
          let isKnown = false;
          const tail = t.servedTail(r);
          if (served !== undefined || tail === undefined || knownTails.has(tail)) {
            const id = t.servedPrediction(r);
            served?.add(id);
            isKnown = known.has(id);
          }
          v.servedRow(t, r, s, fan.chain, isKnown);
        }
    }
    for (const f of candidates(pass, i, PREDICTION_EVENTS, t === undefined ? 0 : fan!.from)) {
      if (v.stopped) return;
      const edge = f.lineage.edges.find((e) => e.relation === SERVED && serving.has(e.from));
      if (edge === undefined) continue;
      const n = leanNode(f.lineage, edge.to);
      if (n === undefined) continue;
      served?.add(n.id);
      v.item(known.has(n.id) ? undefined : n, { ...edge });
    }
  }
  if (served === undefined || served.size === 0) return;
  served.seal();
  for (const i of follows) {
    if (v.stopped) return;
    const fan = pass.fanOut?.(i);
    const t = fan?.table;
    if (fan !== undefined && t !== undefined)
      for (let r = 0; r < t.follows && !v.stopped; r++) {
        const f = t.follow(r);
        if (!AFTER_PREDICTION.includes(f.relation) || !served.has(f.prediction)) continue;
        const kind = RELATION_KINDS[f.relation][1];
        const n = known.has(f.id) ? undefined : { id: f.id, kind, record: `${fan.chain}:${f.seq}` };
        v.item(n, { from: f.prediction, to: f.id, relation: f.relation });
      }
    for (const f of candidates(pass, i, FOLLOW_EVENTS, t === undefined ? 0 : fan!.from))
      for (const e of f.lineage.edges) {
        if (v.stopped) return;
        if (!AFTER_PREDICTION.includes(e.relation) || !served.has(e.from)) continue;
        const n = leanNode(f.lineage, e.to);
        if (n === undefined) continue;
        v.item(known.has(n.id) ? undefined : n, { ...e });
      }
  }
}

const LOWER_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const PREDICTION_EVENTS = new Set<string>([events.EVENT_ML_PREDICTION]);
const FOLLOW_EVENTS = new Set<string>([events.EVENT_ML_DECISION, events.EVENT_ML_FEEDBACK]);

/** The lineage of each record of segment `i` whose event is one of `wanted` (or cannot be told cheaply). */
function* candidates(
  pass: SegmentPass,
  i: number,
  wanted: ReadonlySet<string>,
  from = 0,
): Generator<{ lineage: RecordLineage }> {
  for (const l of segmentLines(pass.files, pass.paths[i], from)) {
    const event = lineEventName(l.text);
    if (event !== undefined && !wanted.has(event)) continue;
    const line = lineLineage(l.text);
    if (line !== undefined) yield { lineage: line.lineage };
  }
}

/** The node `id` as a record defines it, in the shape of an answer's node. */
function definition(lineage: RecordLineage, id: string): LineageNode | undefined {
  const def = lineage.nodes.find((n) => n.id === id);
  if (def === undefined) return undefined;
  return {
    id: def.id,
    kind: def.kind,
    label: def.label,
    facts: nodeFacts(def.kind, def.body),
    record: def.record,
    time: def.time,
  };
}

/** The node `id` as a record defines it, as a lean answer gives it. */
function leanNode(lineage: RecordLineage, id: string): LeanNode | undefined {
  const def = lineage.nodes.find((n) => n.id === id);
  if (def === undefined) return undefined;
  return { id: def.id, kind: def.kind, record: def.record ?? '' };
}

/** Sorted chunks of 64-bit key hashes (no per-entry object; one binary search per chunk to test). */
class HashSet {
  static readonly CHUNK = 1 << 20;
  readonly #chunks: BigUint64Array[] = [];
  #cur = new BigUint64Array(HashSet.CHUNK);
  #n = 0;
  size = 0;

  add(id: string): void {
    if (this.#n === this.#cur.length) {
      this.#chunks.push(this.#cur.sort());
      this.#cur = new BigUint64Array(HashSet.CHUNK);
      this.#n = 0;
    }
    this.#cur[this.#n++] = hash64(id);
    this.size++;
  }

  /** Ends adding: sorts the last chunk. */
  seal(): void {
    if (this.#n > 0) this.#chunks.push(this.#cur.slice(0, this.#n).sort());
    this.#cur = new BigUint64Array(0);
    this.#n = 0;
  }

  has(id: string): boolean {
    const v = hash64(id);
    for (const c of this.#chunks) {
      let a = 0;
      let b = c.length;
      while (a < b) {
        const m = (a + b) >>> 1;
        if (c[m] < v) a = m + 1;
        else b = m;
      }
      if (a < c.length && c[a] === v) return true;
    }
    return false;
  }
}

function hash64(id: string): bigint {
  const [hi, lo] = keyHash(id);
  return (BigInt(hi) << 32n) | BigInt(lo);
}
