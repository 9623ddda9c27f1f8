import { afterEach, describe, expect, it } from 'vitest';
import { between, FEATURE_NAMES, featuresOf, loadWeather } from '../../src/demo/weather-data.js';
import { buildProfile, DriftMonitor, type DriftWindowResult } from '../../src/drift/index.js';
import { type TrailHarness, trailHarness } from '../trail/harness.js';

// The Seattle weather data set shipped by the vega-datasets npm package (2012–2015, daily).
const { days } = loadWeather();
const rowsOf = (d: typeof days) => d.map((day) => featuresOf(day) as unknown as Record<string, number>);

let h: TrailHarness;
afterEach(async () => {
  await h?.trail.shutdown();
});

describe('DriftMonitor on real data (vega-datasets seattle-weather)', () => {
  const reference = between(days, '2012-01-01', '2014-01-01');
  const profile = buildProfile(rowsOf(reference), { features: [...FEATURE_NAMES] });

  it('no drift between two halves of the reference period; drift on summer 2015', async () => {
    h = await trailHarness({ strict: true });
    const monitor = new DriftMonitor({
      reference: profile,
      model: { name: 'rain-cover', version: '1' },
      deploymentId: 'dep-1',
      window: { size: 91 },
      sink: h.trail,
    });
    // Every 8th day of the reference period, spread over both years: the same distribution, no drift.
    const oddDays = reference.filter((_, i) => i % 8 === 1).slice(0, 91);
    let last: DriftWindowResult | undefined;
    for (const d of oddDays) last = monitor.observe(featuresOf(d) as unknown as Record<string, number>);
    expect(last).toBeDefined();
    expect(last!.features.map((f) => f.test)).toEqual(['ks', 'ks', 'ks', 'ks']);
    expect(last!.features.filter((f) => f.drifted)).toEqual([]);
    expect(last!.recordIds).toEqual([]);

    // Summer 2015 (a hot, dry season) against the full-year reference: temperatures drift.
    const summer = between(days, '2015-06-01', '2015-09-01').slice(0, 91);
    for (const d of summer) last = monitor.observe(featuresOf(d) as unknown as Record<string, number>);
    const drifted = last!.features.filter((f) => f.drifted).map((f) => f.feature);
    expect(drifted).toEqual(expect.arrayContaining(['temp_max', 'temp_min']));
    expect(last!.datasetDrift).toBe(drifted.length / 4 >= 0.5);
    expect(last!.recordIds).toHaveLength(drifted.length + (last!.datasetDrift ? 1 : 0));

    const records = h.logs.getFinishedLogRecords().filter((r) => r.eventName === 'ml.drift.detected');
    const tempMax = records
      .map((r) => JSON.parse(r.body as string))
      .find((b) => b['ml.drift.feature'] === 'temp_max');
    expect(tempMax).toEqual({
      'event.name': 'ml.drift.detected',
      timestamp: expect.any(String),
      trace_id: expect.any(String),
      span_id: expect.any(String),
      'service.name': 'test-service',
      'deployment.environment.name': 'test',
      'ml.pipeline.name': 'unit',
      'ml.drift.id': expect.any(String),
      'ml.drift.feature': 'temp_max',
      'ml.drift.test': 'ks',
      'ml.drift.statistic': expect.any(Number),
      'ml.drift.p_value': expect.any(Number),
      'ml.drift.threshold': 0.05,
      'ml.drift.score': expect.any(Number),
      'ml.drift.detected': true,
      'ml.drift.window_start': expect.any(String),
      'ml.drift.window_end': expect.any(String),
      'ml.drift.window_size': 91,
      'ml.drift.reference_digest': profile.digest,
      'ml.model.name': 'rain-cover',
      'ml.model.version': '1',
      'ml.deployment.id': 'dep-1',
    });
    expect(tempMax['ml.drift.p_value']).toBeLessThan(0.05);
  });

  it('Bonferroni divides the threshold; large references switch to normed Wasserstein', () => {
    const monitor = new DriftMonitor({
      reference: profile,
      window: { size: 50 },
      bonferroni: true,
      largeReference: 100,
    });
    let r: DriftWindowResult | undefined;
    for (const d of between(days, '2015-07-01', '2015-08-20'))
      r = monitor.observe(featuresOf(d) as unknown as Record<string, number>);
    expect(r!.features.map((f) => f.test)).toEqual([
      'wasserstein',
      'wasserstein',
      'wasserstein',
      'wasserstein',
    ]);
    const bonf = new DriftMonitor({ reference: profile, window: { size: 50 }, bonferroni: true });
    for (const d of between(days, '2015-07-01', '2015-08-20'))
      r = bonf.observe(featuresOf(d) as unknown as Record<string, number>);
    expect(r!.features[0].threshold).toBeCloseTo(0.05 / 4, 12);
  });

  it('bad observations never throw into the caller', () => {
    const monitor = new DriftMonitor({ reference: profile, window: { size: 3 } });
    expect(() => monitor.observe({ temp_max: Number.NaN, wind: 'fast' as unknown as number })).not.toThrow();
    expect(() => monitor.observe(null as unknown as Record<string, number>)).not.toThrow();
  });
});
