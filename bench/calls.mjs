// A fixed amount of audited work and nothing else, for counting instructions (not a timed benchmark):
//   valgrind --tool=callgrind --callgrind-out-file=/dev/null node --predictable bench/calls.mjs <N> [predict|decide|native]
// Run it at two N (say 2 000 and 6 000) and divide the difference of the "Collected" counts by the
// difference of N: the instructions of one call, start-up and compilation cancelled out. `--predictable`
// runs V8's compilers and collector on the main thread, so the count repeats within ~1% whatever the
// machine's load (docs/performance.md, "Measuring small cuts on a loaded machine"). Imports ../dist.
// `native`: an awaited asynchronous prediction marked as a callee that runs no JavaScript (what the
// onnxruntime instrumentation marks), so recorded through the trail's queue (docs/internals.md).
import './node-check.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { AuditLog } from '../dist/journal/index.js';
import { createTrail } from '../dist/trail/index.js';

const N = Number(process.argv[2] ?? 2000);
const what = process.argv[3] ?? 'predict';
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const noop = { export: (_s, cb) => cb({ code: 0 }), shutdown: async () => {}, forceFlush: async () => {} };
const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-calls-'));
const trail = await createTrail({
  serviceName: 'bench',
  tracerProvider: new TracerProvider({ spanProcessors: [new BatchSpanProcessor({ exporter: noop })] }),
  // No index worker and no segment seal: only the calls' own work.
  sink: new AuditLog({ dir: join(dir, 'journal'), segmentBytes: 1 << 30, warn: false, index: false }),
});
const model = await trail.register({ name: 'rain', version: '1', data: 'weights' });
const predict = trail.predict(
  { model, output: (p) => ({ score: p }) },
  (x) => 1 / (1 + Math.exp(-(0.1 * x.temp_max - 0.2 * x.temp_range + 0.3 * x.wind))),
);
// The mark is a registered symbol (src/trail/wrap.ts, OPAQUE_CALLEE); a build without it ignores it.
const native = trail.predict(
  { model, output: (p) => ({ score: p }), [Symbol.for('mltrail:opaque-callee')]: true },
  async (x) => 1 / (1 + Math.exp(-(0.1 * x.temp_max - 0.2 * x.temp_range + 0.3 * x.wind))),
);
let i = 0;
const calls = {
  native: () => native({ temp_max: 12.8 + (i % 7), temp_min: 5, temp_range: 7.8, wind: 4.7 }),
  predict: () => predict({ temp_max: 12.8 + (i % 7), temp_min: 5, temp_range: 7.8, wind: 4.7 }),
  decide: () =>
    trail.decide({
      predictionId: '0190c6f2-0000-7000-8000-000000000000',
      outcome: i % 3 ? 'standard' : 'surcharge',
      reason: `probability of rain ${(i % 100) / 100} < 0.50`,
      threshold: 0.5,
      attributions: { temp_max: 0.1, temp_min: -0.2, temp_range: 0.05, wind: i % 10 },
      automated: true,
    }),
};
const call = calls[what];
if (call === undefined) {
  console.error(`usage: node bench/calls.mjs <N> [${Object.keys(calls).join('|')}]`);
  process.exit(2);
}
for (; i < N; i++) {
  if (what === 'native') await call();
  else call();
  if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
}
await trail.flush();
await trail.shutdown();
rmSync(dir, { recursive: true, force: true });
