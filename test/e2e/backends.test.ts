import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import * as sc from '../../src/semconv/index.js';
import { type Backends, backendsAvailable, backendsSkipReason, poll, startBackends } from './backends.js';

/** One journal record as the test needs it: event, body, and the span that wrote it. */
interface JournalEntry {
  event: string;
  body: Record<string, unknown>;
  traceId: string | undefined;
  spanId: string | undefined;
}

function journal(dir: string): JournalEntry[] {
  return [...new JournalReader(dir).lines()].map((l) => {
    const r = parseRecordLine(l.text, l) as {
      event?: string;
      body: string;
      trace_id?: string;
      span_id?: string;
    };
    const body = r.body === '' ? {} : (JSON.parse(r.body) as Record<string, unknown>);
    return {
      event: r.event ?? String(body['event.name']),
      body,
      traceId: r.trace_id ?? (body.trace_id as string | undefined),
      spanId: r.span_id ?? (body.span_id as string | undefined),
    };
  });
}

/** Service names of the three processes the test runs. */
const PIPELINE = 'rain-cover';
const DEMO_SERVER = 'rain-cover-api';
const SERVER = 'rain-cover-e2e';
/** Every FAIL_EVERY-th request of the main phase fails: the injected error rate is 1 / FAIL_EVERY. */
const FAIL_EVERY = 5;
const REQUESTS = 200;

// ------------------------------------------------------------------ Prometheus and the dashboards' PromQL

interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query, at `time` (Unix seconds) when given, else now. */
async function promQuery(base: string, query: string, time?: number): Promise<PromSample[]> {
  const at = time === undefined ? '' : `&time=${time}`;
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(query)}${at}`);
  const doc = (await res.json()) as { status: string; error?: string; data: { result: PromSample[] } };
  if (doc.status !== 'success') throw new Error(`Prometheus refused ${query}: ${doc.error}`);
  return doc.data.result;
}

/** Every PromQL query of the provisioned dashboards and alert rules, as Grafana would send it. */
function provisionedPromQueries(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const f of readdirSync('grafana/dashboards')) {
    const d = JSON.parse(readFileSync(join('grafana/dashboards', f), 'utf8'));
    for (const p of d.panels)
      for (const t of p.targets ?? [])
        if (t.datasource?.type === 'prometheus') out.push({ where: `${f} › ${p.title}`, expr: t.expr });
  }
  const rules = parse(readFileSync('grafana/provisioning/alerting/rules.yaml', 'utf8'));
  for (const g of rules.groups)
    for (const r of g.rules) {
      const a = r.data.find((x: { refId: string }) => x.refId === 'A');
      if (a.datasourceUid === 'mltrail-prometheus')
        out.push({ where: `alert ${r.title}`, expr: a.model.expr });
    }
  return out.map((q) => ({
    ...q,
    expr: q.expr
      .replaceAll('$__rate_interval', '5m')
      .replaceAll('$__range', '1h')
      .replaceAll('$__auto', '5m'),
  }));
}

/** The same expression restricted to one service's series (job = service.name in Prometheus' OTLP mapping). */
function forService(expr: string, service: string): string {
  return expr.replace(/\b(ml_[a-z_]+_(?:total|bucket|ratio))\b(?!\s*[,)=])/g, `$1{job="${service}"}`);
}

// ------------------------------------------------------------------ Jaeger

interface JaegerSpan {
  service: string;
  name: string;
  traceId: string;
  spanId: string;
  links: { traceId: string; spanId: string }[];
}

/** A trace from Jaeger's API v3 (OTLP JSON), or undefined while it has not arrived. */
async function jaegerTrace(base: string, traceId: string): Promise<JaegerSpan[] | undefined> {
  const res = await fetch(`${base}/api/v3/traces/${traceId}`);
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`Jaeger: HTTP ${res.status} ${await res.text()}`);
  const doc = (await res.json()) as {
    result: {
      resourceSpans: {
        resource: { attributes: { key: string; value: { stringValue?: string } }[] };
        scopeSpans: {
          spans: {
            traceId: string;
            spanId: string;
            name: string;
            links?: { traceId: string; spanId: string }[];
          }[];
        }[];
      }[];
    };
  };
  const spans: JaegerSpan[] = [];
  for (const rs of doc.result.resourceSpans) {
    const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue ?? '';
    for (const ss of rs.scopeSpans)
      for (const s of ss.spans)
        spans.push({
          service,
          name: s.name,
          traceId: s.traceId,
          spanId: s.spanId,
          links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
        });
  }
  return spans;
}

// ------------------------------------------------------------------ the run

interface Server {
  base: string;
  child: ChildProcess;
}

async function startInferenceServer(env: Record<string, string>): Promise<Server> {
  const child = spawn(
    process.execPath,
    ['--import', 'mltrail/register', join('test', 'e2e', 'fixtures', 'inference-server.mjs')],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((ok, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { listening?: number };
        if (msg.listening !== undefined) ok(msg.listening);
      } catch {
        // not a control line
      }
    });
    child.once('exit', (code) => fail(new Error(`the inference server exited (${code}) before listening`)));
  });
  return { base: `http://127.0.0.1:${port}`, child };
}

const features = (i: number) => [10 + (i % 15), 3 + (i % 7), 7 + (i % 5), 1 + (i % 4)];

async function predict(s: Server, i: number, fail: boolean): Promise<number> {
  const res = await fetch(`${s.base}/predict`, {
    method: 'POST',
    body: JSON.stringify({ features: features(i), fail }),
  });
  await res.arrayBuffer();
  return res.status;
}

describe.skipIf(!backendsAvailable())(
  `the demo and a long-running inference server through the collector into Prometheus and Jaeger (${backendsSkipReason})`,
  () => {
    let b: Backends;
    let dir: string;
    let server: Server | undefined;
    let records: JournalEntry[];
    /** When the demo (and its server) finished, Unix seconds: its rates are read there, not minutes later. */
    let demoEnded: number;
    /** What each check read from the backends, kept in test/artifacts for docs/dashboards.md. */
    const seen: Record<string, unknown> = {};

    beforeAll(async () => {
      const tmp = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
      b = await startBackends(join(tmp, 'backends'));
      dir = join(tmp, 'journal');
      const otel = {
        OTEL_EXPORTER_OTLP_ENDPOINT: b.otlp,
        OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${b.token}`,
        // A rate needs two samples in its window: the demo's server answers its requests within ~0.5 s on
        // a quiet machine, so with one export a second it was sometimes seen once (and the error-rate panel
        // then read "No data", which is what PromQL gives for one sample, not a fault of the series).
        OTEL_METRIC_EXPORT_INTERVAL: '200',
        OTEL_BSP_SCHEDULE_DELAY: '200',
        // The SDK's and the shipper's warnings (a refused delivery, a failed export) reach stderr.
        OTEL_LOG_LEVEL: 'warn',
      };
      // 1. The demo: pipeline (its own tracer provider) + the ONNX server under mltrail/register.
      await new Promise<void>((resolve, reject) => {
        execFile(
          process.execPath,
          ['dist/cli/main.js', 'demo', '--journal', dir],
          // A guard against a hang (not a timed assertion): the failure then says what the demo and the
          // backends last wrote.
          { env: { ...process.env, ...otel }, timeout: 600_000, maxBuffer: 64 * 1024 * 1024 },
          (err, _stdout, stderr) =>
            err === null
              ? resolve()
              : reject(new Error(`demo failed (${err.message}):\n${stderr.slice(-20_000)}\n${b.logs()}`)),
        );
      });
      demoEnded = Date.now() / 1000;
      // 2. A long-running server on the deployed v2 artifact, with injected failures.
      server = await startInferenceServer({
        ...otel,
        MLTRAIL_DIR: dir,
        OTEL_SERVICE_NAME: SERVER,
        MODEL_PATH: join(dir, 'artifacts', 'rain-cover-v2.onnx'),
      });
      // Warm-up: one failure and one success, exported, so that Prometheus holds a first sample of every
      // series before the measured traffic (rate() counts increases after a series' first sample).
      expect(await predict(server, 0, true)).toBe(500);
      expect(await predict(server, 1, false)).toBe(200);
      const s = server;
      await poll('the warm-up samples in Prometheus', async () => {
        const errs = await promQuery(
          b.prometheus,
          `ml_prediction_errors_total{job="${SERVER}",error_type!=""}`,
        );
        const preds = await promQuery(b.prometheus, `sum(ml_prediction_count_total{job="${SERVER}"})`);
        return errs.length > 0 && preds[0]?.value[1] === '2' ? true : undefined;
      });
      for (let i = 0; i < REQUESTS; i++) await predict(s, i, i % FAIL_EVERY === FAIL_EVERY - 1);
      await fetch(`${s.base}/flush`, { method: 'POST' });
      records = journal(dir);
      const total = records.filter(
        (r) =>
          r.body[sc.ATTR_SERVICE_NAME] === SERVER &&
          (r.event === sc.EVENT_ML_PREDICTION || r.event === sc.EVENT_ML_STAGE_FAILED),
      ).length;
      await poll(`all ${total} predictions of ${SERVER} in Prometheus`, async () => {
        const v = await promQuery(b.prometheus, `sum(ml_prediction_count_total{job="${SERVER}"})`);
        return v[0]?.value[1] === String(total) ? true : undefined;
      });
    }, 900_000);

    afterAll(async () => {
      if (server !== undefined && server.child.exitCode === null) {
        const exited = new Promise((r) => server!.child.once('exit', r));
        server.child.kill('SIGTERM');
        await exited;
      }
      await b?.stop();
      mkdirSync('test/artifacts', { recursive: true });
      writeFileSync('test/artifacts/backends-e2e.json', `${JSON.stringify(seen, null, 2)}\n`);
    });

    const bodyOf = (event: string, service: string) =>
      records.filter((r) => r.event === event && r.body[sc.ATTR_SERVICE_NAME] === service);

    it('every PromQL query in the dashboards and alert rules returns data', async () => {
      const queries = provisionedPromQueries();
      expect(queries.length).toBeGreaterThanOrEqual(4);
      for (const q of queries) {
        const result = await promQuery(b.prometheus, q.expr);
        seen[`${q.where}: series`] = result.length;
        expect(result.length, `${q.where}: ${q.expr} returned no data`).toBeGreaterThan(0);
        for (const r of result)
          expect(Number.isFinite(Number(r.value[1])), `${q.where}: ${r.value[1]}`).toBe(true);
      }
    });

    it('prediction counts in Prometheus equal the journal’s, for the live server and for the finished demo server', async () => {
      for (const [service, query] of [
        [SERVER, `sum(ml_prediction_count_total{job="${SERVER}"})`],
        // The demo server has exited: its last export (at shutdown) is its total.
        [DEMO_SERVER, `sum(max_over_time(ml_prediction_count_total{job="${DEMO_SERVER}"}[1h]))`],
      ] as const) {
        const inJournal =
          bodyOf(sc.EVENT_ML_PREDICTION, service).length + bodyOf(sc.EVENT_ML_STAGE_FAILED, service).length;
        expect(inJournal).toBeGreaterThan(0);
        const [v] = await promQuery(b.prometheus, query);
        seen[`predictions of ${service}`] = { prometheus: Number(v.value[1]), journal: inJournal };
        expect(Number(v.value[1]), service).toBe(inJournal);
      }
    });

    it('the error-rate panel and alert read the injected failure rate', async () => {
      const failed = bodyOf(sc.EVENT_ML_STAGE_FAILED, SERVER).length;
      expect(failed).toBe(REQUESTS / FAIL_EVERY + 1);
      const panel = provisionedPromQueries().filter((q) => /error rate|Error rate/i.test(q.where));
      expect(panel.length).toBeGreaterThanOrEqual(2);
      for (const q of panel) {
        const [v] = await promQuery(b.prometheus, forService(q.expr, SERVER));
        const rate = Number(v.value[1]) + (q.where.startsWith('alert') ? 0.05 : 0);
        seen[`${q.where} (${SERVER})`] = { prometheus: Number(v.value[1]), injected: 1 / FAIL_EVERY };
        expect(Math.abs(rate - 1 / FAIL_EVERY), `${q.where}: ${v.value[1]}`).toBeLessThan(0.02);
      }
    });

    it('the error-rate panel reads 0, not "No data", for a server that never failed (its error series starts at zero)', async () => {
      expect(bodyOf(sc.EVENT_ML_STAGE_FAILED, DEMO_SERVER)).toEqual([]);
      expect(bodyOf(sc.EVENT_ML_PREDICTION, DEMO_SERVER).length).toBeGreaterThan(0);
      const [panel] = provisionedPromQueries().filter((q) => /› Error rate/.test(q.where));
      const result = await promQuery(b.prometheus, forService(panel.expr, DEMO_SERVER), demoEnded);
      seen[`${panel.where} (${DEMO_SERVER})`] = result.map((r) => Number(r.value[1]));
      expect(result.map((r) => Number(r.value[1]))).toEqual([0]);
    });

    it('the latency panel’s p50 and p99 are within 2x of the latency the journal recorded', async () => {
      const latencies = [
        ...bodyOf(sc.EVENT_ML_PREDICTION, SERVER),
        ...bodyOf(sc.EVENT_ML_STAGE_FAILED, SERVER),
      ]
        .map((r) => Number(r.body[sc.ATTR_ML_PREDICTION_LATENCY_MS]) / 1000)
        .sort((x, y) => x - y);
      const measured = (q: number) =>
        latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
      const panel = provisionedPromQueries().filter((q) => q.where.includes('Latency'));
      expect(panel.map((q) => q.expr.match(/histogram_quantile\(([0-9.]+)/)?.[1])).toEqual(['0.5', '0.99']);
      for (const q of panel) {
        const quantile = Number(q.expr.match(/histogram_quantile\(([0-9.]+)/)![1]);
        const [v] = await promQuery(b.prometheus, forService(q.expr, SERVER));
        const ratio = Number(v.value[1]) / measured(quantile);
        seen[`${q.where} p${quantile * 100} (${SERVER})`] = {
          prometheus: Number(v.value[1]),
          journal: measured(quantile),
        };
        expect(
          ratio,
          `${q.where} p${quantile * 100}: ${v.value[1]} s vs ${measured(quantile)} s`,
        ).toBeGreaterThan(0.5);
        expect(
          ratio,
          `${q.where} p${quantile * 100}: ${v.value[1]} s vs ${measured(quantile)} s`,
        ).toBeLessThan(2);
      }
    });

    /** The Jaeger span that wrote a journal record (polls until it has arrived). */
    const spanOf = async (r: JournalEntry): Promise<JaegerSpan> => {
      expect(r.traceId, `${r.event} has a trace id`).toMatch(/^[0-9a-f]{32}$/);
      return poll(`the span of ${r.event} (${r.traceId}/${r.spanId}) in Jaeger`, async () =>
        (await jaegerTrace(b.jaeger, r.traceId!))?.find((s) => s.spanId === r.spanId),
      );
    };
    const linked = (s: JaegerSpan) => s.links.map((l) => l.spanId).sort();
    const ids = (rs: JournalEntry[]) => rs.map((r) => r.spanId!).sort();
    const one = (event: string, pred: (b: Record<string, unknown>) => boolean) => {
      const found = records.filter((r) => r.event === event && pred(r.body));
      expect(found.length, event).toBe(1);
      return found[0];
    };

    it('each pipeline stage is a span of the pipeline service, linked to the spans of its inputs', async () => {
      const stages: [string, string][] = [
        [sc.EVENT_ML_DATASET_REGISTERED, sc.SPAN_NAMES.dataset],
        [sc.EVENT_ML_TRANSFORM_COMPLETED, sc.SPAN_NAMES.transform],
        [sc.EVENT_ML_TRAINING_COMPLETED, sc.SPAN_NAMES.train],
        [sc.EVENT_ML_EVALUATION_COMPLETED, sc.SPAN_NAMES.evaluate],
        [sc.EVENT_ML_MODEL_REGISTERED, sc.SPAN_NAMES.register],
        [sc.EVENT_ML_DEPLOYMENT_COMPLETED, sc.SPAN_NAMES.deploy],
        [sc.EVENT_ML_RETRAINING_TRIGGERED, sc.SPAN_NAMES.retrain],
      ];
      for (const [event, name] of stages) {
        const rs = bodyOf(event, PIPELINE);
        expect(rs.length, event).toBeGreaterThan(0);
        for (const r of rs)
          expect(await spanOf(r), event).toEqual(expect.objectContaining({ service: PIPELINE, name }));
      }
      // model → training run; deployment → model; run → its input datasets (the transforms that made them)
      // and, for a retraining, the retraining trigger; retraining → previous model and the drift alerts.
      const producer = (datasetId: unknown) =>
        one(sc.EVENT_ML_TRANSFORM_COMPLETED, (x) => x[sc.ATTR_ML_TRANSFORM_OUTPUT_ID] === datasetId);
      for (const m of bodyOf(sc.EVENT_ML_MODEL_REGISTERED, PIPELINE)) {
        const run = one(
          sc.EVENT_ML_TRAINING_COMPLETED,
          (x) => x[sc.ATTR_ML_RUN_ID] === m.body[sc.ATTR_ML_RUN_ID],
        );
        expect(linked(await spanOf(m)), 'model → run').toEqual(ids([run]));
        const inputs = (run.body[sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS] as string[]).map(producer);
        const retrain = records.filter(
          (r) =>
            r.event === sc.EVENT_ML_RETRAINING_TRIGGERED &&
            r.body[sc.ATTR_ML_RUN_ID] === run.body[sc.ATTR_ML_RUN_ID],
        );
        expect(linked(await spanOf(run)), 'run → datasets (+ retraining)').toEqual(
          ids([...inputs, ...retrain]),
        );
        for (const t of inputs) {
          const raw = (t.body[sc.ATTR_ML_TRANSFORM_INPUT_IDS] as string[]).map((id) =>
            one(sc.EVENT_ML_DATASET_REGISTERED, (x) => x[sc.ATTR_ML_DATASET_ID] === id),
          );
          expect(linked(await spanOf(t)), 'transform → its input datasets').toEqual(ids(raw));
        }
      }
      // evaluation → its dataset (or the transform that made it), its run, and its model version when named.
      const datasetSpan = (id: unknown) =>
        records.some(
          (r) => r.event === sc.EVENT_ML_TRANSFORM_COMPLETED && r.body[sc.ATTR_ML_TRANSFORM_OUTPUT_ID] === id,
        )
          ? producer(id)
          : one(sc.EVENT_ML_DATASET_REGISTERED, (x) => x[sc.ATTR_ML_DATASET_ID] === id);
      for (const e of bodyOf(sc.EVENT_ML_EVALUATION_COMPLETED, PIPELINE)) {
        const run = one(
          sc.EVENT_ML_TRAINING_COMPLETED,
          (x) => x[sc.ATTR_ML_RUN_ID] === e.body[sc.ATTR_ML_RUN_ID],
        );
        const model =
          e.body[sc.ATTR_ML_MODEL_VERSION] === undefined
            ? []
            : [
                one(
                  sc.EVENT_ML_MODEL_REGISTERED,
                  (x) => x[sc.ATTR_ML_MODEL_VERSION] === e.body[sc.ATTR_ML_MODEL_VERSION],
                ),
              ];
        expect(linked(await spanOf(e)), 'evaluation → dataset, run (, model)').toEqual(
          ids([datasetSpan(e.body[sc.ATTR_ML_EVALUATION_DATASET_ID]), run, ...model]),
        );
      }
      for (const d of bodyOf(sc.EVENT_ML_DEPLOYMENT_COMPLETED, PIPELINE)) {
        const m = one(
          sc.EVENT_ML_MODEL_REGISTERED,
          (x) => x[sc.ATTR_ML_MODEL_VERSION] === d.body[sc.ATTR_ML_MODEL_VERSION],
        );
        expect(linked(await spanOf(d)), 'deployment → model').toEqual(ids([m]));
      }
      const [retrain] = bodyOf(sc.EVENT_ML_RETRAINING_TRIGGERED, PIPELINE);
      const previous = one(
        sc.EVENT_ML_MODEL_REGISTERED,
        (x) => x[sc.ATTR_ML_MODEL_VERSION] === retrain.body[sc.ATTR_ML_RETRAINING_PREVIOUS_VERSION],
      );
      const triggers = (retrain.body[sc.ATTR_ML_RETRAINING_TRIGGER_IDS] as string[]).map((id) =>
        one(sc.EVENT_ML_DRIFT_DETECTED, (x) => x[sc.ATTR_ML_DRIFT_ID] === id),
      );
      expect(triggers.length).toBeGreaterThan(0);
      expect(linked(await spanOf(retrain)), 'retraining → previous model + drift alerts').toEqual(
        ids([previous, ...triggers]),
      );
      // The drift alerts are spans of the serving process that detected them.
      for (const t of triggers) expect((await spanOf(t)).service).toBe(DEMO_SERVER);
    });

    it('a prediction in another process links to its deployment, and its decision links to it', async () => {
      for (const service of [DEMO_SERVER, SERVER]) {
        const predictions = bodyOf(sc.EVENT_ML_PREDICTION, service);
        for (const p of [predictions[0], predictions[predictions.length - 1]]) {
          const deployment = one(
            sc.EVENT_ML_DEPLOYMENT_COMPLETED,
            (x) => x[sc.ATTR_ML_DEPLOYMENT_ID] === p.body[sc.ATTR_ML_DEPLOYMENT_ID],
          );
          const span = await spanOf(p);
          expect(span).toEqual(expect.objectContaining({ service, name: sc.SPAN_NAMES.predict }));
          expect(linked(span), `${service}: prediction → deployment`).toEqual(ids([deployment]));
          const decision = one(
            sc.EVENT_ML_DECISION,
            (x) => x[sc.ATTR_ML_PREDICTION_ID] === p.body[sc.ATTR_ML_PREDICTION_ID],
          );
          expect(linked(await spanOf(decision)), `${service}: decision → prediction`).toEqual(ids([p]));
        }
      }
    });

    it('Prometheus, started with docker-compose.yml’s flags, takes remote write (Tempo’s metrics-generator sends span metrics and the service graph that way)', async () => {
      const res = await fetch(`${b.prometheus}/api/v1/write`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-protobuf', 'content-encoding': 'snappy' },
        body: new Uint8Array(0),
      });
      // Without --web.enable-remote-write-receiver: 404 "remote write receiver needs to be enabled".
      expect(`${res.status} ${await res.text()}`).toBe('204 ');
    });

    it('the collector refuses OTLP without the bearer token (auth is on in the shipped config)', async () => {
      for (const signal of ['logs', 'traces', 'metrics']) {
        const res = await fetch(`${b.otlp}/v1/${signal}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        });
        await res.arrayBuffer();
        expect(res.status, signal).toBe(401);
      }
    });

    it('the collector created its archive directory and sent the audit records on to Loki', () => {
      expect(b.lokiRequests()).toBeGreaterThan(0);
      const archiveDir = join(b.dir, 'collector', 'archive');
      expect(readdirSync(archiveDir).length).toBeGreaterThan(0);
      // Owner only, as collector/config.yaml asks (directory_permissions).
      expect(statSync(archiveDir).mode & 0o777).toBe(0o700);
    });
  },
);
