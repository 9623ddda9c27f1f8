import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { between, featuresOf, loadWeather } from '../../src/demo/weather-data.js';
import {
  buildProfile,
  DriftInputError,
  DriftMonitor,
  loadProfile,
  normedWassersteinDistance,
  quantileSorted,
  saveProfile,
} from '../../src/drift/index.js';
import { canonicalize } from '../../src/integrity/index.js';
import { digestBytes } from '../../src/trail/digest.js';

const { days } = loadWeather();
const reference = between(days, '2012-01-01', '2014-01-01');
const rows = reference.map((d) => ({ ...featuresOf(d), weather: d.weather }));

describe('reference profiles', () => {
  const profile = buildProfile(rows);

  it('summarises numerical and categorical features of the real data set', () => {
    const temps = reference.map((d) => d.temp_max).sort((a, b) => a - b);
    const mean = temps.reduce((s, v) => s + v, 0) / temps.length;
    expect(profile.rows).toBe(731);
    expect(profile.features.temp_max).toEqual(
      expect.objectContaining({
        kind: 'numeric',
        count: 731,
        min: temps[0],
        max: temps[730],
        quantiles: Array.from({ length: 21 }, (_, i) => quantileSorted(temps, i / 20)),
      }),
    );
    const tm = profile.features.temp_max;
    if (tm.kind !== 'numeric') throw new Error('temp_max should be numeric');
    expect(tm.mean).toBeCloseTo(mean, 10);
    expect(tm.sample).toHaveLength(731);
    const weather = profile.features.weather;
    if (weather.kind !== 'categorical') throw new Error('weather should be categorical');
    expect(Object.values(weather.frequencies).reduce((a, b) => a + b, 0)).toBe(731);
    expect(Object.keys(weather.frequencies).sort()).toEqual(['drizzle', 'fog', 'rain', 'snow', 'sun']);
  });

  it('digest is sha256 of the canonical JSON of everything but the digest, and is deterministic', () => {
    const { digest, ...body } = profile;
    expect(digest).toBe(digestBytes(canonicalize(body)));
    expect(buildProfile(rows).digest).toBe(digest);
    expect(buildProfile(rows.slice(1)).digest).not.toBe(digest);
  });

  it('saveProfile/loadProfile round-trip through a real file; an edited file is refused', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'mltrail-profile-')), 'model-v1.profile.json');
    await saveProfile(profile, path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(await loadProfile(path)).toEqual(profile);
    const edited = JSON.parse(readFileSync(path, 'utf8'));
    edited.features.temp_max.mean += 1;
    writeFileSync(path, JSON.stringify(edited));
    await expect(loadProfile(path)).rejects.toThrow(/profile digest sha256:[0-9a-f]{64} does not match/);
  });

  it('bad input is a clear error', () => {
    expect(() => buildProfile([])).toThrow(DriftInputError);
    expect(() => buildProfile([{ x: 1 }, { x: 'a' }], { features: ['x'] })).toThrow(
      /feature "x" mixes numbers and string values; list it in "categorical"/,
    );
    expect(() => buildProfile([{ x: null }], { features: ['x'] })).toThrow(/has no numerical values/);
  });
});

describe('DriftMonitor windows', () => {
  const profile = buildProfile(rows, { features: ['temp_max', 'weather'] });

  it('flush() evaluates a partial window; an empty window gives nothing', () => {
    const monitor = new DriftMonitor({ reference: profile, window: { size: 1000 } });
    expect(monitor.flush()).toBeUndefined();
    for (const d of reference.slice(0, 30)) monitor.observe({ temp_max: d.temp_max, weather: d.weather });
    const r = monitor.flush();
    expect(r?.size).toBe(30);
    expect(r?.features.map((f) => f.feature)).toEqual(['temp_max', 'weather']);
    expect(monitor.flush()).toBeUndefined();
  });

  it('a time window closes on the first observation after it expired (ms: 0 closes every one)', () => {
    const sizes: number[] = [];
    const monitor = new DriftMonitor({
      reference: profile,
      window: { ms: 0 },
      onWindow: (w) => sizes.push(w.size),
    });
    for (const d of reference.slice(0, 3)) monitor.observe({ temp_max: d.temp_max, weather: d.weather });
    expect(sizes).toEqual([1, 1, 1]);
  });

  it('features missing from the window are left out, not reported as NaN', () => {
    const monitor = new DriftMonitor({ reference: profile, window: { size: 5 } });
    let r: ReturnType<DriftMonitor['observe']>;
    for (let i = 0; i < 5; i++) r = monitor.observe({ temp_max: 10 + i });
    expect(r?.features.map((f) => f.feature)).toEqual(['temp_max']);
    expect(r?.features.every((f) => Number.isFinite(f.statistic))).toBe(true);
  });

  it('options that make windows meaningless are refused at construction with the reason', () => {
    const make = (o: Partial<ConstructorParameters<typeof DriftMonitor>[0]>) => () =>
      new DriftMonitor({ reference: profile, ...o });
    expect(make({ window: { size: 0 } })).toThrow(/window.size must be a positive integer \(got 0\)/);
    expect(make({ window: { ms: -1 } })).toThrow(/window.ms must be a number ≥ 0 \(got -1\)/);
    expect(make({ pValueThreshold: 5 })).toThrow(/pValueThreshold must be in \(0, 1\] \(got 5\)/);
    expect(make({ driftShare: 0 })).toThrow(/driftShare must be in \(0, 1\]/);
    expect(make({ distanceThreshold: Number.NaN })).toThrow(/distanceThreshold must be > 0/);
    expect(make({ reference: {} as never })).toThrow(/reference must be a profile/);
    expect(make({ window: { size: 10, ms: 0 } })).not.toThrow();
  });

  it('references larger than sampleSize are tested on evenly spaced order statistics: close, not exact', () => {
    // 20 000 reference values vs a shifted window; the exact normed distance uses them all.
    const ref = Array.from({ length: 20_000 }, (_, i) => ((i * 7919) % 20011) / 1000);
    const cur = Array.from({ length: 200 }, (_, i) => ((i * 104729) % 20011) / 1000 + 1.5);
    const big = buildProfile(
      ref.map((x) => ({ x })),
      { sampleSize: 1000 },
    );
    const monitor = new DriftMonitor({ reference: big, window: { size: cur.length } });
    let r: ReturnType<DriftMonitor['observe']>;
    for (const x of cur) r = monitor.observe({ x });
    const exact = normedWassersteinDistance(ref, cur);
    expect(r?.features[0].test).toBe('wasserstein');
    expect(Math.abs(r!.features[0].statistic - exact) / exact).toBeLessThan(0.01);
  });
});
