import { isUtf8 } from 'node:buffer';
import { closeSync, fstatSync, readSync } from 'node:fs';
import type { EvidenceDir } from '../sources/evidence-files.js';
import { startingSegments } from './merkle-tiles.js';

/**
 * Finding where the records after a held checkpoint start without reading the records before them: a
 * chain's segments hold its records in seq order, so a binary search over the segments' first records and
 * then over byte positions in one segment reaches record `size - 1` in a few small reads, whatever the
 * journal's length. The record found must carry the hash the Merkle tiles give for that position (already
 * checked against the held root); when it does not (the search met something out of order), the caller
 * falls back to reading the segment from its start, as a reader without the search would.
 */

/** Where reading starts: a segment (index into the chain's segments), a byte offset in it and that line's number. */
export interface StartPoint {
  segment: number;
  offset: number;
  line: number;
}

/** How far apart two probes must be before the search stops and lines are read one after the other. */
const WINDOW = 64 * 1024;
const PROBE = 4096;

/**
 * The line of record `size - 1` (whose record hash is `lastHash`), or the start of the segment to read from
 * when it cannot be found by search. Reading from there and skipping seqs below `size` yields exactly the
 * records at and after `size`.
 */
export function startOfNewRecords(
  files: EvidenceDir,
  segments: readonly string[],
  size: number,
  lastHash: string,
): StartPoint {
  if (size === 0 || segments.length === 0) return { segment: 0, offset: 0, line: 1 };
  const target = size - 1;
  const found = searchSegments(files, segments, target);
  if (found !== undefined) {
    const fd = files.open(segments[found]);
    try {
      const at = searchLine(fd, target, lastHash);
      if (at !== undefined) return { segment: found, offset: at, line: countLines(fd, at) + 1 };
    } finally {
      closeSync(fd);
    }
  }
  const fallback = startingSegments(files, segments, size);
  return { segment: segments.length - fallback.length, offset: 0, line: 1 };
}

/** The last segment whose first record's seq is at or below `target`, by binary search; undefined when a first line names no seq. */
function searchSegments(files: EvidenceDir, segments: readonly string[], target: number): number | undefined {
  let lo = 0;
  let hi = segments.length - 1;
  const first = (i: number) => {
    const fd = files.open(segments[i]);
    try {
      return lineAt(fd, 0, fstatSync(fd).size)?.seq;
    } finally {
      closeSync(fd);
    }
  };
  const f0 = first(0);
  if (f0 === undefined || f0 > target) return undefined;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const seq = first(mid);
    if (seq === undefined) return undefined;
    if (seq <= target) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Byte offset of the line holding record `target` with hash `hash`, by binary search over byte positions. */
function searchLine(fd: number, target: number, hash: string): number | undefined {
  const size = fstatSync(fd).size;
  // Invariant: the first line starting at or after `lo` has a seq below `target` (or lo is 0).
  let lo = 0;
  let hi = size;
  while (hi - lo > WINDOW) {
    const mid = Math.floor((lo + hi) / 2);
    const l = lineAt(fd, mid, size);
    if (l === undefined || l.seq >= target) hi = mid;
    else lo = mid;
  }
  // From the first line at or after `lo`, line by line for at most a few windows.
  let pos = lo;
  const limit = Math.min(size, hi + 2 * WINDOW);
  while (pos < limit) {
    const l = lineAt(fd, pos, size);
    if (l === undefined || l.seq > target) return undefined;
    if (l.seq === target) return l.hash === hash ? l.offset : undefined;
    pos = l.end + 1;
  }
  return undefined;
}

const SEQ = /^\{"(?:v":2,"chain":"[^"\\]*","seq|chain":"[^"\\]*","seq)":(0|[1-9]\d*)[,}]/;
const HASH = /"hash":"([0-9a-f]{64})"/;

/**
 * The first line starting at or after `pos` (`pos` itself when it is 0 or follows a newline) that names a
 * seq: its offset, the offset of its newline, its seq and the hash it names. Undefined at the end of the
 * file or when that line names no seq.
 */
function lineAt(
  fd: number,
  pos: number,
  size: number,
): { offset: number; end: number; seq: number; hash: string | undefined } | undefined {
  let start = pos;
  if (pos > 0) {
    const nl = findByte(fd, pos - 1, size, 10);
    if (nl < 0) return undefined;
    start = nl + 1;
  }
  if (start >= size) return undefined;
  const end = findByte(fd, start, size, 10);
  if (end < 0) return undefined;
  const buf = Buffer.allocUnsafe(Math.min(end - start, 1024));
  const n = readSync(fd, buf, 0, buf.length, start);
  const head = buf.toString('utf8', 0, n);
  const m = SEQ.exec(head);
  if (m === null) return undefined;
  return { offset: start, end, seq: Number(m[1]), hash: HASH.exec(head)?.[1] };
}

/** Offset of the first `byte` at or after `pos`, or -1. */
function findByte(fd: number, pos: number, size: number, byte: number): number {
  const buf = Buffer.allocUnsafe(PROBE);
  for (let at = pos; at < size; at += PROBE) {
    const n = readSync(fd, buf, 0, PROBE, at);
    if (n <= 0) return -1;
    const i = buf.subarray(0, n).indexOf(byte);
    if (i >= 0) return at + i;
  }
  return -1;
}

/** Newlines in the file's first `end` bytes: the number of lines before the one starting at `end`. */
function countLines(fd: number, end: number): number {
  const buf = Buffer.allocUnsafe(Math.min(end, 4 * 1024 * 1024));
  let lines = 0;
  for (let at = 0; at < end; ) {
    const n = readSync(fd, buf, 0, Math.min(buf.length, end - at), at);
    if (n <= 0) break;
    const view = buf.subarray(0, n);
    for (let i = view.indexOf(10); i >= 0; i = view.indexOf(10, i + 1)) lines++;
    at += n;
  }
  return lines;
}

/**
 * Calls `fn` with every complete line of `file` from byte `from` (a line start, numbered `firstLine`):
 * the buffer, the line's start and end (its newline), its number and whether the chunk it came in is valid
 * UTF-8. Returns the file's size, the end of its last complete line and the number of the line after it
 * (a torn tail when size > end).
 */
export function forEachLine(
  files: EvidenceDir,
  file: string,
  from: number,
  firstLine: number,
  fn: (buf: Buffer, start: number, end: number, line: number, utf8: boolean) => void,
): { size: number; end: number; line: number } {
  const fd = files.open(file);
  try {
    const size = fstatSync(fd).size;
    let buf = Buffer.allocUnsafe(Math.max(64 * 1024, Math.min(4 * 1024 * 1024, size - from)));
    let base = from;
    let len = 0;
    let line = firstLine;
    for (;;) {
      if (len === buf.length) {
        // A line longer than the buffer: a bigger one.
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, len);
        buf = bigger;
      }
      const n = readSync(fd, buf, len, buf.length - len, base + len);
      if (n === 0) return { size, end: base, line };
      len += n;
      const last = buf.subarray(0, len).lastIndexOf(10);
      if (last >= 0) {
        const utf8 = isUtf8(buf.subarray(0, last));
        for (let s = 0; s <= last; line++) {
          const e = buf.indexOf(10, s);
          fn(buf, s, e, line, utf8);
          s = e + 1;
        }
        buf.copy(buf, 0, last + 1, len);
        len -= last + 1;
        base += last + 1;
      }
    }
  } finally {
    closeSync(fd);
  }
}
