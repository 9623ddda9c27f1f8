import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Control, FIELDS, MIN_CHECKED_LINE, type SharedBuffers, State } from './line-check-protocol.js';

/** How long to wait for the worker before checking its lines on this thread instead (it never takes this long). */
const STALL_MS = 30_000;

/**
 * Checks journal lines on a second thread while the reading thread handles the others (`mltrail verify`
 * on a large journal). What a line's own checks need — parsing, the body digest, the attrs, the record hash
 * — is independent of every other line; the verifier then only links each result to its chain in order.
 * Synchronous for the caller: lines go through shared memory and the threads meet with `Atomics.wait`.
 * If the worker cannot start or fails, the caller checks the lines itself: results never depend on it.
 */
export class LineChecker {
  /** The submitted lines, copied. */
  readonly data: Buffer;
  /** {@link FIELDS} numbers per checked line (see line-check-protocol). */
  readonly fields: Float64Array;
  /** Record hash and body digest, 64 bytes per checked line. */
  readonly sums: Uint8Array;
  readonly #control: Int32Array;
  readonly #worker: Worker;
  #failed = false;

  private constructor(url: URL, bytes: number) {
    const capacity = Math.floor(bytes / MIN_CHECKED_LINE) + 1;
    const shared: SharedBuffers = {
      control: new SharedArrayBuffer(4 * 4),
      data: new SharedArrayBuffer(bytes),
      fields: new SharedArrayBuffer(capacity * FIELDS * 8),
      sums: new SharedArrayBuffer(capacity * 64),
    };
    this.#control = new Int32Array(shared.control);
    this.data = Buffer.from(shared.data);
    this.fields = new Float64Array(shared.fields);
    this.sums = new Uint8Array(shared.sums);
    this.#worker = new Worker(url, { workerData: shared });
    this.#worker.unref();
    // An error the worker could not catch (it could not load): its lines are checked here.
    this.#worker.on('error', () => this.#fail());
  }

  /**
   * A checker with room for `bytes` of lines per job, or undefined where a second thread would not help
   * (one CPU) or cannot run (no compiled worker next to this module, as when running from the sources).
   */
  static start(bytes: number): LineChecker | undefined {
    if (availableParallelism() < 2) return undefined;
    const url = new URL('./line-check-worker.js', import.meta.url);
    if (url.protocol !== 'file:' || !existsSync(fileURLToPath(url))) return undefined;
    try {
      return new LineChecker(url, bytes);
    } catch {
      return undefined;
    }
  }

  /** Starts checking `buf[start, end)` (whole lines). False when it does not fit or the worker failed. */
  submit(buf: Buffer, start: number, end: number): boolean {
    if (this.#failed || end - start > this.data.length) return false;
    buf.copy(this.data, 0, start, end);
    this.#control[Control.End] = end - start;
    Atomics.store(this.#control, Control.State, State.Job);
    Atomics.notify(this.#control, Control.State);
    return true;
  }

  /** Milliseconds the worker spent on the last job it finished. */
  get elapsed(): number {
    return this.#control[Control.Elapsed] / 1000;
  }

  /**
   * Waits for the submitted lines and returns how many were checked (their entries in `fields`/`sums`, in
   * line order), or -1 when the worker failed: then the caller checks those lines itself.
   */
  wait(): number {
    const started = performance.now();
    for (;;) {
      const state = Atomics.load(this.#control, Control.State);
      if (state === State.Done) {
        this.#control[Control.State] = State.Idle;
        return this.#control[Control.Count];
      }
      if (state !== State.Job || this.#failed) {
        this.#fail();
        return -1;
      }
      if (performance.now() - started > STALL_MS) {
        this.#fail();
        return -1;
      }
      Atomics.wait(this.#control, Control.State, State.Job, 1000);
    }
  }

  /** Stops the worker. */
  close(): void {
    Atomics.store(this.#control, Control.State, State.Exit);
    Atomics.notify(this.#control, Control.State);
    void this.#worker.terminate();
  }

  #fail(): void {
    if (this.#failed) return;
    this.#failed = true;
    void this.#worker.terminate();
  }
}
