// Benchmark (not a test): redaction cost per typical ml.prediction audit body (14 keys, a captured input
// of 12 features plus a customer block as canonical JSON, UUIDv7 ids, digests, trace ids), with the
// default detectors, the default rules and two user rules; and per body as trail.predict() writes it with
// the default redactor and digest capture (ids, digests, names, numbers). Baseline: JSON.stringify of the
// same body. Medians of 5 runs.
//   npm run build && npx node bench/redaction.mjs

import './node-check.mjs';
import { canonicalize } from '../dist/integrity/index.js';
import { createRedactor } from '../dist/privacy/index.js';

const redactor = createRedactor({
  key: 'bench-pseudonym-key-0123456789abcdef',
  env: {},
  rules: [
    { path: '**.customer_id', action: 'hash' },
    { path: '**.address', action: 'remove' },
  ],
});

function body(i, withPii) {
  const input = {
    amount: 1200 + i,
    features: [0.12, 3.4, 7.75, 0.731058578630004, 12, 1, 0, 0.5, 44.2, 3, 0.004, 19.5],
    customer: withPii
      ? {
          customer_id: `c-${i}`,
          email: `jane.${i}@example.org`,
          address: '1 Main St',
          note: 'call +44 20 7946 0958',
        }
      : { customer_id: `c-${i}`, segment: 'retail', tenure_months: 14 },
  };
  return {
    'event.name': 'ml.prediction',
    'ml.prediction.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
    'ml.model.name': 'credit-risk',
    'ml.model.version': '7',
    'ml.model.digest': 'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
    'ml.deployment.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b91',
    'ml.prediction.subject_id': `c-${i}`,
    'ml.prediction.input': canonicalize(input),
    'ml.prediction.input_digest': 'sha256:4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b',
    'ml.prediction.latency_ms': 1.337,
    'ml.prediction.output_label': 'approve',
    'ml.prediction.output_score': 0.7310585786300049,
    'service.name': 'scoring',
    span_id: '00f067aa0ba902b7',
    timestamp: '2026-11-28T07:00:00.000Z',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
  };
}

// The body trail.predict() hands to its redactor (default redactor, capture 'digest').
function trailBody(i) {
  return {
    'event.name': 'ml.prediction',
    timestamp: '2026-11-28T07:00:00.000Z',
    'service.name': 'scoring',
    'deployment.environment.name': 'production',
    trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
    span_id: '00f067aa0ba902b7',
    'ml.prediction.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
    'ml.model.name': 'credit-risk',
    'ml.model.version': '7',
    'ml.model.digest': 'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
    'ml.prediction.input_digest': 'sha256:4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b',
    'ml.prediction.latency_ms': 0.5 + i / 1000,
    'ml.prediction.output_score': 0.7310585786300049,
  };
}
const defaultRedactor = createRedactor({ env: {} });

const N = 20_000;
const RUNS = 5;
function measure(fn, records) {
  for (let i = 0; i < 2000; i++) fn(records[i % records.length]); // warm-up
  const t = performance.now();
  for (let i = 0; i < N; i++) fn(records[i % records.length]);
  return ((performance.now() - t) * 1000) / N;
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

let sink = 0;
for (const [name, make, r] of [
  ['redaction-clean-prediction', (i) => body(i, false), redactor],
  ['redaction-prediction-with-pii', (i) => body(i, true), redactor],
  ['redaction-trail-predict-body', trailBody, defaultRedactor],
]) {
  const records = Array.from({ length: 1000 }, (_, i) => make(i));
  const redacts = [];
  const bases = [];
  // Interleaved, so a neighbour's load falls on both sides of the ratio.
  for (let run = 0; run < RUNS; run++) {
    redacts.push(
      measure((rec) => {
        sink += r.redact(rec).summary.maskedCount;
      }, records),
    );
    bases.push(
      measure((rec) => {
        sink += JSON.stringify(rec).length;
      }, records),
    );
  }
  const redact = median(redacts);
  const base = median(bases);
  console.log(
    JSON.stringify({
      name,
      unit: 'µs/record',
      value: Number(redact.toFixed(2)),
      baseline: Number(base.toFixed(2)),
      ratio: Number((redact / base).toFixed(1)),
    }),
  );
}
if (sink < 0) console.log(sink);
