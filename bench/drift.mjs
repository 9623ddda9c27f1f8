// Benchmark (not a test): DriftMonitor cost per observed prediction, windows of 100 against a 731-row
// reference (KS on 4 features at every window close). Baseline: a loop that only copies the features.
//   npm run build && node bench/drift.mjs

import { between, featuresOf, loadWeather } from '../dist/demo/weather-data.js';
import { buildProfile, DriftMonitor } from '../dist/drift/index.js';

const { days } = loadWeather();
const reference = between(days, '2012-01-01', '2014-01-01').map(featuresOf);
const traffic = between(days, '2014-01-01', '2016-01-01').map(featuresOf);
const profile = buildProfile(reference);
const N = 200_000;
const monitor = new DriftMonitor({ reference: profile, window: { size: 100 } });
let t = performance.now();
for (let i = 0; i < N; i++) monitor.observe(traffic[i % traffic.length]);
const perObs = ((performance.now() - t) * 1000) / N;
const sink = [];
t = performance.now();
for (let i = 0; i < N; i++) {
  sink.push({ ...traffic[i % traffic.length] });
  if (sink.length === 100) sink.length = 0;
}
const base = ((performance.now() - t) * 1000) / N;
console.log(
  JSON.stringify({
    name: 'drift-monitor-observe',
    unit: 'µs/observation',
    value: Number(perObs.toFixed(3)),
    baseline: Number(base.toFixed(3)),
    ratio: Number((perObs / base).toFixed(1)),
  }),
);
