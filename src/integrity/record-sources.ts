import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { listSegments } from '../journal/index.js';
import type { ChainVerifier } from './chain-verifier.js';
import { feedJournal } from './journal-feed.js';
import { type OtlpLogRecord, parseOtlpLogRecord } from './otlp-record.js';
import { parseRecordLine, RecordFormatError } from './record.js';

/** What was read into a verifier. */
export interface ReadSummary {
  files: number;
  lines: number;
  /** External checkpoint files found (checkpoint-*.txt). */
  checkpointFiles: string[];
}

/** Options of {@link readIntoVerifier}. */
export interface ReadOptions {
  /**
   * Check journal lines on a second thread too. Default: when the journal segments hold at least 16 MiB
   * (the thread costs a few tens of milliseconds to start) and the machine has more than one CPU.
   */
  parallel?: boolean;
  /** Read size of journal segments (default 8 MiB). */
  chunkBytes?: number;
}

/**
 * Feeds every audit record under `path` into the verifier: a journal directory (chains/…/*.ndjson), a
 * directory or file of journal lines, or a collector file-exporter archive (OTLP JSON lines, optionally
 * gzip or zstd compressed). Torn and malformed lines become problems, never exceptions.
 */
export function readIntoVerifier(
  path: string,
  verifier: ChainVerifier,
  onProgress?: (lines: number) => void,
  opts: ReadOptions = {},
): ReadSummary {
  if (!existsSync(path)) throw new Error(`${path}: no such file or directory`);
  const summary: ReadSummary = { files: 0, lines: 0, checkpointFiles: [] };
  const st = statSync(path);
  if (st.isDirectory() && listSegments(path).length > 0) {
    const reader = feedJournal(
      path,
      {
        verifier,
        onFile: () => summary.files++,
        onLine: () => {
          if ((++summary.lines & 0xffff) === 0) onProgress?.(summary.lines);
        },
        strict: (text, file, line) => addLine(text, file, line, verifier),
      },
      opts,
    );
    for (const t of reader.torn) {
      verifier.addProblem({ kind: 'torn-line', location: `${t.file}:${t.line}`, message: t.message });
    }
  }
  const files = st.isDirectory() ? otherFiles(path) : [path];
  for (const file of files) {
    if (/checkpoint-[^/]*\.txt$/.test(file)) {
      summary.checkpointFiles.push(file);
      continue;
    }
    summary.files++;
    const text = decompress(file);
    let lineNo = 0;
    let start = 0;
    while (start < text.length) {
      let nl = text.indexOf('\n', start);
      const torn = nl < 0;
      if (torn) nl = text.length;
      lineNo++;
      const line = text.slice(start, nl);
      start = nl + 1;
      if (line.trim() === '') continue;
      summary.lines++;
      if (torn && !line.trimEnd().endsWith('}')) {
        verifier.addProblem({
          kind: 'torn-line',
          location: `${file}:${lineNo}`,
          message: `${file} ends in a torn line (${line.length} bytes without a newline)`,
        });
        continue;
      }
      if (line.startsWith('{"resourceLogs"')) addOtlpLine(line, file, lineNo, verifier);
      else addLine(line, file, lineNo, verifier);
    }
  }
  return summary;
}

function otherFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (name === 'chains') continue;
    const st = statSync(p);
    if (st.isDirectory()) out.push(...otherFiles(p));
    else if (/\.(ndjson|jsonl)(\.gz|\.zst)?$/.test(name) || /checkpoint-.*\.txt$/.test(name)) out.push(p);
  }
  return out;
}

function decompress(file: string): string {
  const buf = readFileSync(file);
  if (file.endsWith('.gz')) return zlib.gunzipSync(buf).toString('utf8');
  if (file.endsWith('.zst')) return zlib.zstdDecompressSync(buf).toString('utf8');
  if (buf.length >= 8 && buf.readUInt32LE(4) === ZSTD_MAGIC) return zstdMessages(buf);
  return buf.toString('utf8');
}

/** The first four bytes of a zstd frame, read little-endian. */
const ZSTD_MAGIC = 0xfd2fb528;

/**
 * The collector's file exporter with `compression: zstd` (the bundled archive, whatever its file name)
 * writes each export as a 4-byte big-endian length and one zstd frame holding one OTLP JSON message. Each
 * becomes a line; a message cut short (the collector died mid-write) becomes a torn last line.
 */
function zstdMessages(buf: Buffer): string {
  const lines: string[] = [];
  let at = 0;
  while (at + 4 <= buf.length) {
    const end = at + 4 + buf.readUInt32BE(at);
    if (end > buf.length) break;
    try {
      lines.push(zlib.zstdDecompressSync(buf.subarray(at + 4, end)).toString('utf8'), '\n');
    } catch (err) {
      // Stays a line, so verify reports it as malformed where it is.
      lines.push(`(the zstd message at byte ${at} does not decompress: ${(err as Error).message})\n`);
    }
    at = end;
  }
  if (at < buf.length) lines.push(`(${buf.length - at} bytes of a cut zstd message)`);
  return lines.join('');
}

function addLine(text: string, file: string, line: number, verifier: ChainVerifier): void {
  try {
    verifier.add(parseRecordLine(text, { file, line }), { file, line });
  } catch (err) {
    if (!(err instanceof RecordFormatError)) throw err;
    verifier.addProblem({ kind: 'malformed', location: `${file}:${line}`, message: err.message });
  }
}

function addOtlpLine(text: string, file: string, line: number, verifier: ChainVerifier): void {
  let doc: { resourceLogs?: { scopeLogs?: { logRecords?: OtlpLogRecord[] }[] }[] };
  try {
    doc = JSON.parse(text);
  } catch (err) {
    verifier.addProblem({
      kind: 'malformed',
      location: `${file}:${line}`,
      message: `not JSON: ${(err as Error).message}`,
    });
    return;
  }
  for (const rl of doc.resourceLogs ?? []) {
    for (const sl of rl.scopeLogs ?? []) {
      for (const lr of sl.logRecords ?? []) {
        try {
          const r = parseOtlpLogRecord(lr, { file, line });
          if (r !== undefined) verifier.add(r, { file, line }, false);
        } catch (err) {
          verifier.addProblem({
            kind: 'malformed',
            location: `${file}:${line}`,
            message: (err as Error).message,
          });
        }
      }
    }
  }
}
