import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SpanStatusCode } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRegistry } from '../../scripts/semconv-gen.mjs';
import { AuditLog } from '../../src/journal/index.js';
import {
  ATTR_EVENT_NAME,
  ATTR_ML_STAGE_NAME,
  EVENT_ML_STAGE_FAILED,
  EVENT_MLTRAIL_CHECKPOINT,
  LOOKUP_ATTRIBUTES,
  SPAN_NAMES,
  schemaForEvent,
} from '../../src/semconv/index.js';
import { readJournal, type TrailHarness, trailHarness } from '../trail/harness.js';

// The registry is a promise about what mltrail emits. These tests drive every stage of the real trail
// (real SDK providers, real journal) and hold what comes out to the registry: span names and attributes,
// event bodies, and the lookup keys copied into each journal line.
const registry = loadRegistry(fileURLToPath(new URL('../../', import.meta.url)));
const spanGroups = new Map(registry.spans.map((g) => [g.annotations!.mltrail!.span_name!, g]));

let h: TrailHarness;
let journalDir: string;
const journal = () => readJournal(journalDir);

beforeAll(async () => {
  // A checkpoint every 4 records, so mltrail.checkpoint records are held to the registry as well.
  journalDir = mkdtempSync(join(tmpdir(), 'mltrail-semconv-'));
  h = await trailHarness({
    strict: true,
    actor: 'ml-engineer:alice',
    capture: 'full',
    sink: new AuditLog({ dir: journalDir, groupCommitMs: 1, checkpointEvery: 4 }),
  });
  const raw = await h.trail.dataset({ name: 'raw', data: 'a,b\n1,2\n3,4\n', source: 'unit', role: 'raw' });
  const split = h.trail.transform(
    { name: 'split', description: 'first row', inputs: [raw], output: { name: 'train', role: 'train' } },
    (csv: string) => csv.trim().split('\n').slice(1, 2),
  );
  const rows = split('a,b\n1,2\n3,4\n');
  const trainDs = [...h.trail.registry.datasets.values()].find((d) => d.name === 'train')!;
  const train = h.trail.train(
    {
      model: 'toy',
      inputs: [trainDs],
      algorithm: 'logistic-regression',
      framework: 'mltrail-test',
      frameworkVersion: '1.0.0',
      hyperparameters: { lr: 0.1, epochs: 3 },
      seed: 42,
      artifact: (bytes: Uint8Array) => ({ data: bytes, format: 'onnx' }),
    },
    async (_rows: string[]) => new Uint8Array([1, 2, 3]),
  );
  const bytes = await train(rows);
  const run = [...h.trail.registry.runs.values()][0];
  h.trail.evaluate({ run, dataset: trainDs, metric: 'accuracy', threshold: 0.8 }, () => 0.9)();
  const model = await h.trail.register({ name: 'toy', version: '1', run, data: bytes, format: 'onnx' });
  const dep = h.trail.deploy({ model, environment: 'prod', endpoint: 'https://api.example.test/predict' });
  let predictionId = '';
  const predict = h.trail.predict(
    {
      model: dep,
      output: (r: { label: string; score: number }) => r,
      onRecorded: (p) => {
        predictionId = p.id;
      },
    },
    (x: { income: number }) => ({ label: x.income > 10 ? 'approve' : 'deny', score: 0.7 }),
  );
  predict({ income: 20 });
  h.trail.decide({
    predictionId,
    outcome: 'approved',
    reason: 'score above 0.5',
    threshold: 0.5,
    attributions: { income: 1 },
    reviewer: 'underwriter-7',
    override: false,
    automated: false,
  });
  h.trail.feedback({ predictionId, groundTruth: 'approve', correct: true, source: 'repayment' });
  const drift = h.trail.recordDrift({
    feature: 'income',
    test: 'ks',
    statistic: 0.4,
    pValue: 0.001,
    threshold: 0.05,
    score: 0.999,
    windowSize: 60,
    method: 'asymp',
  });
  const trigger = h.trail.retrain({
    reason: 'drift',
    trigger: 'drift',
    triggerIds: [drift.id],
    previous: model,
  });
  await h.trail.train({ model: 'toy', inputs: [trainDs], retraining: trigger }, async () => 'weights-v2')();
  // Failures of every wrapping stage are recorded as ml.stage.failed and rethrown.
  expect(() =>
    h.trail.predict({ model: dep }, () => {
      throw new TypeError('bad tensor shape');
    })(),
  ).toThrow('bad tensor shape');
  await expect(
    h.trail.train({ model: 'toy', inputs: [trainDs] }, async () => {
      throw new RangeError('loss is NaN');
    })(),
  ).rejects.toThrow('loss is NaN');
  expect(() =>
    h.trail.transform({ name: 'clean', inputs: [raw], output: { name: 'clean' } }, () => {
      throw new Error('column missing');
    })(),
  ).toThrow('column missing');
  expect(() =>
    h.trail.evaluate({ run, dataset: trainDs, metric: 'auc', threshold: 0.7 }, () => {
      throw new Error('no positive labels');
    })(),
  ).toThrow('no positive labels');
  await h.trail.flush();
});

afterAll(async () => {
  await h?.trail.shutdown();
  rmSync(journalDir, { recursive: true, force: true });
});

describe('the trail emits what the registry declares', () => {
  it('drove every stage: one span name per lifecycle stage', () => {
    const names = new Set(h.spans.getFinishedSpans().map((s) => s.name));
    expect([...names].sort()).toEqual(Object.values(SPAN_NAMES).sort());
  });

  it('every span is a registry span, carries its stage, and only attributes declared for it', () => {
    const undeclared: string[] = [];
    for (const span of h.spans.getFinishedSpans()) {
      const group = spanGroups.get(span.name);
      expect(group, `span ${span.name} is not in model/spans.yaml`).toBeDefined();
      expect(span.attributes[ATTR_ML_STAGE_NAME]).toBe(group!.annotations!.mltrail!.stage);
      const declared = new Set(group!.attributes!.map((r) => r.ref));
      for (const k of Object.keys(span.attributes))
        if (!declared.has(k)) undeclared.push(`${span.name}: ${k}`);
    }
    expect(undeclared).toEqual([]);
  });

  it('each stage span records the event its registry group names, or ml.stage.failed with status ERROR', () => {
    const lines = journal();
    for (const span of h.spans.getFinishedSpans()) {
      const recorded = lines.filter((l) => l.span_id === span.spanContext().spanId).map((l) => l.event);
      const expected =
        span.status.code === SpanStatusCode.ERROR
          ? EVENT_ML_STAGE_FAILED
          : spanGroups.get(span.name)!.annotations!.mltrail!.event;
      expect(recorded, span.name).toEqual([expected]);
    }
    const failed = lines.filter((l) => l.event === EVENT_ML_STAGE_FAILED);
    expect(failed.map((l) => (l.attrs as Record<string, unknown>)[ATTR_ML_STAGE_NAME])).toEqual([
      'predict',
      'train',
      'transform',
      'evaluate',
    ]);
  });

  it('every journal body satisfies its event schema, with no validation errors attached', () => {
    const lines = journal();
    expect(lines.filter((l) => l.event !== EVENT_MLTRAIL_CHECKPOINT)).toHaveLength(16);
    expect(lines.filter((l) => l.event === EVENT_MLTRAIL_CHECKPOINT).length).toBeGreaterThanOrEqual(3);
    for (const line of lines) {
      const body = JSON.parse(line.body as string) as Record<string, unknown>;
      const r = schemaForEvent(line.event as string)!.safeParse(body);
      expect(r.success ? [] : r.error.issues, `${line.event}`).toEqual([]);
      expect(body['event.name']).toBe(line.event);
    }
  });

  it('the attrs of every journal line are the lookup keys of its body (event.name may stay on the line only)', () => {
    for (const line of journal()) {
      const body = JSON.parse(line.body as string) as Record<string, unknown>;
      const lookup = Object.fromEntries(Object.entries(body).filter(([k]) => LOOKUP_ATTRIBUTES.has(k)));
      // The line's own `event` field carries the event name; checkpoints written by the ChainWriter do
      // not repeat it in attrs, the trail's records do.
      const attrs = { ...(line.attrs as Record<string, unknown>) };
      if (!(ATTR_EVENT_NAME in attrs)) delete lookup[ATTR_EVENT_NAME];
      expect(attrs, `${line.event}`).toEqual(lookup);
    }
  });
});
