// Benchmark (not a test): lineage query latency on a 1M-record journal (one model, 1M predictions):
// a prediction's upstream as `mltrail lineage` answers it, and the impact query (every prediction downstream of
// the data set, from the whole graph). Baseline: reading the same journal lines without building anything. Usage: npm run build && node bench/lineage.mjs [records]
import './node-check.mjs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditLog, JournalReader } from '../dist/journal/index.js';
import { LineageGraph } from '../dist/lineage/index.js';
import { createTrail } from '../dist/trail/index.js';
import { benchPipeline } from './scale-journal.mjs';

const N = Number(process.argv[2] ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-lineage-'));
const trail = await createTrail({
  serviceName: 'bench',
  redactor: false,
  sink: new AuditLog({ dir, groupCommitMs: 20 }),
});
const { data, dep } = await benchPipeline(trail);
let last = '';
const predict = trail.predict({ model: dep, capture: 'none', onRecorded: (p) => (last = p.id) }, (x) => x);
process.stderr.write(`writing ${N.toLocaleString()} predictions…\n`);
for (let i = 0; i < N; i++) {
  predict(i);
  if (i % 20_000 === 19_999) await trail.flush();
}
await trail.shutdown();

let t = performance.now();
let lines = 0;
for (const _ of new JournalReader(dir).lines()) lines++;
const readSecs = (performance.now() - t) / 1000;
t = performance.now();
// What `mltrail lineage <prediction>` runs: per-prediction records are read only when the answer needs them.
const r = LineageGraph.queryJournal(dir, last, 'upstream');
const secs = (performance.now() - t) / 1000;
if (r.nodes.length < 4) throw new Error('lineage query did not reach the dataset');
// The impact query needs every prediction: the whole graph, then the walk down from the data set.
t = performance.now();
const impact = LineageGraph.fromJournal(dir).query(data.id, 'downstream');
const impactSecs = (performance.now() - t) / 1000;
if (impact.nodes.filter((n) => n.kind === 'prediction').length !== N)
  throw new Error('impact query did not list every prediction');
console.log(
  JSON.stringify({
    name: 'lineage-scan-1m',
    unit: 's',
    value: Number(secs.toFixed(2)),
    baseline: Number(readSecs.toFixed(2)),
    ratio: Number((secs / readSecs).toFixed(2)),
    records: lines,
    impactSeconds: Number(impactSecs.toFixed(2)),
  }),
);
rmSync(dir, { recursive: true, force: true });
