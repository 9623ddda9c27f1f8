import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import {
  BELL,
  Control,
  FIELDS,
  MIN_CHECKED_LINE,
  type SharedBuffers,
  SLOT_INTS,
  SLOTS,
  State,
} from './line-check-protocol.js';
import { RUN_FIELDS } from './line-checker-core.js';

/** How long to wait for the worker before checking its lines on this thread instead (it never takes this long). */
const STALL_MS = 30_000;

/**
 * Checks journal lines on a second thread (`mltrail verify` on a large journal). What a line's own checks
 * need — parsing, the body digest, the attrs, the record hash — is independent of every other line; the
 * verifier then only links each result to its chain, in order. Two job slots, each with its data and
 * results in shared memory: the caller fills one while the worker checks the other. Synchronous for the
 * caller (the threads meet with `Atomics.wait`). If the worker cannot start or fails, the caller checks
 * the lines itself: results never depend on it.
 */
export class LineChecker {
  /** Per slot: the lines (the caller copies them in), and the results. */
  readonly data: Buffer[];
  readonly fields: Float64Array[];
  readonly sums: Uint8Array[];
  /** Runs of the worker's results and their Merkle block roots (see foldRuns). */
  readonly runs: Float64Array[];
  readonly roots: Uint8Array[];
  /** Results a slot has room for. */
  readonly capacity: number;
  readonly #control: Int32Array;
  readonly #worker: Worker;
  #failed = false;
  #jobs = 0;

  private constructor(url: URL, bytes: number) {
    this.capacity = Math.floor(bytes / MIN_CHECKED_LINE) + 1;
    const shared: SharedBuffers = {
      control: new SharedArrayBuffer((BELL + 1) * 4),
      data: [],
      fields: [],
      sums: [],
      runs: [],
      roots: [],
    };
    for (let s = 0; s < SLOTS; s++) {
      shared.data.push(new SharedArrayBuffer(bytes));
      shared.fields.push(new SharedArrayBuffer(this.capacity * FIELDS * 8));
      shared.sums.push(new SharedArrayBuffer(this.capacity * 64));
      shared.runs.push(new SharedArrayBuffer(this.capacity * RUN_FIELDS * 8));
      shared.roots.push(new SharedArrayBuffer(this.capacity * 32));
    }
    this.#control = new Int32Array(shared.control);
    this.data = shared.data.map((b) => Buffer.from(b));
    this.fields = shared.fields.map((b) => new Float64Array(b));
    this.sums = shared.sums.map((b) => new Uint8Array(b));
    this.runs = shared.runs.map((b) => new Float64Array(b));
    this.roots = shared.roots.map((b) => new Uint8Array(b));
    this.#worker = new Worker(url, { workerData: shared });
    this.#worker.unref();
    // An error the worker could not catch (it could not load): its lines are checked here.
    this.#worker.on('error', () => this.#fail());
  }

  /**
   * A checker with slots of `bytes`, or undefined where a second thread would not help (one CPU) or
   * cannot run (no compiled worker next to this module, as when running from the TypeScript sources).
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

  get failed(): boolean {
    return this.#failed;
  }

  /**
   * Starts checking the lines `data[slot][start, end)` (possibly none). A slot is waited for before it is
   * filled again.
   */
  submit(slot: number, start: number, end: number): void {
    const at = slot * SLOT_INTS;
    this.#control[at + Control.Start] = start;
    this.#control[at + Control.End] = end;
    this.#control[at + Control.Seq] = ++this.#jobs;
    Atomics.store(this.#control, at + Control.State, State.Job);
    this.#ring();
  }

  /**
   * Waits for a slot and returns how many lines were checked (entries in its fields/sums, in line order),
   * or -1 when the worker failed: the caller then checks those lines itself.
   */
  wait(slot: number): number {
    const at = slot * SLOT_INTS;
    const started = performance.now();
    for (;;) {
      const state = Atomics.load(this.#control, at + Control.State);
      if (state === State.Done) {
        this.#control[at + Control.State] = State.Idle;
        return this.#control[at + Control.Count];
      }
      if (state !== State.Job || this.#failed || performance.now() - started > STALL_MS) {
        this.#fail();
        return -1;
      }
      Atomics.wait(this.#control, at + Control.State, State.Job, 1000);
    }
  }

  /** Runs the worker found in the slot's last job. */
  runCount(slot: number): number {
    return this.#control[slot * SLOT_INTS + Control.Runs];
  }

  /** Milliseconds the worker spent on the slot's last job. */
  elapsed(slot: number): number {
    return this.#control[slot * SLOT_INTS + Control.Elapsed] / 1000;
  }

  /** Stops the worker. */
  close(): void {
    for (let s = 0; s < SLOTS; s++) Atomics.store(this.#control, s * SLOT_INTS + Control.State, State.Exit);
    this.#ring();
    void this.#worker.terminate();
  }

  #ring(): void {
    Atomics.add(this.#control, BELL, 1);
    Atomics.notify(this.#control, BELL);
  }

  #fail(): void {
    if (this.#failed) return;
    this.#failed = true;
    void this.#worker.terminate();
  }
}
