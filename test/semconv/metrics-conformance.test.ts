import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  METRIC_DEFINITIONS,
  METRIC_ML_PREDICTION_COUNT,
  METRIC_ML_PREDICTION_DURATION,
  METRIC_ML_PREDICTION_ERRORS,
  METRIC_MLTRAIL_VALIDATION_FAILURES,
} from '../../src/semconv/index.js';
import { type TrailHarness, trailHarness } from '../trail/harness.js';

// The metrics the trail emits, observed through a real MeterProvider, held to model/metrics.yaml: name,
// instrument and the attribute keys of every data point. (The drift gauge is observed the same way in
// test/drift/grafana-names.test.ts.)
let h: TrailHarness;
let meterProvider: MeterProvider;
let metrics: MetricData[];

function instrumentOf(m: MetricData): string {
  if (m.dataPointType === DataPointType.GAUGE) return 'gauge';
  if (m.dataPointType === DataPointType.HISTOGRAM) return 'histogram';
  if (m.dataPointType === DataPointType.SUM) return m.isMonotonic ? 'counter' : 'updowncounter';
  return 'other';
}

beforeAll(async () => {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  meterProvider = new MeterProvider({
    readers: [new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 })],
  });
  h = await trailHarness({ meterProvider });
  const model = await h.trail.register({ name: 'credit', version: '3', data: 'weights' });
  const dep = h.trail.deploy({ model, environment: 'prod' });
  const predict = h.trail.predict({ model: dep }, (x: number) => x * 2);
  predict(1);
  predict(2);
  expect(() =>
    h.trail.predict({ model: dep }, () => {
      throw new TypeError('bad tensor shape');
    })(),
  ).toThrow('bad tensor shape');
  // Default mode records an invalid event with its violations and counts it.
  h.trail.decide({ predictionId: 'p-1', outcome: 42 as unknown as string });
  await meterProvider.forceFlush();
  metrics = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics));
});

afterAll(async () => {
  await h?.trail.shutdown();
  await meterProvider?.shutdown();
});

describe('trail metrics follow model/metrics.yaml', () => {
  it('emits the prediction and validation metrics', () => {
    expect(metrics.map((m) => m.descriptor.name).sort()).toEqual(
      [
        METRIC_ML_PREDICTION_COUNT,
        METRIC_ML_PREDICTION_DURATION,
        METRIC_ML_PREDICTION_ERRORS,
        METRIC_MLTRAIL_VALIDATION_FAILURES,
      ].sort(),
    );
  });

  it('each metric has the registry instrument and only registry attributes on its data points', () => {
    for (const m of metrics) {
      const def = METRIC_DEFINITIONS[m.descriptor.name];
      expect(def, `${m.descriptor.name} is not in model/metrics.yaml`).toBeDefined();
      expect(instrumentOf(m), m.descriptor.name).toBe(def.instrument);
      for (const p of m.dataPoints) {
        for (const k of Object.keys(p.attributes)) expect(def.attributes, m.descriptor.name).toContain(k);
      }
    }
  });

  it('the histogram is in seconds as the registry says, and counts what happened', () => {
    const byName = Object.fromEntries(metrics.map((m) => [m.descriptor.name, m]));
    expect(byName[METRIC_ML_PREDICTION_DURATION].descriptor.unit).toBe(
      METRIC_DEFINITIONS[METRIC_ML_PREDICTION_DURATION].unit,
    );
    const total = (name: string) =>
      byName[name].dataPoints.reduce((n, p) => n + (typeof p.value === 'number' ? p.value : 0), 0);
    expect(total(METRIC_ML_PREDICTION_COUNT)).toBe(3);
    expect(total(METRIC_ML_PREDICTION_ERRORS)).toBe(1);
    expect(total(METRIC_MLTRAIL_VALIDATION_FAILURES)).toBe(1);
    // The error series exists at zero from a model version's first prediction (so rate panels and the
    // error-rate alert have data before the first error), then one series per error type.
    expect(
      byName[METRIC_ML_PREDICTION_ERRORS].dataPoints.map((p) => ({ ...p.attributes, value: p.value })),
    ).toEqual([
      { 'ml.model.name': 'credit', 'ml.model.version': '3', value: 0 },
      { 'ml.model.name': 'credit', 'ml.model.version': '3', 'error.type': 'TypeError', value: 1 },
    ]);
  });
});
