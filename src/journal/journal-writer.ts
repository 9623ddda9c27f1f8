import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { join } from 'node:path';
import { type Counter, diag } from '@opentelemetry/api';

/** Options of {@link JournalWriter}. */
export interface JournalWriterOptions {
  /** Journal directory; defaults to MLTRAIL_DIR, then `./.mltrail`. */
  dir?: string;
  /** The chain this writer owns; its segments live in `<dir>/chains/<chainId>/`. */
  chainId: string;
  /** One write + fdatasync covers everything appended within this many ms (default 2). */
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
  #queue: Group[] = [];
  /** Encoding buffer reused by every commit. */
  #scratch = Buffer.allocUnsafe(64 * 1024);
  /** Lines waiting in #queue (for the in-memory bound). */
  #queuedLines = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #file: FileHandle | undefined;
  #segment = 0;
  #segmentSize = 0;
  /** The next open starts a new segment (rotation, or a segment a failed write could not be cut back). */
  #advance = false;
  #closed = false;
  #failure: { first: string; failures: number; dropped: number; fromTag?: number } | undefined;
  #retryMs = 50;
  /** Number of fdatasync calls made (group commit makes this much smaller than the number of lines). */
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
    this.#groupCommitMs = opts.groupCommitMs ?? 2;
    this.#segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    this.#maxBuffered = opts.maxBufferedLines ?? 100_000;
    this.#failClosed = opts.failClosed === true;
    this.#writeErrors = opts.writeErrors;
    this.#onRecovered = opts.onRecovered;
  }

  /**
   * Buffers one line (without its newline); resolves when it is durable. Never throws. `tag` (the AuditLog
   * passes the record's seq) is handed back in {@link JournalGap.fromTag} if an outage begins at this line.
   */
  append(line: string, tag?: number): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`mltrail: journal ${this.#chainDir} is closed`));
    if (this.#failure !== undefined && this.#queuedLines >= this.#maxBuffered) {
      this.#failure.dropped++;
      this.dropped++;
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

  /** Flushes and closes the current segment. Safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
    } catch (err) {
      diag.error(`mltrail: closing the journal with ${this.#queuedLines} unwritten record(s)`, err);
    } finally {
      this.#closed = true;
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      await this.#file?.close().catch(() => undefined);
      this.#file = undefined;
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
      await file.datasync();
      this.syncs++;
    } catch (err) {
      await this.#fail(err as Error, batch, lines, file, before);
      return;
    }
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
    // a+: appends, and reads the last byte of a reopened segment.
    const file = await open(path, 'a+', 0o600);
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
    if (this.#failure === undefined) {
      this.#failure = {
        first: `${(err as NodeJS.ErrnoException).code ?? 'EIO'}: ${err.message}`,
        failures: 0,
        dropped: 0,
        fromTag: batch.find((g) => g.lines.length > 0)?.firstTag,
      };
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
