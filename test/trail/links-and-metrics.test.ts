import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/journal/index.js';
import { createTrail, PREDICTION_DURATION_BUCKETS, remoteSpanContext } from '../../src/trail/index.js';
import { type TrailHarness, trailHarness } from './harness.js';

let h: TrailHarness | undefined;
afterEach(async () => {
  await h?.trail.shutdown();
  h = undefined;
});

describe('span links the docs promise', () => {
  it('a decision links to the prediction it decides on; a retraining to the drift records that caused it', async () => {
    h = await trailHarness({ strict: true });
    const model = await h.trail.register({ name: 'credit', version: '1', data: 'weights' });
    let predictionId = '';
    h.trail.predict({ model, onRecorded: (p) => (predictionId = p.id) }, () => 1)();
    h.trail.decide({ predictionId, outcome: 'approved' });
    const drift = remoteSpanContext('0af7651916cd43dd8448eb211c80319c', 'b7ad6b7169203331');
    h.trail.retrain({
      reason: 'drift',
      trigger: 'drift',
      triggerIds: ['d-1'],
      previous: model,
      triggerSpanContexts: [drift!],
    });
    const spans = h.spans.getFinishedSpans();
    const byName = (n: string) => spans.find((s) => s.name === n)!;
    expect(byName('ml.decide').links.map((l) => l.context.spanId)).toEqual([
      byName('ml.predict').spanContext().spanId,
    ]);
    expect(byName('ml.retrain').links.map((l) => l.context.spanId)).toEqual([
      model.spanContext!.spanId,
      'b7ad6b7169203331',
    ]);
  });

  it('a serving process that loads the registry links its predictions to the deployment span another process recorded', async () => {
    h = await trailHarness({ strict: true });
    const model = await h.trail.register({ name: 'credit', version: '2', data: 'weights' });
    const dep = h.trail.deploy({ model, environment: 'prod' });
    await h.trail.flush();
    const serving = await createTrail({
      sink: new AuditLog({ dir: `${h.dir}-serving` }),
      tracerProvider: h.tracerProvider,
    });
    expect(serving.loadRegistry(h.dir)).toBe(2);
    const loaded = serving.registry.deployments.get(dep.id)!;
    expect(loaded.spanContext).toEqual({ ...dep.spanContext, isRemote: true, traceFlags: 1 });
    expect(loaded.model?.spanContext?.spanId).toBe(model.spanContext!.spanId);
    serving.predict({ model: loaded }, () => 1)();
    const predict = h.spans
      .getFinishedSpans()
      .filter((s) => s.name === 'ml.predict')
      .at(-1)!;
    expect(predict.links.map((l) => l.context.spanId)).toEqual([dep.spanContext!.spanId]);
    await serving.shutdown();
  });

  it('remoteSpanContext refuses ids that are not a valid span context', () => {
    expect(remoteSpanContext(undefined, 'b7ad6b7169203331')).toBeUndefined();
    expect(remoteSpanContext('0'.repeat(32), 'b7ad6b7169203331')).toBeUndefined();
  });
});

describe('prediction metrics', () => {
  it('latency in second-sized buckets; the error series exists at zero from the first prediction', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    h = await trailHarness({ meterProvider });
    const model = await h.trail.register({ name: 'credit', version: '1', data: 'weights' });
    h.trail.predict({ model }, () => 1)();
    await reader.forceFlush();
    const metrics = exporter
      .getMetrics()
      .at(-1)!
      .scopeMetrics.flatMap((s) => s.metrics);
    const get = (name: string) => metrics.find((m) => m.descriptor.name === name)!;
    expect(get('ml.prediction.errors').dataPoints).toEqual([
      expect.objectContaining({
        value: 0,
        attributes: { 'ml.model.name': 'credit', 'ml.model.version': '1' },
      }),
    ]);
    const histogram = get('ml.prediction.duration').dataPoints[0].value as {
      buckets: { boundaries: number[] };
    };
    expect(histogram.buckets.boundaries).toEqual(PREDICTION_DURATION_BUCKETS);
    expect(PREDICTION_DURATION_BUCKETS[0]).toBe(1e-5);
    expect(PREDICTION_DURATION_BUCKETS.at(-1)).toBe(60);
    for (let i = 1; i < PREDICTION_DURATION_BUCKETS.length; i++)
      expect(PREDICTION_DURATION_BUCKETS[i] / PREDICTION_DURATION_BUCKETS[i - 1]).toBeLessThanOrEqual(2);
    await meterProvider.shutdown();
  });
});
