import { closeSync, fstatSync, readSync } from 'node:fs';
import { type AuditRecord, parseRecordLine } from '../integrity/record.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { listSegments } from '../sources/journal-reader.js';
import { indexFile, lineEntries } from './index-builder.js';
import {
  checkCovers,
  type EntryKind,
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
  fd: number;
  file: SegmentIndexFile | undefined;
  scanned: ScannedEntries | undefined;
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

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** The journal's files, opened under the readers' rules (made when the first segment is opened). */
  get #files(): EvidenceDir {
    this.#evidence ??= new EvidenceDir(this.dir);
    return this.#evidence;
  }

  /** Opens every segment's index (checking each) and scans what no current index covers. */
  static open(dir: string, opts: { useIndex?: boolean } = {}): JournalIndex {
    const ix = new JournalIndex(dir);
    for (const { chain, files } of listSegments(dir))
      for (const path of files) ix.#segments.push(ix.#openSegment(chain, path, opts.useIndex !== false));
    return ix;
  }

  /** Number of segments. */
  get segmentCount(): number {
    return this.#segments.length;
  }

  #openSegment(chain: string, path: string, useIndex: boolean): SegmentView {
    const fd = this.#files.open(path);
    const view: SegmentView = { path, chain, fd, file: undefined, scanned: undefined };
    let from = 0;
    if (useIndex) {
      const idx = indexFile(this.dir, chain, path);
      try {
        const file = SegmentIndexFile.open(this.#files, idx);
        try {
          checkCovers(file, fd, chain, path);
          view.file = file;
          from = file.header.bytes;
          this.indexedSegments++;
        } catch (err) {
          file.close();
          throw err;
        }
      } catch (err) {
        const missing = err instanceof StaleIndexError && /ENOENT/.test(err.message);
        this.notes.push({
          segment: path,
          reason: missing ? 'no index' : (err as Error).message,
        });
      }
    }
    this.#scan(view, from);
    return view;
  }

  /** Scans the segment from byte `from` into memory (what no current index covers). */
  #scan(view: SegmentView, from: number): void {
    const size = fstatSync(view.fd).size;
    view.scanned = undefined;
    if (from >= size) return;
    const scanned = new ScannedEntries();
    for (const l of segmentLines(this.#files, view.path, from, size)) {
      scanned.lines++;
      const found = lineEntries(l.text, l.offset, l.length);
      if (found !== undefined) for (const e of found.entries) scanned.add(e.key, e);
    }
    this.scannedLines += scanned.lines;
    view.scanned = scanned;
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
      v.file.close();
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
        (f) => [...f.entries(key, kind)],
        () => [],
      );
      for (const e of fromFile) yield { ...e, segment: s };
      if (v.scanned !== undefined) for (const e of v.scanned.lookup(key, kind)) yield { ...e, segment: s };
    }
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
        (f) => [...f.entriesWithRelation(relations)],
        () => [],
      );
      for (const e of fromFile) yield { ...e, segment: s };
      if (v.scanned !== undefined)
        for (const e of v.scanned.withRelation(relations)) yield { ...e, segment: s };
    }
  }

  /** The line an entry points to. */
  readLine(hit: IndexHit): string {
    const v = this.#segments[hit.segment];
    const buf = Buffer.allocUnsafe(hit.length);
    const n = readSync(v.fd, buf, 0, hit.length, hit.offset);
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
      closeSync(v.fd);
    }
    this.#segments.length = 0;
  }
}
