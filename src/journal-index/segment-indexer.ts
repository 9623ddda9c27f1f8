import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { diag } from '@opentelemetry/api';
import { buildSealed } from './index-builder.js';

/** Segments smaller than this are indexed on this thread (after the current event-loop turn). */
const SMALL_SEGMENT = 1 << 20;

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/**
 * Indexes the segments a journal writer seals, off the request path: on a worker thread (one, started on
 * the first seal and unref'd, so it never keeps the host alive), or — when running from the TypeScript
 * sources, where there is no compiled worker — on this thread after the current event-loop turn. A failed
 * build is reported with `diag` and costs nothing else: readers scan a segment without an index, and
 * `mltrail index` builds it later.
 */
export class SegmentIndexer {
  readonly dir: string;
  #worker: Worker | undefined;
  #workerFailed = false;
  #next = 0;
  readonly #pending = new Map<number, { segment: string; done: Promise<void>; resolve: () => void }>();
  /** Segments indexed, and builds that failed. */
  built = 0;
  failed = 0;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Queues the index build of a segment that will not change any more (or of its current prefix). */
  seal(segment: string): void {
    const id = this.#next++;
    let resolve!: () => void;
    const done = new Promise<void>((r) => {
      resolve = r;
    });
    this.#pending.set(id, { segment, done, resolve });
    // A small segment (a short-lived process's, or the access journal's) is indexed in a few milliseconds:
    // not worth starting a thread for.
    const worker = sizeOf(segment) < SMALL_SEGMENT ? undefined : this.#startWorker();
    if (worker !== undefined) {
      worker.ref();
      worker.postMessage({ id, dir: this.dir, segment });
      return;
    }
    setImmediate(() => {
      try {
        buildSealed(this.dir, segment);
        this.built++;
      } catch (err) {
        this.#report(segment, (err as Error).message);
      }
      this.#settle(id);
    });
  }

  /** Resolves when every queued build has finished (or failed). */
  async idle(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending.values()].map((p) => p.done));
  }

  /** Waits for queued builds, then stops the worker. Safe to call twice. */
  async close(): Promise<void> {
    await this.idle();
    const w = this.#worker;
    this.#worker = undefined;
    await w?.terminate();
  }

  #settle(id: number): void {
    const job = this.#pending.get(id);
    this.#pending.delete(id);
    job?.resolve();
    if (this.#pending.size === 0) this.#worker?.unref();
  }

  #report(segment: string, message: string): void {
    this.failed++;
    diag.warn(
      `mltrail: could not index ${segment} (${message}); readers scan it until "mltrail index" builds it`,
    );
  }

  #startWorker(): Worker | undefined {
    if (this.#worker !== undefined || this.#workerFailed) return this.#worker;
    const url = new URL('./index-worker.js', import.meta.url);
    if (url.protocol !== 'file:' || !existsSync(fileURLToPath(url))) {
      this.#workerFailed = true;
      return undefined;
    }
    try {
      const w = new Worker(url);
      w.on('message', (m: { id: number; file?: string; error?: string }) => {
        if (m.error !== undefined) this.#report(this.#pending.get(m.id)?.segment ?? '', m.error);
        else this.built++;
        this.#settle(m.id);
      });
      w.on('error', (err) => {
        // Builds still queued in the dead worker settle as failed; later seals build on this thread.
        this.#workerFailed = true;
        this.#worker = undefined;
        for (const [id, job] of [...this.#pending]) {
          this.#report(job.segment, err.message);
          this.#settle(id);
        }
      });
      w.unref();
      this.#worker = w;
      return w;
    } catch {
      this.#workerFailed = true;
      return undefined;
    }
  }
}
