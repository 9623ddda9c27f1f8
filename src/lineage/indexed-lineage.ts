import type { AuditRecord } from '../integrity/record.js';
import { type IndexHit, JournalIndex } from '../journal-index/journal-index.js';
import { EntryKind } from '../journal-index/segment-index.js';
import { LineageGraph, type LineageResult } from './lineage-graph.js';
import { type RecordLineage, recordBody, recordLineage } from './record-lineage.js';
import { AFTER_PREDICTION, type LineageStream, lineageStream } from './served-stream.js';

export type { LineageStream };

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
    const f = fetch(hit);
    if (f !== undefined && hit.kind === EntryKind.Alias)
      for (const [digest, target] of f.lineage.aliases) if (digest === id) starts.add(target);
  }
  const walk = (dir: 'up' | 'down') => {
    const queue = [...starts];
    const seen = new Set(queue);
    for (let head = 0; head < queue.length; head++) {
      const cur = queue[head];
      const kinds = dir === 'up' ? [EntryKind.Node, EntryKind.In] : [EntryKind.Node, EntryKind.Out];
      for (const hit of ix.lookup(cur, kinds)) {
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
  // What a deployment or model served is not in the index's Out entries (it is kept apart, as Served): the
  // walk never fetched it; it streams, from every deployment or model the downstream walk reached.
  const served = result.nodes
    .filter((n) => expanded.has(n.id) && (n.kind === 'deployment' || n.kind === 'model'))
    .map((n) => n.id);
  return lineageStream(result, indexPass(ix), served);
}

/** The segments of an indexed journal, with what its index says about each. */
function indexPass(ix: JournalIndex) {
  return {
    files: ix.files,
    paths: ix.segmentPaths,
    mayServe: (i: number, servers: readonly string[]) =>
      servers.some((s) => ix.mayHold(i, s, EntryKind.Served)),
    mayFollow: (i: number) => ix.mayHoldRelation(i, AFTER_PREDICTION),
    fanOut: (i: number) => ({ ...ix.fanOut(i), chain: ix.chainOf(i) }),
  };
}

const EMPTY: RecordLineage = { nodes: [], edges: [], aliases: [] };
