import { afterEach, describe, expect, it } from 'vitest';
import { between, FEATURE_NAMES, featuresOf, loadWeather, wetLabel } from '../../src/demo/weather-data.js';
import {
  buildProfile,
  chiSquareTest,
  type DriftDetail,
  DriftMonitor,
  type DriftWindowResult,
  jensenShannonDistance,
  ksTest,
  PREDICTION_FEATURE,
  zTest,
} from '../../src/drift/index.js';
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
      severity_text: 'WARN',
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

  it('window after window, each KS result equals ksTest on the reference sample and that window', () => {
    // The monitor sorts the reference once and remembers exact p-values; every window must still read
    // exactly as a fresh test of its own rows.
    const monitor = new DriftMonitor({ reference: profile, window: { size: 60 } });
    const rows = rowsOf(between(days, '2014-01-01', '2015-12-31')).slice(0, 360);
    const windows: DriftWindowResult[] = [];
    for (const r of rows) {
      const w = monitor.observe(r);
      if (w !== undefined) windows.push(w);
    }
    expect(windows).toHaveLength(6);
    windows.forEach((w, i) => {
      const slice = rows.slice(i * 60, i * 60 + 60);
      expect(w.features.map((f) => f.test)).toEqual(['ks', 'ks', 'ks', 'ks']);
      for (const f of w.features) {
        const ref = profile.features[f.feature];
        if (ref.kind !== 'numeric') throw new Error(f.feature);
        const fresh = ksTest(
          ref.sample,
          slice.map((r) => r[f.feature]),
        );
        expect([f.statistic, f.pValue]).toEqual([fresh.statistic, fresh.pValue]);
      }
    });
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

  it('a category the reference never saw (χ² = +Infinity) is recorded without the statistic, as a valid record', async () => {
    h = await trailHarness({ strict: true });
    const monitor = new DriftMonitor({
      reference: buildProfile([{ wind: 1 }, { wind: 2 }, { wind: 1 }, { wind: 2 }]),
      window: { size: 3 },
      sink: h.trail,
    });
    let r: DriftWindowResult | undefined;
    for (let i = 0; i < 3; i++) r = monitor.observe({ wind: 4.7 });
    expect(r!.features).toEqual([
      expect.objectContaining({ feature: 'wind', test: 'chisquare', statistic: Number.POSITIVE_INFINITY }),
    ]);
    const bodies = h.logs
      .getFinishedLogRecords()
      .filter((l) => l.eventName === 'ml.drift.detected')
      .map((l) => JSON.parse(l.body as string));
    expect(bodies.map((b) => [b['ml.drift.feature'], b['ml.drift.p_value'], b['ml.drift.score']])).toEqual([
      ['wind', 0, 1],
      ['__dataset__', undefined, 1],
    ]);
    expect(bodies[0]).not.toHaveProperty('ml.drift.statistic');
    expect(bodies[0]).not.toHaveProperty('mltrail.validation.errors');
  });

  it('bad observations never throw into the caller', () => {
    const monitor = new DriftMonitor({ reference: profile, window: { size: 3 } });
    expect(() => monitor.observe({ temp_max: Number.NaN, wind: 'fast' as unknown as number })).not.toThrow();
    expect(() => monitor.observe(null as unknown as Record<string, number>)).not.toThrow();
  });

  describe("categorical features and prediction drift, with Evidently's test selection", () => {
    // Features: the day's weather (5 categories) and the daily max temperature; prediction: the wet label
    // (0/1, a binary numerical output, as a rain classifier's decision would be).
    const rows = (d: typeof days) => d.map((day) => ({ weather: day.weather, temp_max: day.temp_max }));
    const refProfile = buildProfile(rows(reference), { predictions: reference.map(wetLabel) });
    const summer = between(days, '2015-06-01', '2015-09-01').slice(0, 90);
    const counts = (values: string[]) => {
      const m = new Map<string, number>();
      for (const v of values) m.set(v, (m.get(v) ?? 0) + 1);
      return m;
    };

    it('profiles the prediction column, low-cardinality numbers with their counts', () => {
      expect(Object.keys(refProfile.features)).toEqual(['weather', 'temp_max', PREDICTION_FEATURE]);
      const wet = reference.filter((d) => wetLabel(d) === 1).length;
      expect(refProfile.features[PREDICTION_FEATURE]).toEqual(
        expect.objectContaining({ kind: 'numeric', frequencies: { '0': reference.length - wet, '1': wet } }),
      );
      expect(refProfile.features.temp_max).not.toHaveProperty('frequencies');
      expect(() => buildProfile(rows(reference), { predictions: [1] })).toThrow(/1 values for 731 rows/);
    });

    it('small reference: χ² for the 5-category feature, z-test for the binary prediction', () => {
      const records: DriftDetail[] = [];
      const monitor = new DriftMonitor({
        reference: refProfile,
        model: { name: 'rain-cover', version: '1' },
        deploymentId: 'dep-1',
        window: { size: 90 },
        sink: {
          recordDrift: (d) => {
            records.push(d);
            return { id: `drift-${records.length}` };
          },
        },
      });
      let r: DriftWindowResult | undefined;
      for (const d of summer) r = monitor.observe({ weather: d.weather, temp_max: d.temp_max }, wetLabel(d));
      expect(r!.features.map((f) => [f.feature, f.test])).toEqual([
        ['weather', 'chisquare'],
        ['temp_max', 'ks'],
        [PREDICTION_FEATURE, 'z'],
      ]);
      // Same numbers as the (scipy-checked) pure functions on the same data.
      const chi = chiSquareTest(
        reference.map((d) => d.weather),
        summer.map((d) => d.weather),
      );
      const z = zTest(reference.map(wetLabel), summer.map(wetLabel));
      expect(r!.features[0]).toEqual(
        expect.objectContaining({ statistic: chi.statistic, pValue: chi.pValue, drifted: true }),
      );
      expect(r!.features[2]).toEqual(
        expect.objectContaining({ statistic: z.statistic, pValue: z.pValue, drifted: true }),
      );
      // A dry summer: fewer wet days than the all-year reference, so z = p_ref − p_cur > 0.
      expect(z.statistic).toBeGreaterThan(0);
      expect(records).toEqual([
        {
          feature: 'weather',
          test: 'chisquare',
          statistic: chi.statistic,
          pValue: chi.pValue,
          threshold: 0.05,
          score: 1 - chi.pValue,
          windowStart: r!.windowStart,
          windowEnd: r!.windowEnd,
          windowSize: 90,
          referenceDigest: refProfile.digest,
          model: { name: 'rain-cover', version: '1' },
          deploymentId: 'dep-1',
          method: undefined,
        },
        expect.objectContaining({ feature: 'temp_max', test: 'ks' }),
        expect.objectContaining({ feature: PREDICTION_FEATURE, test: 'z', pValue: z.pValue }),
        expect.objectContaining({
          feature: '__dataset__',
          test: 'share',
          statistic: 1,
          datasetDrift: true,
          driftShare: 1,
        }),
      ]);
      expect(r!.recordIds).toEqual(['drift-1', 'drift-2', 'drift-3', 'drift-4']);
    });

    it('large reference: Jensen–Shannon (natural log) for categories and the binary prediction', () => {
      const monitor = new DriftMonitor({ reference: refProfile, window: { size: 90 }, largeReference: 100 });
      let r: DriftWindowResult | undefined;
      for (const d of summer) r = monitor.observe({ weather: d.weather, temp_max: d.temp_max }, wetLabel(d));
      const ref = counts(reference.map((d) => d.weather));
      const cur = counts(summer.map((d) => d.weather));
      const keys = [...new Set([...ref.keys(), ...cur.keys()])];
      const js = jensenShannonDistance(
        keys.map((k) => ref.get(k) ?? 0),
        keys.map((k) => cur.get(k) ?? 0),
      );
      expect(r!.features.map((f) => f.test)).toEqual(['jensenshannon', 'wasserstein', 'jensenshannon']);
      expect(r!.features[0].statistic).toBeCloseTo(js, 12);
      expect(r!.features[0].drifted).toBe(js >= 0.1);
      expect(r!.features[2].statistic).toBeGreaterThan(0);
      expect(r!.features[2].statistic).toBeLessThanOrEqual(Math.sqrt(Math.LN2));
    });

    it('no drift when the window is drawn from the reference period itself', () => {
      const monitor = new DriftMonitor({ reference: refProfile, window: { size: 91 } });
      let r: DriftWindowResult | undefined;
      for (const d of reference.filter((_, i) => i % 8 === 3).slice(0, 91))
        r = monitor.observe({ weather: d.weather, temp_max: d.temp_max }, wetLabel(d));
      expect(r!.features.filter((f) => f.drifted)).toEqual([]);
    });
  });
});
