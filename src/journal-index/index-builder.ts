import { hash } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { AuditRecord } from '../integrity/record.js';
import { LINEAGE_KEYS, type LineLineage, lineLineage, recordLineage } from '../lineage/record-lineage.js';
import {
  ATTR_ML_DECISION_ID,
  ATTR_ML_DEPLOYMENT_ID,
  ATTR_ML_FEEDBACK_ID,
  ATTR_ML_PREDICTION_ID,
} from '../semconv/attributes.js';
import { EVENT_ML_DECISION, EVENT_ML_FEEDBACK, EVENT_ML_PREDICTION } from '../semconv/events.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { listSegments } from '../sources/journal-reader.js';
import { FieldValue, LineFields, sameBytes } from './line-fields.js';
import { type TilesBuild, writeTiles } from './merkle-tiles.js';
import {
  EntryKind,
  encodeSegmentIndex,
  FanOutRows,
  IndexEntryTable,
  indexStaleness,
  type KeyedEntry,
  type KnownKey,
  knownKey,
  type SegmentIndexHeader,
} from './segment-index.js';
import { forEachSegmentLine } from './segment-lines.js';

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
  const entries: KeyedEntry[] = [];
  forEachEntry(line, (key, kind, relation, other) => {
    entries.push({ key, kind, relation, other, offset, length });
  });
  return { entries };
}

/** Calls `add` with each index entry of a record (see {@link lineEntries}), in the order they are stored. */
function forEachEntry(
  line: LineLineage,
  add: (key: string, kind: EntryKind, relation: string | undefined, other: string) => void,
): void {
  add(`${line.chain}:${line.seq}`, EntryKind.Record, undefined, '');
  const { nodes, edges, aliases } = line.lineage;
  // A record defines one or two nodes: a list is cheaper than a set.
  const defined: string[] = [];
  for (const n of nodes) {
    if (defined.includes(n.id)) continue;
    defined.push(n.id);
    add(n.id, EntryKind.Node, undefined, '');
  }
  for (const e of edges) {
    if (!defined.includes(e.to)) add(e.to, EntryKind.In, e.relation, e.from);
    if (!defined.includes(e.from))
      add(e.from, e.relation === FANS_OUT ? EntryKind.Served : EntryKind.Out, e.relation, e.to);
  }
  for (const [digest, id] of aliases) add(digest, EntryKind.Alias, undefined, id);
}

/**
 * The fan-out rows of one record: the prediction it defines with the deployment or model that served it,
 * and the decision or feedback it defines with the prediction it follows (an edge whose target the record
 * defines, as the streamed answer takes them).
 */
function fanOutRowsOf(line: LineLineage, offset: number, length: number, rows: FanOutRows): void {
  const { nodes, edges } = line.lineage;
  for (const e of edges) {
    if (e.relation !== FANS_OUT && !FOLLOWS.has(e.relation)) continue;
    if (!nodes.some((n) => n.id === e.to)) continue;
    if (e.relation === FANS_OUT) rows.served(e.from, e.to, offset, length, line.seq);
    else rows.follows(e.from, e.relation, e.to, offset, length, line.seq);
  }
}

/** Reads a format 2 line's head and the body keys that decide its lineage from the line's bytes. */
const FIELDS = new LineFields(LINEAGE_KEYS);

/** Event names seen, by their bytes: most records name one of a few events (no string made per record). */
const EVENT_NAMES: { bytes: Buffer; name: string }[] = [];

function eventName(f: LineFields, b: Buffer): string {
  for (const e of EVENT_NAMES) if (f.stringEquals(b, 0, e.bytes)) return e.name;
  const name = f.string(b, 0);
  if (EVENT_NAMES.length < 64) EVENT_NAMES.push({ bytes: Buffer.from(name, 'latin1'), name });
  return name;
}

/** Keys' places in {@link FIELDS}. */
const PREDICTION_ID = FIELDS.keys.indexOf(ATTR_ML_PREDICTION_ID);
const DEPLOYMENT_ID = FIELDS.keys.indexOf(ATTR_ML_DEPLOYMENT_ID);
const DECISION_ID = FIELDS.keys.indexOf(ATTR_ML_DECISION_ID);
const FEEDBACK_ID = FIELDS.keys.indexOf(ATTR_ML_FEEDBACK_ID);

/** Deployment ids seen (as servers of predictions), by their bytes, with their key's hash and time. */
const SERVERS: { bytes: Buffer; key: KnownKey }[] = [];

function server(f: LineFields, b: Buffer, k: number): KnownKey {
  for (const e of SERVERS) if (f.stringEquals(b, k, e.bytes)) return e.key;
  const key = knownKey(f.string(b, k));
  if (SERVERS.length < 16) SERVERS.push({ bytes: Buffer.from(key.key, 'latin1'), key });
  return key;
}

/**
 * The entries and fan-out rows of the records that make up almost all of a busy journal — a prediction
 * a deployment served, a decision or feedback on a prediction — straight from the line's bytes, when
 * {@link LineFields} read the line and the ids are plain and distinct. What these records contribute is
 * what {@link recordLineage} says (tests compare the two builds byte for byte); false for any other record.
 */
function addCommonRecord(
  f: LineFields,
  b: Buffer,
  offset: number,
  length: number,
  table: IndexEntryTable,
  rows: FanOutRows | undefined,
): boolean {
  const event = eventName(f, b);
  let id: number;
  let from: number;
  let relation: string;
  if (event === EVENT_ML_PREDICTION) {
    id = PREDICTION_ID;
    from = DEPLOYMENT_ID;
    relation = FANS_OUT;
  } else if (event === EVENT_ML_DECISION) {
    id = DECISION_ID;
    from = PREDICTION_ID;
    relation = 'decided';
  } else if (event === EVENT_ML_FEEDBACK) {
    id = FEEDBACK_ID;
    from = PREDICTION_ID;
    relation = 'ground truth';
  } else return false;
  if (f.value[id] !== FieldValue.String || f.value[from] !== FieldValue.String) return false;
  const is = f.start[id];
  const ie = f.end[id];
  const fs = f.start[from];
  const fe = f.end[from];
  if (sameBytes(b, fs, fe, b, is, ie)) return false;
  // <chain>:<seq>, the node the record defines, and the edge's other end (which it does not define).
  table.addAscii(
    b,
    f.chainStart,
    f.chainEnd,
    0x3a,
    f.seqStart,
    f.seqEnd,
    EntryKind.Record,
    undefined,
    0,
    0,
    offset,
    length,
  );
  table.addAscii(b, is, ie, -1, 0, 0, EntryKind.Node, undefined, 0, 0, offset, length);
  if (relation === FANS_OUT) {
    const served = server(f, b, from);
    table.addKnown(served, EntryKind.Served, relation, b, is, ie, offset, length);
    rows?.servedAscii(served.key, b, is, ie, offset, length, f.seq);
  } else {
    table.addAscii(b, fs, fe, -1, 0, 0, EntryKind.Out, relation, is, ie, offset, length);
    rows?.followsAscii(b, fs, fe, relation, is, ie, offset, length, f.seq);
  }
  return true;
}

/**
 * What {@link lineLineage} says of a line {@link LineFields} has read: the lineage of its body's lineage
 * keys (no parse of the whole body). `chain` is the line's chain id.
 */
function lineageOfFields(f: LineFields, b: Buffer, chain: string): LineLineage {
  const body: Record<string, unknown> = {};
  for (let k = 1; k < f.keys.length; k++) {
    const v = f.value[k];
    if (v === FieldValue.Absent) continue;
    body[f.keys[k]] =
      v === FieldValue.String ? f.string(b, k) : v === FieldValue.Strings ? f.strings(b, k) : null;
  }
  // recordLineage reads the record's place and event (its time only labels nodes); the lineage keys it is given.
  const r = { chain, seq: f.seq, event: eventName(f, b), ts: '' } as AuditRecord;
  return { chain, seq: f.seq, lineage: recordLineage(r, body) };
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
  const chainBytes = Buffer.from(chain, 'utf8');
  const table = new IndexEntryTable();
  const rows = new FanOutRows();
  let lines = 0;
  let records = 0;
  let malformed = 0;
  let bytes = 0;
  let ownChain = true;
  const lastLine = forEachSegmentLine(new EvidenceDir(dir), segmentPath, (b, start, end, offset) => {
    const length = end - start;
    lines++;
    bytes = offset + length + 1;
    if (length > 0xffffffff || offset > 0xffffffff)
      throw new Error(`${segmentPath}: segment too large to index`);
    let line: LineLineage | undefined;
    const f = FIELDS;
    if (f.read(b, start, end)) {
      records++;
      const own = sameBytes(b, f.chainStart, f.chainEnd, chainBytes, 0, chainBytes.length);
      // A record of another chain than the segment's own cannot be named `<chain>:<seq>` from the table's
      // rows: such a segment gets no fan-out tables (an impact answer reads its records instead).
      if (!own) ownChain = false;
      if (addCommonRecord(f, b, offset, length, table, ownChain ? rows : undefined)) return;
      line = lineageOfFields(f, b, own ? chain : b.toString('latin1', f.chainStart, f.chainEnd));
    } else {
      line = lineLineage(b.toString('utf8', start, end));
      if (line === undefined) {
        malformed++;
        return;
      }
      records++;
      if (line.chain !== chain) ownChain = false;
    }
    forEachEntry(line, (key, kind, relation, other) => table.add(key, kind, relation, other, offset, length));
    if (ownChain) fanOutRowsOf(line, offset, length, rows);
  });
  const data = encodeSegmentIndex(
    table,
    {
      segment: basename(segmentPath),
      chain,
      bytes,
      // The hash of the line as text (as it was always computed): the same bytes unless they are not UTF-8.
      lastLineSha256: lastLine !== undefined ? hash('sha256', lastLine.toString('utf8')) : '',
      lines,
      records,
      malformed,
    },
    ownChain ? rows : undefined,
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
