// Benchmark (not a test): an audited trail.predict() — span, audit record, redaction, hash chain, journal
// append with group commit — against (a) the bare OpenTelemetry SDK doing a span plus a log record with
// batch processors and no-op exporters, and (b) pino writing the same record as one JSON line to a file.
// Throughput in calls/s and CPU µs per call, medians of 5 interleaved runs of N calls (after one warm-up run each). Usage: npm run build && node bench/predict.mjs [N]
import './node-check.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, logs, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BatchLogRecordProcessor, LoggerProvider } from '@opentelemetry/sdk-logs';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import pino from 'pino';
import { AuditLog } from '../dist/journal/index.js';
import { createTrail } from '../dist/trail/index.js';

const N = Number(process.argv[2] ?? 20_000);
const RUNS = 5;
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const noopSpanExporter = {
  export: (_s, cb) => cb({ code: 0 }),
  shutdown: async () => {},
  forceFlush: async () => {},
};
const noopLogExporter = {
  export: (_l, cb) => cb({ code: 0 }),
  shutdown: async () => {},
  forceFlush: async () => {},
};
const features = { temp_max: 12.8, temp_min: 5, temp_range: 7.8, wind: 4.7 };
const model = (x) => 1 / (1 + Math.exp(-(0.1 * x.temp_max - 0.2 * x.temp_range + 0.3 * x.wind)));

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
/**
 * One timed run of N calls: calls/s (wall) and CPU µs per call (user + system of this process, which
 * includes the fdatasync work of the journal and is steadier than wall time on a shared machine). `settle`
 * is timed too, so work a side defers (batch export, buffered writes, group commit) is counted.
 */
async function run(fn, settle) {
  const t = performance.now();
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    fn(i);
    if (i % 2000 === 1999) await new Promise((res) => setImmediate(res));
  }
  await settle();
  const c = process.cpuUsage(c0);
  return { rate: N / ((performance.now() - t) / 1000), cpu: (c.user + c.system) / N };
}

// Baseline: bare OTel SDK, span + log record.
const tp = new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter: noopSpanExporter })] });
const lp = new LoggerProvider({ processors: [new BatchLogRecordProcessor({ exporter: noopLogExporter })] });
const tracer = tp.getTracer('bench');
const logger = lp.getLogger('bench');
const otelCall = (i) => {
  const span = tracer.startSpan('ml.predict', {
    attributes: { 'ml.prediction.id': `p-${i}`, 'ml.model.name': 'rain', 'ml.model.version': '1' },
  });
  const p = model(features);
  logger.emit({
    eventName: 'ml.prediction',
    body: JSON.stringify({ 'ml.prediction.id': `p-${i}`, 'ml.prediction.output_score': p, ...features }),
    attributes: { 'ml.prediction.id': `p-${i}` },
  });
  span.end();
};
const otelSettle = async () => {
  await tp.forceFlush();
  await lp.forceFlush();
};

// Baseline: pino, one JSON line per prediction to a file.
const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-predict-'));
const dest = pino.destination({ dest: join(dir, 'pino.log'), sync: false, minLength: 4096 });
const log = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, dest);
const pinoCall = (i) => {
  const p = model(features);
  log.info({
    'event.name': 'ml.prediction',
    'ml.prediction.id': `p-${i}`,
    'ml.prediction.output_score': p,
    'ml.model.name': 'rain',
    'ml.model.version': '1',
    input: features,
  });
};
const pinoSettle = async () => dest.flushSync();

// mltrail: audited predict through the real journal (group commit), default redaction and digest capture.
const provider = new TracerProvider({
  spanProcessors: [new BatchSpanProcessor({ exporter: noopSpanExporter })],
});
const trail = await createTrail({
  serviceName: 'bench',
  tracerProvider: provider,
  // One segment holds every record of the run (~130 000), so no segment seals and no index is built while
  // the calls are timed: the index build is a cost per record of its own, the `index-build-1m` row.
  sink: new AuditLog({ dir: join(dir, 'journal'), segmentBytes: 1 << 30 }),
});
const reg = await trail.register({ name: 'rain', version: '1', data: 'weights' });
const predict = trail.predict({ model: reg, output: (p) => ({ score: p }) }, model);
const auditedCall = () => predict(features);
const auditedSettle = () => trail.flush();

// Rounds interleave the three sides, so a noisy neighbour affects all of them alike; medians per side.
const sides = { otel: [], pino: [], audited: [] };
await run(otelCall, otelSettle);
await run(pinoCall, pinoSettle);
await run(auditedCall, auditedSettle);
for (let r = 0; r < RUNS; r++) {
  sides.otel.push(await run(otelCall, otelSettle));
  sides.pino.push(await run(pinoCall, pinoSettle));
  sides.audited.push(await run(auditedCall, auditedSettle));
}
await trail.shutdown();
const m = (side, k) => median(sides[side].map((x) => x[k]));
const otel = m('otel', 'rate');
const pinoRate = m('pino', 'rate');
const audited = m('audited', 'rate');
const cpu = { otel: m('otel', 'cpu'), pino: m('pino', 'cpu'), audited: m('audited', 'cpu') };
void trace;
void logs;

const results = [
  {
    name: 'predict-vs-otel',
    unit: 'calls/s',
    value: Math.round(audited),
    baseline: Math.round(otel),
    ratio: Number((audited / otel).toFixed(3)),
    cpu_us_per_call: Number(cpu.audited.toFixed(2)),
    baseline_cpu_us_per_call: Number(cpu.otel.toFixed(2)),
    cpu_ratio: Number((cpu.otel / cpu.audited).toFixed(3)),
    // The goal is on CPU: an audited call costs at most twice a bare span + log record.
    goal: 0.5,
    goal_metric: 'cpu_ratio',
  },
  {
    name: 'predict-vs-pino',
    unit: 'calls/s',
    value: Math.round(audited),
    baseline: Math.round(pinoRate),
    ratio: Number((audited / pinoRate).toFixed(3)),
    cpu_us_per_call: Number(cpu.audited.toFixed(2)),
    baseline_cpu_us_per_call: Number(cpu.pino.toFixed(2)),
    cpu_ratio: Number((cpu.pino / cpu.audited).toFixed(3)),
  },
];
const cpuRatio = cpu.otel / cpu.audited;
if (cpuRatio < 0.5)
  process.stderr.write(
    `predict-vs-otel: CPU ratio ${cpuRatio.toFixed(3)}, goal >= 0.5: ${(cpu.audited - 2 * cpu.otel).toFixed(2)} µs ` +
      `per call over twice the bare span + log record (${cpu.audited.toFixed(2)} vs ${(2 * cpu.otel).toFixed(2)} µs)\n`,
  );
for (const r of results) console.log(JSON.stringify(r));
rmSync(dir, { recursive: true, force: true });
