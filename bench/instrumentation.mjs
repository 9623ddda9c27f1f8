// Benchmark (not a test): what the onnxruntime-node instrumentation adds to a real session.run of a small
// linear model (4 features, batch 1): bare onnxruntime vs instrumented (span with a batch processor and a
// no-op exporter, input digest, ml.prediction record chained and journaled with group commit).
// Median of 5 runs of N sequential awaited runs. Usage: npm run build && node bench/instrumentation.mjs [N]
import { mkdtempSync, rmSync } from 'node:fs';
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
async function perCallMicros(session) {
  const times = [];
  for (let r = 0; r < RUNS; r++) {
    const t = performance.now();
    for (let i = 0; i < N; i++) await session.run({ features });
    times.push(((performance.now() - t) * 1000) / N);
  }
  return median(times);
}

const bare = await perCallMicros(await ort.InferenceSession.create(bytes));

const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-instr-'));
const tracerProvider = new TracerProvider({
  spanProcessors: [new BatchSpanProcessor({ exporter: noopSpanExporter })],
});
const trail = await createTrail({ sink: new AuditLog({ dir }), tracerProvider });
const instrumentation = new OnnxRuntimeInstrumentation({ trail });
instrumentation.setTracerProvider(tracerProvider);
instrumentation.manuallyInstrument(ort);
const instrumented = await perCallMicros(await ort.InferenceSession.create(bytes));
instrumentation.disable();
await trail.shutdown();
await tracerProvider.shutdown();
rmSync(dir, { recursive: true, force: true });

console.log(`onnxruntime session.run, ${N} calls x ${RUNS} runs (median µs per call)`);
console.log(`  bare onnxruntime      ${bare.toFixed(1)} µs`);
console.log(
  `  instrumented (mltrail) ${instrumented.toFixed(1)} µs  (+${(instrumented - bare).toFixed(1)} µs, x${(instrumented / bare).toFixed(2)})`,
);
console.log(
  JSON.stringify({
    name: 'instrumented-session-run',
    unit: 'µs/call',
    value: Number(instrumented.toFixed(1)),
    baseline: Number(bare.toFixed(1)),
    ratio: Number((instrumented / bare).toFixed(2)),
  }),
);
