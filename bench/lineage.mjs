// Benchmark (not a test): lineage on a 1M-record journal — a pipeline (raw data set → split → training run →
// evaluation → registration → deployment) followed by predictions and their decisions, every record a real
// hash-chained journal line with the body the trail writes. Measures what `mltrail lineage` costs against the
// floor of streaming the same journal, the graph's memory, and the two queries auditors ask. Usage:
//   npm run build && node bench/lineage.mjs [records]      (default 1 000 000)
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ChainWriter, canonicalize, generateSigner, serializeRecord } from '../dist/integrity/index.js';
import { JournalReader, JournalWriter } from '../dist/journal/index.js';
import { LineageGraph } from '../dist/lineage/index.js';

const N = Number(process.argv[2] ?? 1_000_000);
// A real gc() without --expose-gc on the command line, so the heap figure is the graph's, not garbage.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-lineage-'));
const { signer } = generateSigner('bench');
const chain = new ChainWriter({ signer, checkpointEvery: 10_000 });
const writer = new JournalWriter({
  dir,
  chainId: chain.chainId,
  groupCommitMs: 50,
  segmentBytes: 256 * 1024 * 1024,
});
const hex = (i, n = 64) => i.toString(16).padStart(n, '0');
const uuid = (i) => `01900000-0000-7000-8000-${hex(i, 12)}`;
let t0 = 1_764_000_000_000;
let written = 0;
const common = { 'service.name': 'bench', 'ml.pipeline.name': 'bench', 'ml.actor.id': 'bench@example.test' };
function append(event, fields, attrs) {
  const ts = new Date(t0++).toISOString();
  const body = canonicalize({ 'event.name': event, timestamp: ts, ...common, ...fields });
  for (const r of chain.append({ event, sev: 'INFO', ts, attrs, body })) writer.append(serializeRecord(r));
  written++;
}

const model = {
  'ml.model.name': 'credit-risk',
  'ml.model.version': '1',
  'ml.model.digest': `sha256:${hex(7)}`,
};
const deploymentId = uuid(5);
append('ml.dataset.registered', {
  'ml.dataset.id': 'applications@raw',
  'ml.dataset.name': 'applications',
  'ml.dataset.version': 'raw',
  'ml.dataset.digest': `sha256:${hex(1)}`,
  'ml.dataset.source': 'file:data/applications.csv',
  'ml.dataset.row_count': 1_000_000,
});
append('ml.transform.completed', {
  'ml.transform.id': uuid(2),
  'ml.transform.name': 'split-train',
  'ml.transform.input_ids': ['applications@raw'],
  'ml.transform.output_id': 'applications-train@1',
  'ml.dataset.name': 'applications-train',
  'ml.dataset.version': '1',
  'ml.dataset.digest': `sha256:${hex(2)}`,
});
append('ml.training.completed', {
  'ml.run.id': uuid(3),
  'ml.run.type': 'training',
  ...model,
  'ml.training.algorithm': 'logistic-regression',
  'ml.training.input_dataset_ids': ['applications-train@1'],
  'ml.training.seed': 42,
});
append('ml.evaluation.completed', {
  'ml.evaluation.id': uuid(4),
  'ml.run.id': uuid(3),
  'ml.evaluation.dataset_id': 'applications-train@1',
  'ml.evaluation.metric_name': 'auc',
  'ml.evaluation.metric_value': 0.81,
});
append('ml.model.registered', { ...model, 'ml.run.id': uuid(3), 'ml.model.approved_by': 'risk-committee' });
append('ml.deployment.completed', {
  ...model,
  'ml.deployment.id': deploymentId,
  'ml.deployment.environment': 'prod',
});
process.stderr.write(`writing ${N.toLocaleString()} records…\n`);
let lastPrediction = '';
for (let i = 0; written < N; i++) {
  const id = uuid(1_000_000 + i);
  lastPrediction = id;
  append(
    'ml.prediction',
    {
      'ml.prediction.id': id,
      ...model,
      'ml.deployment.id': deploymentId,
      'ml.prediction.output_label': i % 3 === 0 ? 'high-risk' : 'low-risk',
      'ml.prediction.output_score': (i % 1000) / 1000,
      'ml.prediction.input_digest': `sha256:${hex(i)}`,
      'ml.prediction.latency_ms': 0.42,
    },
    { 'ml.prediction.id': id, 'ml.model.version': '1' },
  );
  if (written >= N) break;
  append(
    'ml.decision',
    {
      'ml.decision.id': uuid(3_000_000 + i),
      'ml.prediction.id': id,
      'ml.decision.outcome': i % 3 === 0 ? 'decline' : 'approve',
      'ml.decision.reason': `score ${(i % 1000) / 1000} vs 0.5`,
      'ml.decision.automated': true,
    },
    { 'ml.prediction.id': id },
  );
  if (i % 50_000 === 49_999) await writer.flush();
}
await writer.close();

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
const runs = 3;
const floor = [];
const build = [];
let lines = 0;
for (let r = 0; r < runs; r++) {
  let t = performance.now();
  lines = 0;
  for (const _ of new JournalReader(dir).lines()) lines++;
  floor.push((performance.now() - t) / 1000);
  t = performance.now();
  LineageGraph.fromJournal(dir);
  build.push((performance.now() - t) / 1000);
}
gc();
const heapBefore = process.memoryUsage().heapUsed;
const graph = LineageGraph.fromJournal(dir);
gc();
const heapMB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
let t = performance.now();
const up = graph.query(lastPrediction, 'upstream');
const upstreamMs = performance.now() - t;
t = performance.now();
const down = graph.query('applications@raw', 'downstream');
const downstreamMs = performance.now() - t;
const predictions = down.nodes.filter((n) => n.kind === 'prediction').length;

const cli = [];
for (let r = 0; r < runs; r++) {
  t = performance.now();
  const res = spawnSync(
    process.execPath,
    ['dist/cli/main.js', 'lineage', lastPrediction, '--journal', dir, '--json'],
    {
      encoding: 'utf8',
      maxBuffer: 1 << 30,
    },
  );
  if (res.status !== 0) throw new Error(`mltrail lineage failed: ${res.stderr}`);
  cli.push((performance.now() - t) / 1000);
}
const result = {
  name: 'lineage-1m',
  unit: 's',
  value: Number(median(cli).toFixed(2)),
  baseline: Number(median(floor).toFixed(2)),
  ratio: Number((median(floor) / median(cli)).toFixed(3)),
  records: lines,
  buildSeconds: Number(median(build).toFixed(2)),
  graphHeapMB: Math.round(heapMB),
  nodes: graph.nodes.size,
  upstreamNodes: up.nodes.length,
  upstreamMs: Number(upstreamMs.toFixed(2)),
  downstreamPredictions: predictions,
  downstreamMs: Math.round(downstreamMs),
};
console.log(JSON.stringify(result));
if (!process.env.KEEP) rmSync(dir, { recursive: true, force: true });
