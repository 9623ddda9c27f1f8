import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { type AuditRecord, parseRecordLine } from '../integrity/record.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { listSegments } from '../sources/journal-reader.js';
import { indexFile, lineEntries } from './index-builder.js';
import {
  checkCovers,
  type EntryKind,
  type FanOutTable,
  type IndexEntry,
  SegmentIndexFile,
  StaleIndexError,
} from './segment-index.js';
import { segmentLines } from './segment-lines.js';

/** An index entry with the segment it points into. */
export interface IndexHit extends IndexEntry {
  /** The segment's position in journal order (chains by id, segments by number). */
  segment: number;
}

/** Why a segment was scanned instead of looked up. */
export interface IndexNote {
  segment: string;
  reason: string;
}

/**
 * More of the journal than {@link JournalIndex.open}'s `maxScanBytes` has no current index: scanning it into
 * memory could exhaust the heap on a large journal, so the lookup refuses instead and says what to do.
 */
export class IndexCoverageError extends Error {
  /** Bytes of segments (or segment tails) no current index covers, and how many segments. */
  readonly unindexedBytes: number;
  readonly segments: number;
  constructor(dir: string, unindexedBytes: number, segments: number, limit: number, first: IndexNote) {
    super(
      `the journal index of ${dir} does not cover ${segments} segment(s) (${mib(unindexedBytes)} MiB, more than the ${mib(limit)} MiB a lookup scans into memory; first: ${first.segment}: ${first.reason}); run "mltrail index --journal ${dir}" to bring the index up to date, or pass --scan to read every record instead`,
    );
    this.name = 'IndexCoverageError';
    this.unindexedBytes = unindexedBytes;
    this.segments = segments;
  }
}

const INDEX_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

const mib = (n: number) => (n / 2 ** 20).toFixed(n < 2 ** 20 ? 2 : 0);

/**
 * Default for how much unindexed journal a lookup scans into memory (the open segments' tails, an index or
 * two that is missing or damaged): a few segments' worth. Beyond it, {@link IndexCoverageError}.
 */
const MAX_SCAN_BYTES = 256 * 2 ** 20;

/** Entries of the lines an index does not cover, kept in memory for this process. */
class ScannedEntries {
  readonly #byKey = new Map<string, IndexEntry[]>();
  lines = 0;

  add(key: string, e: IndexEntry): void {
    const list = this.#byKey.get(key);
    if (list === undefined) this.#byKey.set(key, [e]);
    else list.push(e);
  }

  lookup(key: string, kind: EntryKind): IndexEntry[] {
    return (this.#byKey.get(key) ?? []).filter((e) => e.kind === kind);
  }

  *withRelation(relations: readonly string[]): Generator<IndexEntry & { key: string }> {
    for (const [key, list] of this.#byKey)
      for (const e of list)
        if (e.relation !== undefined && relations.includes(e.relation)) yield { ...e, key };
  }
}

/** One segment as the index sees it: an index file for a prefix (if it is current), scanned entries for the rest. */
interface SegmentView {
  path: string;
  chain: string;
  /** Opened on first read. */
  fd: number | undefined;
  file: SegmentIndexFile | undefined;
  scanned: ScannedEntries | undefined;
  /** Where the unindexed part starts, and the segment's size when opened. */
  from: number;
  size: number;
  /** Whether the index has been checked against the segment (see #check). */
  checked: boolean;
  /** The index was set aside and the segment is to be scanned when a lookup first needs it. */
  scanPending?: boolean;
}

/**
 * Lookups by id over a whole journal directory. Segments with a current index file are looked up in it;
 * any segment without one — never indexed, the open segment's unindexed tail, or an index that is stale,
 * truncated or damaged — is scanned into memory instead, and the reason is kept in {@link notes}. Strictly
 * read-only: it never writes an index (`mltrail index` and the journal writer do).
 *
 * Entries only say where to look: callers read the record with {@link readRecord} and take what it says.
 */
export class JournalIndex {
  readonly dir: string;
  readonly notes: IndexNote[] = [];
  readonly #segments: SegmentView[] = [];
  /** The journal's files, opened under the readers' rules. */
  #evidence: EvidenceDir | undefined;
  /** Lines read by scanning (what the index saved is everything else). */
  scannedLines = 0;
  /** Segments answered from an index file. */
  indexedSegments = 0;
  /** How much unindexed journal this index scans into memory at most. */
  readonly #maxScanBytes: number;
  #scannedBytes = 0;

  private constructor(dir: string, maxScanBytes: number) {
    this.dir = dir;
    this.#maxScanBytes = maxScanBytes;
  }

  /** The journal's files, opened under the readers' rules (made when the first segment is opened). */
  get #files(): EvidenceDir {
    this.#evidence ??= new EvidenceDir(this.dir);
    return this.#evidence;
  }

  /**
   * Opens every segment's index (checking each) and scans what no current index covers. Throws
   * {@link IndexCoverageError} when that is more than `maxScanBytes` (default 256 MiB): a lookup never
   * silently turns into holding the whole journal in memory.
   */
  static open(dir: string, opts: { useIndex?: boolean; maxScanBytes?: number } = {}): JournalIndex {
    const ix = new JournalIndex(dir, opts.maxScanBytes ?? MAX_SCAN_BYTES);
    try {
      for (const { chain, files } of listSegments(dir)) {
        // A chain directory that leads out of the journal is refused here, once, by its first segment (the
        // segments are opened only when read).
        if (files.length === 0) continue;
        ix.#files.resolve(files[0]);
        const opener = ix.#indexOpener(chain);
        for (const path of files)
          ix.#segments.push(ix.#openSegment(chain, path, opts.useIndex !== false, opener));
      }
      let unindexed = 0;
      let segments = 0;
      for (const v of ix.#segments)
        if (v.size > v.from) {
          unindexed += v.size - v.from;
          segments++;
        }
      if (unindexed > ix.#maxScanBytes) {
        const first = ix.notes.find((n) => n.reason !== 'no index') ??
          ix.notes[0] ?? {
            segment: ix.#segments.find((v) => v.size > v.from)!.path,
            reason: 'grown past its index',
          };
        throw new IndexCoverageError(dir, unindexed, segments, ix.#maxScanBytes, first);
      }
      for (const v of ix.#segments) ix.#scan(v, v.from);
    } catch (err) {
      ix.close();
      throw err;
    }
    return ix;
  }

  /** Number of segments. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  /**
   * How the index files of a chain are opened: its index directory is checked once to lie inside the
   * journal, then each file is opened without following a link (O_NOFOLLOW) and must be a regular file
   * (checked on the descriptor); a link, or anything else, goes through the readers' rules, which follow a
   * link that stays inside and refuse the rest. Opening a hundred segment indexes then costs two system
   * calls each.
   */
  #indexOpener(chain: string): Pick<EvidenceDir, 'open'> {
    const indexDir = join(this.dir, 'index', chain);
    try {
      const real = this.#files.resolve(indexDir);
      if (real !== join(this.#files.real, 'index', chain)) return this.#files;
    } catch {
      return this.#files;
    }
    return {
      open: (path: string) => {
        let fd: number;
        try {
          fd = openSync(path, INDEX_FLAGS);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ELOOP') return this.#files.open(path);
          throw err;
        }
        if (fstatSync(fd).isFile()) return fd;
        closeSync(fd);
        return this.#files.open(path);
      },
    };
  }

  #openSegment(
    chain: string,
    path: string,
    useIndex: boolean,
    opener: Pick<EvidenceDir, 'open'>,
  ): SegmentView {
    // The segment's size from its directory entry; the segment itself is opened when it is first read. A
    // link or anything but a regular file goes through the readers' rules (which refuse what they must).
    const st = lstatSync(path);
    const size = st.isFile() ? st.size : this.#files.stat(path).size;
    const view: SegmentView = {
      path,
      chain,
      fd: undefined,
      file: undefined,
      scanned: undefined,
      from: 0,
      size,
      checked: false,
    };
    if (!useIndex) return view;
    const idx = indexFile(this.dir, chain, path);
    try {
      view.file = SegmentIndexFile.open(opener, idx);
      view.from = view.file.header.bytes;
      this.indexedSegments++;
    } catch (err) {
      const missing = err instanceof StaleIndexError && /ENOENT/.test(err.message);
      this.notes.push({ segment: path, reason: missing ? 'no index' : (err as Error).message });
      return view;
    }
    // A sealed segment as long as its index says is checked when a lookup first reads it (one that its key
    // times or filter rule out is not read at all); one that grew or shrank is checked now.
    if (size !== view.from) this.#check(view);
    return view;
  }

  /** The segment's descriptor, opened under the readers' rules on first use. */
  #fd(v: SegmentView): number {
    v.fd ??= this.#files.open(v.path);
    return v.fd;
  }

  /**
   * Checks once that a segment's index covers the segment as it is (its indexed prefix ends with the line
   * indexed); if not, the index is set aside with a note and the segment is scanned instead.
   */
  #check(v: SegmentView): void {
    if (v.checked || v.file === undefined) return;
    v.checked = true;
    try {
      checkCovers(v.file, this.#fd(v), v.chain, v.path);
    } catch (err) {
      this.notes.push({ segment: v.path, reason: (err as Error).message });
      v.file.close();
      v.file = undefined;
      v.from = 0;
      this.indexedSegments--;
    }
  }

  /** Scans the segment from byte `from` into memory (what no current index covers). */
  #scan(view: SegmentView, from: number): void {
    view.scanPending = false;
    const size = view.size;
    view.scanned = undefined;
    view.from = from;
    view.size = size;
    if (from >= size) return;
    this.#scannedBytes += size - from;
    if (this.#scannedBytes > this.#maxScanBytes)
      throw new IndexCoverageError(this.dir, this.#scannedBytes, 1, this.#maxScanBytes, {
        segment: view.path,
        reason: this.notes.at(-1)?.reason ?? 'not indexed',
      });
    const scanned = new ScannedEntries();
    for (const l of segmentLines(this.#files, view.path, from, size)) {
      scanned.lines++;
      const found = lineEntries(l.text, l.offset, l.length);
      if (found !== undefined) for (const e of found.entries) scanned.add(e.key, e);
    }
    this.scannedLines += scanned.lines;
    view.scanned = scanned;
  }

  /** The entries scanned from a segment's records, scanning it first if its index was set aside for later. */
  #scanned(v: SegmentView): ScannedEntries | undefined {
    if (v.scanPending) this.#scan(v, 0);
    return v.scanned;
  }

  /**
   * Reads from a segment's index file; if the file turns out damaged (a block whose checksum fails), the
   * segment is scanned whole from now on and the read answered from that.
   */
  #fromFile<T>(v: SegmentView, read: (file: SegmentIndexFile) => T[], fallback: () => T[]): T[] {
    if (v.file === undefined) return [];
    try {
      return read(v.file);
    } catch (err) {
      if (!(err instanceof StaleIndexError)) throw err;
      this.notes.push({ segment: v.path, reason: err.message });
      v.file?.close();
      v.file = undefined;
      this.indexedSegments--;
      this.#scan(v, 0);
      return fallback();
    }
  }

  /** Every entry for `key` of the given kinds, in journal order per kind. */
  lookup(key: string, kinds: readonly EntryKind[]): IndexHit[] {
    const out: IndexHit[] = [];
    for (const kind of kinds) for (const h of this.entries(key, kind)) out.push(h);
    return out;
  }

  /** The entries for `key` of one kind across the journal, in journal order, streamed. */
  *entries(key: string, kind: EntryKind): Generator<IndexHit> {
    for (let s = 0; s < this.#segments.length; s++) {
      const v = this.#segments[s];
      // One segment's entries are read whole before any is handed out, so a damaged block found halfway
      // never leaves half an answer from the index and the rest from the scan.
      const fromFile = this.#fromFile(
        v,
        (f) => (f.mayHold(key, kind) ? this.#checkedEntries(v, key, kind) : []),
        () => [],
      );
      for (const e of fromFile) yield { ...e, segment: s };
      const scanned = this.#scanned(v);
      if (scanned !== undefined) for (const e of scanned.lookup(key, kind)) yield { ...e, segment: s };
    }
  }

  /** A segment's entries for (key, kind) from its index once the index is checked, else from a scan. */
  #checkedEntries(v: SegmentView, key: string, kind: EntryKind): IndexEntry[] {
    this.#check(v);
    if (v.file === undefined) {
      this.#scan(v, 0);
      return [];
    }
    return [...v.file.entries(key, kind)];
  }

  /** Every entry with one of the given relations, segment by segment (for joins over the whole journal). */
  *withRelation(
    relations: readonly string[],
  ): Generator<IndexHit & { hi?: number; lo?: number; key?: string }> {
    for (let s = 0; s < this.#segments.length; s++) {
      const v = this.#segments[s];
      // As in entries(): a segment's entries are read whole first, so a damaged block found halfway falls
      // back to scanning that segment instead of failing the query or mixing two answers.
      const fromFile = this.#fromFile(
        v,
        (f) => {
          if (!f.mayHoldRelation(relations)) return [];
          this.#check(v);
          if (v.file === undefined) {
            this.#scan(v, 0);
            return [];
          }
          return [...v.file.entriesWithRelation(relations)];
        },
        () => [],
      );
      for (const e of fromFile) yield { ...e, segment: s };
      const scanned = this.#scanned(v);
      if (scanned !== undefined) for (const e of scanned.withRelation(relations)) yield { ...e, segment: s };
    }
  }

  /**
   * Segment `s`'s fan-out tables with the part of the segment they cover (`[0, from)`), once its index is
   * checked to cover the segment; what is past `from` (up to `size`) has to be read. No tables (never
   * indexed, damaged, stale, or a segment with records of another chain): `from` is 0, the whole segment is
   * to be read. Damaged tables (a checksum that fails, or rows that cannot be what the builder wrote: see
   * {@link FanOutTable}) are noted, as a damaged block is, and the segment is scanned for lookups when one
   * first needs it.
   */
  fanOut(s: number): { table: FanOutTable | undefined; from: number; size: number } {
    const v = this.#segments[s];
    const none = () => ({ table: undefined, from: 0, size: v.size });
    if (v.file === undefined) return none();
    this.#check(v);
    if (v.file === undefined) {
      v.scanPending = true;
      return none();
    }
    try {
      const table = v.file.fanOut();
      return table === undefined ? none() : { table, from: v.file.header.bytes, size: v.size };
    } catch (err) {
      if (!(err instanceof StaleIndexError)) throw err;
      this.notes.push({ segment: v.path, reason: err.message });
      v.file.close();
      v.file = undefined;
      this.indexedSegments--;
      // Scanned into memory only if a lookup needs it: the caller reads the segment's records now, and
      // an impact answer makes no lookup after this (a scan would read the segment twice, and damaged
      // tables in segments larger together than the scan's bound would stop the answer half-written).
      v.scanPending = true;
      return none();
    }
  }

  /** The chain of segment `s` (the directory it lies in). */
  chainOf(s: number): string {
    return this.#segments[s].chain;
  }

  /** The segment files in journal order (positions match {@link IndexHit.segment}). */
  get segmentPaths(): string[] {
    return this.#segments.map((v) => v.path);
  }

  /** The journal's files, opened under the readers' rules (for a sequential pass over segments). */
  get files(): EvidenceDir {
    return this.#files;
  }

  /**
   * False when segment `s` certainly holds no entry for (`key`, `kind`), neither in its index nor in its
   * scanned tail (one filter block read); true when it may.
   */
  mayHold(s: number, key: string, kind: EntryKind): boolean {
    const v = this.#segments[s];
    const scanned = this.#scanned(v);
    if (scanned !== undefined && scanned.lookup(key, kind).length > 0) return true;
    if (v.file === undefined) return false;
    try {
      return v.file.mayHold(key, kind);
    } catch (err) {
      if (err instanceof StaleIndexError) return true;
      throw err;
    }
  }

  /**
   * False when segment `s` certainly holds no edge with one of `relations` (its index counts them), true
   * when it may.
   */
  mayHoldRelation(s: number, relations: readonly string[]): boolean {
    const v = this.#segments[s];
    const scanned = this.#scanned(v);
    if (scanned !== undefined) for (const _ of scanned.withRelation(relations)) return true;
    return v.file?.mayHoldRelation(relations) ?? false;
  }

  /** The line an entry points to. */
  readLine(hit: IndexHit): string {
    const v = this.#segments[hit.segment];
    const buf = Buffer.allocUnsafe(hit.length);
    const n = readSync(this.#fd(v), buf, 0, hit.length, hit.offset);
    return buf.toString('utf8', 0, n);
  }

  /** The record an entry points to, or undefined if that line is not (or no longer) a record. */
  readRecord(hit: IndexHit): AuditRecord | undefined {
    try {
      return parseRecordLine(this.readLine(hit));
    } catch {
      return undefined;
    }
  }

  /** `file:line`-free location of a hit, for ordering: journal order is (segment, offset). */
  static order(a: IndexHit, b: IndexHit): number {
    return a.segment - b.segment || a.offset - b.offset;
  }

  close(): void {
    for (const v of this.#segments) {
      v.file?.close();
      if (v.fd !== undefined) closeSync(v.fd);
    }
    this.#segments.length = 0;
  }
}
