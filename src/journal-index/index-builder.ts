import { hash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { type LineLineage, lineLineage } from '../lineage/record-lineage.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { listSegments } from '../sources/journal-reader.js';
import { type TilesBuild, writeTiles } from './merkle-tiles.js';
import {
  EntryKind,
  encodeSegmentIndex,
  type FollowRow,
  indexStaleness,
  type KeyedEntry,
  type SegmentIndexHeader,
  type ServedRow,
} from './segment-index.js';
import { segmentLines } from './segment-lines.js';

/** The relation whose Out entries are kept apart ({@link EntryKind.Served}). */
const FANS_OUT = 'served';
/** The relations of what follows a prediction (its decisions and feedback), kept in the fan-out tables. */
const FOLLOWS = new Set(['decided', 'ground truth']);

/** Where the index of a segment lives: `<dir>/index/<chain>/<segment>.idx`, beside (never inside) the chain. */
export function indexFile(dir: string, chain: string, segment: string): string {
  return join(dir, 'index', chain, `${basename(segment).replace(/\.ndjson$/, '')}.idx`);
}

/**
 * The index entries of one journal line: the record's `<chain>:<seq>`, the lineage nodes it defines, the
 * ends of its edges that it does not define itself (an edge is found from either end: from a node's own
 * record, or from the entry at the other end), and the digests it names. Undefined for a line that is not a
 * record (the reader skips it too; `mltrail verify` reports it).
 */
export function lineEntries(
  text: string,
  offset: number,
  length: number,
): { entries: KeyedEntry[] } | undefined {
  const line = lineLineage(text);
  if (line === undefined) return undefined;
  return { entries: entriesOf(line, offset, length) };
}

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

/** What building one segment's index found. */
export interface SegmentIndexBuild {
  file: string;
  header: SegmentIndexHeader;
}

/**
 * Indexes the complete lines of one segment as they are now (a segment still being written gets an index
 * of its prefix; the reader scans the rest) and writes `<dir>/index/<chain>/<segment>.idx` atomically
 * (0600, via a temporary file and rename). Reads the segment, never writes it.
 */
export function buildSegmentIndex(dir: string, segmentPath: string): SegmentIndexBuild {
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
  const file = indexFile(dir, chain, segmentPath);
  writeAtomically(file, data);
  const header = JSON.parse(data.toString('utf8', 12, 12 + data.readUInt32BE(8))) as SegmentIndexHeader;
  return { file, header };
}

/** What {@link indexJournal} did. */
export interface JournalIndexBuild {
  built: SegmentIndexBuild[];
  /** Segments whose index was already current. */
  current: number;
  /** Each chain's Merkle tiles brought up to date. */
  tiles: TilesBuild[];
}

/**
 * What the journal writer does with a segment it seals (off the request path): indexes it and brings its
 * chain's Merkle tiles up to date (they start where the previous build stopped).
 */
export function buildSealed(dir: string, segmentPath: string): SegmentIndexBuild {
  const build = buildSegmentIndex(dir, segmentPath);
  const chain = basename(dirname(segmentPath));
  const files = listSegments(dir).find((c) => c.chain === chain)?.files ?? [];
  writeTiles(dir, chain, files);
  return build;
}

/**
 * Builds the index of every segment of a journal that has none, or whose index is stale or damaged (and,
 * with `force`, of every segment). Derived data only: the journal itself is read, never written.
 */
export function indexJournal(dir: string, opts: { force?: boolean } = {}): JournalIndexBuild {
  const out: JournalIndexBuild = { built: [], current: 0, tiles: [] };
  const journal = new EvidenceDir(dir);
  for (const { chain, files } of listSegments(dir)) {
    out.tiles.push(writeTiles(dir, chain, files, { force: opts.force }));
    for (const segment of files) {
      const idx = indexFile(dir, chain, segment);
      if (!opts.force && existsSync(idx) && indexStaleness(journal, idx, segment, chain) === undefined) {
        out.current++;
        continue;
      }
      if (journal.stat(segment).size === 0) continue;
      out.built.push(buildSegmentIndex(dir, segment));
    }
  }
  return out;
}

function writeAtomically(file: string, data: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    for (let off = 0; off < data.length; ) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}
