import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zstdDecompressSync } from 'node:zlib';
import { parse, stringify } from 'yaml';
import { canonicalize } from '../../src/integrity/index.js';
import { AuditLog } from '../../src/journal/index.js';
import {
  ATTR_ML_PREDICTION_ID,
  ATTR_ML_PREDICTION_LATENCY_MS,
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_SEQ,
  ATTR_SERVICE_NAME,
  EVENT_ML_PREDICTION,
} from '../../src/semconv/index.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const collectorBinary = join(root, 'collector', '_build', 'mltrail-collector');
export const productionConfig = join(root, 'collector', 'config.yaml');

/** Whether the built collector is here; under CI=true its absence is a failure, not a skip. */
export function collectorAvailable(): boolean {
  const ok = existsSync(collectorBinary);
  if (!ok && process.env.CI === 'true')
    throw new Error(`${collectorBinary} is missing: run "npm run collector:build"`);
  return ok;
}

export const collectorSkipReason = 'the collector binary is not built (npm run collector:build)';

/** A free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** A running collector with the production pipeline, file exporters standing in for Loki/Tempo/Prometheus. */
export interface TestCollector {
  dir: string;
  httpEndpoint: string;
  token: string;
  /** Audit log archive (OTLP JSON lines). */
  archive: string;
  traces: string;
  configPath: string;
  env: Record<string, string>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
}

/**
 * Writes the test config — collector/config.yaml with every network exporter replaced by an uncompressed
 * file exporter in a temp dir — and starts the real binary on free loopback ports. With
 * `archive: 'production'` the audit archive keeps the production exporter settings (rotation, zstd; only
 * the path moves into the temp dir), which crash tests need: the buffered test exporter loses what it holds
 * in memory when the process is killed, the production one does not.
 */
export async function startTestCollector(
  opts: {
    dir?: string;
    archive?: 'buffered' | 'production';
    /**
     * Keep the production Loki exporter (its fsync'd persistent queue and retries) and point it at this OTLP
     * base URL, e.g. a test server playing Loki; it sends JSON so the test can read what arrives.
     */
    loki?: string;
  } = {},
): Promise<TestCollector> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mltrail-collector-'));
  const config = parse(readFileSync(productionConfig, 'utf8'));
  const production = opts.archive === 'production';
  const archive = production ? join(dir, 'archive', 'audit.jsonl') : join(dir, 'archive.jsonl');
  if (production) mkdirSync(join(dir, 'archive'), { recursive: true });
  const traces = join(dir, 'traces.jsonl');
  const loki = config.exporters['otlp_http/loki'];
  config.exporters = {
    ...(opts.loki !== undefined
      ? { 'otlp_http/loki': { ...loki, endpoint: opts.loki, encoding: 'json' } }
      : {}),
    'file/archive': production
      ? { ...config.exporters['file/archive'], path: archive }
      : { path: archive, format: 'json', flush_interval: '100ms' },
    'file/traces': { path: traces, format: 'json', flush_interval: '100ms' },
    'file/metrics': { path: join(dir, 'metrics.jsonl'), format: 'json', flush_interval: '100ms' },
  };
  config.service.pipelines.logs.exporters =
    opts.loki !== undefined ? ['otlp_http/loki', 'file/archive'] : ['file/archive'];
  config.service.pipelines.traces.exporters = ['file/traces'];
  config.service.pipelines.metrics.exporters = ['file/metrics'];
  config.service.telemetry = { logs: { level: 'warn' }, metrics: { level: 'none' } };
  const configPath = join(dir, 'test-config.yaml');
  writeFileSync(configPath, stringify(config));
  let [grpc, http, health] = [await freePort(), await freePort(), await freePort()];
  const token = 'test-token-0123456789';
  const env = {
    MLTRAIL_COLLECTOR_TOKEN: token,
    MLTRAIL_OTLP_GRPC_ENDPOINT: `127.0.0.1:${grpc}`,
    MLTRAIL_OTLP_HTTP_ENDPOINT: `127.0.0.1:${http}`,
    MLTRAIL_HEALTH_ENDPOINT: `127.0.0.1:${health}`,
    MLTRAIL_STORAGE_DIR: join(dir, 'queue'),
  };
  let child: ChildProcess | undefined;
  const c: TestCollector = {
    dir,
    httpEndpoint: `http://127.0.0.1:${http}`,
    token,
    archive,
    traces,
    configPath,
    env,
    async start() {
      child = spawn(collectorBinary, [`--config=${configPath}`], {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr!.on('data', (d) => {
        stderr += d;
      });
      // Ready when the health check answers.
      for (let i = 0; i < 300; i++) {
        if (child.exitCode !== null) throw new Error(`collector exited (${child.exitCode}): ${stderr}`);
        try {
          const res = await fetch(`http://127.0.0.1:${health}/`);
          if (res.ok) return;
        } catch {
          // not up yet
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`collector did not become healthy: ${stderr}`);
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child === undefined || child.exitCode !== null) return;
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill(signal);
      await exited;
    },
  };
  // A free port is only free until someone takes it: test files run in parallel, and between freePort()
  // and the collector's bind another process may take one ("bind: address already in use"). The first
  // start then tries new ports; a restart (start() after stop()) keeps the ports its clients know.
  for (let attempt = 1; ; attempt++) {
    try {
      await c.start();
      return c;
    } catch (err) {
      if (attempt >= 5 || !/address already in use/.test(String(err))) throw err;
      [grpc, http, health] = [await freePort(), await freePort(), await freePort()];
      env.MLTRAIL_OTLP_GRPC_ENDPOINT = `127.0.0.1:${grpc}`;
      env.MLTRAIL_OTLP_HTTP_ENDPOINT = `127.0.0.1:${http}`;
      env.MLTRAIL_HEALTH_ENDPOINT = `127.0.0.1:${health}`;
      c.httpEndpoint = `http://127.0.0.1:${http}`;
    }
  }
}

/**
 * The JSON lines of a file exporter's output. A zstd-compressed one (the production archive) is a sequence
 * of messages, each a 4-byte big-endian length and one zstd frame; a message cut short by a crash is not a
 * record yet.
 */
function archiveText(path: string): string {
  const buf = readFileSync(path);
  if (buf.length < 8 || buf.readUInt32LE(4) !== 0xfd2fb528) return buf.toString('utf8');
  const lines: string[] = [];
  for (let at = 0; at + 4 <= buf.length; ) {
    const end = at + 4 + buf.readUInt32BE(at);
    if (end > buf.length) break;
    lines.push(`${zstdDecompressSync(buf.subarray(at + 4, end)).toString('utf8')}\n`);
    at = end;
  }
  return lines.join('');
}

/** Every OTLP log record in a file exporter's output (JSON lines of ExportLogsServiceRequest). */
export function archivedLogRecords(
  path: string,
): { attributes: Record<string, unknown>; body: unknown; raw: Record<string, unknown> }[] {
  if (!existsSync(path)) return [];
  const out: { attributes: Record<string, unknown>; body: unknown; raw: Record<string, unknown> }[] = [];
  const text = archiveText(path);
  // The collector may be mid-write: only complete (newline-terminated) lines are records yet.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  for (const line of complete.split('\n')) {
    if (line.trim() === '') continue;
    const doc = JSON.parse(line);
    for (const rl of doc.resourceLogs ?? []) {
      for (const sl of rl.scopeLogs ?? []) {
        for (const lr of sl.logRecords ?? []) {
          const attributes: Record<string, unknown> = {};
          for (const a of lr.attributes ?? []) attributes[a.key] = Object.values(a.value ?? {})[0];
          out.push({ attributes, body: lr.body?.stringValue, raw: lr });
        }
      }
    }
  }
  return out;
}

/** Writes `n` prediction records to a fresh journal in `dir` (signed checkpoints every 1000), closed. */
export async function writePredictionJournal(dir: string, n: number, service: string): Promise<void> {
  const log = new AuditLog({ dir, checkpointEvery: 1000 });
  for (let i = 0; i < n; i++) {
    const ts = new Date().toISOString();
    log.append({
      event: EVENT_ML_PREDICTION,
      sev: 'INFO',
      ts,
      attrs: { [ATTR_ML_PREDICTION_ID]: `p-${i}` },
      body: canonicalize({
        'event.name': EVENT_ML_PREDICTION,
        timestamp: ts,
        [ATTR_SERVICE_NAME]: service,
        [ATTR_ML_PREDICTION_ID]: `p-${i}`,
        [ATTR_ML_PREDICTION_LATENCY_MS]: 1,
      }),
    });
  }
  await log.close();
}

/** `<chain>:<seq>` of an archived OTLP log record: what "stored" means when counting. */
export function recordKey(r: { attributes: Record<string, unknown> }): string {
  return `${r.attributes[ATTR_MLTRAIL_CHAIN_ID]}:${r.attributes[ATTR_MLTRAIL_SEQ]}`;
}

/** The distinct `<chain>:<seq>` keys of archived records (duplicates from at-least-once delivery collapse). */
export function recordKeys(records: { attributes: Record<string, unknown> }[]): Set<string> {
  return new Set(records.map(recordKey));
}

/** Polls `cond` until it holds; fails naming `what` after `tries` polls (a guard, not a timed assertion). */
export async function until(cond: () => boolean, what: string, everyMs = 50, tries = 1200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`gave up waiting for ${what}`);
}
