// Benchmark (not a test): `mltrail verify` records/s against the per-record hashing floor — one-shot
// crypto.hash('sha256', line) over each journal line — on the same records, read from the same files the
// same way (the journal reader's chunks). Two journals: typical prediction records (a four-member body and
// one lookup attr, ~560-byte lines) and the smallest records the trail writes (event name and timestamp,
// no attrs). Floor and verify runs alternate, so noise from other jobs falls on both; medians of 3.
//   npm run build && node bench/verify.mjs [records]      (default 1 000 000 per journal)
import './node-check.mjs';
import { hash } from 'node:crypto';
import { rmSync, statSync } from 'node:fs';
import { ChainVerifier } from '../dist/integrity/index.js';
import { JournalReader, listSegments } from '../dist/journal/index.js';
import { readIntoVerifier } from '../dist/sources/record-sources.js';
import { writePredictionJournal } from './prediction-journal.mjs';

const N = Number(process.argv[2] ?? 1_000_000);

/** One hash per line, reading the segments exactly as verify does. */
function floor(dir) {
  let lines = 0;
  for (const c of new JournalReader(dir).chunks()) {
    for (let start = c.start; start < c.end; lines++) {
      const nl = c.buf.indexOf(10, start);
      hash('sha256', c.buf.subarray(start, nl));
      start = nl + 1;
    }
  }
  return lines;
}

function verify(dir, parallel) {
  const v = new ChainVerifier();
  readIntoVerifier(dir, v, undefined, { parallel });
  const report = v.finish();
  if (!report.ok) throw new Error('benchmark journal did not verify');
  return report.records;
}

function timed(fn) {
  const t = performance.now();
  const n = fn();
  return { n, secs: (performance.now() - t) / 1000 };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

for (const [name, small] of [
  ['verify-vs-sha256', false],
  ['verify-vs-sha256-small', true],
]) {
  process.stderr.write(`${name}: writing ${N.toLocaleString()} records…\n`);
  const dir = await writePredictionJournal(N, { small });
  const bytes = listSegments(dir)
    .flatMap((c) => c.files)
    .reduce((s, f) => s + statSync(f).size, 0);
  const floorRate = [];
  const verifyRate = [];
  const oneThreadRate = [];
  const seconds = [];
  let records = 0;
  for (let r = 0; r < 3; r++) {
    const f = timed(() => floor(dir));
    floorRate.push(f.n / f.secs);
    const v = timed(() => verify(dir, undefined));
    verifyRate.push(v.n / v.secs);
    seconds.push(v.secs);
    records = v.n;
    const o = timed(() => verify(dir, false));
    oneThreadRate.push(o.n / o.secs);
  }
  const result = {
    name,
    unit: 'records/s',
    value: Math.round(median(verifyRate)),
    baseline: Math.round(median(floorRate)),
    ratio: Number((median(verifyRate) / median(floorRate)).toFixed(3)),
    seconds: Number(median(seconds).toFixed(2)),
    records,
    bytesPerLine: Math.round(bytes / records),
    oneThread: Math.round(median(oneThreadRate)),
    oneThreadRatio: Number((median(oneThreadRate) / median(floorRate)).toFixed(3)),
  };
  console.log(JSON.stringify(result));
  rmSync(dir, { recursive: true, force: true });
}
