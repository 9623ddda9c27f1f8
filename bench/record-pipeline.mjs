// Benchmark (not a test): what one audit record costs on the thread that makes it, stage by stage, for the
// two records every request of the demo server writes (its ml.prediction and ml.decision, taken from a real
// trail): the JSON-safe copy, validation, redaction, canonical JSON, the body digest, the record hash, the
// Merkle leaf, the journal line and its encoding; and, for reference, the whole emit into a real journal
// (group commit, flushed inside the timing). CPU µs per record (process.cpuUsage), medians of 5 rounds that
// alternate the stages. What the request path would no longer pay if sealing moved to a worker thread is
// the sum of the last five stages. The emitter's body step is timed twice, as the emitter writes it (flat
// records in one pass) and through the four body stages (the emitter's own fallback). Usage: npm run build && node bench/record-pipeline.mjs [N]
import './node-check.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bodyDigest,
  CompactMerkleTree,
  canonicalize,
  recordHash,
  serializeRecord,
  uuidv7,
  ZERO_HASH,
} from '../dist/integrity/index.js';
import { AuditLog } from '../dist/journal/index.js';
import { createRedactor } from '../dist/privacy/index.js';
import { acceptsEventBody } from '../dist/semconv/index.js';
import { AuditEmitter, createTrail } from '../dist/trail/index.js';
import { toJsonSafe } from '../dist/trail/json-safe.js';

const N = Number(process.argv[2] ?? 20_000);
const ROUNDS = 5;

// The two bodies of a served request, as the trail writes them (through a sink that keeps them).
const inputs = [];
const keep = {
  append(input) {
    inputs.push(input);
    return { record: { chain: '', seq: 0, hash: '', prev: '', digest: '' }, durable: Promise.resolve() };
  },
  flush: async () => {},
  close: async () => {},
};
const trail = await createTrail({ sink: keep, serviceName: 'bench' });
const predict = trail.predict(
  {
    output: (p) => ({ score: p }),
    fields: { 'ml.model.format': 'onnx', 'ml.prediction.registered': false },
    modelDigest: `sha256:${'ab'.repeat(32)}`,
  },
  (x) => 1 / (1 + Math.exp(-x.temp_max / 10)),
);
predict({ temp_max: 12.8, temp_min: 5, temp_range: 7.8, wind: 4.7 });
trail.decide({
  predictionId: uuidv7(),
  outcome: 'standard',
  reason: 'probability of rain 0.22 < 0.50',
  threshold: 0.5,
  attributions: { temp_max: -0.031, temp_min: -0.02, temp_range: 0.015, wind: 0.227 },
  automated: true,
});
await trail.shutdown();
// What the emitter starts from: the fields in the order the trail sets them, not sorted.
const records = inputs.map((i) => {
  const sorted = JSON.parse(i.body);
  const raw = {};
  for (const k of Object.keys(sorted).reverse()) raw[k] = sorted[k];
  return { event: i.event, raw, safe: toJsonSafe(raw, [], []), text: i.body };
});
const redactor = createRedactor();
const chain = uuidv7();
const tree = new CompactMerkleTree();
const digests = records.map((r) => bodyDigest(r.text));
const hashes = records.map((_r, i) => recordHash(chain, i, ZERO_HASH, digests[i]));
const lines = records.map((r, i) =>
  serializeRecord({
    v: 2,
    chain,
    seq: i,
    ts: r.safe.timestamp,
    event: r.event,
    sev: 'INFO',
    attrs: {},
    body: r.text,
    digest: digests[i],
    prev: ZERO_HASH,
    hash: hashes[i],
  }),
);
const scratch = Buffer.allocUnsafe(64 * 1024);
// The emitter's whole body step (record assembly, the body, lookup attributes) into a sink that drops it:
// flat records written in one pass, against the same emitter running every record through the stages.
const drop = {
  append: () => ({
    record: { chain: '', seq: 0, hash: '', prev: '', digest: '' },
    durable: Promise.resolve(),
  }),
  flush: async () => {},
  close: async () => {},
};
const onePass = new AuditEmitter({ sink: drop, redactor: createRedactor(), strict: false, common: {} });
const staged = new AuditEmitter({
  sink: drop,
  redactor: createRedactor(),
  strict: false,
  common: {},
  onePass: false,
});

/** Each stage runs over both records; the figure is per record. */
const stages = {
  'JSON-safe copy': (r) => toJsonSafe(r.raw, [], []),
  validation: (r) => acceptsEventBody(r.event, r.safe),
  redaction: (r) => redactor.redact(r.safe),
  'canonical JSON': (r) => canonicalize(r.safe),
  'emit body in stages': (r) => staged.emit(r.event, 'INFO', r.raw),
  'emit body in one pass': (r) => onePass.emit(r.event, 'INFO', r.raw),
  'body digest': (r) => bodyDigest(r.text),
  'record hash': (_r, i) => recordHash(chain, i, ZERO_HASH, digests[i]),
  'Merkle leaf': (_r, i) => tree.appendLeafHash(Buffer.from(hashes[i], 'hex')),
  'journal line': (r, i) =>
    serializeRecord({
      v: 2,
      chain,
      seq: i,
      ts: r.safe.timestamp,
      event: r.event,
      sev: 'INFO',
      attrs: {},
      body: r.text,
      digest: digests[i],
      prev: ZERO_HASH,
      hash: hashes[i],
    }),
  'line encoding': (_r, i) => scratch.write(lines[i], 0, 'utf8'),
};
const cpu = (fn) => {
  const c0 = process.cpuUsage();
  fn();
  const c = process.cpuUsage(c0);
  return c.user + c.system;
};
const timings = Object.fromEntries(Object.keys(stages).map((k) => [k, []]));
timings['whole emit + journal'] = [];
const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-pipeline-'));
const journaled = await createTrail({ sink: new AuditLog({ dir }), serviceName: 'bench' });
const emitWhole = async () => {
  const c0 = process.cpuUsage();
  for (let i = 0; i < N; i++) {
    journaled.decide({
      predictionId: records[1].safe['ml.prediction.id'],
      outcome: 'standard',
      reason: 'probability of rain 0.22 < 0.50',
      threshold: 0.5,
      automated: true,
    });
    if (i % 2000 === 1999) await new Promise((res) => setImmediate(res));
  }
  await journaled.flush();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / N;
};
for (let round = 0; round <= ROUNDS; round++) {
  for (const [name, stage] of Object.entries(stages)) {
    const us = cpu(() => {
      for (let i = 0; i < N; i++) for (let r = 0; r < records.length; r++) stage(records[r], r);
    });
    if (round > 0) timings[name].push(us / (N * records.length));
  }
  const whole = await emitWhole();
  if (round > 0) timings['whole emit + journal'].push(whole);
}
await journaled.shutdown();
rmSync(dir, { recursive: true, force: true });
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const result = { name: 'record-pipeline', unit: 'µs/record' };
for (const [name, xs] of Object.entries(timings)) result[name] = Number(median(xs).toFixed(2));
const sealing = ['body digest', 'record hash', 'Merkle leaf', 'journal line', 'line encoding'];
result.sealing = Number(sealing.reduce((s, k) => s + result[k], 0).toFixed(2));
result.body = Number(
  ['JSON-safe copy', 'validation', 'redaction', 'canonical JSON']
    .reduce((s, k) => s + result[k], 0)
    .toFixed(2),
);
result.bytes_per_line = Math.round(lines.reduce((s, l) => s + Buffer.byteLength(l), 0) / lines.length);
for (const [k, v] of Object.entries(result)) if (typeof v === 'number') console.log(`  ${k.padEnd(22)} ${v}`);
console.log(JSON.stringify(result));
