import { closeSync, existsSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EvidenceDir } from './evidence-files.js';

/** Read size of the reader: large, so a segment is a few dozen reads. */
const CHUNK = 8 * 1024 * 1024;

/** One line read from a journal segment. */
export interface JournalLine {
  text: string;
  file: string;
  /** 1-based line number within the file. */
  line: number;
  /** Byte offset of the line's first byte. */
  offset: number;
}

/** Complete lines of a segment as bytes: see {@link JournalReader.chunks}. */
export interface JournalChunk {
  buf: Buffer;
  start: number;
  end: number;
  file: string;
  /** 1-based line number of the first line in the chunk. */
  line: number;
  /** Byte offset in the file of `buf[start]`. */
  offset: number;
}

/** A last line without its newline: what a crash mid-write leaves. */
export interface TornTail {
  file: string;
  line: number;
  offset: number;
  /** Bytes after the last newline. */
  bytes: number;
  message: string;
}

/**
 * The segment files of every chain in a journal directory, in order. A chain entry that cannot be read (a
 * symbolic link loop, a directory without permission) throws, unless `unreadable` is given: then it is
 * reported there and the other chains are listed (what a shipper, which must go on delivering, wants).
 */
export function listSegments(
  dir: string,
  unreadable?: (path: string, err: Error) => void,
): { chain: string; files: string[] }[] {
  const root = join(dir, 'chains');
  if (!existsSync(root)) return [];
  const out: { chain: string; files: string[] }[] = [];
  for (const chain of readdirSync(root).sort()) {
    const cdir = join(root, chain);
    let names: string[];
    try {
      if (!statSync(cdir).isDirectory()) continue;
      names = readdirSync(cdir);
    } catch (err) {
      if (unreadable === undefined) throw err;
      unreadable(cdir, err as Error);
      continue;
    }
    const files = names
      .filter((f) => /^\d{6,}\.ndjson$/.test(f))
      .sort()
      .map((f) => join(cdir, f));
    out.push({ chain, files });
  }
  return out;
}

/**
 * Reads a journal directory: every chain's segments in order, one line at a time, with its location.
 * A torn last line (no trailing newline, as a crash mid-write leaves) is not yielded as a record but
 * recorded in `torn`, precisely (file, line, byte offset), and cut only by `repairTornTails` (journal/).
 * Segments are opened under the rules of {@link EvidenceDir}: regular files inside `dir` only.
 */
export class JournalReader {
  readonly dir: string;
  readonly torn: TornTail[] = [];

  readonly #chunkBytes: number;
  readonly #buffers: Buffer[] | undefined;
  #nextBuffer = 0;
  #files: EvidenceDir | undefined;

  /**
   * `chunkBytes`: the read size (default 8 MiB); lines longer than it are still read whole. `buffers`:
   * read into these in turn instead (each one chunk), so that a chunk stays valid until the reader has
   * moved `buffers.length - 1` chunks further — for a consumer that finishes with each chunk later.
   */
  constructor(dir: string, opts: { chunkBytes?: number; buffers?: Buffer[] } = {}) {
    this.dir = dir;
    this.#chunkBytes = Math.max(1, opts.chunkBytes ?? CHUNK);
    this.#buffers = opts.buffers !== undefined && opts.buffers.length > 0 ? opts.buffers : undefined;
  }

  #freshBuffer(): Buffer {
    if (this.#buffers === undefined) return Buffer.allocUnsafe(this.#chunkBytes);
    return this.#buffers[this.#nextBuffer++ % this.#buffers.length];
  }

  /** Every complete line of every segment. */
  *lines(): Generator<JournalLine> {
    for (const c of this.chunks()) {
      let line = c.line;
      let start = c.start;
      while (start < c.end) {
        const nl = c.buf.indexOf(10, start);
        yield {
          text: c.buf.toString('utf8', start, nl),
          file: c.file,
          line,
          offset: c.offset + start - c.start,
        };
        line++;
        start = nl + 1;
      }
    }
  }

  /**
   * Every segment as runs of complete lines, for readers that work on bytes: each chunk is
   * `buf[start, end)`, whole lines each ending in a newline, the first one being line `line` of `file` at
   * byte `offset`. The buffer is reused: a chunk is valid only until the next one is asked for (unless
   * the reader was given several `buffers`).
   */
  *chunks(): Generator<JournalChunk> {
    for (const { files } of listSegments(this.dir)) {
      for (const file of files) yield* this.#fileChunks(file);
    }
  }

  *#fileChunks(file: string): Generator<JournalChunk> {
    // Streams the segment through one large buffer: memory stays bounded by the chunk (plus the longest
    // line) whatever the segment size, and lines are sliced out without per-line reads.
    this.#files ??= new EvidenceDir(this.dir);
    const fd = this.#files.open(file);
    try {
      let buf = this.#freshBuffer();
      let own = this.#buffers === undefined;
      // A given buffer that yields no chunk goes back to its turn, so consecutive chunks always come from
      // different buffers.
      let yielded = false;
      const release = () => {
        if (!own && !yielded) this.#nextBuffer--;
      };
      let len = 0; // valid bytes in buf
      let base = 0; // file offset of buf[0]
      let line = 0;
      for (;;) {
        const n = readSync(fd, buf, len, buf.length - len, base + len);
        len += n;
        const last = len > 0 ? buf.lastIndexOf(10, len - 1) : -1;
        let start = 0;
        if (last >= 0) {
          yield { buf, start: 0, end: last + 1, file, line: line + 1, offset: base };
          yielded = true;
          line += countNewlines(buf, 0, last + 1);
          start = last + 1;
        }
        if (n === 0) {
          if (start < len)
            this.torn.push({
              file,
              line: line + 1,
              offset: base + start,
              bytes: len - start,
              message: `${file} is truncated at byte ${base + start} (line ${line + 1}: ${len - start} bytes without a newline); run "mltrail verify --repair-tail" to cut it`,
            });
          release();
          return;
        }
        if (start === 0 && len === buf.length) {
          // One line longer than the buffer: grow it.
          const bigger = Buffer.allocUnsafe(buf.length * 2);
          buf.copy(bigger, 0, 0, len);
          release();
          buf = bigger;
          own = true;
        } else if (start > 0) {
          // The rest of a cut line moves to the front of this buffer, or of the next given one (this one
          // has just yielded a chunk).
          const next = own ? buf : this.#freshBuffer();
          buf.copy(next, 0, start, len);
          buf = next;
          yielded = false;
          len -= start;
          base += start;
        }
      }
    } finally {
      closeSync(fd);
    }
  }
}

function countNewlines(buf: Buffer, start: number, end: number): number {
  let n = 0;
  for (let at = buf.indexOf(10, start); at >= 0 && at < end; at = buf.indexOf(10, at + 1)) n++;
  return n;
}
