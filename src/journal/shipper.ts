import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { context, diag } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { type AuditRecord, parseRecordLine } from '../integrity/index.js';
import {
  ATTR_DEPLOYMENT_ENVIRONMENT_NAME,
  ATTR_ML_PIPELINE_NAME,
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_HASH,
  ATTR_MLTRAIL_PREV_HASH,
  ATTR_MLTRAIL_RECORD_VERSION,
  ATTR_MLTRAIL_SEQ,
  ATTR_SERVICE_NAME,
} from '../semconv/index.js';
import { EvidenceDir, EvidenceFileError } from '../sources/evidence-files.js';
import { listSegments } from '../sources/journal-reader.js';
import { resolveDir } from './journal-writer.js';

/** Options of {@link Shipper}. */
export interface ShipperOptions {
  /** Journal directory; defaults to MLTRAIL_DIR, then `./.mltrail`. */
  dir?: string;
  /**
   * OTLP/HTTP endpoint: a base URL (`/v1/logs` is appended) or, with OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, the full
   * logs URL. Defaults to those environment variables.
   */
  endpoint?: string;
  /** Extra headers (e.g. Authorization); defaults to OTEL_EXPORTER_OTLP_HEADERS. */
  headers?: Record<string, string>;
  /** Records per request (default 512). */
  batchSize?: number;
  /** How often to look for new records when caught up, in ms (default 250). */
  pollMs?: number;
  /** First retry delay in ms (default 200); it doubles per failed attempt, with jitter. */
  initialBackoffMs?: number;
  /** Backoff cap in ms (default 30 000); delivery never gives up. */
  maxBackoffMs?: number;
}

/** The persisted position of one endpoint: per segment (relative to the journal dir) what was acknowledged. */
interface Cursor {
  endpoint: string;
  segments: Record<string, SegmentCursor>;
}

/** Bytes and complete lines acknowledged in one segment (lines re-align the cursor if a segment is rewritten). */
interface SegmentCursor {
  offset: number;
  lines: number;
  /** The file's inode: a different one means the segment was replaced (rewritten) since. */
  ino?: number;
}

/** A batch read from the journal: the records and where each segment's cursor moves once it is acknowledged. */
interface Batch {
  records: AuditRecord[];
  segments: Record<string, SegmentCursor>;
}

/** What a delivery interrupted by {@link Shipper.stop} rejects with (the follow loop treats it as the end). */
class StoppedError extends Error {}

/** How a bounded final delivery ({@link Shipper.drainWithin}) ended. */
export type DrainOutcome = { shipped: number } | { timedOut: true } | { error: Error };

const SEVERITY: Record<string, number> = { DEBUG: 5, INFO: 9, WARN: 13, ERROR: 17 };

/** The logs URL and headers from options and the standard OTLP environment variables. */
export function otlpLogsTarget(opts: { endpoint?: string; headers?: Record<string, string> } = {}): {
  url: string | undefined;
  headers: Record<string, string>;
} {
  let url: string | undefined;
  if (opts.endpoint !== undefined)
    url = opts.endpoint.endsWith('/v1/logs') ? opts.endpoint : `${opts.endpoint.replace(/\/$/, '')}/v1/logs`;
  else if (process.env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) url = process.env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT;
  else if (process.env.OTEL_EXPORTER_OTLP_ENDPOINT)
    url = `${process.env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/$/, '')}/v1/logs`;
  const headers: Record<string, string> = {};
  for (const part of (
    process.env.OTEL_EXPORTER_OTLP_LOGS_HEADERS ??
    process.env.OTEL_EXPORTER_OTLP_HEADERS ??
    ''
  ).split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0)
      headers[decodeURIComponent(part.slice(0, eq).trim())] = decodeURIComponent(part.slice(eq + 1).trim());
  }
  return { url, headers: { ...headers, ...opts.headers } };
}

/**
 * Delivers journal records to an OTLP/HTTP endpoint (the collector) at least once: batches complete lines
 * from every chain's segments, POSTs them as OTLP/JSON log records (mapping in docs/internals.md), and
 * advances a cursor persisted in the journal directory only after a 2xx answer — so a restart resumes exactly
 * where it stopped and a crash re-sends at most one batch (duplicates are harmless: (chain, seq) identifies
 * a record). Failures back off exponentially with jitter, capped, and never give up.
 */
export class Shipper {
  readonly dir: string;
  readonly url: string;
  readonly #headers: Record<string, string>;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #initialBackoff: number;
  readonly #maxBackoff: number;
  readonly #cursorPath: string;
  readonly #lockPath: string;
  #locked = false;
  #cursor: Cursor;
  #running = false;
  #loop: Promise<void> | undefined;
  #abort = new AbortController();
  #draining: Promise<number> | undefined;
  /** Which chain goes first in the next batch, so one busy chain cannot starve the others. */
  #turn = 0;
  /** Records delivered (acknowledged) by this process. */
  shipped = 0;
  /** Failed delivery attempts. */
  failures = 0;
  /** Records the endpoint acknowledged but reported as rejected (OTLP partial success). */
  rejected = 0;
  /**
   * Files in the chain directories that are not regular files inside the journal (a FIFO, a device, a
   * link out of it), by path, with why: never opened or read, so never shipped.
   */
  readonly refused = new Map<string, string>();
  #files: EvidenceDir | undefined;
  /** The pid of the process shipping this journal to this endpoint instead of this one, if any. */
  lockedBy: number | undefined;

  constructor(opts: ShipperOptions = {}) {
    this.dir = resolveDir(opts.dir);
    const target = otlpLogsTarget(opts);
    if (target.url === undefined)
      throw new Error('mltrail shipper: no endpoint (set OTEL_EXPORTER_OTLP_ENDPOINT or pass one)');
    try {
      new URL(target.url);
    } catch {
      throw new Error(`mltrail shipper: the endpoint "${target.url}" is not a URL`);
    }
    this.url = target.url;
    this.#headers = { 'content-type': 'application/json', ...target.headers };
    this.#batchSize = opts.batchSize ?? 512;
    this.#pollMs = opts.pollMs ?? 250;
    this.#initialBackoff = opts.initialBackoffMs ?? 200;
    this.#maxBackoff = opts.maxBackoffMs ?? 30_000;
    this.#cursorPath = cursorFile(this.dir, this.url);
    this.#lockPath = this.#cursorPath.replace(/\.json$/, '.lock');
    this.#cursor = this.#loadCursor();
  }

  /**
   * One process ships a journal to an endpoint at a time: several processes may share a journal directory,
   * and two shippers would race on the cursor and send everything twice. The lock file holds the owner's
   * pid; the others skip their rounds until the owner is gone (closed, or dead: its lock is taken over).
   * Taking the lock re-reads the cursor, which the previous owner advanced.
   */
  #tryLock(): boolean {
    if (this.#locked) return true;
    mkdirSync(join(this.dir, 'shipper'), { recursive: true, mode: 0o700 });
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.#lockPath, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      let pid = Number.NaN;
      try {
        pid = Number(readFileSync(this.#lockPath, 'utf8').trim());
      } catch {
        // released meanwhile: try again
      }
      if (pid === process.pid) break;
      if (Number.isSafeInteger(pid) && pid > 0 && alive(pid)) {
        this.lockedBy = pid;
        return false;
      }
      rmSync(this.#lockPath, { force: true });
      if (attempt === 1) return false;
    }
    this.#locked = true;
    this.lockedBy = undefined;
    this.#cursor = this.#loadCursor();
    return true;
  }

  /** Stops (if following) and releases the lock, so another process's shipper takes over at once. */
  async close(): Promise<void> {
    await this.stop();
    if (!this.#locked) return;
    this.#locked = false;
    try {
      if (readFileSync(this.#lockPath, 'utf8').trim() === String(process.pid)) rmSync(this.#lockPath);
    } catch {
      // already gone
    }
  }

  /**
   * Ships everything in the journal now; resolves when caught up (retrying failures until they succeed).
   * Returns 0 without shipping while another live process ships this journal to this endpoint
   * ({@link Shipper.lockedBy}).
   */
  drain(): Promise<number> {
    // One drain at a time: a second call (a timer's round while a final drain runs, say) waits for the
    // first and then ships what is left, so no batch is sent twice by this process.
    const before = this.#draining;
    const run = (async () => {
      if (before !== undefined) await before.catch(() => undefined);
      return this.#drainNow();
    })();
    this.#draining = run;
    const done = () => {
      if (this.#draining === run) this.#draining = undefined;
    };
    run.then(done, done);
    return run;
  }

  /**
   * One bounded delivery for a finishing process: ships what the journal holds for at most `ms`
   * milliseconds, then stops and releases the lock whatever happened. An unreachable or refusing endpoint
   * is retried until then, never longer; what is not delivered stays in the journal behind the cursor, for
   * the next start or `mltrail ship --once`. Never rejects.
   *
   * @example
   * const outcome = await new Shipper({ dir }).drainWithin(30_000);
   * if (!('shipped' in outcome)) console.error('not delivered; run mltrail ship --once later');
   */
  async drainWithin(ms: number): Promise<DrainOutcome> {
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race<DrainOutcome>([
      this.drain().then(
        (shipped) => ({ shipped }),
        (err: unknown) => ({ error: err instanceof Error ? err : new Error(String(err)) }),
      ),
      new Promise<DrainOutcome>((resolve) => {
        timer = setTimeout(() => resolve({ timedOut: true }), ms);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    // Abandons a delivery still backing off (its timer would hold the process) and releases the lock.
    await this.close().catch(() => undefined);
    return outcome;
  }

  async #drainNow(): Promise<number> {
    if (!this.#tryLock()) return 0;
    let total = 0;
    for (;;) {
      const batch = this.#nextBatch();
      if (batch.records.length === 0) return total;
      await this.#deliver(batch.records);
      Object.assign(this.#cursor.segments, batch.segments);
      this.#saveCursor();
      this.shipped += batch.records.length;
      total += batch.records.length;
    }
  }

  /** Keeps shipping new records as they are appended, until {@link Shipper.stop}. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#abort = new AbortController();
    this.#loop = (async () => {
      while (this.#running) {
        try {
          const n = await this.drain();
          if (n === 0) await this.#sleep(this.#pollMs);
        } catch (err) {
          if (err instanceof StoppedError) break;
          diag.error('mltrail shipper: unexpected error', err);
          await this.#sleep(this.#pollMs).catch(() => undefined);
        }
      }
    })();
  }

  /**
   * Stops following; a delivery in flight or backing off is abandoned (its records were not acknowledged,
   * so the cursor has not moved and the next run sends them again). Safe to call twice.
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#abort.abort();
    await this.#loop;
  }

  #loadCursor(): Cursor {
    const empty: Cursor = { endpoint: this.url, segments: {} };
    let text: string;
    try {
      text = readFileSync(this.#cursorPath, 'utf8');
    } catch {
      return empty;
    }
    try {
      const raw = JSON.parse(text) as Partial<Cursor>;
      const segments: Record<string, SegmentCursor> = {};
      for (const [k, v] of Object.entries(raw.segments ?? {}))
        if (Number.isSafeInteger(v?.offset) && Number.isSafeInteger(v?.lines)) segments[k] = v;
      return { endpoint: this.url, segments };
    } catch (err) {
      // At-least-once makes starting over safe (the receiver sees duplicates, never a gap).
      const aside = `${this.#cursorPath}.corrupt`;
      diag.error(
        `mltrail shipper: the cursor ${this.#cursorPath} is unreadable (${(err as Error).message}); kept as ${aside}, shipping from the start`,
      );
      try {
        renameSync(this.#cursorPath, aside);
      } catch {
        // still start over
      }
      return empty;
    }
  }

  #nextBatch(): Batch {
    const batch: Batch = { records: [], segments: {} };
    const chains = listSegments(this.dir, (path, err) => {
      // One unreadable chain directory (a link loop, no permission) must not stop delivering the others.
      const why = `${path} cannot be read: ${err.message}`;
      if (!this.refused.has(path)) diag.error(`mltrail shipper: ${why}`);
      this.refused.set(path, why);
    });
    if (chains.length === 0) return batch;
    const first = this.#turn++ % chains.length;
    for (let i = 0; i < chains.length && batch.records.length < this.#batchSize; i++) {
      for (const file of chains[(first + i) % chains.length].files) {
        this.#readSegment(file, batch);
        if (batch.records.length >= this.#batchSize) break;
      }
    }
    return batch;
  }

  /** Adds the segment's unshipped complete lines to the batch (up to the batch size). */
  #readSegment(file: string, batch: Batch): void {
    const key = relative(this.dir, file);
    let fd: number;
    try {
      // The journal's file rules: a FIFO would hang the shipper, a link out of the journal would ship
      // someone else's file.
      this.#files ??= new EvidenceDir(this.dir);
      fd = this.#files.open(file);
    } catch (err) {
      if (err instanceof EvidenceFileError) {
        if (!this.refused.has(file)) diag.error(`mltrail shipper: ${err.message}`);
        this.refused.set(file, err.message);
      } else diag.warn(`mltrail shipper: cannot open ${file}: ${(err as Error).message}`);
      return;
    }
    try {
      const st = fstatSync(fd);
      const size = st.size;
      let { offset, lines } = this.#aligned(
        fd,
        st,
        this.#cursor.segments[key] ?? { offset: 0, lines: 0 },
        file,
      );
      if (size <= offset) return;
      const moved = offset;
      // Read in chunks sized to what the batch still needs (not the whole segment every time).
      let chunk = 256 * 1024;
      while (offset < size && batch.records.length < this.#batchSize) {
        const buf = Buffer.allocUnsafe(Math.min(size - offset, chunk));
        const n = readSync(fd, buf, 0, buf.length, offset);
        let start = 0;
        while (batch.records.length < this.#batchSize) {
          const nl = buf.indexOf(10, start);
          if (nl < 0 || nl >= n) break;
          const text = buf.toString('utf8', start, nl);
          lines++;
          try {
            batch.records.push(parseRecordLine(text, { file, line: lines }));
          } catch (err) {
            // Never stall delivery on one bad line; verify reports it with its location.
            diag.error(`mltrail shipper: skipping line ${lines} of ${file} (byte ${offset + start})`, err);
          }
          start = nl + 1;
        }
        if (start === 0) {
          // No complete line in this chunk: a torn tail (wait for it) or a line longer than the chunk.
          if (n < chunk) break;
          chunk *= 4;
          continue;
        }
        offset += start;
      }
      if (offset > moved) batch.segments[key] = { offset, lines, ino: st.ino };
    } finally {
      closeSync(fd);
    }
  }

  /**
   * The cursor position, checked against the file: a segment rewritten since (e.g. by `mltrail erase`, which
   * replaces the file with one whose erased body is a short tombstone) shifts byte offsets, so the position is
   * re-derived from the line count when the file is not the same inode or the offset is off a line boundary.
   */
  #aligned(fd: number, st: { size: number; ino: number }, at: SegmentCursor, file: string): SegmentCursor {
    if (at.offset === 0) return { offset: 0, lines: 0, ino: st.ino };
    const prev = Buffer.alloc(1);
    if (
      (at.ino === undefined || at.ino === st.ino) &&
      at.offset <= st.size &&
      readSync(fd, prev, 0, 1, at.offset - 1) === 1 &&
      prev[0] === 10
    )
      return { ...at, ino: st.ino };
    let offset = 0;
    let lines = 0;
    const buf = Buffer.allocUnsafe(Math.min(st.size, 64 * 1024 * 1024));
    const n = readSync(fd, buf, 0, buf.length, 0);
    while (lines < at.lines) {
      const nl = buf.indexOf(10, offset);
      if (nl < 0 || nl >= n) break;
      offset = nl + 1;
      lines++;
    }
    diag.warn(`mltrail shipper: ${file} was rewritten; resuming after line ${lines} (byte ${offset})`);
    return { offset, lines, ino: st.ino };
  }

  async #deliver(records: AuditRecord[]): Promise<void> {
    const body = JSON.stringify(toOtlp(records));
    let backoff = Math.min(this.#initialBackoff, this.#maxBackoff);
    for (;;) {
      if (this.#abort.signal.aborted) throw new StoppedError();
      try {
        const res = await context.with(suppressTracing(context.active()), () =>
          fetch(this.url, { method: 'POST', headers: this.#headers, body, signal: this.#abort.signal }),
        );
        if (res.ok) {
          this.#partialSuccess(await res.text().catch(() => ''));
          return;
        }
        const text = await res.text().catch(() => '');
        diag.warn(`mltrail shipper: ${this.url} answered ${res.status} ${text.slice(0, 200)}; retrying`);
      } catch (err) {
        if (this.#abort.signal.aborted) throw new StoppedError();
        diag.warn(`mltrail shipper: ${this.url} unreachable (${(err as Error).message}); retrying`);
      }
      this.failures++;
      // Full jitter in the upper half: spread retries of many shippers, never retry immediately.
      await this.#sleep(backoff / 2 + Math.random() * (backoff / 2));
      backoff = Math.min(backoff * 2, this.#maxBackoff);
    }
  }

  /** An OTLP 2xx may still reject some records (partial success): that is reported, never silent. */
  #partialSuccess(text: string): void {
    if (!text.includes('rejected')) return;
    try {
      const ps = (
        JSON.parse(text) as {
          partialSuccess?: { rejectedLogRecords?: string | number; errorMessage?: string };
        }
      ).partialSuccess;
      const n = Number(ps?.rejectedLogRecords ?? 0);
      if (n > 0) {
        this.rejected += n;
        diag.error(`mltrail shipper: ${this.url} rejected ${n} record(s): ${ps?.errorMessage ?? ''}`);
      }
    } catch {
      // not JSON: nothing to report
    }
  }

  #sleep(ms: number): Promise<void> {
    const signal = this.#abort.signal;
    return new Promise((resolve, reject) => {
      if (signal.aborted) return reject(new StoppedError());
      const t = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(new StoppedError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  #saveCursor(): void {
    mkdirSync(join(this.dir, 'shipper'), { recursive: true, mode: 0o700 });
    const tmp = `${this.#cursorPath}.tmp`;
    // fsync before the rename: after a crash the cursor is the old one or the new one, never empty.
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, JSON.stringify(this.#cursor));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, this.#cursorPath);
  }
}

/** Whether a process exists (EPERM: it does, owned by someone else). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Where a shipper keeps its cursor for an endpoint: `<dir>/shipper/cursor-<sha256(url)[0..16]>.json`. */
export function cursorFile(dir: string, url: string): string {
  return join(dir, 'shipper', `cursor-${createHash('sha256').update(url).digest('hex').slice(0, 16)}.json`);
}

type AnyValue =
  | { stringValue: string }
  | { intValue: string }
  | { doubleValue: number }
  | { boolValue: boolean }
  | { arrayValue: { values: AnyValue[] } };

function anyValue(v: string | number | boolean | string[]): AnyValue {
  if (Array.isArray(v)) return { arrayValue: { values: v.map((x) => ({ stringValue: x })) } };
  if (typeof v === 'string') return { stringValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v };
}

function firstBodyValue(list: readonly AuditRecord[], key: string): string | undefined {
  const needle = `${JSON.stringify(key)}:`;
  for (const r of list) {
    if (!r.body.includes(needle)) continue;
    try {
      const v = (JSON.parse(r.body) as Record<string, unknown>)[key];
      if (typeof v === 'string') return v;
    } catch {
      // an unparseable body: try the next record
    }
  }
  return undefined;
}

/** An ISO time as OTLP nanoseconds; '0' (unknown) when there is none or it does not parse. */
function unixNano(ts: string): string {
  const ms = Date.parse(ts);
  return Number.isFinite(ms) ? String(BigInt(ms) * 1_000_000n) : '0';
}

/** Maps journal records to an OTLP/JSON ExportLogsServiceRequest, one resource per chain. */
export function toOtlp(records: readonly AuditRecord[]): unknown {
  const byChain = new Map<string, AuditRecord[]>();
  for (const r of records) {
    const list = byChain.get(r.chain) ?? [];
    list.push(r);
    byChain.set(r.chain, list);
  }
  return {
    resourceLogs: [...byChain.values()].map((list) => {
      const resource: { key: string; value: AnyValue }[] = [];
      const svc = /"service\.name":"((?:[^"\\]|\\.)*)"/.exec(
        list.find((r) => r.body.includes('"service.name"'))?.body ?? '',
      );
      const env = /"deployment\.environment\.name":"((?:[^"\\]|\\.)*)"/.exec(
        list.find((r) => r.body.includes('"deployment.environment.name"'))?.body ?? '',
      );
      resource.push({
        key: ATTR_SERVICE_NAME,
        value: { stringValue: svc !== null ? JSON.parse(`"${svc[1]}"`) : 'mltrail' },
      });
      if (env !== null)
        resource.push({
          key: ATTR_DEPLOYMENT_ENVIRONMENT_NAME,
          value: { stringValue: JSON.parse(`"${env[1]}"`) },
        });
      // The pipeline is the third Loki index label, and Loki only indexes resource attributes: lift it from
      // the first body that names it (it is constant per chain: one process, one trail).
      const pipeline = firstBodyValue(list, ATTR_ML_PIPELINE_NAME);
      if (pipeline !== undefined)
        resource.push({ key: ATTR_ML_PIPELINE_NAME, value: { stringValue: pipeline } });
      return {
        resource: { attributes: resource },
        scopeLogs: [
          {
            scope: { name: 'mltrail' },
            // Format 2 records read event, time, severity, trace ids and lookup attributes from the body
            // (parseRecordLine derives them), so none of them can disagree with the evidence. An erased
            // format 2 record has none: its time is left unknown (0).
            logRecords: list.map((r) => ({
              timeUnixNano: unixNano(r.ts),
              severityNumber: SEVERITY[r.sev] ?? 0,
              severityText: r.sev,
              eventName: r.event,
              body: { stringValue: r.body },
              ...(r.trace_id !== undefined ? { traceId: r.trace_id } : {}),
              ...(r.span_id !== undefined ? { spanId: r.span_id } : {}),
              attributes: [
                ...Object.entries(r.attrs).map(([key, v]) => ({ key, value: anyValue(v) })),
                { key: 'event.name', value: { stringValue: r.event } },
                { key: ATTR_MLTRAIL_CHAIN_ID, value: { stringValue: r.chain } },
                { key: ATTR_MLTRAIL_SEQ, value: { intValue: String(r.seq) } },
                { key: ATTR_MLTRAIL_PREV_HASH, value: { stringValue: r.prev } },
                { key: ATTR_MLTRAIL_HASH, value: { stringValue: r.hash } },
                { key: ATTR_MLTRAIL_BODY_DIGEST, value: { stringValue: r.digest } },
                { key: ATTR_MLTRAIL_RECORD_VERSION, value: { intValue: String(r.v) } },
              ],
            })),
          },
        ],
      };
    }),
  };
}
