import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
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
import {
  ATTR_MLTRAIL_GAP_ERROR,
  ATTR_MLTRAIL_GAP_FROM_SEQ,
  ATTR_MLTRAIL_GAP_LOST_COUNT,
  EVENT_MLTRAIL_JOURNAL_GAP,
  METRIC_MLTRAIL_JOURNAL_WRITE_ERRORS,
} from '../semconv/index.js';
import { type JournalGap, JournalWriter, resolveDir } from './journal-writer.js';

/** Options of {@link AuditLog}. */
export interface AuditLogOptions {
  /** Journal directory; defaults to MLTRAIL_DIR, then `./.mltrail`. */
  dir?: string;
  /** Group-commit interval in ms (default 2). */
  groupCommitMs?: number;
  /** Rotate to a new segment past this size (default 64 MiB). */
  segmentBytes?: number;
  /** Records kept in memory while the disk fails; past this they are dropped and counted (default 100 000). */
  maxBufferedLines?: number;
  /** An audited call rejects when its record cannot be made durable. */
  failClosed?: boolean;
  /** A signed checkpoint after this many records (default 1000). */
  checkpointEvery?: number;
  /** And at least this often while records arrive, in ms (default 60 000; 0 disables). */
  checkpointIntervalMs?: number;
  /** The checkpoint signing key (default: MLTRAIL_SIGNING_KEY, else generated beside the journal). */
  signingKey?: SigningKeyOptions;
  meterProvider?: MeterProvider;
}

/** The chain fields of an appended record. */
export interface AppendedRecord {
  record: AuditRecord;
  /** Resolves when the record is on disk (fdatasync). */
  durable: Promise<void>;
}

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
  #sinceTimerCheckpoint = 0;
  /** Tree size of the checkpoint in the checkpoint file. */
  #publishedSize = -1;
  /** The newest checkpoint whose record is durable (what the file should hold). */
  #durableSize = -1;
  #durableNote = '';
  /** The file publication in progress, if any. */
  #checkpointFileWrite: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(opts: AuditLogOptions = {}) {
    this.dir = resolveDir(opts.dir);
    const signer = loadSigningKey({ dir: this.dir, ...opts.signingKey });
    this.#chain = new ChainWriter({ signer, checkpointEvery: opts.checkpointEvery });
    const writeErrors: Counter = (opts.meterProvider ?? metrics.getMeterProvider())
      .getMeter('mltrail')
      .createCounter(METRIC_MLTRAIL_JOURNAL_WRITE_ERRORS, { description: 'Journal write failures' });
    this.#journal = new JournalWriter({
      dir: this.dir,
      chainId: this.#chain.chainId,
      groupCommitMs: opts.groupCommitMs,
      segmentBytes: opts.segmentBytes,
      maxBufferedLines: opts.maxBufferedLines,
      failClosed: opts.failClosed,
      writeErrors,
      onRecovered: (gap) => this.#recordGap(gap),
    });
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

  /** Seals and appends one event. Never throws for I/O; the promise reports durability. */
  append(input: AuditEventInput): AppendedRecord {
    const records = this.#chain.append(input);
    // The record's own promise: a checkpoint sealed after it is written in the same or a later commit.
    // The journal's promises already carry a handler, so a failing disk never becomes an unhandled
    // rejection in the host; records committed together share one promise.
    const durable = this.#journal.append(serializeRecord(records[0]), records[0].seq);
    this.#sinceTimerCheckpoint++;
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

  /** Writes a final checkpoint, flushes and closes. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      if (this.#chain.size > 0 && this.#sinceTimerCheckpoint > 0) this.#checkpoint();
      await this.#journal.close();
      while (this.#checkpointFileWrite !== undefined) await this.#checkpointFileWrite;
    })();
    return this.#closing;
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

  #recordGap(gap: JournalGap): void {
    const ts = new Date().toISOString();
    this.append({
      event: EVENT_MLTRAIL_JOURNAL_GAP,
      sev: 'WARN',
      ts,
      attrs: {},
      body: canonicalize({
        'event.name': EVENT_MLTRAIL_JOURNAL_GAP,
        timestamp: ts,
        [ATTR_MLTRAIL_GAP_LOST_COUNT]: gap.lostCount,
        [ATTR_MLTRAIL_GAP_ERROR]: gap.error,
        ...(gap.fromTag !== undefined ? { [ATTR_MLTRAIL_GAP_FROM_SEQ]: gap.fromTag } : {}),
      }),
    });
  }
}
