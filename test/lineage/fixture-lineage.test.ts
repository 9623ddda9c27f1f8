import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import {
  LineageGraph,
  type LineageResult,
  openLineageFromJournal,
  renderDot,
  renderMermaid,
  renderTree,
  UnknownLineageIdError,
} from '../../src/lineage/index.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';
import { describeWithSharedData } from '../shared-data.js';
import { expectValidOpenLineage } from './openlineage-validation.js';

// Lineage and OpenLineage on a journal written through the real trail API (test/fixtures/trail-journal.ts):
// every stage, a failed retraining attempt, and v1 → drift → retraining → v2, with exact expected ids.

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });

interface Json {
  root: { id: string };
  nodes: { id: string; kind: string; facts: Record<string, unknown>; record?: string }[];
  edges: { from: string; to: string; relation: string }[];
}

let j: TrailJournal;
let graph: LineageGraph;

beforeAll(async () => {
  j = await buildTrailJournal();
  graph = LineageGraph.fromJournal(j.dir);
});

describe('lineage graph from a trail journal', () => {
  it('a v1 prediction reaches the raw data set (sha256 digest) through deployment, model, run and the split transform', () => {
    const r = cli(['lineage', j.declined, '--journal', j.dir, '--json', '--upstream']);
    expect(r.status, r.stderr).toBe(0);
    const { root, nodes, edges } = JSON.parse(r.stdout) as Json;
    expect(root.id).toBe(j.declined);
    const path = (id: string) => edges.filter((e) => e.to === id).map((e) => `${e.relation}<-${e.from}`);
    expect(path(j.declined)).toEqual([`served<-${j.deployment1.id}`]);
    expect(path(j.deployment1.id)).toEqual(['deployed<-credit-risk@1']);
    expect(path('credit-risk@1')).toEqual([`produced<-${j.run1}`]);
    expect(path(j.run1)).toEqual([`trained on<-${j.trainSet.id}`]);
    const split = edges.find((e) => e.to === j.trainSet.id)!.from;
    expect(nodes.find((n) => n.id === split)).toEqual(
      expect.objectContaining({
        kind: 'transform',
        facts: expect.objectContaining({ 'ml.transform.name': 'split-train' }),
      }),
    );
    expect(path(split)).toEqual([`input<-${j.raw.id}`]);
    const raw = nodes.find((n) => n.id === j.raw.id)!;
    expect(raw.facts['ml.dataset.digest']).toBe(j.raw.digest);
    expect(raw.facts['ml.dataset.digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(path(j.raw.id)).toEqual(['provides<-source:file:data/applications.csv']);
    // Every node that came from a record names the record, for `mltrail verify` and inclusion proofs.
    for (const n of nodes.filter((x) => x.kind !== 'source'))
      expect(n.record, n.id).toMatch(/^[0-9a-f-]+:\d+$/);
  });

  it('downstream impact from the raw data set lists every prediction of both model versions, and the decline', () => {
    const r = cli(['lineage', j.raw.id, '--journal', j.dir, '--json', '--downstream', '--facts']);
    expect(r.status, r.stderr).toBe(0);
    const { nodes } = JSON.parse(r.stdout) as Json;
    const predictions = nodes.filter((n) => n.kind === 'prediction').map((n) => n.id);
    expect(predictions.sort()).toEqual([...j.predictions1, ...j.predictions2].sort());
    const decisions = nodes.filter((n) => n.kind === 'decision');
    expect(decisions.length).toBe(j.predictions1.length + j.predictions2.length);
    expect(decisions.filter((d) => d.facts['ml.decision.outcome'] === 'decline').length).toBe(1);
    expect(nodes.filter((n) => n.kind === 'feedback').length).toBe(j.withFeedback.length);
    // Without --facts the same nodes, each what the journal index holds: id, kind and record.
    const lean = cli(['lineage', j.raw.id, '--journal', j.dir, '--json', '--downstream']);
    expect(lean.status, lean.stderr).toBe(0);
    const streamed = new Set(['prediction', 'decision', 'feedback']);
    expect((JSON.parse(lean.stdout) as Json).nodes).toEqual(
      nodes.map((n) => (streamed.has(n.kind) ? { id: n.id, kind: n.kind, record: n.record } : n)),
    );
  });

  it('v2 was retrained because of the drift on v1’s deployment; the failed attempt is in the lineage', () => {
    const up = graph.query('credit-risk@2', 'upstream');
    const rel = (from: string, to: string) => up.edges.find((e) => e.from === from && e.to === to)?.relation;
    expect(rel(j.run2, 'credit-risk@2')).toBe('produced');
    expect(rel(`retraining:${j.run2}`, j.run2)).toBe('retrained because of drift');
    for (const d of j.driftIds) {
      expect(rel(d, `retraining:${j.run2}`)).toBe('triggered');
      expect(rel(j.deployment1.id, d)).toBe('drifted');
    }
    const failed = graph.resolve(j.failedRunId)!;
    expect(failed).toEqual(
      expect.objectContaining({
        kind: 'run',
        facts: expect.objectContaining({
          status: 'failed',
          'error.type': 'RangeError',
          'exception.message': 'did not converge in 0 epochs',
        }),
      }),
    );
    expect(graph.inputsOf(j.failedRunId).map((e) => e.from)).toEqual([j.trainSet.id]);
  });

  it('resolves a model version by its digest and a data set by its digest', () => {
    expect(graph.resolve(j.model2.digest!)?.id).toBe('credit-risk@2');
    expect(graph.resolve(j.raw.digest!)?.id).toBe(j.raw.id);
  });

  it('unknown ids list close matches (prefix and edit distance); no match is still a clear error', () => {
    expect(() => graph.query('credit-risk@3')).toThrow(UnknownLineageIdError);
    expect(graph.suggest('credit-risk@3')).toEqual(
      expect.arrayContaining(['credit-risk@1', 'credit-risk@2']),
    );
    expect(graph.suggest(j.declined.slice(0, 20))).toContain(j.declined);
    const accessJournal = join(mkdtempSync(join(tmpdir(), 'mltrail-access-')), 'access');
    const none = cli([
      'lineage',
      'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz',
      '--journal',
      j.dir,
      '--actor',
      'probe',
      '--access-journal',
      accessJournal,
    ]);
    expect(none.status).toBe(1);
    expect(none.stderr).toMatch(/no lineage node "z+" \(in /);
    // The lookup that found nothing is recorded too (result count 0), in the access journal.
    const last = [...new JournalReader(accessJournal).lines()]
      .map((l) => parseRecordLine(l.text))
      .filter((rec) => rec.event === 'mltrail.access')
      .map((rec) => JSON.parse(rec.body))
      .at(-1);
    expect(last).toEqual(
      expect.objectContaining({
        'mltrail.access.actor': 'probe',
        'mltrail.access.command': 'lineage',
        'mltrail.access.result_count': 0,
      }),
    );
    const usage = cli(['lineage', j.declined, '--journal', j.dir, '--format', 'svg']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/--format must be tree, mermaid or dot/);
  });

  it('mermaid and dot stay well-formed when record values contain quotes, backslashes and newlines', () => {
    const r = graph.query(j.declined, 'upstream');
    const nasty = { ...r.root, label: 'a "quoted" \\ label\nwith a newline \\' };
    const result = { ...r, nodes: r.nodes.map((n) => (n.id === r.root.id ? nasty : n)) };
    const dot = renderDot(result);
    const rootLine = dot.split('\n').find((l) => l.includes('quoted'))!;
    // One quoted string: every inner quote and backslash is escaped, no raw newline.
    expect(rootLine).toMatch(/^ {2}n\d+ \[label="([^"\\]|\\.)*", style=bold\];$/);
    const mermaid = renderMermaid(result);
    const mLine = mermaid.split('\n').find((l) => l.includes('quoted'))!;
    expect(mLine).toMatch(/^ {2}n\d+\["[^"]*"\]$/);
  });

  it('the terminal tree shows control characters in record values as escapes (no terminal injection)', () => {
    const r = graph.query(j.declined, 'upstream');
    const evil = '\u001b[2J\u001b[31mAPPROVED\rfake line\nsecond';
    const result = {
      ...r,
      nodes: r.nodes.map((n) => (n.id === r.root.id ? { ...n, label: evil, facts: { note: evil } } : n)),
    };
    const tree = renderTree(result);
    expect(tree).not.toMatch(/[\u0000-\u0009\u000b-\u001f]/);
    expect(tree.split('\n')[0]).toBe(
      `\\u001b[2J\\u001b[31mAPPROVED\\u000dfake line\\u000asecond [${j.declined}] note=\\u001b[2J\\u001b[31mAPPROVED\\u000dfake line\\u000asecond`,
    );
  });

  it('the terminal tree shows the path with key facts', () => {
    const r = cli(['lineage', 'credit-risk@1', '--journal', j.dir]);
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')[0]).toMatch(/^model credit-risk@1 \[credit-risk@1\] .*digest=sha256:/);
    expect(r.stdout).toMatch(/upstream:\n {2}└─ ← produced: training run of credit-risk/);
    expect(r.stdout).toMatch(/downstream:/);
    expect(r.stdout).toMatch(/→ deployed: deployment to production/);
  });

  it('an erased prediction (GDPR Art. 17) is still found through the decision that names it, marked as not recorded', async () => {
    const other = await buildTrailJournal({ predictionsPerVersion: 3 });
    const target = [...new JournalReader(other.dir).lines()]
      .map((l) => parseRecordLine(l.text, l))
      .find((r) => r.event === 'ml.prediction' && JSON.parse(r.body)['ml.prediction.id'] === other.declined)!;
    const erase = cli([
      'erase',
      `${target.chain}:${target.seq}`,
      '--reason',
      'request 17',
      '--journal',
      other.dir,
    ]);
    expect(erase.status, erase.stderr).toBe(0);
    const erased = [...new JournalReader(other.dir).lines()]
      .map((l) => parseRecordLine(l.text, l))
      .find((r) => r.chain === target.chain && r.seq === target.seq)!;
    expect(erased.body).toBe('');
    // Erasure empties body and attrs, so the prediction's own links are gone; its decision still names it.
    const r = cli(['lineage', other.declined, '--journal', other.dir, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const { root, nodes, edges } = JSON.parse(r.stdout) as Json;
    expect(root).toEqual(
      expect.objectContaining({ id: other.declined, kind: 'prediction', facts: { recorded: false } }),
    );
    const decision = edges.find((e) => e.from === other.declined && e.relation === 'decided')!.to;
    expect(nodes.find((n) => n.id === decision)?.facts['ml.decision.outcome']).toBe('decline');
    expect(cli(['verify', other.dir]).status).toBe(0);
    // The evidence report cannot be made from an erased record, and says why.
    const report = cli(['report', '--prediction', other.declined, '--journal', other.dir]);
    expect(report.status).toBe(1);
    expect(report.stderr).toMatch(
      /has no record in .* \(erased under GDPR Art\. 17, or not in this journal\); 1 decision\/feedback record\(s\) name it/,
    );
  });
});

describeWithSharedData('openlineage', 'OpenLineage export of a trail journal', () => {
  it('START/COMPLETE per stage and FAIL with errorMessage for the failed run, all valid against the spec and facet schemas', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'mltrail-ol-fixture-')), 'events.ndjson');
    const r = cli(['export', 'openlineage', '--journal', j.dir, '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    const lines = readFileSync(out, 'utf8').trim().split('\n');
    const events = lines.map((l) => JSON.parse(l));
    // stdout without --out carries the same events.
    const stdout = cli(['export', 'openlineage', '--journal', j.dir]);
    expect(
      stdout.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).run.runId),
    ).toEqual(events.map((e) => e.run.runId));
    expect(events).toEqual(openLineageFromJournal(j.dir).map((e) => expect.objectContaining(e)));
    expectValidOpenLineage(events);
    // Two transforms, two successful training runs, two evaluations: a START and a COMPLETE each; the
    // failed retraining attempt: a START and a FAIL.
    const byType = (t: string) => events.filter((e) => e.eventType === t);
    expect(byType('START').length).toBe(7);
    expect(byType('COMPLETE').length).toBe(6);
    const fail = byType('FAIL');
    expect(fail.length).toBe(1);
    expect(fail[0].run.runId).toBe(j.failedRunId);
    expect(events.filter((e) => e.run.runId === j.failedRunId).map((e) => e.eventType)).toEqual([
      'START',
      'FAIL',
    ]);
    expect(fail[0].run.facets.errorMessage.message).toBe('RangeError: did not converge in 0 epochs');
    const train1 = events.find((e) => e.eventType === 'COMPLETE' && e.run.runId === j.run1);
    expect(train1.inputs.map((d: { name: string }) => d.name)).toEqual(['applications-train']);
    expect(train1.outputs[0].facets.version.datasetVersion).toBe(j.model1.digest);
    const split = events.find(
      (e) => e.eventType === 'COMPLETE' && e.job.name === 'credit.transform.split-train',
    );
    expect(split.inputs[0].facets.dataSource.uri).toBe('file:data/applications.csv');
    expect(split.run.facets.mltrail_ml.auditRecord.seq).toEqual(expect.any(Number));
    const train2 = events.find((e) => e.eventType === 'COMPLETE' && e.run.runId === j.run2);
    expect(train2.run.facets.mltrail_ml.retrainingTriggerIds).toEqual(j.driftIds);
  });
});

describe('LineageGraph.queryJournal reads per-prediction records only when the answer needs them', () => {
  it('gives exactly the full graph’s answer for every id and direction', async () => {
    const full = LineageGraph.fromJournal(j.dir);
    const ids = [
      j.declined,
      j.predictions2[2],
      j.raw.id,
      j.trainSet.id,
      'credit-risk@1',
      j.model2.digest!,
      j.deployment1.id,
      j.run2,
      j.driftIds[0],
      j.failedRunId,
      [...full.nodes.values()].find((n) => n.kind === 'decision')!.id,
      [...full.nodes.values()].find((n) => n.kind === 'feedback')!.id,
    ];
    const canon = (r: LineageResult) => ({
      root: r.root.id,
      nodes: r.nodes.map((n) => JSON.stringify(n)).sort(),
      edges: r.edges.map((e) => `${e.from} ${e.relation} ${e.to}`).sort(),
    });
    for (const id of ids)
      for (const direction of ['upstream', 'downstream', 'both'] as const)
        expect(canon(LineageGraph.queryJournal(j.dir, id, direction)), `${id} ${direction}`).toEqual(
          canon(full.query(id, direction)),
        );
    expect(() => LineageGraph.queryJournal(j.dir, 'credit-risk@3')).toThrow(/did you mean "credit-risk@1"/);
  });
});
