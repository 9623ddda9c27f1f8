import { closeSync, readSync } from 'node:fs';
import type { EvidenceDir } from '../sources/evidence-files.js';

/** One complete line of a segment: its text and where its bytes are. */
export interface SegmentLine {
  text: string;
  /** Byte offset of the line's first byte, and its length in bytes (without the newline). */
  offset: number;
  length: number;
}

const CHUNK = 4 * 1024 * 1024;

/**
 * The complete lines of `file` (a segment of the journal `files`, opened under its rules) between byte
 * `from` (a line start) and `to` (default: the end); a last line without its newline (a torn tail, or a
 * line being written) is not yielded.
 */
export function* segmentLines(
  files: EvidenceDir,
  file: string,
  from = 0,
  to = Number.POSITIVE_INFINITY,
): Generator<SegmentLine> {
  const fd = files.open(file);
  try {
    let buf = Buffer.allocUnsafe(CHUNK);
    let len = 0;
    let base = from;
    for (;;) {
      const want = Math.min(buf.length - len, to - base - len);
      const n = want > 0 ? readSync(fd, buf, len, want, base + len) : 0;
      len += n;
      let start = 0;
      const view = buf.subarray(0, len);
      for (let nl = view.indexOf(10, 0); nl >= 0; nl = view.indexOf(10, start)) {
        yield { text: buf.toString('utf8', start, nl), offset: base + start, length: nl - start };
        start = nl + 1;
      }
      if (n === 0) return;
      if (start === 0 && len === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, len);
        buf = bigger;
      } else {
        buf.copy(buf, 0, start, len);
        len -= start;
        base += start;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Calls `visit` with the bytes of each complete line of `file` (as {@link segmentLines} yields them, but
 * undecoded): the line is `buf[start, end)` (without its newline), its first byte at `offset` in the file.
 * `buf` is reused: its bytes are valid during the call only. `visit` returning false ends the pass. Returns
 * a copy of the last complete line's bytes (undefined when there is none), for a caller that needs them
 * after the pass.
 */
export function forEachSegmentLine(
  files: EvidenceDir,
  file: string,
  visit: (buf: Buffer, start: number, end: number, offset: number) => unknown,
): Buffer | undefined {
  const fd = files.open(file);
  try {
    let buf = Buffer.allocUnsafe(CHUNK);
    let len = 0;
    let base = 0;
    let last: Buffer | undefined;
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, base + len);
      len += n;
      let start = 0;
      let lastStart = -1;
      const view = buf.subarray(0, len);
      for (let nl = view.indexOf(10, 0); nl >= 0; nl = view.indexOf(10, start)) {
        const more = visit(buf, start, nl, base + start);
        lastStart = start;
        start = nl + 1;
        if (more === false) return Buffer.from(buf.subarray(lastStart, start - 1));
      }
      // The buffer is about to be refilled: keep the last complete line read so far.
      if (lastStart >= 0) last = Buffer.from(buf.subarray(lastStart, start - 1));
      if (n === 0) return last;
      if (start === 0 && len === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, len);
        buf = bigger;
      } else {
        buf.copy(buf, 0, start, len);
        len -= start;
        base += start;
      }
    }
  } finally {
    closeSync(fd);
  }
}

/** The bytes of one line at a known place. */
export function readLineAt(fd: number, offset: number, length: number, scratch?: Buffer): string {
  const buf = scratch !== undefined && scratch.length >= length ? scratch : Buffer.allocUnsafe(length);
  const n = readSync(fd, buf, 0, length, offset);
  return buf.toString('utf8', 0, n);
}
