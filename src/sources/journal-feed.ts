import { isUtf8 } from 'node:buffer';
import { statSync } from 'node:fs';
import type { ChainVerifier } from '../integrity/chain-verifier.js';
import { FIELDS } from '../integrity/line-check-protocol.js';
import { LineChecker } from '../integrity/line-checker.js';
import { checkLines, RUN_FIELDS } from '../integrity/line-checker-core.js';
import { RecordLineScanner } from '../integrity/record-scanner.js';
import { type JournalChunk, JournalReader, listSegments } from './journal-reader.js';

/** Journals smaller than this are read on one thread (a worker costs a few tens of milliseconds to start). */
const PARALLEL_MIN_BYTES = 16 * 1024 * 1024;
/** Read size with the worker: each read goes into one of its two shared job slots. */
const SLOT_BYTES = 8 * 1024 * 1024;

/** Where feeding lines goes: counts, progress, and the strict parser for lines not read from bytes. */
export interface FeedTarget {
  verifier: ChainVerifier;
  onLine: () => void;
  strict: (text: string, file: string, line: number) => void;
  onFile: (file: string) => void;
}

/** A chunk whose lines are checked (worker part possibly still running) and wait to be linked in order. */
interface Pending {
  slot: number;
  file: string;
  line: number;
  /** Lines [0, split) were checked here (`own` entries), [split, end) by the worker. */
  split: number;
  end: number;
  own: number;
  ownMs: number;
}

/**
 * Feeds every line of a journal directory into the verifier, from the lines' bytes. With `parallel`
 * (default: journals of 16 MiB and more), a worker thread checks part of every chunk while this thread
 * checks the rest and links the previous chunk's results to their chains in order, so both threads stay
 * busy; the split follows the time each side took. The report is the same either way.
 */
export function feedJournal(
  dir: string,
  target: FeedTarget,
  opts: { parallel?: boolean; chunkBytes?: number },
): JournalReader {
  const big =
    listSegments(dir)
      .flatMap((c) => c.files)
      .reduce((n, f) => n + statSync(f).size, 0) >= PARALLEL_MIN_BYTES;
  const checker = (opts.parallel ?? big) ? LineChecker.start(opts.chunkBytes ?? SLOT_BYTES) : undefined;
  // With the worker, segments are read straight into its two shared slots, in turn: a chunk stays there
  // while the next one is read and checked, until it is linked.
  const reader = new JournalReader(dir, { chunkBytes: opts.chunkBytes, buffers: checker?.data });
  let lastFile = '';
  const fileOf = (c: JournalChunk) => {
    if (c.file === lastFile) return;
    lastFile = c.file;
    target.onFile(c.file);
  };
  try {
    if (checker === undefined) {
      for (const c of reader.chunks()) {
        fileOf(c);
        feedChunk(c, target);
      }
      return reader;
    }
    const scanner = new RecordLineScanner();
    // This thread's results, per slot, in the worker's format.
    const ownFields = [0, 1].map(() => new Float64Array(checker.capacity * FIELDS));
    const ownSums = [0, 1].map(() => new Uint8Array(checker.capacity * 64));
    let pending: Pending | undefined;
    // The share of each chunk's bytes the worker checks (when it is used).
    let share = 0.6;
    // Wall time per byte of a pipeline step with and without the worker. On a machine whose other core
    // is busy a second thread only slows this one down (the hashing of two threads of one process also
    // contends inside OpenSSL), so now and then a chunk tries the mode that is not in use, and the
    // cheaper one is kept.
    const cost = { parallel: 0, alone: 0 };
    let chunks = 0;
    let stepStarted = performance.now();
    const link = (p: Pending) => {
      const started = performance.now();
      const worker = checker.wait(p.slot);
      const workerMs = checker.elapsed(p.slot);
      linkChunk(p, worker, checker, ownFields[p.slot], ownSums[p.slot], target);
      const linkMs = performance.now() - started;
      if (worker >= 0 && p.split > 0 && p.end > p.split && workerMs > 0) {
        // Per byte: worker checking; this thread checking and linking. Split so both take equally long.
        const w = workerMs / (p.end - p.split);
        const own = p.ownMs / p.split;
        const linking = linkMs / p.end;
        const balanced = (own + linking) / (w + own);
        share = Math.min(0.95, Math.max(0.05, (share + balanced) / 2));
      }
    };
    for (const c of reader.chunks()) {
      fileOf(c);
      const size = c.end;
      const slot = checker.data.indexOf(c.buf);
      if (checker.failed || slot < 0 || c.start !== 0 || !isUtf8(c.buf.subarray(0, size))) {
        // Out of the pipeline (a line longer than a slot, or not UTF-8): everything before it is linked
        // first. The worker takes the slots in turn, so a slot read into is handed over even when empty.
        if (pending !== undefined) link(pending);
        pending = undefined;
        if (slot >= 0 && !checker.failed) {
          checker.submit(slot, 0, 0);
          checker.wait(slot);
        }
        feedChunk(c, target);
        continue;
      }
      const data = c.buf;
      const better = cost.alone > 0 && cost.alone < cost.parallel ? 'alone' : 'parallel';
      // A step without the worker costs about twice one with it when it helps: that probe is rare.
      const n = chunks++;
      const probe = better === 'parallel' ? n === 7 || n % 32 === 31 : n % 8 === 7;
      const mode = probe ? (better === 'alone' ? 'parallel' : 'alone') : better;
      let split = size;
      if (mode === 'parallel') {
        const nl = data.indexOf(10, Math.floor(size * (1 - share)));
        if (nl >= 0 && nl + 1 < size) split = nl + 1;
      }
      checker.submit(slot, split, size);
      const started = performance.now();
      const own = checkLines(scanner, data, 0, split, ownFields[slot], ownSums[slot], checker.capacity);
      const next: Pending = {
        slot,
        file: c.file,
        line: c.line,
        split,
        end: size,
        own,
        ownMs: performance.now() - started,
      };
      if (pending !== undefined) link(pending);
      pending = next;
      const now = performance.now();
      const perByte = (now - stepStarted) / size;
      stepStarted = now;
      cost[mode] = cost[mode] === 0 ? perByte : (cost[mode] + perByte) / 2;
    }
    if (pending !== undefined) link(pending);
    return reader;
  } finally {
    checker?.close();
  }
}

/** Reads a chunk on this thread: each line from its bytes if it is valid UTF-8, else as text. */
function feedChunk(c: JournalChunk, target: FeedTarget): void {
  const bytes = isUtf8(c.buf.subarray(c.start, c.end));
  const { verifier } = target;
  let line = c.line;
  for (let start = c.start; start < c.end; line++) {
    const nl = c.buf.indexOf(10, start);
    target.onLine();
    if (!bytes || !verifier.addJournalLine(c.buf, start, nl, c.file, line))
      target.strict(c.buf.toString('utf8', start, nl), c.file, line);
    start = nl + 1;
  }
}

/** Links a checked chunk's lines to their chains, in order; lines that did not pass take the strict path. */
function linkChunk(
  p: Pending,
  worker: number,
  checker: LineChecker,
  ownFields: Float64Array,
  ownSums: Uint8Array,
  target: FeedTarget,
): void {
  const data = checker.data[p.slot];
  const { verifier } = target;
  let fields = ownFields;
  let sums = ownSums;
  let count = p.own;
  // The worker's results come in runs whose Merkle blocks it computed: their leaves are held back and
  // appended as blocks when the run's last record is linked.
  let fromWorker = false;
  const runs = checker.runs[p.slot];
  const nRuns = worker >= 0 ? checker.runCount(p.slot) : 0;
  let run = 0;
  let r = 0;
  let line = p.line;
  for (let start = 0; start < p.end; line++) {
    if (start === p.split) {
      fields = checker.fields[p.slot];
      sums = checker.sums[p.slot];
      count = worker;
      fromWorker = true;
      r = 0;
    }
    const nl = data.indexOf(10, start);
    target.onLine();
    if (count < 0) {
      if (!verifier.addJournalLine(data, start, nl, p.file, line))
        target.strict(data.toString('utf8', start, nl), p.file, line);
    } else if (r < count && fields[r * FIELDS] === start) {
      const f = r * FIELDS;
      const accepted = verifier.acceptCheckedLine(
        data,
        fields[f + 1],
        fields[f + 2],
        fields[f + 3],
        fields[f + 4],
        sums,
        r * 64,
        p.file,
        line,
        fromWorker,
      );
      if (!accepted) target.strict(data.toString('utf8', start, nl), p.file, line);
      if (fromWorker && run < nRuns && runs[run * RUN_FIELDS] + runs[run * RUN_FIELDS + 1] - 1 === r) {
        const first = runs[run * RUN_FIELDS + 2];
        verifier.appendCheckedRun(
          data,
          fields[f + 1],
          fields[f + 2],
          first,
          first + runs[run * RUN_FIELDS + 1],
          checker.roots[p.slot],
          runs[run * RUN_FIELDS + 3] * 32,
        );
        run++;
      }
      r++;
    } else target.strict(data.toString('utf8', start, nl), p.file, line);
    start = nl + 1;
  }
}
