// Benchmark (not a test): DriftMonitor cost per observed prediction, windows of 100 against a 731-row
// reference, 4 numerical features, every window closed and tested. Two test paths: the default for
// references of ≤ 1000 rows (exact two-sample KS) and the large-reference one (normed Wasserstein, forced
// with largeReference: 100). Baseline: a loop that only copies the features into a window.
//   npm run build && node bench/drift.mjs

import './node-check.mjs';
import { between, featuresOf, loadWeather } from '../dist/demo/weather-data.js';
import { buildProfile, DriftMonitor } from '../dist/drift/index.js';

const { days } = loadWeather();
const reference = between(days, '2012-01-01', '2014-01-01').map(featuresOf);
const traffic = between(days, '2014-01-01', '2016-01-01').map(featuresOf);
const profile = buildProfile(reference);
const N = 200_000;

function perObservation(monitor) {
  const t = performance.now();
  for (let i = 0; i < N; i++) monitor.observe(traffic[i % traffic.length]);
  return ((performance.now() - t) * 1000) / N;
}

const ks = perObservation(new DriftMonitor({ reference: profile, window: { size: 100 } }));
const wasserstein = perObservation(
  new DriftMonitor({ reference: profile, window: { size: 100 }, largeReference: 100 }),
);
const sink = [];
const t = performance.now();
for (let i = 0; i < N; i++) {
  sink.push({ ...traffic[i % traffic.length] });
  if (sink.length === 100) sink.length = 0;
}
const base = ((performance.now() - t) * 1000) / N;
const round = (x) => Number(x.toFixed(3));
console.log(
  JSON.stringify({
    name: 'drift-monitor-observe',
    unit: 'µs/observation',
    ks: round(ks),
    wasserstein: round(wasserstein),
    baseline: round(base),
  }),
);
