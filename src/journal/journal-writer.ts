import {
  closeSync,
  constants,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { type Counter, diag } from '@opentelemetry/api';

/** Options of {@link JournalWriter}. */
export interface JournalWriterOptions {
  /** Journal directory; defaults to MLTRAIL_DIR, then `./.mltrail`. */
  dir?: string;
  /** The chain this writer owns; its segments live in `<dir>/chains/<chainId>/`. */
  chainId: string;
  /**
   * One write + fdatasync covers everything appended within this many ms. Default 10, or 2 with
   * `failClosed` (its callers wait for the commit). An fdatasync costs a few hundred µs of CPU on a cloud
   * VM's disk whatever it carries, so under load the commit rate, not the record rate, decides what the
   * journal costs; where no caller waits, a longer window only widens what a crash (not a shutdown) loses.
   */
  groupCommitMs?: number;
  /** Rotate to a new segment past this size (default 64 MiB). */
  segmentBytes?: number;
  /** Lines kept in memory while the disk fails; past this, new lines are dropped and counted (default 100 000). */
  maxBufferedLines?: number;
  /** Reject durability promises when a write fails, instead of retrying silently for the caller. */
  failClosed?: boolean;
  /** Counts write failures (`mltrail.journal.write_errors`). */
  writeErrors?: Counter;
  /** Called once writing works again after failures, with what happened meanwhile. */
  onRecovered?: (gap: JournalGap) => void;
  /** Called when a failure episode begins (the first failed write after writes worked or since the start). */
  onFailed?: (failure: JournalFailure) => void;
  /** Called when, in a failure episode, the first line is dropped because the in-memory bound was hit. */
  onDropping?: (failure: JournalFailure) => void;
  /**
   * Called with a segment's path when this writer stops writing it: at rotation, and at close (a reopened
   * chain may continue that segment later). The journal index is built from here, off the request path.
   */
  onSealed?: (segment: string) => void;
}

/** The state of a failure episode: from a failed write until the next write that succeeds. */
export interface JournalFailure {
  /** The first error of the episode, e.g. `ENOSPC: no space left on device, write`. */
  error: string;
  /** Failed attempts so far. */
  failures: number;
  /** Lines dropped so far in this episode (lost). */
  dropped: number;
  /** Lines held in memory, waiting for the retry. */
  pending: number;
}

/** What a closed writer could not write. */
export interface JournalLoss {
  /** Lines that will never be in the journal: `dropped + unwritten + afterClose`. */
  lost: number;
  /** Dropped past the in-memory bound while the disk failed. */
  dropped: number;
  /** Still held in memory when the writer closed (the final attempt failed). */
  unwritten: number;
  /** Appended after the writer was closed. */
  afterClose: number;
  /** The first error of the last failure episode, if there was one. */
  error: string | undefined;
}

/** What a write outage affected, reported when writing recovers. */
export interface JournalGap {
  /** Lines dropped because the in-memory bound was hit (they are lost). */
  lostCount: number;
  /** The first error seen. */
  error: string;
  /** Failed attempts. */
  failures: number;
  /** The tag (for the AuditLog: the seq) of the first line that was not durable when the outage began. */
  fromTag?: number;
}

/**
 * Lines that share one durability promise: everything appended between two commits (or flushes). One
 * promise per group instead of one per line keeps the append path allocation-free for the caller.
 */
class Group {
  readonly lines: string[] = [];
  /** The tag of the first line (for the AuditLog: its seq). */
  firstTag: number | undefined;
  /** A flush barrier: no lines; rejects when the commit it waits for fails. */
  readonly barrier: boolean;
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (err: Error) => void;

  constructor(barrier: boolean) {
    this.barrier = barrier;
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Callers decide whether to observe durability; an unobserved failure must never crash the host.
    this.promise.catch(() => undefined);
  }
}

/** The directory holding a chain's segments. */
export function chainDir(dir: string, chainId: string): string {
  return join(dir, 'chains', chainId);
}

/** A segment file name: six-digit sequence number, so names sort in order. */
export function segmentName(n: number): string {
  return `${String(n).padStart(6, '0')}.ndjson`;
}

/** Resolves the journal directory: option, then MLTRAIL_DIR, then `./.mltrail`. */
export function resolveDir(dir?: string): string {
  return dir ?? process.env.MLTRAIL_DIR ?? '.mltrail';
}

/**
 * An append-only writer for one chain's segments. `append()` never blocks on I/O: lines are buffered and
 * group-committed (one write and one fdatasync for everything appended within `groupCommitMs`); each
 * append returns a promise that resolves when its line is durable. Files are created 0600, directories 0700.
 * I/O errors never throw into the caller: they are retried with backoff, counted and reported, and a
 * {@link JournalGap} is handed to `onRecovered` when writing works again.
 */
export class JournalWriter {
  readonly dir: string;
  readonly chainId: string;
  readonly #chainDir: string;
  readonly #groupCommitMs: number;
  readonly #segmentBytes: number;
  readonly #maxBuffered: number;
  readonly #failClosed: boolean;
  readonly #writeErrors: Counter | undefined;
  readonly #onRecovered: ((gap: JournalGap) => void) | undefined;
  readonly #onFailed: ((failure: JournalFailure) => void) | undefined;
  readonly #onDropping: ((failure: JournalFailure) => void) | undefined;
  readonly #onSealed: ((segment: string) => void) | undefined;
  #queue: Group[] = [];
  /** Encoding buffer reused by every commit. */
  #scratch = Buffer.allocUnsafe(64 * 1024);
  /** Lines waiting in #queue (for the in-memory bound). */
  #queuedLines = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  /** Lines taken by the commit in progress. */
  #inFlight = 0;
  #file: FileHandle | undefined;
  #segment = 0;
  #segmentSize = 0;
  /** The next open starts a new segment (rotation, or a segment a failed write could not be cut back). */
  #advance = false;
  #closed = false;
  #failure: { first: string; failures: number; dropped: number; fromTag?: number } | undefined;
  /** The first error of the latest failure episode (kept after recovery, for the loss report). */
  #lastError: string | undefined;
  /** Lines still held when the writer closed, and lines appended after it closed. */
  #unwrittenAtClose = 0;
  #afterClose = 0;
  #retryMs = 50;
  /**
   * Number of commits made durable, each one fdatasync or its O_DSYNC write (group commit makes this much
   * smaller than the number of lines).
   */
  syncs = 0;
  /** Lines made durable. */
  written = 0;
  /** Lines dropped (lost) because the in-memory bound was hit while the disk was failing. */
  dropped = 0;
  /** Failed write attempts. */
  writeErrors = 0;

  constructor(opts: JournalWriterOptions) {
    this.dir = resolveDir(opts.dir);
    this.chainId = opts.chainId;
    this.#chainDir = chainDir(this.dir, opts.chainId);
    this.#groupCommitMs = opts.groupCommitMs ?? (opts.failClosed === true ? 2 : 10);
    this.#segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    this.#maxBuffered = opts.maxBufferedLines ?? 100_000;
    this.#failClosed = opts.failClosed === true;
    this.#writeErrors = opts.writeErrors;
    this.#onRecovered = opts.onRecovered;
    this.#onFailed = opts.onFailed;
    this.#onDropping = opts.onDropping;
    this.#onSealed = opts.onSealed;
  }

  /**
   * The failure episode in progress, or undefined while writes work. An episode begins with a failed write
   * and ends with the next write that succeeds; a closed writer reports `closed` as its error.
   */
  get failure(): JournalFailure | undefined {
    if (this.#closed)
      return {
        error: `closed${this.#lastError !== undefined ? ` (last failure: ${this.#lastError})` : ''}`,
        failures: this.#failure?.failures ?? 0,
        dropped: this.#failure?.dropped ?? 0,
        pending: 0,
      };
    return this.#failure === undefined ? undefined : this.#view(this.#failure);
  }

  /** True once {@link JournalWriter.close} began: later appends are lost (and counted). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Lines appended but not yet durable (waiting for a commit, or for the retry while the disk fails). */
  get pending(): number {
    return this.#queuedLines + this.#inFlight;
  }

  /** What this writer could not write, so far (final once it is closed). */
  get loss(): JournalLoss {
    return {
      lost: this.dropped + this.#unwrittenAtClose + this.#afterClose,
      dropped: this.dropped,
      unwritten: this.#unwrittenAtClose,
      afterClose: this.#afterClose,
      error: this.#lastError,
    };
  }

  /**
   * Buffers one line (without its newline); resolves when it is durable. Never throws. `tag` (the AuditLog
   * passes the record's seq) is handed back in {@link JournalGap.fromTag} if an outage begins at this line.
   */
  append(line: string, tag?: number): Promise<void> {
    if (this.#closed) {
      this.#afterClose++;
      return Promise.reject(new Error(`mltrail: journal ${this.#chainDir} is closed`));
    }
    if (this.#failure !== undefined && this.#queuedLines >= this.#maxBuffered) {
      this.#failure.dropped++;
      this.dropped++;
      if (this.#failure.dropped === 1) this.#notify(this.#onDropping, this.#failure);
      return Promise.reject(
        new Error('mltrail: journal buffer full while the disk is failing; record dropped'),
      );
    }
    let g = this.#queue.length > 0 ? this.#queue[this.#queue.length - 1] : undefined;
    if (g === undefined || g.barrier) {
      g = new Group(false);
      this.#queue.push(g);
    }
    if (g.lines.length === 0) g.firstTag = tag;
    g.lines.push(line);
    this.#queuedLines++;
    if (this.#timer === undefined) this.#schedule(this.#groupCommitMs);
    return g.promise;
  }

  /**
   * Resolves when every line appended so far is durable. Rejects if the disk is failing at that moment
   * (the lines stay buffered and are retried), so shutdown never hangs on a broken disk.
   */
  flush(): Promise<void> {
    if (this.#queue.length === 0 && this.#flushing === undefined) return Promise.resolve();
    const barrier = new Group(true);
    this.#queue.push(barrier);
    this.#kick();
    return barrier.promise;
  }

  /**
   * Flushes and closes the current segment. Safe to call twice. If the final attempt fails, what is still
   * held is given up: its promises reject and it is counted in {@link JournalWriter.loss}.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
    } catch (err) {
      diag.error(`mltrail: closing the journal with ${this.#queuedLines} unwritten record(s)`, err);
    } finally {
      this.#closed = true;
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      // A commit still running (the flush barrier failed early) settles its own lines; the rest is lost.
      await this.#flushing;
      this.#unwrittenAtClose += this.#queuedLines;
      const error = new Error(
        `mltrail: journal ${this.#chainDir} closed with this record unwritten${this.#lastError !== undefined ? ` (${this.#lastError})` : ''}`,
      );
      for (const g of this.#queue) g.reject(error);
      this.#queue = [];
      this.#queuedLines = 0;
      const open = this.#file;
      await this.#file?.close().catch(() => undefined);
      this.#file = undefined;
      if (open !== undefined) this.#sealed();
    }
  }

  #sealed(): void {
    try {
      this.#onSealed?.(join(this.#chainDir, segmentName(this.#segment)));
    } catch (err) {
      diag.error('mltrail: onSealed callback threw', err);
    }
  }

  #schedule(ms: number): void {
    if (this.#closed || this.#timer !== undefined || this.#flushing !== undefined) return;
    // While the disk fails, new appends do not shortcut the retry backoff.
    if (this.#failure !== undefined) ms = Math.max(ms, this.#retryMs);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#kick();
    }, ms);
    // A group-commit timer keeps the process alive, so a process about to exit still writes what it
    // buffered (a few ms at most). A retry timer while the disk fails does not: a broken disk must not
    // keep the host from exiting forever (what is still buffered then is lost, and was reported).
    if (this.#failure !== undefined) this.#timer.unref();
  }

  #kick(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#flushing !== undefined || this.#queue.length === 0) return;
    this.#flushing = this.#commit().finally(() => {
      this.#flushing = undefined;
      if (this.#queue.length > 0)
        this.#schedule(this.#failure !== undefined ? this.#retryMs : this.#groupCommitMs);
    });
  }

  async #commit(): Promise<void> {
    const batch = this.#queue;
    this.#queue = [];
    const lines = this.#queuedLines;
    this.#queuedLines = 0;
    if (lines === 0) {
      for (const g of batch) g.resolve();
      return;
    }
    this.#inFlight = lines;
    const bytes = this.#encode(batch);
    let file: FileHandle | undefined;
    let before = 0;
    try {
      file = await this.#segmentFor(bytes.length);
      before = this.#segmentSize;
      // write() may be short (a file size limit, a nearly full disk): finish it or fail with the reason.
      for (let off = 0; off < bytes.length; )
        off += (await file.write(bytes, off, bytes.length - off)).bytesWritten;
      this.#segmentSize += bytes.length;
      if (SEGMENT_FLAGS === 'a+') await file.datasync();
      this.syncs++;
    } catch (err) {
      await this.#fail(err as Error, batch, lines, file, before);
      this.#inFlight = 0;
      return;
    }
    this.#inFlight = 0;
    this.written += lines;
    for (const g of batch) g.resolve();
    if (this.#failure !== undefined) this.#recovered();
  }

  /**
   * The batch as UTF-8 lines, encoded line by line into one reused buffer: concatenating thousands of
   * lines into a string first would build a rope that must be flattened before it is encoded.
   */
  #encode(batch: Group[]): Buffer {
    let buf = this.#scratch;
    let off = 0;
    for (const g of batch) {
      for (const line of g.lines) {
        // A UTF-16 code unit never takes more than 3 bytes in UTF-8, plus the newline.
        const need = off + line.length * 3 + 1;
        if (need > buf.length) {
          const bigger = Buffer.allocUnsafe(Math.max(need, buf.length * 2));
          buf.copy(bigger, 0, 0, off);
          buf = bigger;
        }
        off += buf.write(line, off, 'utf8');
        buf[off++] = 10;
      }
    }
    // Keep a moderately sized buffer for the next commit (commits never overlap); let huge ones go.
    this.#scratch = buf.length <= 4 << 20 ? buf : this.#scratch;
    return buf.subarray(0, off);
  }

  async #segmentFor(bytes: number): Promise<FileHandle> {
    if (this.#file !== undefined && this.#segmentSize + bytes <= this.#segmentBytes) return this.#file;
    if (this.#file !== undefined) {
      await this.#file.close();
      this.#file = undefined;
      this.#advance = true;
      this.#sealed();
    }
    if (this.#segment === 0) {
      // A reopened chain continues its last segment (if it has room and ends with a newline).
      this.#segment = Math.max(1, this.#lastSegment());
    } else if (this.#advance) this.#segment++;
    this.#advance = false;
    const path = join(this.#chainDir, segmentName(this.#segment));
    if (mkdirSync(this.#chainDir, { recursive: true, mode: 0o700 }) !== undefined) {
      // New directories: their entries must survive a crash as well.
      syncDir(join(this.#chainDir, '..'));
      syncDir(this.dir);
    }
    // a+ (appends, and reads the last byte of a reopened segment), with O_DSYNC where there is one.
    const file = await open(path, SEGMENT_FLAGS, 0o600);
    try {
      const size = (await file.stat()).size;
      if (size > 0 && (size + bytes > this.#segmentBytes || !(await endsWithNewline(file, size)))) {
        // Full, or torn by an earlier crash: never append after a torn line; start the next segment.
        await file.close();
        this.#advance = true;
        return this.#segmentFor(bytes);
      }
      this.#segmentSize = size;
      // The new file's directory entry must be durable too, or a crash could lose the whole segment even
      // though its data was fdatasync'd.
      if (size === 0) syncDir(this.#chainDir);
    } catch (err) {
      await file.close().catch(() => undefined);
      throw err;
    }
    this.#file = file;
    return file;
  }

  /** The highest segment number already in the chain directory (0 if none). */
  #lastSegment(): number {
    let max = 0;
    try {
      for (const f of readdirSync(this.#chainDir)) {
        const m = /^(\d{6,})\.ndjson$/.exec(f);
        if (m !== null) max = Math.max(max, Number(m[1]));
      }
    } catch {
      // no directory yet
    }
    return max;
  }

  async #fail(
    err: Error,
    batch: Group[],
    lines: number,
    file: FileHandle | undefined,
    before: number,
  ): Promise<void> {
    this.#writeErrors?.add(1);
    this.writeErrors++;
    const starts = this.#failure === undefined;
    if (this.#failure === undefined) {
      this.#failure = {
        first: errnoText(err),
        failures: 0,
        dropped: 0,
        fromTag: batch.find((g) => g.lines.length > 0)?.firstTag,
      };
      this.#lastError = this.#failure.first;
      diag.error(
        `mltrail: journal write failed (${this.#failure.first}); records are kept in memory and retried`,
      );
    }
    this.#failure.failures++;
    // A partial write (disk full) may have left part of the batch, possibly a torn line: cut the segment
    // back to where it was, so the retry rewrites the batch whole in the same segment. If even that fails,
    // the retry starts a fresh segment and the reader reports the torn line where it is.
    let reuse = file === undefined;
    if (file !== undefined)
      reuse = await file.truncate(before).then(
        () => true,
        () => false,
      );
    await this.#file?.close().catch(() => undefined);
    this.#file = undefined;
    this.#advance = !reuse;
    const error = new Error(`mltrail: journal write failed: ${err.message}`);
    const keep: Group[] = [];
    for (const g of batch) {
      if (g.barrier) g.reject(error);
      else if (this.#failClosed) {
        g.reject(error);
        // The lines are still written when the disk recovers; their callers were told it failed.
        const retry = new Group(false);
        retry.firstTag = g.firstTag;
        retry.lines.push(...g.lines);
        keep.push(retry);
      } else keep.push(g);
    }
    // Appends made during this commit went to new groups behind the kept ones: order is preserved.
    this.#queue = [...keep, ...this.#queue];
    this.#queuedLines += lines;
    this.#retryMs = Math.min(this.#retryMs * 2, 5_000);
    // Reported once the lines are back in the queue, so the count says what is waiting.
    if (starts) this.#notify(this.#onFailed, this.#failure);
  }

  #view(f: { first: string; failures: number; dropped: number }): JournalFailure {
    return { error: f.first, failures: f.failures, dropped: f.dropped, pending: this.pending };
  }

  #notify(
    callback: ((failure: JournalFailure) => void) | undefined,
    f: { first: string; failures: number; dropped: number },
  ): void {
    try {
      callback?.(this.#view(f));
    } catch (err) {
      diag.error('mltrail: a journal failure callback threw', err);
    }
  }

  #recovered(): void {
    const f = this.#failure!;
    this.#failure = undefined;
    this.#retryMs = 50;
    diag.warn(`mltrail: journal writes recovered after ${f.failures} failed attempt(s)`);
    try {
      this.#onRecovered?.({ lostCount: f.dropped, error: f.first, failures: f.failures, fromTag: f.fromTag });
    } catch (err) {
      diag.error('mltrail: onRecovered callback threw', err);
    }
  }
}

/**
 * How a segment is opened: `a+` (append, and read its last byte when reopened) plus O_DSYNC where the
 * platform has it, so each write returns once its data is durable, as a write followed by fdatasync does,
 * in one call: one trip to the thread pool per commit instead of two (about 10–15% less CPU per commit on
 * the benchmark VM, where a commit costs a few hundred µs). Elsewhere `a+`, and the commit fdatasyncs.
 */
const SEGMENT_FLAGS: number | 'a+' =
  constants.O_DSYNC !== undefined
    ? constants.O_APPEND | constants.O_CREAT | constants.O_RDWR | constants.O_DSYNC
    : 'a+';

/** Bytes {@link probeJournalDir} writes: room for a first commit of a few dozen records. */
const PROBE_BYTES = 64 * 1024;

/**
 * Checks, synchronously, that a journal directory can take a write now: it is (or can be created as) a
 * directory, and a 64 KiB file can be created in it, written, fdatasync'd and removed. Returns what is
 * wrong (`EROFS: read-only file system, open '…'`, `ENOSPC: …`, `EFBIG: …`, `not a directory`), or
 * undefined. Used where a process must not start without a usable journal (fail-closed mode); it proves
 * nothing about later writes, which fail-closed mode checks call by call.
 */
export function probeJournalDir(dir: string): string | undefined {
  const errorText = (err: unknown) => (err instanceof Error ? errnoText(err) : String(err));
  try {
    const st = statSync(dir, { throwIfNoEntry: false });
    if (st !== undefined && !st.isDirectory()) return 'it exists and is not a directory';
    if (st === undefined) mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    // A recursive mkdir reports ENOENT for most failures; the last component alone says why (EROFS, EACCES).
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch (direct) {
      return errorText(direct);
    }
    return errorText(err);
  }
  const probe = join(dir, `.write-probe-${process.pid}`);
  let fd: number | undefined;
  try {
    fd = openSync(probe, 'w', 0o600);
    const block = Buffer.alloc(PROBE_BYTES, 10);
    // A short write (a nearly full disk, a file size limit) is a failure too: the space is not there.
    const n = writeSync(fd, block, 0, block.length);
    if (n < block.length)
      return `a ${PROBE_BYTES}-byte test write stored only ${n} bytes (disk nearly full or a file size limit)`;
    fsyncSync(fd);
    return undefined;
  } catch (err) {
    return errorText(err);
  } finally {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(probe);
    } catch {
      // never created, or the directory refuses the unlink too: nothing more to do
    }
  }
}

/** `CODE: message` of an I/O error, without repeating the code Node already put in the message. */
function errnoText(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  return err.message.startsWith(code) ? err.message : `${code}: ${err.message}`;
}

/** Whether a non-empty file ends with a newline (a torn last line from a crash does not). */
async function endsWithNewline(file: FileHandle, size: number): Promise<boolean> {
  const b = Buffer.alloc(1);
  await file.read(b, 0, 1, size - 1);
  return b[0] === 10;
}

/** fsyncs a directory so that entries just created in it survive a crash (best effort: not every OS allows it). */
function syncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some platforms cannot fsync a directory; the data itself is still fdatasync'd.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
