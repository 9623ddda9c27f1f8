// Benchmark (not a test): durable journal appends through AuditLog (hash chain + group commit + fdatasync):
// records/s and the latency a caller sees from append() to "durable", p50/p99. Baseline: the same lines
// appended to a file with one write per line and no fsync (what a plain logger does). Then, on the same
// journal: JournalReader lines/s (what verify reads through) and Shipper records/s to a local OTLP/HTTP sink.
//   npm run build && node bench/journal.mjs [records] [concurrency]
import './node-check.mjs';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { canonicalize } from '../dist/integrity/index.js';
import { AuditLog, JournalReader, Shipper } from '../dist/journal/index.js';

const N = Number(process.argv[2] ?? 100_000);
const CONCURRENCY = Number(process.argv[3] ?? 64);
const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-journal-'));
const log = new AuditLog({ dir, groupCommitMs: 2 });
const body = (i) =>
  canonicalize({
    'event.name': 'ml.prediction',
    timestamp: new Date().toISOString(),
    'ml.prediction.id': `p-${i}`,
    'ml.prediction.latency_ms': 1.25,
  });

const latencies = new Float64Array(N);
let next = 0;
const t0 = performance.now();
async function worker() {
  while (next < N) {
    const i = next++;
    const start = performance.now();
    const { durable } = log.append({
      event: 'ml.prediction',
      sev: 'INFO',
      ts: new Date().toISOString(),
      attrs: { 'ml.prediction.id': `p-${i}` },
      body: body(i),
    });
    await durable;
    latencies[i] = performance.now() - start;
  }
}
await Promise.all(Array.from({ length: CONCURRENCY }, worker));
const secs = (performance.now() - t0) / 1000;
await log.close();
latencies.sort();

const plain = join(dir, 'plain.ndjson');
const t1 = performance.now();
for (let i = 0; i < N; i++) appendFileSync(plain, `${body(i)}\n`);
const plainSecs = (performance.now() - t1) / 1000;

const result = {
  name: 'journal-append',
  unit: 'records/s',
  value: Math.round(N / secs),
  baseline: Math.round(N / plainSecs),
  ratio: Number((plainSecs / secs).toFixed(3)),
  p50_ms: Number(latencies[Math.floor(N * 0.5)].toFixed(3)),
  p99_ms: Number(latencies[Math.floor(N * 0.99)].toFixed(3)),
  concurrency: CONCURRENCY,
};
console.log(JSON.stringify(result));
rmSync(dir, { recursive: true, force: true });

// Pipelined: the default trail never awaits durability per record; one flush at the end.
const dir2 = mkdtempSync(join(tmpdir(), 'mltrail-bench-journal-'));
const log2 = new AuditLog({ dir: dir2, groupCommitMs: 2 });
const t2 = performance.now();
for (let i = 0; i < N; i++) {
  log2.append({
    event: 'ml.prediction',
    sev: 'INFO',
    ts: new Date().toISOString(),
    attrs: { 'ml.prediction.id': `p-${i}` },
    body: body(i),
  });
  if (i % 5000 === 4999) await new Promise((r) => setImmediate(r));
}
await log2.flush();
const pipelinedSecs = (performance.now() - t2) / 1000;
await log2.close();
console.log(
  JSON.stringify({
    name: 'journal-append-pipelined',
    unit: 'records/s',
    value: Math.round(N / pipelinedSecs),
    baseline: Math.round(N / plainSecs),
    ratio: Number((plainSecs / pipelinedSecs).toFixed(3)),
  }),
);

// Reading: every line of the journal just written, with its location.
const t3 = performance.now();
let lines = 0;
let bytes = 0;
for (const l of new JournalReader(dir2).lines()) {
  lines++;
  bytes += l.text.length + 1;
}
const readSecs = (performance.now() - t3) / 1000;
console.log(
  JSON.stringify({
    name: 'journal-read',
    unit: 'lines/s',
    value: Math.round(lines / readSecs),
    mb_per_s: Math.round(bytes / 1e6 / readSecs),
  }),
);

// Shipping: OTLP/JSON batches of 512 to a local HTTP server that reads each body and answers 200.
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const shipper = new Shipper({ dir: dir2, endpoint: `http://127.0.0.1:${server.address().port}` });
const t4 = performance.now();
const shipped = await shipper.drain();
const shipSecs = (performance.now() - t4) / 1000;
server.close();
console.log(
  JSON.stringify({ name: 'journal-ship', unit: 'records/s', value: Math.round(shipped / shipSecs) }),
);
rmSync(dir2, { recursive: true, force: true });
