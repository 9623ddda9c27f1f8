import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { context, diag } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { type AuditRecord, parseRecordLine } from '../integrity/index.js';
import {
  ATTR_DEPLOYMENT_ENVIRONMENT_NAME,
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_HASH,
  ATTR_MLTRAIL_PREV_HASH,
  ATTR_MLTRAIL_SEQ,
  ATTR_SERVICE_NAME,
} from '../semconv/index.js';
import { listSegments } from './journal-reader.js';
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
  /** Backoff cap in ms (default 30 000); backoff starts at 200 ms and never gives up. */
  maxBackoffMs?: number;
}

interface Cursor {
  endpoint: string;
  /** Byte offset shipped so far, per segment path relative to the journal dir. */
  offsets: Record<string, number>;
}

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
  readonly #maxBackoff: number;
  readonly #cursorPath: string;
  #cursor: Cursor;
  #running = false;
  #loop: Promise<void> | undefined;
  /** Records delivered (acknowledged) by this process. */
  shipped = 0;
  /** Failed delivery attempts. */
  failures = 0;

  constructor(opts: ShipperOptions = {}) {
    this.dir = resolveDir(opts.dir);
    const target = otlpLogsTarget(opts);
    if (target.url === undefined)
      throw new Error('mltrail shipper: no endpoint (set OTEL_EXPORTER_OTLP_ENDPOINT or pass one)');
    this.url = target.url;
    this.#headers = { 'content-type': 'application/json', ...target.headers };
    this.#batchSize = opts.batchSize ?? 512;
    this.#pollMs = opts.pollMs ?? 250;
    this.#maxBackoff = opts.maxBackoffMs ?? 30_000;
    const id = createHash('sha256').update(this.url).digest('hex').slice(0, 16);
    this.#cursorPath = join(this.dir, 'shipper', `cursor-${id}.json`);
    this.#cursor = existsSync(this.#cursorPath)
      ? (JSON.parse(readFileSync(this.#cursorPath, 'utf8')) as Cursor)
      : { endpoint: this.url, offsets: {} };
  }

  /** Ships everything in the journal now; resolves when caught up (retrying failures until they succeed). */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const batch = this.#nextBatch();
      if (batch.records.length === 0) return total;
      await this.#deliver(batch.records);
      for (const [seg, off] of Object.entries(batch.offsets)) this.#cursor.offsets[seg] = off;
      this.#saveCursor();
      this.shipped += batch.records.length;
      total += batch.records.length;
    }
  }

  /** Keeps shipping new records as they are appended, until {@link Shipper.stop}. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = (async () => {
      while (this.#running) {
        try {
          const n = await this.drain();
          if (n === 0) await sleep(this.#pollMs);
        } catch (err) {
          diag.error('mltrail shipper: unexpected error', err);
          await sleep(this.#pollMs);
        }
      }
    })();
  }

  /** Stops after the batch in flight; safe to call twice. */
  async stop(): Promise<void> {
    this.#running = false;
    await this.#loop;
  }

  #nextBatch(): { records: AuditRecord[]; offsets: Record<string, number> } {
    const records: AuditRecord[] = [];
    const offsets: Record<string, number> = {};
    for (const { files } of listSegments(this.dir)) {
      for (const file of files) {
        const key = relative(this.dir, file);
        const from = this.#cursor.offsets[key] ?? 0;
        const fd = openSync(file, 'r');
        try {
          const size = fstatSync(fd).size;
          if (size <= from) continue;
          const buf = Buffer.alloc(Math.min(size - from, 8 * 1024 * 1024));
          const n = readSync(fd, buf, 0, buf.length, from);
          let start = 0;
          while (records.length < this.#batchSize) {
            const nl = buf.indexOf(10, start);
            if (nl < 0 || nl >= n) break;
            const line = buf.toString('utf8', start, nl);
            start = nl + 1;
            try {
              records.push(parseRecordLine(line, { file, line: 0 }));
            } catch (err) {
              diag.error(
                `mltrail shipper: skipping a malformed line in ${file} at byte ${from + start}`,
                err,
              );
            }
          }
          if (start > 0) offsets[key] = from + start;
        } finally {
          closeSync(fd);
        }
        if (records.length >= this.#batchSize) return { records, offsets };
      }
    }
    return { records, offsets };
  }

  async #deliver(records: AuditRecord[]): Promise<void> {
    const body = JSON.stringify(toOtlp(records));
    let backoff = 200;
    for (;;) {
      try {
        const res = await context.with(suppressTracing(context.active()), () =>
          fetch(this.url, { method: 'POST', headers: this.#headers, body }),
        );
        if (res.ok) {
          await res.arrayBuffer().catch(() => undefined);
          return;
        }
        const text = await res.text().catch(() => '');
        diag.warn(`mltrail shipper: ${this.url} answered ${res.status} ${text.slice(0, 200)}; retrying`);
      } catch (err) {
        diag.warn(`mltrail shipper: ${this.url} unreachable (${(err as Error).message}); retrying`);
      }
      this.failures++;
      await sleep(backoff / 2 + Math.random() * (backoff / 2));
      backoff = Math.min(backoff * 2, this.#maxBackoff);
    }
  }

  #saveCursor(): void {
    mkdirSync(join(this.dir, 'shipper'), { recursive: true, mode: 0o700 });
    const tmp = `${this.#cursorPath}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.#cursor), { mode: 0o600 });
    renameSync(tmp, this.#cursorPath);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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
      return {
        resource: { attributes: resource },
        scopeLogs: [
          {
            scope: { name: 'mltrail' },
            logRecords: list.map((r) => ({
              timeUnixNano: String(BigInt(Date.parse(r.ts)) * 1_000_000n),
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
              ],
            })),
          },
        ],
      };
    }),
  };
}
