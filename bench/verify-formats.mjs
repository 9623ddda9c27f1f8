// Benchmark (not a test): `mltrail verify` on record format 2 against format 1 (issue 13: verify on 1M v2
// records must not be slower than on v1). The same prediction records — event name, timestamp, severity, a
// prediction id and a latency, one lookup attribute — written once as format 1 lines (body as an escaped
// string, event/ts/sev/attrs beside it) and once as format 2 lines (the canonical body embedded, with
// severity_text in it), each journal with a signed checkpoint every 10 000 records. The two are verified
// alternately (so noise from other jobs falls on both), end to end as `mltrail verify` reads a journal
// (readIntoVerifier: segments, line checks, links, Merkle roots, signatures); medians of 3.
//   npm run build && node bench/verify-formats.mjs [records]      (default 1 000 000 per journal)
import './node-check.mjs';
import { rmSync, statSync } from 'node:fs';
import { ChainVerifier } from '../dist/integrity/index.js';
import { listSegments } from '../dist/sources/journal-reader.js';
import { readIntoVerifier } from '../dist/sources/record-sources.js';
import { writePredictionJournal } from './prediction-journal.mjs';

const N = Number(process.argv[2] ?? 1_000_000);

function verify(dir) {
  const v = new ChainVerifier();
  const t = performance.now();
  readIntoVerifier(dir, v);
  const report = v.finish();
  const secs = (performance.now() - t) / 1000;
  if (!report.ok) throw new Error(`benchmark journal ${dir} did not verify`);
  return { records: report.records, secs };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const journals = {};
for (const version of [1, 2]) {
  process.stderr.write(`verify-formats: writing ${N.toLocaleString()} format ${version} records…\n`);
  const dir = await writePredictionJournal(N, { version });
  const bytes = listSegments(dir)
    .flatMap((c) => c.files)
    .reduce((s, f) => s + statSync(f).size, 0);
  journals[version] = { dir, bytes, secs: [], records: 0 };
}
for (let r = 0; r < 3; r++) {
  for (const version of r % 2 === 0 ? [1, 2] : [2, 1]) {
    const j = journals[version];
    const { records, secs } = verify(j.dir);
    j.records = records;
    j.secs.push(secs);
  }
}
const rate = (j) => j.records / median(j.secs);
const [v1, v2] = [journals[1], journals[2]];
console.log(
  JSON.stringify({
    name: 'verify-v2-vs-v1',
    unit: 'records/s',
    value: Math.round(rate(v2)),
    baseline: Math.round(rate(v1)),
    ratio: Number((rate(v2) / rate(v1)).toFixed(3)),
    goal: 1,
    records: v2.records,
    secondsV2: Number(median(v2.secs).toFixed(2)),
    secondsV1: Number(median(v1.secs).toFixed(2)),
    bytesPerLineV2: Math.round(v2.bytes / v2.records),
    bytesPerLineV1: Math.round(v1.bytes / v1.records),
  }),
);
for (const j of [v1, v2]) rmSync(j.dir, { recursive: true, force: true });
