// Benchmark (not a test): what the onnxruntime-node instrumentation adds to a real session.run of a small
// linear model (4 features, batch 1): bare onnxruntime vs instrumented (span with a batch processor and a
// no-op exporter, input digest, ml.prediction record chained and journaled with group commit). Runs of N
// sequential awaited calls alternate bare / instrumented (one session each, the instrumented one patched
// for its runs only), medians of 5 runs per side; wall µs per call (the row's value) and CPU µs per call of
// the process (user + system, steadier on a shared machine). Goal: instrumented <= 2 x bare + 10 µs.
// Usage: npm run build && node bench/instrumentation.mjs [N]
// BENCH_NATIVE_TIME=1 also times onnxruntime's native run alone on each side (a subclass of the binding's
// session class around its `run`), which shows how much of the difference is the native run slowing down
// when the audit work runs between two runs (docs/performance.md, issue 16); off by default, so the row's
// figures are of unmodified onnxruntime.
import './node-check.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import ort from 'onnxruntime-node';
import { OnnxRuntimeInstrumentation } from '../dist/instrumentation/index.js';
import { AuditLog } from '../dist/journal/index.js';
import { buildLinearClassifierOnnx } from '../dist/onnx/index.js';
import { createTrail } from '../dist/trail/index.js';

const N = Number(process.argv[2] ?? 5_000);
/** Nanoseconds spent in the native run since the last reset (BENCH_NATIVE_TIME=1 only). */
let nativeNs = 0n;
const timeNative = process.env.BENCH_NATIVE_TIME === '1' && timeNativeRuns();
function timeNativeRuns() {
  try {
    const { binding } = createRequire(import.meta.url)('onnxruntime-node/dist/binding.js');
    const Native = binding.InferenceSession;
    binding.InferenceSession = class extends Native {
      run(...args) {
        const t = process.hrtime.bigint();
        try {
          return super.run(...args);
        } finally {
          nativeNs += process.hrtime.bigint() - t;
        }
      }
    };
    return true;
  } catch (err) {
    process.stderr.write(`BENCH_NATIVE_TIME: cannot time this onnxruntime-node's native run (${err})\n`);
    return false;
  }
}
const RUNS = 5;
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const noopSpanExporter = {
  export: (_s, cb) => cb({ code: 0 }),
  shutdown: async () => {},
  forceFlush: async () => {},
};

const bytes = buildLinearClassifierOnnx({ weights: [0.1, 0, -0.2, 0.3], bias: -0.1 });
const features = new ort.Tensor('float32', [12.8, 5, 7.8, 4.7], [1, 4]);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
/** One run of N awaited calls: wall and CPU µs per call (`settle`, e.g. the journal's flush, included). */
async function run(session, settle) {
  const t = performance.now();
  const c0 = process.cpuUsage();
  nativeNs = 0n;
  for (let i = 0; i < N; i++) await session.run({ features });
  await settle();
  const c = process.cpuUsage(c0);
  return {
    wall: ((performance.now() - t) * 1000) / N,
    cpu: (c.user + c.system) / N,
    native: Number(nativeNs) / 1000 / N,
  };
}

const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-instr-'));
const tracerProvider = new TracerProvider({
  spanProcessors: [new BatchSpanProcessor({ exporter: noopSpanExporter })],
});
const trail = await createTrail({ sink: new AuditLog({ dir }), tracerProvider });
const instrumentation = new OnnxRuntimeInstrumentation({ trail });
instrumentation.setTracerProvider(tracerProvider);
instrumentation.manuallyInstrument(ort);
// Created while patched, so the instrumentation knows its model (digest); runs unpatched are bare.
const session = await ort.InferenceSession.create(bytes);
instrumentation.disable();
const settleBare = async () => {};
const settleInstrumented = () => trail.flush();

const sides = { bare: [], instrumented: [] };
await run(session, settleBare);
instrumentation.manuallyInstrument(ort);
await run(session, settleInstrumented);
instrumentation.disable();
for (let r = 0; r < RUNS; r++) {
  sides.bare.push(await run(session, settleBare));
  instrumentation.manuallyInstrument(ort);
  sides.instrumented.push(await run(session, settleInstrumented));
  instrumentation.disable();
}
await trail.shutdown();
await tracerProvider.shutdown();
rmSync(dir, { recursive: true, force: true });

const m = (side, k) => median(sides[side].map((x) => x[k]));
const bare = m('bare', 'wall');
const instrumented = m('instrumented', 'wall');
const goal = 2 * bare + 10;
console.log(`onnxruntime session.run, ${N} calls x ${RUNS} runs (median µs per call)`);
console.log(`  bare onnxruntime       ${bare.toFixed(1)} µs (CPU ${m('bare', 'cpu').toFixed(1)} µs)`);
console.log(
  `  instrumented (mltrail) ${instrumented.toFixed(1)} µs (CPU ${m('instrumented', 'cpu').toFixed(1)} µs)  (+${(instrumented - bare).toFixed(1)} µs, x${(instrumented / bare).toFixed(2)})`,
);
if (timeNative)
  console.log(
    `  native run alone: bare ${m('bare', 'native').toFixed(1)} µs, instrumented ${m('instrumented', 'native').toFixed(1)} µs`,
  );
if (instrumented > goal)
  process.stderr.write(
    `instrumented-session-run: ${instrumented.toFixed(1)} µs, goal <= 2 x bare + 10 = ${goal.toFixed(1)} µs: ` +
      `${(instrumented - goal).toFixed(1)} µs over\n`,
  );
console.log(
  JSON.stringify({
    name: 'instrumented-session-run',
    unit: 'µs/call',
    value: Number(instrumented.toFixed(1)),
    baseline: Number(bare.toFixed(1)),
    ratio: Number((instrumented / bare).toFixed(2)),
    cpu_us_per_call: Number(m('instrumented', 'cpu').toFixed(1)),
    baseline_cpu_us_per_call: Number(m('bare', 'cpu').toFixed(1)),
    ...(timeNative
      ? {
          native_us_per_call: Number(m('instrumented', 'native').toFixed(1)),
          baseline_native_us_per_call: Number(m('bare', 'native').toFixed(1)),
        }
      : {}),
    goal: Number(goal.toFixed(1)),
    goal_metric: 'value',
    goal_is_maximum: true,
  }),
);
