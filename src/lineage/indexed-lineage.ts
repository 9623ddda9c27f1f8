import type { AuditRecord } from '../integrity/record.js';
import { type IndexHit, JournalIndex } from '../journal-index/journal-index.js';
import { EntryKind, keyHash } from '../journal-index/segment-index.js';
import {
  type LineageEdge,
  LineageGraph,
  type LineageNode,
  type LineageResult,
  nodeFacts,
} from './lineage-graph.js';
import { type RecordLineage, recordBody, recordLineage } from './record-lineage.js';

/** The one relation that fans out to every prediction a deployment or model served. */
const SERVED = 'served';
/** What follows a prediction: its decisions and feedback. */
const AFTER_PREDICTION = ['decided', 'ground truth'];

/**
 * A lineage answer that may be too large to hold: the pipeline part (datasets, runs, models, deployments,
 * drift…) is small and in memory; the predictions a deployment served, and their decisions and feedback,
 * are streamed from the journal each time {@link nodes} or {@link edges} is iterated.
 */
export interface LineageStream {
  root: LineageNode;
  /** Every node of the answer (the in-memory part first). */
  nodes(): Generator<LineageNode>;
  /** Every edge of the answer. */
  edges(): Generator<LineageEdge>;
  /** True when the answer streams predictions (an impact query); false when it is all in memory. */
  readonly fansOut: boolean;
  /** The whole answer in memory (fine unless {@link fansOut}). */
  collect(): LineageResult;
  /** The number of nodes as the index counts them, without reading the streamed records. */
  count(): number;
}

interface Fetched {
  hit: IndexHit;
  record: AuditRecord;
  lineage: RecordLineage;
}

/**
 * Answers a lineage query through the journal index: only the records that define or name the nodes on the
 * way are read, so the cost follows the size of the answer, not of the journal. Each record found is read
 * and interpreted exactly as a full scan would ({@link recordLineage}), and the pipeline part is built as a
 * {@link LineageGraph} from those records in journal order, so the answer is the full scan's. Returns
 * undefined for an id the index does not know (the caller scans, for "did you mean" suggestions).
 *
 * @example
 * const ix = JournalIndex.open('.mltrail');
 * const answer = queryIndexed(ix, predictionId, 'upstream')?.collect();
 */
export function queryIndexed(
  ix: JournalIndex,
  id: string,
  direction: 'upstream' | 'downstream' | 'both' = 'both',
): LineageStream | undefined {
  const fetched = new Map<string, Fetched>();
  const fetch = (hit: IndexHit): Fetched | undefined => {
    const at = `${hit.segment}:${hit.offset}`;
    const known = fetched.get(at);
    if (known !== undefined) return known;
    const record = ix.readRecord(hit);
    if (record === undefined) return undefined;
    const body = recordBody(record);
    const f = { hit, record, lineage: body === undefined ? EMPTY : recordLineage(record, body) };
    fetched.set(at, f);
    return f;
  };
  // The root: what defines it, names it, or a digest standing for it.
  const starts = new Set([id]);
  for (const hit of ix.lookup(id, [EntryKind.Node, EntryKind.In, EntryKind.Out, EntryKind.Alias])) {
    // A deployment's own "out" entries are its predictions: they stream, they are not fetched here.
    if (hit.kind === EntryKind.Out && hit.relation === SERVED) continue;
    const f = fetch(hit);
    if (f !== undefined && hit.kind === EntryKind.Alias)
      for (const [digest, target] of f.lineage.aliases) if (digest === id) starts.add(target);
  }
  const fanOut = new Set<string>();
  const walk = (dir: 'up' | 'down') => {
    const queue = [...starts];
    const seen = new Set(queue);
    for (let head = 0; head < queue.length; head++) {
      const cur = queue[head];
      const kinds = dir === 'up' ? [EntryKind.Node, EntryKind.In] : [EntryKind.Node, EntryKind.Out];
      for (const hit of ix.lookup(cur, kinds)) {
        if (hit.kind === EntryKind.Out && hit.relation === SERVED) {
          fanOut.add(cur);
          continue;
        }
        const f = fetch(hit);
        if (f === undefined) continue;
        for (const e of f.lineage.edges) {
          const next = dir === 'up' ? (e.to === cur ? e.from : undefined) : e.from === cur ? e.to : undefined;
          if (next !== undefined && !seen.has(next)) {
            seen.add(next);
            queue.push(next);
          }
        }
      }
    }
  };
  if (direction !== 'downstream') walk('up');
  if (direction !== 'upstream') walk('down');

  const graph = new LineageGraph();
  for (const f of [...fetched.values()].sort((a, b) => JournalIndex.order(a.hit, b.hit))) graph.add(f.record);
  const expanded = new Set<string>();
  let result: LineageResult;
  try {
    result = graph.query(id, direction, expanded);
  } catch {
    return undefined;
  }
  const served = [...fanOut].filter((x) => expanded.has(x));
  const known = new Set(result.nodes.map((n) => n.id));
  return {
    root: result.root,
    fansOut: served.length > 0,
    *nodes() {
      yield* result.nodes;
      for (const item of streamServed(ix, served, known, true)) if (item.node !== undefined) yield item.node;
    },
    *edges() {
      yield* result.edges;
      for (const item of streamServed(ix, served, known, true)) yield item.edge;
    },
    count() {
      let n = result.nodes.length;
      for (const item of streamServed(ix, served, known, false)) if (item.node !== undefined) n++;
      return n;
    },
    collect() {
      if (served.length === 0) return result;
      return { root: result.root, nodes: [...this.nodes()], edges: [...this.edges()] };
    },
  };
}

const EMPTY: RecordLineage = { nodes: [], edges: [], aliases: [] };

/**
 * Every prediction served by the given deployments or models, then every decision and feedback on those
 * predictions, each with the edge that reached it, in journal order. Memory: 8 bytes per prediction (its
 * key hash, for the join with decisions and feedback), whatever the journal's size.
 */
function* streamServed(
  ix: JournalIndex,
  servers: string[],
  known: Set<string>,
  read: boolean,
): Generator<{ node: LineageNode | undefined; edge: LineageEdge }> {
  // Counting only: what the index says, without reading the records (the node is a stand-in).
  const definedBy = read ? readDefinition : (_: JournalIndex, hit: IndexHit, id: string) => standIn(hit, id);
  if (servers.length === 0) return;
  let hashes = new BigUint64Array(1024);
  let count = 0;
  for (const server of servers) {
    for (const hit of ix.entries(server, EntryKind.Out)) {
      if (hit.relation !== SERVED) continue;
      const found = definedBy(ix, hit, hit.other, (e) => e.from === server && e.relation === SERVED);
      if (found === undefined) continue;
      const [hi, lo] = keyHash(hit.other);
      if (count === hashes.length) {
        const bigger = new BigUint64Array(hashes.length * 2);
        bigger.set(hashes);
        hashes = bigger;
      }
      hashes[count++] = (BigInt(hi) << 32n) | BigInt(lo);
      yield {
        node: known.has(found.id) ? undefined : found,
        edge: { from: server, to: found.id, relation: SERVED },
      };
    }
  }
  const sorted = hashes.subarray(0, count).sort();
  for (const hit of ix.withRelation(AFTER_PREDICTION)) {
    if (hit.kind !== EntryKind.Out) continue;
    const [hi, lo] = hit.hi !== undefined && hit.lo !== undefined ? [hit.hi, hit.lo] : keyHash(hit.key ?? '');
    if (!contains(sorted, (BigInt(hi) << 32n) | BigInt(lo))) continue;
    const relation = hit.relation!;
    let prediction = '';
    const found = definedBy(ix, hit, hit.other, (e) => {
      prediction = e.from;
      return e.relation === relation;
    });
    if (found === undefined || (read && prediction === '')) continue;
    yield {
      node: known.has(found.id) ? undefined : found,
      edge: { from: prediction, to: found.id, relation },
    };
  }
}

/**
 * Reads the record an entry points to and returns the node `id` it defines, if it really does and has the
 * expected edge into it: an entry only says where to look.
 */
function readDefinition(
  ix: JournalIndex,
  hit: IndexHit,
  id: string,
  edge: (e: LineageEdge) => boolean,
): LineageNode | undefined {
  const record = ix.readRecord(hit);
  if (record === undefined) return undefined;
  const body = recordBody(record);
  if (body === undefined) return undefined;
  const { nodes, edges } = recordLineage(record, body);
  const def = nodes.find((n) => n.id === id);
  if (def === undefined || !edges.some((e) => e.to === id && edge(e))) return undefined;
  return {
    id: def.id,
    kind: def.kind,
    label: def.label,
    facts: nodeFacts(def.kind, def.body),
    record: def.record,
    time: def.time,
  };
}

function standIn(hit: IndexHit, id: string): LineageNode {
  return { id, kind: 'prediction', label: '', facts: {}, record: `${hit.segment}:${hit.offset}` };
}

function contains(sorted: BigUint64Array, v: bigint): boolean {
  let a = 0;
  let b = sorted.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (sorted[m] < v) a = m + 1;
    else b = m;
  }
  return a < sorted.length && sorted[a] === v;
}
