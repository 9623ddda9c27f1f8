/**
 * The segment index builder as it was before the byte-level builder (commit 331f32d): each line decoded,
 * parsed by lineLineage(), its entries as objects, encoded by the object encoder. Kept verbatim (bar the
 * imports and writing the file) as the known-good output the builder in src/ must reproduce byte for byte;
 * and the lines the Merkle tiles writer took, as it took them (referenceTileLeaves).
 * Test code only: nothing in src/ imports it.
 */
import { hash } from 'node:crypto';
import { basename, dirname } from 'node:path';
import { parseRecordLine } from '../../src/integrity/record.js';
import {
  EntryKind,
  type FanOutHeader,
  type FollowRow,
  type KeyedEntry,
  type KeyTimes,
  keyHash,
  type SegmentIndexHeader,
  type ServedRow,
  uuidV7Time,
} from '../../src/journal-index/segment-index.js';
import { segmentLines } from '../../src/journal-index/segment-lines.js';
import { type LineLineage, lineLineage, RELATIONS } from '../../src/lineage/record-lineage.js';
import { ATTR_MLTRAIL_CHECKPOINT_NOTE } from '../../src/semconv/attributes.js';
import { EVENT_MLTRAIL_CHECKPOINT } from '../../src/semconv/events.js';
import { EvidenceDir } from '../../src/sources/evidence-files.js';

/** The relation whose Out entries are kept apart ({@link EntryKind.Served}). */
const FANS_OUT = 'served';
/** The relations of what follows a prediction (its decisions and feedback), kept in the fan-out tables. */
const FOLLOWS = new Set(['decided', 'ground truth']);

function entriesOf(line: LineLineage, offset: number, length: number): KeyedEntry[] {
  const at = { offset, length };
  const entries: KeyedEntry[] = [
    { key: `${line.chain}:${line.seq}`, kind: EntryKind.Record, relation: undefined, other: '', ...at },
  ];
  const { nodes, edges, aliases } = line.lineage;
  const defined = new Set<string>();
  for (const n of nodes) {
    if (defined.has(n.id)) continue;
    defined.add(n.id);
    entries.push({ key: n.id, kind: EntryKind.Node, relation: undefined, other: '', ...at });
  }
  for (const e of edges) {
    if (!defined.has(e.to))
      entries.push({ key: e.to, kind: EntryKind.In, relation: e.relation, other: e.from, ...at });
    if (!defined.has(e.from))
      entries.push({
        key: e.from,
        kind: e.relation === FANS_OUT ? EntryKind.Served : EntryKind.Out,
        relation: e.relation,
        other: e.to,
        ...at,
      });
  }
  for (const [digest, id] of aliases)
    entries.push({ key: digest, kind: EntryKind.Alias, relation: undefined, other: id, ...at });
  return entries;
}

/**
 * The fan-out rows of one record: the prediction it defines with the deployment or model that served it,
 * and the decision or feedback it defines with the prediction it follows (an edge whose target the record
 * defines, as the streamed answer takes them).
 */
function fanOutRowsOf(
  line: LineLineage,
  offset: number,
  length: number,
  served: ServedRow[],
  follows: FollowRow[],
): void {
  const { nodes, edges } = line.lineage;
  for (const e of edges) {
    if (e.relation !== FANS_OUT && !FOLLOWS.has(e.relation)) continue;
    if (!nodes.some((n) => n.id === e.to)) continue;
    const at = { offset, length, seq: line.seq };
    if (e.relation === FANS_OUT) served.push({ server: e.from, prediction: e.to, ...at });
    else follows.push({ prediction: e.from, relation: e.relation, id: e.to, ...at });
  }
}

/** The bytes the builder wrote for a segment's index (the file is not written). */
export function referenceSegmentIndex(dir: string, segmentPath: string): Buffer {
  const chain = basename(dirname(segmentPath));
  const entries: KeyedEntry[] = [];
  let lines = 0;
  let records = 0;
  let malformed = 0;
  let bytes = 0;
  let lastLine = '';
  const served: ServedRow[] = [];
  const follows: FollowRow[] = [];
  let ownChain = true;
  for (const l of segmentLines(new EvidenceDir(dir), segmentPath)) {
    lines++;
    bytes = l.offset + l.length + 1;
    lastLine = l.text;
    if (l.length > 0xffffffff || l.offset > 0xffffffff)
      throw new Error(`${segmentPath}: segment too large to index`);
    const line = lineLineage(l.text);
    if (line === undefined) {
      malformed++;
      continue;
    }
    records++;
    for (const e of entriesOf(line, l.offset, l.length)) entries.push(e);
    // A record of another chain than the segment's own cannot be named `<chain>:<seq>` from the table's
    // rows: such a segment gets no fan-out tables (an impact answer reads its records instead).
    if (line.chain !== chain) ownChain = false;
    else if (ownChain) fanOutRowsOf(line, l.offset, l.length, served, follows);
  }
  const data = encodeSegmentIndex(
    entries,
    {
      segment: basename(segmentPath),
      chain,
      bytes,
      lastLineSha256: lines > 0 ? hash('sha256', lastLine) : '',
      lines,
      records,
      malformed,
    },
    ownChain ? { served, follows } : undefined,
  );
  return data;
}

const FORMAT = 'mltrail-segment-index';
/**
 * 2 added the (key, kind) filter; 3 the key time ranges and relation counts in the header and the Served
 * entry kind; 4 the fan-out tables. An index of an older version is not read (its segment is scanned) and
 * is rebuilt by `mltrail index`.
 */
const VERSION = 4;
/** Time ranges kept per entry kind: the nearest ranges are merged until this many are left. */
const MAX_KEY_RANGES = 8;
/** Sorted distinct times as at most `max` ranges, split at the `max - 1` largest gaps. */
function timeRanges(times: number[], max: number): [number, number][] {
  const all = Float64Array.from(times).sort();
  if (all.length === 0) return [];
  // The largest gaps (ties: the earlier), kept sorted by size, descending.
  const top: { gap: number; at: number }[] = [];
  for (let i = 1; i < all.length; i++) {
    const gap = all[i] - all[i - 1];
    if (gap === 0 || (top.length === max - 1 && gap <= top[top.length - 1].gap)) continue;
    let k = top.length;
    while (k > 0 && top[k - 1].gap < gap) k--;
    top.splice(k, 0, { gap, at: i });
    if (top.length > max - 1) top.pop();
  }
  const cuts = top.map((t) => t.at).sort((a, b) => a - b);
  const ranges: [number, number][] = [];
  let start = 0;
  for (const c of cuts) {
    ranges.push([all[start], all[c - 1]]);
    start = c;
  }
  ranges.push([all[start], all[all.length - 1]]);
  return ranges;
}

const MAGIC = Buffer.from('MLTIDX1\n', 'latin1');
/** Filter block: 448 bits, then the first 8 bytes of SHA-256 over the block's number and bits. */
const FILTER_BLOCK = 64;
const FILTER_BITS = 448;
const FILTER_PROBES = 6;
/** Bits per distinct (key, kind) pair: with 6 probes in a 448-bit block, about 1% false positives. */
const FILTER_BITS_PER_PAIR = 12;
/** A block is closed once it holds this many bytes. */
const BLOCK_TARGET = 32 * 1024;
/**
 * Block table row: first entry's key hash (8) and kind (1), last entry's key hash (8) and kind (1), offset
 * (4), length (4), checksum (8).
 */
const ROW = 34;
/** Fixed part of an entry: key hash (8), kind (1), relation (1), offset (4), length (4), other length (2). */
const ENTRY_FIXED = 20;
const NO_RELATION = 0xff;
const RELATION_CODES = new Map<string, number>(RELATIONS.map((r, i) => [r, i]));

/**
 * The filter block of a (key, kind) pair and its bit positions: a blocked Bloom filter, so one lookup
 * reads one 64-byte block whatever the segment's size.
 */
function filterProbe(hi: number, lo: number, kind: number, blocks: number): number {
  const a = (hi ^ Math.imul(kind, 0x9e3779b1)) >>> 0;
  let b = (lo ^ Math.imul(kind + 1, 0x85ebca77)) >>> 0;
  for (let j = 0; j < FILTER_PROBES; j++) {
    b = Math.imul(b ^ (b >>> 15), 0x2c1b3c6d);
    b = (b ^ (b >>> 12)) >>> 0;
    PROBE_BITS[j] = b % FILTER_BITS;
  }
  return a % blocks;
}

/** The bit positions of the last {@link filterProbe}. */
const PROBE_BITS = new Uint16Array(FILTER_PROBES);

function filterChecksum(block: number, bits: Uint8Array): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(block, 0);
  return Buffer.from(hash('sha256', Buffer.concat([n, bits]), 'binary').slice(0, 8), 'latin1');
}

/** The first 8 bytes of SHA-256, as a checksum of a block. */
function checksum(data: Uint8Array): Buffer {
  return Buffer.from(hash('sha256', data, 'binary').slice(0, 8), 'latin1');
}

/**
 * Writes the bytes of an index file for the given entries: entries sorted by key hash, packed into
 * checksummed blocks, a block table, and a header that names the segment prefix. Returns the file's bytes.
 */
export function encodeSegmentIndex(
  entries: KeyedEntry[],
  header: Omit<
    SegmentIndexHeader,
    | 'format'
    | 'version'
    | 'entries'
    | 'blocks'
    | 'fileBytes'
    | 'blockTableSha256'
    | 'filterBlocks'
    | 'keyTimes'
    | 'relationEntries'
    | 'fanOut'
  >,
  fanOut?: { served: ServedRow[]; follows: FollowRow[] },
): Buffer {
  const fanOutSection = fanOut === undefined ? undefined : encodeFanOut(fanOut.served, fanOut.follows);
  const times = new Map<EntryKind, { times: number[]; other: boolean }>();
  const relationEntries: Record<string, number> = {};
  for (const e of entries) {
    let k = times.get(e.kind);
    if (k === undefined) {
      k = { times: [], other: false };
      times.set(e.kind, k);
    }
    const t = uuidV7Time(e.key);
    if (t === undefined) k.other = true;
    else k.times.push(t);
    if (e.relation !== undefined) relationEntries[e.relation] = (relationEntries[e.relation] ?? 0) + 1;
  }
  const keyTimes: Partial<Record<EntryKind, KeyTimes>> = {};
  for (const [kind, k] of [...times].sort((a, b) => a[0] - b[0]))
    keyTimes[kind] = { ranges: timeRanges(k.times, MAX_KEY_RANGES), other: k.other };
  // With fan-out tables, the served predictions are rows there: the Served entries (one per prediction,
  // the largest part of a busy segment's entries) stay in the filter and the key times only, which is
  // what "may this segment hold a prediction served by X" needs.
  const servedKeys = new Set<string>();
  const inBlocks =
    fanOut === undefined
      ? entries
      : entries.filter((e) => {
          if (e.kind !== EntryKind.Served) return true;
          servedKeys.add(e.key);
          return false;
        });
  // Sorted through typed arrays (an index permutation): a comparator over objects costs most of a build.
  const n = inBlocks.length;
  const his = new Uint32Array(n);
  const los = new Uint32Array(n);
  const kinds = new Uint8Array(n);
  const offsets = new Float64Array(n);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const e = inBlocks[i];
    [his[i], los[i]] = keyHash(e.key);
    kinds[i] = e.kind;
    offsets[i] = e.offset;
    order[i] = i;
  }
  order.sort((a, b) => his[a] - his[b] || los[a] - los[b] || kinds[a] - kinds[b] || offsets[a] - offsets[b]);
  const keyed = Array.from(order, (i) => ({ e: inBlocks[i], h: [his[i], los[i]] as const }));
  const blocks: Buffer[] = [];
  const rows: Buffer[] = [];
  let block = Buffer.allocUnsafe(BLOCK_TARGET * 2);
  let at = 0;
  let first: [number, number, number] | undefined;
  let last: [number, number, number] = [0, 0, 0];
  let blockOffset = 0;
  const closeBlock = () => {
    if (first === undefined) return;
    const data = Buffer.from(block.subarray(0, at));
    const row = Buffer.alloc(ROW);
    row.writeUInt32BE(first[0], 0);
    row.writeUInt32BE(first[1], 4);
    row[8] = first[2];
    row.writeUInt32BE(last[0], 9);
    row.writeUInt32BE(last[1], 13);
    row[17] = last[2];
    row.writeUInt32BE(blockOffset, 18);
    row.writeUInt32BE(data.length, 22);
    checksum(data).copy(row, 26);
    blocks.push(data);
    rows.push(row);
    blockOffset += data.length;
    at = 0;
    first = undefined;
  };
  for (const { e, h } of keyed) {
    const other = Buffer.from(e.other, 'utf8');
    const size = ENTRY_FIXED + other.length;
    if (at > 0 && at + size > BLOCK_TARGET) closeBlock();
    if (at + size > block.length) {
      const bigger = Buffer.allocUnsafe(Math.max(block.length * 2, at + size));
      block.copy(bigger, 0, 0, at);
      block = bigger;
    }
    first ??= [h[0], h[1], e.kind];
    last = [h[0], h[1], e.kind];
    block.writeUInt32BE(h[0], at);
    block.writeUInt32BE(h[1], at + 4);
    block[at + 8] = e.kind;
    block[at + 9] = e.relation === undefined ? NO_RELATION : (RELATION_CODES.get(e.relation) ?? NO_RELATION);
    block.writeUInt32BE(e.offset, at + 10);
    block.writeUInt32BE(e.length, at + 14);
    block.writeUInt16BE(other.length, at + 18);
    other.copy(block, at + ENTRY_FIXED);
    at += size;
  }
  closeBlock();
  const table = Buffer.concat(rows);
  const body = Buffer.concat(blocks);
  // The filter holds each distinct (key, kind) pair once (entries are sorted, so repeats are adjacent).
  let pairs = 0;
  for (let i = 0; i < keyed.length; i++) {
    const p = keyed[i - 1];
    const c = keyed[i];
    if (p === undefined || p.h[0] !== c.h[0] || p.h[1] !== c.h[1] || p.e.kind !== c.e.kind) pairs++;
  }
  pairs += servedKeys.size;
  const filterBlocks = Math.max(1, Math.ceil((pairs * FILTER_BITS_PER_PAIR) / FILTER_BITS));
  const filter = Buffer.alloc(filterBlocks * FILTER_BLOCK);
  const probe = (hi: number, lo: number, kind: EntryKind) => {
    const base = filterProbe(hi, lo, kind, filterBlocks) * FILTER_BLOCK;
    for (const bit of PROBE_BITS) filter[base + (bit >>> 3)] |= 1 << (bit & 7);
  };
  for (const { e, h } of keyed) probe(h[0], h[1], e.kind);
  for (const key of servedKeys) probe(...keyHash(key), EntryKind.Served);
  for (let i = 0; i < filterBlocks; i++) {
    const base = i * FILTER_BLOCK;
    filterChecksum(i, filter.subarray(base, base + FILTER_BITS / 8)).copy(filter, base + FILTER_BITS / 8);
  }
  // The header's length depends on fileBytes, which depends on the header's length: settle it in two rounds.
  let fileBytes = 0;
  let headerJson = Buffer.alloc(0);
  for (let round = 0; round < 3; round++) {
    const h: SegmentIndexHeader = {
      format: FORMAT,
      version: VERSION,
      ...header,
      entries: inBlocks.length,
      blocks: rows.length,
      fileBytes,
      blockTableSha256: hash('sha256', table),
      filterBlocks,
      keyTimes,
      relationEntries,
      ...(fanOutSection !== undefined ? { fanOut: fanOutSection.header } : {}),
    };
    headerJson = Buffer.from(JSON.stringify(h), 'utf8');
    const total =
      MAGIC.length +
      4 +
      headerJson.length +
      32 +
      table.length +
      (fanOutSection?.bytes.length ?? 0) +
      body.length +
      filter.length;
    if (total === fileBytes) break;
    fileBytes = total;
  }
  const len = Buffer.alloc(4);
  len.writeUInt32BE(headerJson.length, 0);
  const headerSum = Buffer.from(hash('sha256', headerJson, 'binary'), 'latin1');
  const fan = fanOutSection?.bytes ?? Buffer.alloc(0);
  return Buffer.concat([MAGIC, len, headerJson, headerSum, table, fan, body, filter]);
}

/**
 * Served row: offset (4), length (4), seq (8, float), server's position in the list (4), flags (1), 3 unused,
 * prediction id (16). Follow row: offset (4), length (4), seq (8), relation (1), flags (1), 2 unused,
 * prediction id (16), decision's or feedback's id (16). An id slot holds a lowercase UUID as its 16 bytes,
 * or (flag set) the offset (4) and length (4) of the id in the string pool.
 */
const SERVED_ROW = 40;
const FOLLOW_ROW = 52;
const LOWER_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The fan-out section: the servers' list, the served rows and the follow rows in record order, the pool. */
function encodeFanOut(served: ServedRow[], follows: FollowRow[]): { bytes: Buffer; header: FanOutHeader } {
  const servers = new Map<string, number>();
  for (const r of served) if (!servers.has(r.server)) servers.set(r.server, servers.size);
  const serverJson = Buffer.from(JSON.stringify([...servers.keys()]), 'utf8');
  const pool: Buffer[] = [];
  let poolBytes = 0;
  const rows = Buffer.alloc(served.length * SERVED_ROW + follows.length * FOLLOW_ROW);
  const putId = (id: string, at: number): boolean => {
    if (LOWER_UUID.test(id)) {
      rows.write(id.replaceAll('-', ''), at, 'hex');
      return false;
    }
    const b = Buffer.from(id, 'utf8');
    rows.writeUInt32BE(poolBytes, at);
    rows.writeUInt32BE(b.length, at + 4);
    pool.push(b);
    poolBytes += b.length;
    return true;
  };
  let at = 0;
  for (const r of served) {
    rows.writeUInt32BE(r.offset, at);
    rows.writeUInt32BE(r.length, at + 4);
    rows.writeDoubleBE(r.seq, at + 8);
    rows.writeUInt32BE(servers.get(r.server)!, at + 16);
    rows[at + 20] = putId(r.prediction, at + 24) ? 1 : 0;
    at += SERVED_ROW;
  }
  for (const r of follows) {
    rows.writeUInt32BE(r.offset, at);
    rows.writeUInt32BE(r.length, at + 4);
    rows.writeDoubleBE(r.seq, at + 8);
    rows[at + 16] = RELATION_CODES.get(r.relation) ?? NO_RELATION;
    rows[at + 17] = (putId(r.prediction, at + 20) ? 1 : 0) | (putId(r.id, at + 36) ? 2 : 0);
    at += FOLLOW_ROW;
  }
  const bytes = Buffer.concat([serverJson, rows, ...pool]);
  return {
    bytes,
    header: {
      serverBytes: serverJson.length,
      served: served.length,
      follows: follows.length,
      poolBytes,
      sha256: hash('sha256', bytes),
    },
  };
}

const V2_HEAD = /^\{"v":2,"chain":"[^"\\]*","seq":(0|[1-9]\d*),"prev":"[0-9a-f]{64}","hash":"([0-9a-f]{64})"/;

/**
 * The leaves (record hashes, in seq order from 0 up to the first gap) and the newest checkpoint note the
 * Merkle tiles writer took from a chain's segments before it read lines as bytes (its loop, verbatim).
 */
export function referenceTileLeaves(
  dir: string,
  segments: readonly string[],
): { leaves: Buffer[]; checkpoint: { size: number; note: string } | undefined } {
  const files = new EvidenceDir(dir);
  const leaves: Buffer[] = [];
  let checkpoint: { size: number; note: string } | undefined;
  for (const path of segments) {
    for (const l of segmentLines(files, path)) {
      const size = leaves.length;
      let seq: number;
      let hash: string;
      const m = V2_HEAD.exec(l.text);
      if (m !== null) {
        seq = Number(m[1]);
        hash = m[2];
      } else {
        try {
          const r = parseRecordLine(l.text);
          seq = r.seq;
          hash = r.hash;
        } catch {
          continue;
        }
      }
      if (seq < size) continue;
      if (seq > size) return { leaves, checkpoint };
      if (l.text.includes(`"event.name":"${EVENT_MLTRAIL_CHECKPOINT}"`)) {
        try {
          const body = parseRecordLine(l.text).body;
          const note = (JSON.parse(body) as Record<string, unknown>)[ATTR_MLTRAIL_CHECKPOINT_NOTE];
          if (typeof note === 'string') checkpoint = { size: seq, note };
        } catch {
          // Not a checkpoint we can use; verify reports it.
        }
      }
      leaves.push(Buffer.from(hash, 'hex'));
    }
  }
  return { leaves, checkpoint };
}
