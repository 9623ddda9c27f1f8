import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { LineageGraph } from '../../src/lineage/index.js';
import { describeWithSharedData } from '../shared-data.js';
import { expectValidOpenLineage } from './openlineage-validation.js';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
let dir = '';
let predictionId = '';

beforeAll(() => {
  // A realistic journal: the demo (real data set, training, evaluation, deployment, drift, retraining).
  dir = join(mkdtempSync(join(tmpdir(), 'mltrail-lineage-')), 'journal');
  expect(cli(['demo', '--journal', dir]).status).toBe(0);
  for (const l of new JournalReader(dir).lines()) {
    const r = parseRecordLine(l.text);
    if (r.event === 'ml.prediction') {
      predictionId = JSON.parse(r.body)['ml.prediction.id'];
      break;
    }
  }
});

describe('mltrail lineage', () => {
  it('a prediction reaches the source data set and its sha256 digest through deployment, model version, run and transforms', () => {
    const r = cli(['lineage', predictionId, '--journal', dir, '--json', '--upstream']);
    expect(r.status).toBe(0);
    const { nodes, edges } = JSON.parse(r.stdout) as {
      nodes: { id: string; kind: string; facts: Record<string, unknown> }[];
      edges: { from: string; to: string; relation: string }[];
    };
    const kinds = nodes.map((n) => n.kind);
    for (const k of ['prediction', 'deployment', 'model', 'run', 'dataset', 'transform', 'source'])
      expect(kinds, k).toContain(k);
    const raw = nodes.find((n) => n.kind === 'dataset' && n.facts['ml.dataset.name'] === 'seattle-weather')!;
    expect(raw.facts['ml.dataset.digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
    // Walk the edges back from the prediction: deployment → model → run → dataset → transform → dataset → source.
    const back = (id: string) => edges.filter((e) => e.to === id).map((e) => e.from);
    const dep = back(predictionId)[0];
    expect(nodes.find((n) => n.id === dep)!.kind).toBe('deployment');
    const model = back(dep)[0];
    expect(model).toBe('rain-cover@1');
    const run = back(model)[0];
    expect(nodes.find((n) => n.id === run)!.facts['ml.training.algorithm']).toBe('logistic-regression');
    const trainSet = back(run)[0];
    const transform = back(trainSet)[0];
    expect(back(transform)).toEqual([raw.id]);
    expect(back(raw.id)).toEqual(['source:npm:vega-datasets/data/seattle-weather.csv']);
  });

  it('downstream impact: the predictions made by models trained on a dataset version', () => {
    const graph = LineageGraph.fromJournal(dir);
    const trainSet = [...graph.nodes.values()].find(
      (n) => n.facts['ml.dataset.name'] === 'weather-train-2012-2013',
    )!;
    const r = cli(['lineage', trainSet.id, '--journal', dir, '--json', '--downstream']);
    expect(r.status).toBe(0);
    const { nodes } = JSON.parse(r.stdout) as { nodes: { id: string; kind: string }[] };
    expect(nodes.filter((n) => n.kind === 'prediction').map((n) => n.id)).toContain(predictionId);
    // v1 was trained on it; v2 follows through the drift that triggered its retraining.
    expect(nodes.filter((n) => n.kind === 'model').map((n) => n.id)).toEqual([
      'rain-cover@1',
      'rain-cover@2',
    ]);
  });

  it('the v2 model shows it was retrained because of drift', () => {
    const r = cli(['lineage', 'rain-cover@2', '--journal', dir, '--upstream']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/retrained because of drift/);
    expect(r.stdout).toMatch(/triggered: drift on temp_/);
  });

  it('resolves a model by digest, renders mermaid and dot, and rejects unknown ids with close matches', () => {
    const graph = LineageGraph.fromJournal(dir);
    const digest = graph.resolve('rain-cover@1')!.facts['ml.model.digest'] as string;
    expect(cli(['lineage', digest, '--journal', dir, '--format', 'mermaid']).stdout).toMatch(/^flowchart LR/);
    expect(cli(['lineage', 'rain-cover@1', '--journal', dir, '--format', 'dot']).stdout).toMatch(
      /^digraph lineage/,
    );
    const unknown = cli(['lineage', 'rain-cover@3', '--journal', dir]);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toMatch(/no lineage node "rain-cover@3"; did you mean "rain-cover@1"/);
  });
});

describeWithSharedData('openlineage', 'OpenLineage export validates against the spec', () => {
  it('every event validates against OpenLineage 2-0-2, its facets against theirs, and mltrail_ml against its schema', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mltrail-ol-')), 'events.ndjson');
    expect(cli(['export', 'openlineage', '--journal', dir, '--out', out]).status).toBe(0);
    const events = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(events.map((e) => e.eventType)).toEqual(expect.arrayContaining(['START', 'COMPLETE']));
    const checkedFacets = expectValidOpenLineage(events);
    expect(checkedFacets).toBeGreaterThan(20);
    const train = events.find((e) => e.eventType === 'COMPLETE' && e.job.name.includes('.train.'));
    expect(train.run.facets.mltrail_ml).toEqual(
      expect.objectContaining({
        stage: 'train',
        algorithm: 'logistic-regression',
        seed: 20121,
        model: expect.objectContaining({ name: 'rain-cover' }),
      }),
    );
  });
});
