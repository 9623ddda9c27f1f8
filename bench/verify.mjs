// Benchmark (not a test): `mltrail verify` records/s against the per-record hashing floor — one-shot
// crypto.hash('sha256', line) over each journal line — on the same records. Usage:
//   npm run build && node bench/verify.mjs [records]      (default 1 000 000)
import { hash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ChainVerifier,
  ChainWriter,
  canonicalize,
  generateSigner,
  serializeRecord,
} from '../dist/integrity/index.js';
import { readIntoVerifier } from '../dist/integrity/record-sources.js';
import { JournalWriter } from '../dist/journal/index.js';

const N = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-verify-'));
const { signer } = generateSigner('bench');
const chain = new ChainWriter({ signer, checkpointEvery: 10_000 });
const writer = new JournalWriter({
  dir,
  chainId: chain.chainId,
  groupCommitMs: 50,
  segmentBytes: 256 * 1024 * 1024,
});
process.stderr.write(`writing ${N.toLocaleString()} records…\n`);
for (let i = 0; i < N; i++) {
  const ts = new Date(1_764_000_000_000 + i).toISOString();
  const body = canonicalize({
    'event.name': 'ml.prediction',
    timestamp: ts,
    'ml.prediction.id': `p-${i}`,
    'ml.prediction.latency_ms': 1.25,
  });
  for (const r of chain.append({
    event: 'ml.prediction',
    sev: 'INFO',
    ts,
    attrs: { 'ml.prediction.id': `p-${i}` },
    body,
  }))
    writer.append(serializeRecord(r));
  if (i % 100_000 === 99_999) await writer.flush();
}
await writer.close();
const segDir = join(dir, 'chains', chain.chainId);
const files = readdirSync(segDir).map((f) => join(segDir, f));
const bytes = files.reduce((s, f) => s + readFileSync(f).length, 0);
const lines = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter(Boolean));
process.stderr.write(
  `${lines.length.toLocaleString()} lines, ${Math.round(bytes / lines.length)} bytes/line\n`,
);

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
const runs = 3;
const floor = [];
for (let r = 0; r < runs; r++) {
  const t = performance.now();
  for (const f of files) {
    const buf = readFileSync(f);
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      hash('sha256', buf.subarray(start, nl));
      start = nl + 1;
    }
  }
  floor.push(lines.length / ((performance.now() - t) / 1000));
}
const verify = [];
let endToEnd = 0;
for (let r = 0; r < runs; r++) {
  const t = performance.now();
  const v = new ChainVerifier();
  readIntoVerifier(dir, v);
  const report = v.finish();
  const secs = (performance.now() - t) / 1000;
  if (!report.ok) throw new Error('benchmark journal did not verify');
  verify.push(lines.length / secs);
  endToEnd = secs;
}
const result = {
  name: 'verify-vs-sha256',
  unit: 'records/s',
  value: Math.round(median(verify)),
  baseline: Math.round(median(floor)),
  ratio: Number((median(verify) / median(floor)).toFixed(3)),
  seconds: Number(endToEnd.toFixed(2)),
  records: lines.length,
};
console.log(JSON.stringify(result));
rmSync(dir, { recursive: true, force: true });
