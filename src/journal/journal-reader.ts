import { closeSync, existsSync, ftruncateSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { segmentName } from './journal-writer.js';

/** One line read from a journal segment. */
export interface JournalLine {
  text: string;
  file: string;
  /** 1-based line number within the file. */
  line: number;
  /** Byte offset of the line's first byte. */
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

/** The segment files of every chain in a journal directory, in order. */
export function listSegments(dir: string): { chain: string; files: string[] }[] {
  const root = join(dir, 'chains');
  if (!existsSync(root)) return [];
  const out: { chain: string; files: string[] }[] = [];
  for (const chain of readdirSync(root).sort()) {
    const cdir = join(root, chain);
    if (!statSync(cdir).isDirectory()) continue;
    const files = readdirSync(cdir)
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
 * reported through `onTornTail`, precisely, and cut only by {@link repairTornTails}.
 */
export class JournalReader {
  readonly dir: string;
  readonly torn: TornTail[] = [];

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Every complete line of every segment. */
  *lines(): Generator<JournalLine> {
    for (const { files } of listSegments(this.dir)) {
      for (const file of files) yield* this.#fileLines(file);
    }
  }

  *#fileLines(file: string): Generator<JournalLine> {
    const buf = readFileSync(file);
    let start = 0;
    let line = 0;
    while (start < buf.length) {
      const nl = buf.indexOf(10, start);
      line++;
      if (nl < 0) {
        this.torn.push({
          file,
          line,
          offset: start,
          bytes: buf.length - start,
          message: `${file} is truncated at byte ${start} (line ${line}: ${buf.length - start} bytes without a newline); run "mltrail verify --repair-tail" to cut it`,
        });
        return;
      }
      yield { text: buf.toString('utf8', start, nl), file, line, offset: start };
      start = nl + 1;
    }
  }
}

/** Cuts every torn last line found in a journal directory. Returns what was cut. */
export function repairTornTails(dir: string): TornTail[] {
  const reader = new JournalReader(dir);
  for (const _ of reader.lines()) {
    // reading finds the torn tails
  }
  for (const t of reader.torn) {
    const fd = openSync(t.file, 'r+');
    try {
      ftruncateSync(fd, t.offset);
    } finally {
      closeSync(fd);
    }
  }
  return reader.torn;
}

void segmentName;
