import { open, rename } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Counter, diag, type MeterProvider, metrics } from '@opentelemetry/api';
import {
  type AuditEventInput,
  type AuditRecord,
  ChainWriter,
  canonicalize,
  loadSigningKey,
  type SigningKeyOptions,
  serializeRecord,
} from '../integrity/index.js';
import { SegmentIndexer } from '../journal-index/segment-indexer.js';
import {
  ATTR_MLTRAIL_GAP_ERROR,
  ATTR_MLTRAIL_GAP_FROM_SEQ,
  ATTR_MLTRAIL_GAP_LOST_COUNT,
  EVENT_MLTRAIL_JOURNAL_GAP,
  METRIC_MLTRAIL_JOURNAL_WRITE_ERRORS,
} from '../semconv/index.js';
import {
  type JournalFailure,
  type JournalGap,
  type JournalLoss,
  JournalWriter,
  resolveDir,
} from './journal-writer.js';

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  /** Journal directory; defaults to MLTRAIL_DIR, then `./.mltrail`. */
  dir?: string;
  /** Group-commit interval in ms (default 10, or 2 with `failClosed`; see `JournalWriterOptions`). */
  groupCommitMs?: number;
  /** Rotate to a new segment past this size (default 64 MiB). */
  segmentBytes?: number;
  /** Records kept in memory while the disk fails; past this they are dropped and counted (default 100 000). */
  maxBufferedLines?: number;
  /** An audited call rejects when its record cannot be made durable. */
  failClosed?: boolean;
  /**
   * Where lost or endangered records are reported, besides `diag`: one line when a write failure begins,
   * one when records start being dropped, one when writing recovers, one at close (or process exit) if
   * anything was lost. Default: standard error. `false` silences it (the counters and `close()`'s result
   * still say what was lost).
   */
  warn?: ((message: string) => void) | false;
  /** A signed checkpoint after this many records (default 1000). */
  checkpointEvery?: number;
  /** And at least this often while records arrive, in ms (default 60 000; 0 disables). */
  checkpointIntervalMs?: number;
  /** The checkpoint signing key (default: MLTRAIL_SIGNING_KEY, else generated beside the journal). */
  signingKey?: SigningKeyOptions;
  meterProvider?: MeterProvider;
  /**
   * Index each segment as it is sealed (at rotation and close), on a worker thread: lineage lookups then
   * read the index instead of the whole journal (default true). The index is derived data; see
   * docs/internals.md, "Journal index".
   */
  index?: boolean;
}

/** The chain fields of an appended record. */
export interface AppendedRecord {
  record: AuditRecord;
  /** Resolves when the record is on disk (fdatasync). */
  durable: Promise<void>;
}

/** What {@link AuditLog.close} resolves to: how many records never reached the journal, and why. */
export interface AuditLogLoss extends JournalLoss {
  /** The journal directory. */
  dir: string;
}

/** Open logs, so a process that exits without closing them still says what it did not write. */
const openLogs = new Set<WeakRef<AuditLog>>();
let exitHookInstalled = false;

function watchExit(ref: WeakRef<AuditLog>): void {
  openLogs.add(ref);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const ref of openLogs) ref.deref()?.reportExit();
  });
}

const writeStderr = (message: string): void => {
  try {
    process.stderr.write(`${message}\n`);
  } catch {
    // standard error closed: diag still has it
  }
};

/** The file holding the latest checkpoint of a chain (copy it somewhere the writer cannot reach). */
export function checkpointFile(dir: string, chainId: string): string {
  return join(dir, `checkpoint-${chainId}.txt`);
}

/**
 * The audit log of one process: seals events into its hash chain and group-commits them to the journal,
 * with signed checkpoints every N records, every T seconds and at close, the latest of which is also kept
 * in `<dir>/checkpoint-<chain>.txt`.
 */
export class AuditLog {
  readonly dir: string;
  readonly #chain: ChainWriter;
  readonly #journal: JournalWriter;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #indexer: SegmentIndexer | undefined;
  #sinceTimerCheckpoint = 0;
  /** Tree size of the checkpoint in the checkpoint file. */
  #publishedSize = -1;
  /** The newest checkpoint whose record is durable (what the file should hold). */
  #durableSize = -1;
  #durableNote = '';
  /** The file publication in progress, if any. */
  #checkpointFileWrite: Promise<void> | undefined;
  #closing: Promise<AuditLogLoss> | undefined;
  readonly #warn: ((message: string) => void) | undefined;
  readonly #failClosed: boolean;
  readonly #maxBuffered: number;
  readonly #ref: WeakRef<AuditLog>;
  #warnedAfterClose = false;

  constructor(opts: AuditLogOptions = {}) {
    this.dir = resolveDir(opts.dir);
    this.#warn = opts.warn === false ? undefined : (opts.warn ?? writeStderr);
    this.#failClosed = opts.failClosed === true;
    this.#maxBuffered = opts.maxBufferedLines ?? 100_000;
    const signer = loadSigningKey({ dir: this.dir, ...opts.signingKey });
    this.#chain = new ChainWriter({ signer, checkpointEvery: opts.checkpointEvery });
    const writeErrors: Counter = (opts.meterProvider ?? metrics.getMeterProvider())
      .getMeter('mltrail')
      .createCounter(METRIC_MLTRAIL_JOURNAL_WRITE_ERRORS, { description: 'Journal write failures' });
    const indexer = opts.index === false ? undefined : new SegmentIndexer(this.dir);
    this.#indexer = indexer;
    this.#journal = new JournalWriter({
      dir: this.dir,
      chainId: this.#chain.chainId,
      groupCommitMs: opts.groupCommitMs,
      segmentBytes: opts.segmentBytes,
      maxBufferedLines: opts.maxBufferedLines,
      failClosed: opts.failClosed,
      writeErrors,
      onRecovered: (gap) => this.#recovered(gap),
      onFailed: (f) => this.#failed(f),
      onDropping: (f) => this.#dropping(f),
      onSealed: indexer === undefined ? undefined : (segment) => indexer.seal(segment),
    });
    this.#ref = new WeakRef(this);
    watchExit(this.#ref);
    const interval = opts.checkpointIntervalMs ?? 60_000;
    if (interval > 0) {
      this.#timer = setInterval(() => {
        if (this.#sinceTimerCheckpoint > 0) this.#checkpoint();
      }, interval);
      this.#timer.unref();
    }
  }

  /** This process's chain id. */
  get chainId(): string {
    return this.#chain.chainId;
  }

  /** Records sealed so far. */
  get size(): number {
    return this.#chain.size;
  }

  /** Counters of the journal underneath: lines made durable, fdatasyncs, failed writes, lines dropped. */
  get counters(): { written: number; syncs: number; writeErrors: number; dropped: number } {
    const j = this.#journal;
    return { written: j.written, syncs: j.syncs, writeErrors: j.writeErrors, dropped: j.dropped };
  }

  /**
   * The write failure in progress (from a failed write until the next one succeeds; also once closed),
   * or undefined while the journal takes writes. Fail-closed callers refuse audited calls while it is set.
   */
  failure(): (JournalFailure & { dir: string }) | undefined {
    const f = this.#journal.failure;
    return f === undefined ? undefined : { ...f, dir: this.dir };
  }

  /** Records that never reached the journal so far (final once closed): dropped, unwritten at close, after close. */
  get loss(): AuditLogLoss {
    return { ...this.#journal.loss, dir: this.dir };
  }

  /** Seals and appends one event. Never throws for I/O; the promise reports durability. */
  append(input: AuditEventInput): AppendedRecord {
    const records = this.#chain.append(input);
    // The record's own promise: a checkpoint sealed after it is written in the same or a later commit.
    // The journal's promises already carry a handler, so a failing disk never becomes an unhandled
    // rejection in the host; records committed together share one promise.
    const durable = this.#journal.append(serializeRecord(records[0]), records[0].seq);
    this.#sinceTimerCheckpoint++;
    if (this.#journal.closed && !this.#warnedAfterClose) {
      this.#warnedAfterClose = true;
      this.#say('a record was made after the journal was closed; it and any later ones are lost (counted)');
    }
    for (let i = 1; i < records.length; i++) {
      const written = this.#journal.append(serializeRecord(records[i]), records[i].seq);
      this.#afterCheckpoint(written);
    }
    return { record: records[0], durable };
  }

  /** Resolves when every record appended so far is durable. */
  flush(): Promise<void> {
    return this.#journal.flush();
  }

  /**
   * Writes a final checkpoint, flushes and closes. Safe to call twice. Never rejects: it resolves to what
   * was lost ({@link AuditLogLoss}, `lost` 0 when every record is durable), also reported through `warn`.
   */
  close(): Promise<AuditLogLoss> {
    this.#closing ??= (async () => {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      if (this.#chain.size > 0 && this.#sinceTimerCheckpoint > 0) this.#checkpoint();
      await this.#journal.close();
      openLogs.delete(this.#ref);
      while (this.#checkpointFileWrite !== undefined) await this.#checkpointFileWrite;
      await this.#indexer?.close();
      const loss = this.loss;
      if (loss.lost > 0)
        this.#say(
          `closed with ${loss.lost} audit record(s) lost (${loss.dropped} dropped while writes failed, ${loss.unwritten} still unwritten at close${loss.afterClose > 0 ? `, ${loss.afterClose} made after close` : ''})${loss.error !== undefined ? `; write error: ${loss.error}` : ''}`,
        );
      return loss;
    })();
    return this.#closing;
  }

  /** Called at process exit for a log that was never closed: says what is still not on disk. */
  reportExit(): void {
    if (this.#closing !== undefined) return;
    const pending = this.#journal.pending;
    const lost = this.#journal.dropped + pending;
    if (lost === 0) return;
    const f = this.#journal.failure;
    this.#say(
      `the process is exiting with ${lost} audit record(s) not on disk (${this.#journal.dropped} dropped while writes failed, ${pending} not yet written; trail.shutdown() was not awaited)${f !== undefined ? `; write error: ${f.error}` : ''}`,
    );
  }

  #say(message: string): void {
    const text = `mltrail: audit journal ${resolve(this.dir)}: ${message}`;
    diag.warn(text);
    this.#warn?.(text);
  }

  #failed(f: JournalFailure): void {
    this.#say(
      `write failed (${f.error}); ${f.pending} record(s) held in memory and retried` +
        (this.#failClosed
          ? '; fail-closed: audited calls fail until a write succeeds'
          : `; past ${this.#maxBuffered} held records new ones are dropped and counted`),
    );
  }

  #dropping(f: JournalFailure): void {
    this.#say(
      `still failing (${f.error}) after ${f.failures} attempt(s): ${this.#maxBuffered} records held, new records are now dropped (the count is reported on recovery and at close)`,
    );
  }

  #recovered(gap: JournalGap): void {
    const record = this.#recordGap(gap);
    this.#say(
      `writes recovered after ${gap.failures} failed attempt(s) (${gap.error}); ${gap.lostCount} record(s) lost` +
        (record !== undefined ? `, recorded as ${EVENT_MLTRAIL_JOURNAL_GAP} seq ${record.seq}` : ''),
    );
  }

  #checkpoint(): void {
    const r = this.#chain.checkpoint();
    const written = this.#journal.append(serializeRecord(r), r.seq);
    written.catch(() => undefined);
    this.#afterCheckpoint(written);
  }

  /**
   * Publishes the latest checkpoint in `checkpoint-<chain>.txt` once its record is durable: a file that ran
   * ahead of the journal would make a crash look like truncation. If the record cannot be written, the file
   * keeps the previous checkpoint.
   */
  #afterCheckpoint(written: Promise<void>): void {
    this.#sinceTimerCheckpoint = 0;
    const latest = this.#chain.latestCheckpoint();
    if (latest === undefined) return;
    written.then(
      () => {
        // Commits complete in order, so a later checkpoint never precedes an earlier one here.
        if (latest.size <= this.#durableSize) return;
        this.#durableSize = latest.size;
        this.#durableNote = latest.note;
        this.#checkpointFileWrite ??= this.#publish().finally(() => {
          this.#checkpointFileWrite = undefined;
        });
      },
      () => undefined,
    );
  }

  /**
   * Writes the newest durable checkpoint to the checkpoint file, off the event loop (the host keeps
   * serving while the file is fsync'd), and repeats while newer ones became durable meanwhile: only the
   * latest matters, so checkpoints arriving faster than a file can be synced are coalesced.
   */
  async #publish(): Promise<void> {
    const path = checkpointFile(this.dir, this.#chain.chainId);
    while (this.#durableSize > this.#publishedSize) {
      const size = this.#durableSize;
      const note = this.#durableNote;
      try {
        // fsync before the rename: after a power cut the file holds this checkpoint or the previous one.
        const file = await open(`${path}.tmp`, 'w', 0o600);
        try {
          await file.writeFile(note);
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(`${path}.tmp`, path);
      } catch (err) {
        diag.error(`mltrail: could not write the checkpoint file ${path}`, err);
      }
      this.#publishedSize = size;
    }
  }

  #recordGap(gap: JournalGap): AuditRecord {
    const ts = new Date().toISOString();
    return this.append({
      event: EVENT_MLTRAIL_JOURNAL_GAP,
      sev: 'WARN',
      ts,
      attrs: {},
      body: canonicalize({
        'event.name': EVENT_MLTRAIL_JOURNAL_GAP,
        timestamp: ts,
        severity_text: 'WARN',
        [ATTR_MLTRAIL_GAP_LOST_COUNT]: gap.lostCount,
        [ATTR_MLTRAIL_GAP_ERROR]: gap.error,
        ...(gap.fromTag !== undefined ? { [ATTR_MLTRAIL_GAP_FROM_SEQ]: gap.fromTag } : {}),
      }),
    }).record;
  }
}
