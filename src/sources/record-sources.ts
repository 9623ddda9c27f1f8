import { existsSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import type { ChainVerifier } from '../integrity/chain-verifier.js';
import { type OtlpLogRecord, parseOtlpLogRecord } from '../integrity/otlp-record.js';
import { parseRecordLine, RecordFormatError } from '../integrity/record.js';
import { archiveText } from './archive-format.js';
import { EvidenceDir, readNamedFile } from './evidence-files.js';
import { feedJournal } from './journal-feed.js';
import { listSegments } from './journal-reader.js';

/** What was read into a verifier. */
export interface ReadSummary {
  files: number;
  lines: number;
  /** External checkpoint files found (checkpoint-*.txt); {@link addCheckpointFiles} reads them. */
  checkpointFiles: string[];
  /** The directory read (its file rules apply to the checkpoint files too); undefined for one file. */
  dir?: string;
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
 * directory or file of journal lines, or a collector file-exporter archive (OTLP JSON lines, plain, gzip,
 * zstd or the collector's framed zstd, told apart by content whatever the file name). Torn and malformed
 * lines become problems, never exceptions. Files are opened under the rules of {@link EvidenceDir}
 * (regular files inside the directory only): any other file stops the read with an `EvidenceFileError`.
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
  const dir = st.isDirectory() ? new EvidenceDir(path) : undefined;
  if (dir !== undefined) summary.dir = path;
  if (dir !== undefined && listSegments(path).length > 0) {
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
  const files = dir !== undefined ? otherFiles(dir, path, new Set([dir.real])) : [path];
  for (const file of files) {
    if (/checkpoint-[^/]*\.txt$/.test(file)) {
      summary.checkpointFiles.push(file);
      continue;
    }
    summary.files++;
    const text = archiveText(dir !== undefined ? dir.read(file) : readNamedFile(file));
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

/** An external checkpoint file, named for its chain. */
const CHECKPOINT_FILE = /^checkpoint-(.+)\.txt$/;

/**
 * Adds the checkpoint files a read found to the verifier (read under the same rules), each with the chain
 * its name claims, which the verifier checks against the note's origin.
 */
export function addCheckpointFiles(summary: ReadSummary, verifier: ChainVerifier): void {
  const dir = summary.dir !== undefined ? new EvidenceDir(summary.dir) : undefined;
  for (const f of summary.checkpointFiles) {
    const text = (dir !== undefined ? dir.read(f) : readNamedFile(f)).toString('utf8');
    verifier.addCheckpoint(text, f, CHECKPOINT_FILE.exec(basename(f))?.[1]);
  }
}

/**
 * The journal lines and archives under a directory other than its chains/ (and checkpoint files), in name
 * order. Directories are followed while they stay inside the evidence directory, each once.
 */
function otherFiles(files: EvidenceDir, dir: string, seen: Set<string>): string[] {
  const out: string[] = [];
  for (const e of files.entries(dir)) {
    const name = basename(e.path);
    if (e.directory) {
      if (name === 'chains') continue;
      const real = files.resolve(e.path);
      if (seen.has(real)) continue;
      seen.add(real);
      out.push(...otherFiles(files, e.path, seen));
    } else if (/\.(ndjson|jsonl)(\.gz|\.zst)?$/.test(name) || /checkpoint-.*\.txt$/.test(name))
      out.push(e.path);
  }
  return out;
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
