import { SpanStatusCode } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/integrity/index.js';
import { HEX16, HEX32, ISO, type TrailHarness, trailHarness, UUID_V7 } from './harness.js';

const DIGEST = /^sha256:[0-9a-f]{64}$/;
const common = {
  'service.name': 'test-service',
  'deployment.environment.name': 'test',
  'ml.pipeline.name': 'unit',
};

let h: TrailHarness;
afterEach(async () => {
  await h?.trail.shutdown();
});

/** The audit log record the trail mirrored to the in-memory log exporter, parsed. */
function auditRecords(harness: TrailHarness) {
  return harness.logs.getFinishedLogRecords().map((r) => ({
    eventName: r.eventName,
    severityText: r.severityText,
    body: JSON.parse(r.body as string) as Record<string, unknown>,
    bodyText: r.body as string,
    attributes: r.attributes,
    traceId: r.spanContext?.traceId,
    spanId: r.spanContext?.spanId,
  }));
}

function chainAttrs() {
  return {
    'mltrail.chain.id': expect.stringMatching(UUID_V7),
    'mltrail.seq': expect.any(Number),
    'mltrail.prev_hash': expect.stringMatching(/^[0-9a-f]{64}$/),
    'mltrail.hash': expect.stringMatching(/^[0-9a-f]{64}$/),
    'mltrail.body.digest': expect.stringMatching(DIGEST),
  };
}

describe('trail stages: span, links and audit record', () => {
  it('dataset(): digest from rows, span attributes, canonical body', async () => {
    h = await trailHarness({ strict: true });
    const rows = [
      { date: '2012-01-01', temp_max: 12.8, weather: 'drizzle' },
      { date: '2012-01-02', temp_max: 10.6, weather: 'rain' },
    ];
    const ds = await h.trail.dataset({ name: 'weather', rows, source: 'vega-datasets', role: 'raw' });
    const expectedDigest = `sha256:${(await import('node:crypto'))
      .createHash('sha256')
      .update(rows.map((r) => `${canonicalize(r)}\n`).join(''))
      .digest('hex')}`;
    expect(ds).toEqual({
      kind: 'dataset',
      id: `weather@${expectedDigest.slice(7, 19)}`,
      name: 'weather',
      version: expectedDigest.slice(7, 19),
      digest: expectedDigest,
      rowCount: 2,
      spanContext: expect.objectContaining({ traceId: expect.stringMatching(HEX32) }),
    });
    const [span] = h.spans.getFinishedSpans();
    expect(span.name).toBe('ml.dataset');
    expect(span.attributes).toEqual({
      'ml.stage.name': 'dataset',
      'ml.dataset.id': ds.id,
      'ml.dataset.name': 'weather',
      'ml.dataset.version': ds.version,
      'ml.dataset.digest': expectedDigest,
      'ml.dataset.source': 'vega-datasets',
      'ml.dataset.role': 'raw',
      'ml.dataset.row_count': 2,
    });
    expect(span.links).toEqual([]);
    const [rec] = auditRecords(h);
    expect(rec.eventName).toBe('ml.dataset.registered');
    expect(rec.severityText).toBe('INFO');
    expect(rec.body).toEqual({
      ...common,
      'event.name': 'ml.dataset.registered',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
      'ml.dataset.id': ds.id,
      'ml.dataset.name': 'weather',
      'ml.dataset.version': ds.version,
      'ml.dataset.digest': expectedDigest,
      'ml.dataset.source': 'vega-datasets',
      'ml.dataset.role': 'raw',
      'ml.dataset.row_count': 2,
    });
    // The body is canonical JSON (RFC 8785), byte for byte.
    expect(rec.bodyText).toBe(canonicalize(rec.body));
    expect(rec.traceId).toBe(span.spanContext().traceId);
    expect(rec.attributes).toEqual(
      expect.objectContaining({
        'event.name': 'ml.dataset.registered',
        'ml.dataset.id': ds.id,
        ...chainAttrs(),
      }),
    );
  });

  it('transform() → train() → evaluate() → register() → deploy(): links follow the lineage', async () => {
    h = await trailHarness({ strict: true, actor: 'ml-engineer:alice' });
    const raw = await h.trail.dataset({ name: 'raw', data: 'a,b\n1,2\n3,4\n' });
    const split = h.trail.transform(
      {
        name: 'split',
        description: 'first row for training',
        inputs: [raw],
        output: { name: 'train', role: 'train' },
      },
      (csv: string) => csv.trim().split('\n').slice(1, 2),
    );
    const trainRows = split('a,b\n1,2\n3,4\n');
    expect(trainRows).toEqual(['1,2']);
    const trainDs = [...h.trail.registry.datasets.values()].find((d) => d.name === 'train')!;

    const trainModel = h.trail.train(
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
    const modelBytes = await trainModel(trainRows);
    const run = [...h.trail.registry.runs.values()][0];
    expect(run.modelDigest).toMatch(DIGEST);

    const evaluate = h.trail.evaluate(
      { run, dataset: trainDs, metric: 'accuracy', threshold: 0.8 },
      () => 0.9,
    );
    expect(evaluate()).toBe(0.9);
    const model = await h.trail.register({
      name: 'toy',
      version: '1',
      run,
      data: modelBytes,
      format: 'onnx',
    });
    expect(model.digest).toBe(run.modelDigest);
    const dep = h.trail.deploy({ model, environment: 'prod', endpoint: 'https://api.example.test/predict' });

    const spans = h.spans.getFinishedSpans();
    const byName = Object.fromEntries(spans.map((s) => [s.name, s]));
    const ctx = (n: string) => byName[n].spanContext();
    expect(byName['ml.transform'].links.map((l) => l.context.spanId)).toEqual([ctx('ml.dataset').spanId]);
    expect(byName['ml.train'].links.map((l) => l.context.spanId)).toEqual([ctx('ml.transform').spanId]);
    expect(byName['ml.evaluate'].links.map((l) => l.context.spanId)).toEqual([
      ctx('ml.transform').spanId,
      ctx('ml.train').spanId,
    ]);
    expect(byName['ml.register'].links.map((l) => l.context.spanId)).toEqual([ctx('ml.train').spanId]);
    expect(byName['ml.deploy'].links.map((l) => l.context.spanId)).toEqual([ctx('ml.register').spanId]);

    expect(byName['ml.train'].attributes).toEqual({
      'ml.stage.name': 'train',
      'ml.run.id': run.id,
      'ml.run.type': 'training',
      'ml.model.name': 'toy',
      'ml.training.algorithm': 'logistic-regression',
      'ml.training.framework': 'mltrail-test',
      'ml.training.framework_version': '1.0.0',
      'ml.training.seed': 42,
      'ml.training.input_dataset_ids': [trainDs.id],
      'ml.training.hyperparameters': '{"epochs":3,"lr":0.1}',
      'ml.training.duration_ms': expect.any(Number),
      'ml.model.digest': run.modelDigest,
      'ml.model.format': 'onnx',
    });

    const recs = auditRecords(h);
    expect(recs.map((r) => r.eventName)).toEqual([
      'ml.dataset.registered',
      'ml.transform.completed',
      'ml.training.completed',
      'ml.evaluation.completed',
      'ml.model.registered',
      'ml.deployment.completed',
    ]);
    expect(recs[1].body).toEqual({
      ...common,
      'event.name': 'ml.transform.completed',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.actor.id': 'ml-engineer:alice',
      'ml.transform.id': expect.stringMatching(UUID_V7),
      'ml.transform.name': 'split',
      'ml.transform.description': 'first row for training',
      'ml.transform.input_ids': [raw.id],
      'ml.transform.output_id': trainDs.id,
      'ml.dataset.id': trainDs.id,
      'ml.dataset.name': 'train',
      'ml.dataset.version': trainDs.version,
      'ml.dataset.digest': trainDs.digest,
      'ml.dataset.row_count': 1,
      'ml.dataset.role': 'train',
    });
    expect(recs[3].body).toEqual({
      ...common,
      'event.name': 'ml.evaluation.completed',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.actor.id': 'ml-engineer:alice',
      'ml.evaluation.id': expect.stringMatching(UUID_V7),
      'ml.run.id': run.id,
      'ml.evaluation.dataset_id': trainDs.id,
      'ml.evaluation.metric_name': 'accuracy',
      'ml.evaluation.metric_value': 0.9,
      'ml.evaluation.metrics': '{"accuracy":0.9}',
      'ml.evaluation.threshold': 0.8,
      'ml.evaluation.passed': true,
      'ml.model.name': 'toy',
    });
    expect(recs[5].body).toEqual({
      ...common,
      'event.name': 'ml.deployment.completed',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.actor.id': 'ml-engineer:alice',
      'ml.deployment.id': dep.id,
      'ml.deployment.environment': 'prod',
      'ml.deployment.endpoint': 'https://api.example.test/predict',
      'ml.model.name': 'toy',
      'ml.model.version': '1',
      'ml.model.digest': model.digest,
    });
  });

  it('predict() → decide() → feedback(): prediction id, input digest, decision reasons', async () => {
    h = await trailHarness({ strict: true });
    const model = await h.trail.register({ name: 'credit', version: '3', data: 'weights' });
    const dep = h.trail.deploy({ model, environment: 'prod' });
    let predictionId = '';
    const predict = h.trail.predict(
      {
        model: dep,
        output: (r: { label: string; score: number }) => r,
        onRecorded: (p) => {
          predictionId = p.id;
        },
      },
      (features: { income: number; age: number }) => ({
        label: features.income > 10 ? 'approve' : 'deny',
        score: 0.73,
      }),
    );
    expect(predict({ income: 20, age: 40 })).toEqual({ label: 'approve', score: 0.73 });
    expect(predictionId).toMatch(UUID_V7);
    const decision = h.trail.decide({
      predictionId,
      outcome: 'approved',
      reason: 'score above 0.7',
      threshold: 0.7,
      attributions: { income: 0.6, age: 0.13 },
      automated: true,
    });
    h.trail.feedback({ predictionId, groundTruth: 'approve', correct: true, source: 'repayment' });

    const predictSpan = h.spans.getFinishedSpans().find((s) => s.name === 'ml.predict')!;
    expect(predictSpan.links.map((l) => l.context.spanId)).toEqual([dep.spanContext!.spanId]);
    expect(predictSpan.attributes).toEqual({
      'ml.stage.name': 'predict',
      'ml.prediction.id': predictionId,
      'ml.model.name': 'credit',
      'ml.model.version': '3',
      'ml.model.digest': model.digest,
      'ml.deployment.id': dep.id,
      'ml.prediction.input_digest': `sha256:${(await import('node:crypto'))
        .createHash('sha256')
        .update('{"age":40,"income":20}')
        .digest('hex')}`,
      'ml.prediction.latency_ms': expect.any(Number),
      'ml.prediction.output_label': 'approve',
      'ml.prediction.output_score': 0.73,
    });
    const recs = auditRecords(h);
    const [pred, dec, fb] = recs.slice(-3);
    expect(pred.body).toEqual({
      ...common,
      'event.name': 'ml.prediction',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: predictSpan.spanContext().traceId,
      span_id: predictSpan.spanContext().spanId,
      ...predictSpan.attributes,
      'ml.stage.name': undefined,
    });
    expect(dec.body).toEqual({
      ...common,
      'event.name': 'ml.decision',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.decision.id': decision.id,
      'ml.prediction.id': predictionId,
      'ml.decision.outcome': 'approved',
      'ml.decision.reason': 'score above 0.7',
      'ml.decision.threshold': 0.7,
      'ml.decision.attributions': '{"age":0.13,"income":0.6}',
      'ml.decision.automated': true,
    });
    expect(fb.body).toEqual({
      ...common,
      'event.name': 'ml.feedback',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.feedback.id': expect.stringMatching(UUID_V7),
      'ml.prediction.id': predictionId,
      'ml.feedback.ground_truth': 'approve',
      'ml.feedback.correct': true,
      'ml.feedback.source': 'repayment',
    });
  });

  it('retrain() links the new run to the drift records that caused it', async () => {
    h = await trailHarness({ strict: true });
    const data = await h.trail.dataset({ name: 'd', data: 'x' });
    const v1 = await h.trail.register({ name: 'm', version: '1', data: 'w1' });
    const drift = h.trail.recordDrift({
      feature: 'temp',
      test: 'ks',
      statistic: 0.4,
      pValue: 0.001,
      threshold: 0.05,
    });
    const trigger = h.trail.retrain({
      reason: 'input drift on temp',
      trigger: 'drift',
      triggerIds: [drift.id],
      previous: v1,
    });
    const trainModel = h.trail.train({ model: 'm', inputs: [data], retraining: trigger }, () => 'w2');
    trainModel();
    const run = h.trail.registry.runs.get(trigger.runId)!;
    expect(run.id).toBe(trigger.runId);
    const recs = auditRecords(h);
    const retrain = recs.find((r) => r.eventName === 'ml.retraining.triggered')!;
    expect(retrain.body).toEqual({
      ...common,
      'event.name': 'ml.retraining.triggered',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.run.id': trigger.runId,
      'ml.run.type': 'retraining',
      'ml.retraining.reason': 'input drift on temp',
      'ml.retraining.trigger': 'drift',
      'ml.retraining.trigger_ids': [drift.id],
      'ml.retraining.previous_version': '1',
      'ml.model.name': 'm',
    });
    const training = recs.find((r) => r.eventName === 'ml.training.completed')!;
    expect(training.body).toMatchObject({
      'ml.run.id': trigger.runId,
      'ml.run.type': 'retraining',
      'ml.retraining.trigger_ids': [drift.id],
    });
    const trainSpan = h.spans.getFinishedSpans().find((s) => s.name === 'ml.train')!;
    expect(trainSpan.links.map((l) => l.context.spanId)).toContain(trigger.spanContext!.spanId);
  });

  it('a failed stage sets the span status, writes ml.stage.failed, and rethrows the same error', async () => {
    h = await trailHarness({ strict: true });
    const boom = new TypeError('bad tensor shape');
    const predict = h.trail.predict({}, () => {
      throw boom;
    });
    let caught: unknown;
    try {
      predict();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBe(boom);
    const span = h.spans.getFinishedSpans().find((s) => s.name === 'ml.predict')!;
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'bad tensor shape' });
    const rec = auditRecords(h).at(-1)!;
    expect(rec.eventName).toBe('ml.stage.failed');
    expect(rec.severityText).toBe('ERROR');
    expect(rec.body).toEqual({
      ...common,
      'event.name': 'ml.stage.failed',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'ERROR',
      trace_id: span.spanContext().traceId,
      span_id: span.spanContext().spanId,
      'ml.stage.name': 'predict',
      'ml.prediction.id': expect.stringMatching(UUID_V7),
      'ml.prediction.latency_ms': expect.any(Number),
      'error.type': 'TypeError',
      'exception.message': 'bad tensor shape',
    });
  });

  it('every audit record also lands in the journal, chained, with the same body', async () => {
    h = await trailHarness();
    await h.trail.dataset({ name: 'a', data: '1' });
    h.trail.decide({ predictionId: 'p-1', outcome: 'deny' });
    await h.trail.flush();
    const lines = h.journal().filter((l) => l.event !== 'mltrail.checkpoint');
    const logBodies = auditRecords(h).map((r) => r.bodyText);
    expect(lines.map((l) => l.body)).toEqual(logBodies);
    expect(lines.map((l) => l.seq)).toEqual([0, 1]);
    expect(lines[1].prev).toBe(lines[0].hash);
  });
});

describe('privacy by default', () => {
  it('the prediction subject is pseudonymised (keyed HMAC) on the span and in the record; personal data in inputs never lands', async () => {
    const { createRedactor } = await import('../../src/privacy/index.js');
    h = await trailHarness({
      strict: true,
      capture: 'redacted',
      redactor: createRedactor({ key: 'a-test-pseudonym-key-0123456789' }),
    });
    const predict = h.trail.predict(
      { subject: (x: { email: string }) => x.email },
      (x: { email: string; income: number }) => x.income * 2,
    );
    predict({ email: 'alice@example.com', income: 10 });
    const span = h.spans.getFinishedSpans().find((s) => s.name === 'ml.predict')!;
    expect(span.attributes['ml.prediction.subject_id']).toMatch(/^pii:[0-9a-f]+:[A-Za-z0-9_-]+$/);
    const [rec] = h.logs.getFinishedLogRecords().filter((r) => r.eventName === 'ml.prediction');
    expect(rec.body).not.toContain('alice@example.com');
    expect(JSON.parse(rec.body as string)['ml.prediction.subject_id']).toBe(
      span.attributes['ml.prediction.subject_id'],
    );
    await h.trail.flush();
    expect(JSON.stringify(h.journal())).not.toContain('alice@example.com');
  });
});
