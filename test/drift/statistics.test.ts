import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  binShares,
  chiSquareTest,
  DriftInputError,
  jensenShannonDistance,
  ksTest,
  normedWassersteinDistance,
  populationStabilityIndex,
  wassersteinDistance,
  zTest,
} from '../../src/drift/index.js';

/**
 * Oracle values computed with scipy/numpy by test/drift/oracle/compute.py (versions recorded in the file).
 * Tolerances: statistics and distances 1e-9 relative; p-values 1e-6 absolute.
 */
const oracle = JSON.parse(readFileSync(new URL('./oracle/values.json', import.meta.url), 'utf8'));
const rel = (actual: number, expected: number) =>
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-9 * Math.max(1, Math.abs(expected)));
const pv = (actual: number, expected: number) =>
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-6);

describe(`ksTest matches scipy.stats.ks_2samp (scipy ${oracle.scipy})`, () => {
  for (const c of oracle.ks) {
    it(`${c.name}, method=${c.method}`, () => {
      const r = ksTest(c.a, c.b, { method: c.method });
      rel(r.statistic, c.statistic);
      pv(r.pValue, c.pvalue);
    });
  }
});

describe('chiSquareTest matches Evidently/scipy chisquare', () => {
  for (const c of oracle.chisquare) {
    it(c.name, () => {
      const r = chiSquareTest(c.reference, c.current);
      rel(r.statistic, c.statistic);
      pv(r.pValue, c.pvalue);
      expect(r.df).toBe(c.df);
    });
  }
  it('a category the reference never saw is certain drift, not NaN', () => {
    expect(chiSquareTest(['a', 'b'], ['a', 'c'])).toEqual({
      statistic: Number.POSITIVE_INFINITY,
      pValue: 0,
      df: 2,
    });
  });
});

describe("zTest matches Evidently's z stattest (two-proportion, scipy.stats.norm)", () => {
  for (const c of oracle.z) {
    it(c.name, () => {
      const r = zTest(c.reference, c.current);
      rel(r.statistic, c.statistic);
      pv(r.pValue, c.pvalue);
      // Evidently's 1 − cdf form loses the far tail to 0; both agree within the p-value tolerance.
      pv(r.pValue, c.evidently_pvalue);
    });
  }
  it('the same single value on both sides is no drift; a third value is a clear error', () => {
    expect(zTest(['a', 'a'], ['a'])).toEqual({ statistic: 0, pValue: 1 });
    expect(() => zTest(['a', 'b'], ['c'])).toThrow(/at most two distinct values \(got 3\)/);
    expect(() => zTest(['a'], [])).toThrow(/current sample is empty/);
  });
});

describe('Jensen–Shannon, Wasserstein, PSI match scipy/numpy', () => {
  for (const c of oracle.js) {
    it(`jensenShannonDistance: ${c.name}`, () =>
      rel(jensenShannonDistance(c.p, c.q, c.base ? { base: c.base } : {}), c.value));
  }
  for (const c of oracle.wasserstein) {
    it(`wassersteinDistance: ${c.name}`, () => {
      rel(wassersteinDistance(c.a, c.b), c.value);
      rel(normedWassersteinDistance(c.a, c.b), c.normed);
    });
  }
  for (const c of oracle.psi) {
    it(`binShares + PSI: ${c.name} (empty bins floored at 0.0001)`, () => {
      const b = binShares(c.reference, c.current, { bins: c.bins, strategy: 'equal-width' });
      for (const [i, s] of b.reference.entries()) rel(s, c.refShares[i]);
      for (const [i, s] of b.current.entries()) rel(s, c.curShares[i]);
      expect(b.current).toContain(0.0001);
      rel(populationStabilityIndex(b.reference, b.current), c.value);
    });
  }
});

describe('edge cases: clear errors or defined results, never a silent NaN', () => {
  it('empty or NaN input throws a DriftInputError naming the sample and index', () => {
    expect(() => ksTest([], [1])).toThrow(DriftInputError);
    expect(() => ksTest([1, Number.NaN], [1])).toThrow(/first sample\[1\] is NaN/);
    expect(() => wassersteinDistance([1], [])).toThrow(/second sample is empty/);
    expect(() => chiSquareTest([], ['a'])).toThrow(/reference sample is empty/);
    expect(() => jensenShannonDistance([0, 0], [1, 1])).toThrow(/p sums to 0/);
    expect(() => populationStabilityIndex([0.5, 0.5], [1, 0])).toThrow(/bin 1 has share 0.5 \/ 0/);
  });
  it('constant inputs have defined results', () => {
    expect(ksTest([2, 2, 2], [2, 2])).toEqual({ statistic: 0, pValue: 1, method: 'exact' });
    expect(normedWassersteinDistance([3, 3, 3], [3, 3.001])).toBeCloseTo(0.5, 9);
    expect(binShares([5, 5, 5], [5, 6], { bins: 2 }).reference).toEqual([0.0001, 1]);
    expect(chiSquareTest(['x', 'x'], ['x'])).toEqual({ statistic: 0, pValue: 1, df: 0 });
  });
  it('quantile binning counts every current value', () => {
    const b = binShares([1, 2, 3, 4, 5, 6, 7, 8], [-100, 100, 4.5], { bins: 4, strategy: 'quantile' });
    expect(b.current.filter((s) => s !== 0.0001).reduce((a, s) => a + s, 0)).toBeCloseTo(1, 12);
  });
});
