import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/journal/index.js';
import { buildLinearClassifierOnnx } from '../../src/onnx/index.js';
import { createTrail } from '../../src/trail/index.js';
import { readJournal, UUID_V7 } from '../trail/harness.js';

/**
 * End to end: a plain node:http inference server (test/fixtures/inference-server.{mjs,cjs}, no mltrail
 * import) started with `node --import mltrail/register` / `--require mltrail/register`, real onnxruntime,
 * spans received by a local OTLP/HTTP JSON receiver, audit records read from the journal.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures');

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: Record<string, unknown> }[];
}

let receiver: Server;
let receiverUrl: string;
const received: OtlpSpan[] = [];
/** Bodies of the OTLP log records the journal shipper delivered. */
const shipped: string[] = [];
let modelPath: string;
let modelDigest: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const payload = JSON.parse(body) as {
          resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        for (const rs of payload.resourceSpans) for (const ss of rs.scopeSpans) received.push(...ss.spans);
      }
      if (req.url === '/v1/logs') {
        const payload = JSON.parse(body) as {
          resourceLogs: { scopeLogs: { logRecords: { body: { stringValue: string } }[] }[] }[];
        };
        for (const rl of payload.resourceLogs)
          for (const sl of rl.scopeLogs) shipped.push(...sl.logRecords.map((r) => r.body.stringValue));
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  receiver.listen(0, '127.0.0.1');
  await once(receiver, 'listening');
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-model-'));
  modelPath = join(dir, 'linear.onnx');
  const bytes = buildLinearClassifierOnnx({ weights: [0.8, -1.2, 0.05], bias: -0.3 });
  writeFileSync(modelPath, bytes);
  modelDigest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
});

afterAll(() => {
  receiver.close();
});

afterEach(() => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  child = undefined;
  received.length = 0;
  shipped.length = 0;
});

/** Starts a fixture server with a preload flag and resolves its port once it listens. */
async function startServer(flag: '--import' | '--require', fixture: string, env: Record<string, string>) {
  const proc = spawn(process.execPath, [flag, 'mltrail/register', join(FIXTURES, fixture)], {
    cwd: ROOT, // the package's self-reference resolves `mltrail/register` to dist/register.js
    env: { ...process.env, MODEL_PATH: modelPath, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child = proc;
  let stderr = '';
  proc.stderr?.on('data', (c) => {
    stderr += c;
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (c) => {
      out += c;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`server exited with ${code} before listening:\n${stderr}`)));
  });
  return { proc, port, stderr: () => stderr };
}

async function post(port: number, path: string, rows: number[][]) {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method: 'POST',
    body: JSON.stringify({ rows }),
  });
  return {
    header: res.headers.get('x-mltrail-prediction-id'),
    status: res.status,
    body: (await res.json()) as { probability: number[] },
  };
}

/** SIGTERM, then wait for the exit: register flushes the journal and the span exporter first. */
async function stop(proc: ChildProcess) {
  const exited = once(proc, 'exit');
  proc.kill('SIGTERM');
  const [code, signal] = (await exited) as [number | null, string | null];
  return { code, signal };
}

function attrs(span: OtlpSpan): Record<string, unknown> {
  return Object.fromEntries(span.attributes.map((a) => [a.key, Object.values(a.value)[0]]));
}

function bodies(dir: string) {
  return readJournal(dir).map((l) => ({
    event: l.event,
    body: JSON.parse(l.body as string) as Record<string, unknown>,
  }));
}

const otlpEnv = () => ({
  OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  OTEL_METRICS_EXPORTER: 'none',
  OTEL_SERVICE_NAME: 'rain-api',
  MLTRAIL_ENVIRONMENT: 'prod',
});

describe('node --import mltrail/register (ESM server, no mltrail import)', () => {
  it('names the deployed version, returns the prediction id header, HTTP span → inference span, decide in the same trace', async () => {
    // A "training process" registers and deploys the model into the journal the server will use.
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const training = await createTrail({ sink: new AuditLog({ dir }), environment: 'prod' });
    const model = await training.register({ name: 'rain', version: '7', file: modelPath, format: 'onnx' });
    const deployment = training.deploy({ model, environment: 'prod' });
    await training.shutdown();

    const server = await startServer('--import', 'inference-server.mjs', { ...otlpEnv(), MLTRAIL_DIR: dir });
    const one = await post(server.port, '/predict', [[1, 2, 3]]);
    const several = await post(server.port, '/each', [
      [1, 0, 0],
      [0, 1, 0],
    ]);
    const two = await post(server.port, '/approve', [
      [0, 0, 0],
      [1, 1, 1],
    ]);
    expect(one.status).toBe(200);
    expect(one.header).toMatch(UUID_V7);
    expect(two.header).toMatch(UUID_V7);
    expect(two.header).not.toBe(one.header);
    expect(await stop(server.proc)).toEqual({ code: null, signal: 'SIGTERM' });

    const records = bodies(dir).filter((r) => r.event !== 'mltrail.checkpoint');
    const served = records.slice(2); // after the training process's register + deploy
    expect(served.map((r) => r.event)).toEqual([
      'ml.prediction',
      'ml.prediction',
      'ml.prediction',
      'ml.prediction',
      'ml.decision',
    ]);
    const [p1, e1, e2, p2, decision] = served.map((r) => r.body);
    // Several predictions in one request: all their ids, in order, comma-separated.
    expect(several.header).toBe(`${e1['ml.prediction.id']},${e2['ml.prediction.id']}`);
    expect(p1).toEqual({
      'event.name': 'ml.prediction',
      'service.name': 'rain-api',
      'deployment.environment.name': 'prod',
      severity_text: 'INFO',
      timestamp: expect.any(String),
      trace_id: expect.stringMatching(/^[0-9a-f]{32}$/),
      span_id: expect.stringMatching(/^[0-9a-f]{16}$/),
      'ml.prediction.id': one.header,
      'ml.model.name': 'rain',
      'ml.model.version': '7',
      'ml.model.digest': modelDigest,
      'ml.model.format': 'onnx',
      'ml.deployment.id': deployment.id,
      'ml.prediction.registered': true,
      'ml.prediction.input_names': ['features'],
      'ml.prediction.input_shapes': ['features:1x3'],
      'ml.prediction.output_names': ['probability'],
      'ml.prediction.output_dtypes': ['probability:float32'],
      'ml.prediction.batch_size': 1,
      'ml.prediction.input_digest': expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      'ml.prediction.latency_ms': expect.any(Number),
      'ml.prediction.output_score': one.body.probability[0],
    });
    expect(p2['ml.prediction.id']).toBe(two.header);
    expect(decision['ml.prediction.id']).toBe(two.header);
    expect(decision.trace_id).toBe(p2.trace_id);

    // Spans: the HTTP server span is the parent of the inference span and carries the prediction id.
    const predictSpans = received.filter((s) => s.name === 'ml.predict');
    expect(predictSpans).toHaveLength(4);
    for (const [i, p] of [p1, p2].entries()) {
      const inference = predictSpans.find((s) => attrs(s)['ml.prediction.id'] === p['ml.prediction.id'])!;
      expect(inference.traceId).toBe(p.trace_id);
      expect(inference.spanId).toBe(p.span_id);
      const httpSpan = received.find((s) => s.spanId === inference.parentSpanId)!;
      expect(httpSpan.kind).toBe(2); // SERVER
      expect(attrs(httpSpan)['ml.prediction.id']).toBe([one.header, two.header][i]);
    }
    const decideSpan = received.find((s) => s.name === 'ml.decide')!;
    expect(decideSpan.traceId).toBe(p2.trace_id);

    // The shipper delivered the whole journal (this process's chain and the training one) to /v1/logs.
    expect([...shipped].sort()).toEqual(
      readJournal(dir)
        .map((l) => l.body as string)
        .sort(),
    );
  });

  it('journals every prediction when spans are not sampled (ratio sampler 0)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const server = await startServer('--import', 'inference-server.mjs', {
      ...otlpEnv(),
      MLTRAIL_DIR: dir,
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0',
    });
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await post(server.port, '/predict', [[i, i, i]])).header);
    await stop(server.proc);
    expect(received).toEqual([]);
    const records = bodies(dir);
    expect(records.map((r) => r.event)).toEqual([
      'ml.model.unregistered',
      'ml.prediction',
      'ml.prediction',
      'ml.prediction',
      'mltrail.checkpoint',
    ]);
    expect(records.filter((r) => r.event === 'ml.prediction').map((r) => r.body['ml.prediction.id'])).toEqual(
      ids,
    );
    expect(records[1].body['ml.prediction.registered']).toBe(false);
    expect(records[0].body['ml.model.digest']).toBe(modelDigest);
  });
});

describe('node --import mltrail/register (Express server)', () => {
  it('Express: header, and the inference span sits under the HTTP server span', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const server = await startServer('--import', 'express-server.mjs', { ...otlpEnv(), MLTRAIL_DIR: dir });
    const res = await fetch(`http://127.0.0.1:${server.port}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rows: [[1, 2, 3]] }),
    });
    expect(res.status).toBe(200);
    const id = res.headers.get('x-mltrail-prediction-id');
    expect(id).toMatch(UUID_V7);
    await stop(server.proc);
    expect(
      bodies(dir)
        .filter((r) => r.event === 'ml.prediction')
        .map((r) => r.body['ml.prediction.id']),
    ).toEqual([id]);
    const inference = received.find((s) => s.name === 'ml.predict')!;
    // Walk up: Express's request-handler span, then the HTTP server span that carries the prediction id.
    const ancestors: OtlpSpan[] = [];
    for (let s = inference; s.parentSpanId; ) {
      const parent = received.find((x) => x.spanId === s.parentSpanId);
      if (parent === undefined) break;
      ancestors.push(parent);
      s = parent;
    }
    expect(ancestors.some((s) => attrs(s)['express.type'] !== undefined)).toBe(true);
    const root = ancestors.at(-1)!;
    expect(root.kind).toBe(2);
    expect(attrs(root)['ml.prediction.id']).toBe(id);
  });
});

describe('node --require mltrail/register (CommonJS server)', () => {
  it('records predictions and returns the header; a custom header name is honoured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const server = await startServer('--require', 'inference-server.cjs', {
      ...otlpEnv(),
      MLTRAIL_DIR: dir,
      MLTRAIL_PREDICTION_HEADER: 'X-Prediction-Id',
      MLTRAIL_CAPTURE: 'everything',
    });
    const res = await fetch(`http://127.0.0.1:${server.port}/predict`, {
      method: 'POST',
      body: JSON.stringify({ rows: [[1, 2, 3]] }),
    });
    const id = res.headers.get('x-prediction-id');
    expect(id).toMatch(UUID_V7);
    expect(res.headers.get('x-mltrail-prediction-id')).toBeNull();
    await stop(server.proc);
    const preds = bodies(dir).filter((r) => r.event === 'ml.prediction');
    expect(preds.map((r) => r.body['ml.prediction.id'])).toEqual([id]);
    const inference = received.find((s) => s.name === 'ml.predict')!;
    expect(received.find((s) => s.spanId === inference.parentSpanId)?.kind).toBe(2);
    // A bad value is a warning naming the variable; the default applies and nothing else changes.
    expect(server.stderr()).toContain(
      'mltrail: MLTRAIL_CAPTURE="everything" is not one of none, digest, redacted, full; using "digest"',
    );
    expect(preds[0].body['ml.prediction.input']).toBeUndefined();
    expect(server.stderr()).not.toContain('import-in-the-middle');
  });

  it('an app that handles SIGTERM itself decides when to exit; the journal is flushed before', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const server = await startServer('--require', 'inference-server.cjs', {
      ...otlpEnv(),
      MLTRAIL_DIR: dir,
      HANDLE_SIGTERM: '1',
    });
    const r = await post(server.port, '/predict', [[1, 2, 3]]);
    expect(await stop(server.proc)).toEqual({ code: 0, signal: null });
    const records = bodies(dir);
    expect(records.map((x) => x.event)).toEqual([
      'ml.model.unregistered',
      'ml.prediction',
      'mltrail.checkpoint',
    ]);
    expect(records[1].body['ml.prediction.id']).toBe(r.header);
  });

  it('such an app still exits when the collector is unreachable: the final delivery is given up, the journal keeps the records', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const closed = await new Promise<number>((resolve) => {
      const probe = createNetServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const server = await startServer('--require', 'inference-server.cjs', {
      ...otlpEnv(),
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closed}`,
      MLTRAIL_DIR: dir,
      HANDLE_SIGTERM: '1',
    });
    const r = await post(server.port, '/predict', [[1, 2, 3]]);
    // Before, the shipper's retries held the process forever (its backoff timer kept the event loop alive).
    expect(await stop(server.proc)).toEqual({ code: 0, signal: null });
    expect(bodies(dir).map((x) => x.body['ml.prediction.id'])).toContain(r.header);
  });
});

/** Runs test/fixtures/batch-score.mjs under `--import mltrail/register` to its end. */
async function runBatchScore(env: Record<string, string>) {
  const proc = spawn(process.execPath, ['--import', 'mltrail/register', join(FIXTURES, 'batch-score.mjs')], {
    cwd: ROOT,
    env: { ...process.env, MODEL_PATH: modelPath, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let stderr = '';
  proc.stdout?.on('data', (c) => {
    out += c;
  });
  proc.stderr?.on('data', (c) => {
    stderr += c;
  });
  const [code] = (await once(proc, 'exit')) as [number | null];
  return { code, out, stderr };
}

const SCRIPT_EVENTS = ['ml.model.unregistered', 'ml.prediction', 'ml.prediction', 'mltrail.checkpoint'];

describe('a script that ends on its own', () => {
  it('journals its predictions (flushed on beforeExit), ships them and exits with code 0', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const { code, out } = await runBatchScore({ ...otlpEnv(), MLTRAIL_DIR: dir });
    expect(code).toBe(0);
    expect(out.trim().split('\n')).toHaveLength(2);
    expect(bodies(dir).map((r) => r.event)).toEqual(SCRIPT_EVENTS);
    expect(shipped).toHaveLength(4);
  });

  it('OTEL_LOGS_EXPORTER=none keeps the journal local: nothing is shipped to /v1/logs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const { code } = await runBatchScore({ ...otlpEnv(), OTEL_LOGS_EXPORTER: 'none', MLTRAIL_DIR: dir });
    expect(code).toBe(0);
    expect(bodies(dir).map((r) => r.event)).toEqual(SCRIPT_EVENTS);
    expect(shipped).toEqual([]);
    // Spans still go out: only the log signal was turned off.
    expect(received.map((s) => s.name)).toContain('ml.predict');
  });

  it('a generated signing key is announced on stderr by default, at creation and at every later start; a supplied key is not', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const env = { MLTRAIL_DIR: dir, OTEL_LOG_LEVEL: '', MLTRAIL_SIGNING_KEY: '' };
    const warning = (what: string) =>
      new RegExp(
        `MltrailSigningKeyWarning: mltrail: ${what} checkpoint signing key at ${dir}/signing-key\\.private \\(verifier key [^)]+\\): fine for trying mltrail, wrong for production`,
      );
    const first = await runBatchScore(env);
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(warning('generated a'));
    const second = await runBatchScore(env);
    expect(second.stderr).toMatch(warning('using the generated'));
    expect(second.stderr.match(/MltrailSigningKeyWarning/g)).toHaveLength(1);
    const supplied = await runBatchScore({ ...env, MLTRAIL_SIGNING_KEY: join(dir, 'signing-key.private') });
    expect(supplied.code).toBe(0);
    expect(supplied.stderr).not.toContain('MltrailSigningKeyWarning');
  });
});

describe('disabled', () => {
  for (const variable of ['OTEL_SDK_DISABLED', 'MLTRAIL_DISABLED']) {
    it(`${variable}=true leaves the app running unpatched: no journal, no header, no spans`, async () => {
      const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-e2e-')), 'journal');
      const server = await startServer('--import', 'inference-server.mjs', {
        ...otlpEnv(),
        MLTRAIL_DIR: dir,
        [variable]: 'true',
      });
      const r = await post(server.port, '/predict', [[1, 2, 3]]);
      expect(r.status).toBe(200);
      expect(r.body.probability).toHaveLength(1);
      expect(r.header).toBeNull();
      await stop(server.proc);
      expect(readJournalOrNothing(dir)).toEqual([]);
      expect(received).toEqual([]);
    });
  }
});

function readJournalOrNothing(dir: string) {
  try {
    return readJournal(dir);
  } catch {
    return [];
  }
}
