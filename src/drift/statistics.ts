import { checkSample, DriftInputError } from './errors.js';
import { chiSquareSf, gammaQ, kstwoSf } from './special.js';

/** Result of {@link ksTest}. */
export interface KsResult {
  /** D = sup |F_a(x) − F_b(x)| over the pooled sample. */
  statistic: number;
  pValue: number;
  method: 'exact' | 'asymp';
}

/** Above this sample size `auto` switches from the exact to the asymptotic distribution (as scipy does). */
const MAX_AUTO_N = 10_000;

/**
 * Two-sided two-sample Kolmogorov–Smirnov test, matching `scipy.stats.ks_2samp(a, b)`.
 *
 * Statistic: D = max over the pooled values x of |F_a(x) − F_b(x)|, with empirical CDFs counting values ≤ x
 * (ties handled exactly). p-value:
 * - `exact` — the exact null distribution of D for sizes n, m, computed as scipy does: with g = gcd(n, m),
 *   D is rounded to h/lcm(n, m); equal sizes use the closed form of the probability outside the square,
 *   unequal sizes count lattice paths that stay inside the band |x/n − y/m| < h/lcm (with rescaling).
 * - `asymp` — the one-sample distribution `kstwo(round(n·m/(n+m)))` evaluated at D, as scipy does.
 * - `auto` (default) — `exact` when max(n, m) ≤ 10 000, else `asymp`; `exact` falls back to `asymp` when the
 *   path count overflows.
 *
 * Edge cases: an empty sample or a NaN/±Infinity value throws {@link DriftInputError}. Two identical constant
 * samples give D = 0, p = 1.
 */
export function ksTest(
  a: readonly number[],
  b: readonly number[],
  opts: { method?: 'exact' | 'asymp' | 'auto' } = {},
): KsResult {
  checkSample(a, 'first sample');
  return ksTestSorted(Float64Array.from(a).sort(), b, opts);
}

/**
 * {@link ksTest} with the first sample already checked and sorted (`Float64Array.from(a).sort()`): what a
 * drift monitor does with its reference sample once instead of once per window. Same result.
 */
export function ksTestSorted(
  x: Float64Array,
  b: readonly number[],
  opts: { method?: 'exact' | 'asymp' | 'auto' } = {},
): KsResult {
  checkSample(b, 'second sample');
  const y = Float64Array.from(b).sort();
  const n1 = x.length;
  const n2 = y.length;
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n1 && j < n2) {
    const v = Math.min(x[i], y[j]);
    while (i < n1 && x[i] === v) i++;
    while (j < n2 && y[j] === v) j++;
    const diff = Math.abs(i / n1 - j / n2);
    if (diff > d) d = diff;
  }
  const requested = opts.method ?? 'auto';
  let method: 'exact' | 'asymp' =
    requested === 'auto' ? (Math.max(n1, n2) <= MAX_AUTO_N ? 'exact' : 'asymp') : requested;
  let pValue = Number.NaN;
  if (method === 'exact') {
    const exact = exactTwoSided(n1, n2, d);
    if (exact === undefined) method = 'asymp';
    else pValue = exact;
  }
  if (method === 'asymp') {
    const en = (n1 * n2) / (n1 + n2);
    pValue = kstwoSf(d, Math.round(en));
  }
  return { statistic: d, pValue: clamp01(pValue), method };
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** scipy's `_attempt_exact_2kssamp` for the two-sided alternative; undefined when it would overflow. */
function exactTwoSided(n1: number, n2: number, d: number): number | undefined {
  const g = gcd(n1, n2);
  const lcm = (n1 / g) * n2;
  const h = Math.round(d * lcm);
  if (h === 0) return 1;
  // A function of (n1, n2, h) alone, and a monitor asks for the same few again and again (its windows have
  // one size, the reference one size, and D takes few values): the path count, O(n1·n2), is done once each.
  const key = `${n1},${n2},${h}`;
  if (exactMemo.has(key)) return exactMemo.get(key);
  const p = n1 === n2 ? probOutsideSquare(n1, h) : outerProbInside(n1, n2, g, h);
  const exact = !Number.isFinite(p) || p < 0 || p > 1 ? undefined : p;
  if (exactMemo.size >= 4096) exactMemo.clear();
  exactMemo.set(key, exact);
  return exact;
}

/** Exact two-sided p-values by `n1,n2,h` (bounded: cleared when full). */
const exactMemo = new Map<string, number | undefined>();

function probOutsideSquare(n: number, h: number): number {
  let P = 0;
  let k = Math.floor(n / h);
  while (k >= 0) {
    let p1 = 1;
    for (let j = 0; j < h; j++) p1 = ((n - k * h - j) * p1) / (n + k * h + j + 1);
    P = p1 * (1 - P);
    k--;
  }
  return 2 * P;
}

function outerProbInside(m0: number, n0: number, g: number, h: number): number {
  const m = Math.max(m0, n0);
  const n = Math.min(m0, n0);
  const mg = m / g;
  const ng = n / g;
  let minj = 0;
  let maxj = Math.min(Math.ceil(h / mg), n + 1);
  let curlen = maxj - minj;
  const lenA = Math.min(2 * maxj + 2, n + 1);
  const A = new Float64Array(Math.max(lenA, n + 2)).fill(1);
  for (let k = minj; k < maxj; k++) A[k] = 0;
  for (let i = 1; i <= m; i++) {
    const lastminj = minj;
    const lastlen = curlen;
    minj = Math.min(Math.max(Math.floor((ng * i - h) / mg) + 1, 0), n);
    maxj = Math.min(Math.ceil((ng * i + h) / mg), n + 1);
    if (maxj <= minj) return 1;
    let val = minj === 0 ? 0 : 1;
    for (let jj = 0; jj < maxj - minj; jj++) {
      const j = jj + minj;
      val = (A[jj + minj - lastminj] * i + val * j) / (i + j);
      A[jj] = val;
    }
    curlen = maxj - minj;
    if (lastlen > curlen) for (let k = maxj - minj; k < maxj - minj + (lastlen - curlen); k++) A[k] = 1;
  }
  return A[maxj - minj - 1];
}

/** Result of {@link chiSquareTest}. */
export interface ChiSquareResult {
  statistic: number;
  pValue: number;
  df: number;
}

/**
 * Categorical drift by Pearson's χ² goodness-of-fit, as Evidently's `chisquare` stattest computes it: the
 * categories are the union of both samples; expected counts are the reference frequencies scaled to the
 * current sample size (`ref_count · n_current / n_reference`); observed are the current counts;
 * statistic = Σ (obs − exp)² / exp; df = categories − 1; p = χ²_df survival (`scipy.stats.chisquare`).
 *
 * Edge cases: a category present in the current sample but absent from the reference has expected count 0,
 * so the statistic is +Infinity and p = 0 (certain drift), where scipy returns inf and 0 with a warning. A
 * single category gives df = 0, statistic 0, p = 1. Empty samples throw {@link DriftInputError}.
 */
export function chiSquareTest(
  reference: readonly (string | number)[],
  current: readonly (string | number)[],
): ChiSquareResult {
  if (reference.length === 0) throw new DriftInputError('reference sample is empty');
  if (current.length === 0) throw new DriftInputError('current sample is empty');
  const refCounts = countValues(reference, 'reference');
  const curCounts = countValues(current, 'current');
  const keys = [...new Set([...refCounts.keys(), ...curCounts.keys()])];
  const scale = current.length / reference.length;
  let statistic = 0;
  for (const k of keys) {
    const expected = (refCounts.get(k) ?? 0) * scale;
    const observed = curCounts.get(k) ?? 0;
    if (expected === 0) {
      if (observed > 0) statistic = Number.POSITIVE_INFINITY;
      continue;
    }
    statistic += (observed - expected) ** 2 / expected;
  }
  const df = keys.length - 1;
  const pValue =
    df === 0 ? 1 : statistic === Number.POSITIVE_INFINITY ? 0 : clamp01(chiSquareSf(statistic, df));
  return { statistic, pValue, df };
}

function countValues(values: readonly (string | number)[], name: string): Map<string, number> {
  const out = new Map<string, number>();
  values.forEach((v, i) => {
    if (v === null || v === undefined || (typeof v === 'number' && Number.isNaN(v))) {
      throw new DriftInputError(`${name}[${i}] is missing; drop or impute missing values first`);
    }
    const key = `${typeof v}:${v}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  });
  return out;
}

/** Result of {@link zTest}. */
export interface ZTestResult {
  /** z = (p_ref − p_cur) / sqrt(P(1 − P)(1/n_ref + 1/n_cur)), P the pooled proportion. */
  statistic: number;
  pValue: number;
}

/**
 * Two-proportion z-test for a binary feature, as Evidently's `z` stattest (its default for categorical
 * features with at most two values and references of up to 1000 rows): the values are sorted, the first
 * maps to 0 and any other to 1; p_ref and p_cur are the shares of 1s; the p-value is two-sided,
 * 2·(1 − Φ(|z|)), computed here as erfc(|z|/√2) so it keeps precision in the tail.
 *
 * Edge cases: both samples holding the same single value give z = 0, p = 1 (Evidently's special case);
 * a sample with more than two distinct values across both sides throws {@link DriftInputError} (use
 * {@link chiSquareTest}); empty or missing values throw {@link DriftInputError}.
 */
export function zTest(
  reference: readonly (string | number)[],
  current: readonly (string | number)[],
): ZTestResult {
  if (reference.length === 0) throw new DriftInputError('reference sample is empty');
  if (current.length === 0) throw new DriftInputError('current sample is empty');
  const refCounts = countValues(reference, 'reference');
  const curCounts = countValues(current, 'current');
  const keys = [...new Set([...refCounts.keys(), ...curCounts.keys()])];
  if (keys.length > 2) {
    throw new DriftInputError(
      `z-test needs at most two distinct values (got ${keys.length}); use chiSquareTest`,
    );
  }
  if (keys.length === 1) return { statistic: 0, pValue: 1 };
  // Evidently orders the raw values (numbers numerically, strings lexicographically); the first is "0".
  const raw = new Map<string, string | number>();
  for (const v of [...reference, ...current]) raw.set(`${typeof v}:${v}`, v);
  const [k0] = keys.sort((x, y) => compareRaw(raw.get(x) as string | number, raw.get(y) as string | number));
  const n1 = reference.length;
  const n2 = current.length;
  const p1 = (n1 - (refCounts.get(k0) ?? 0)) / n1;
  const p2 = (n2 - (curCounts.get(k0) ?? 0)) / n2;
  const pooled = (p1 * n1 + p2 * n2) / (n1 + n2);
  const z = (p1 - p2) / Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  return { statistic: z, pValue: clamp01(normalTwoSidedP(z)) };
}

function compareRaw(a: string | number, b: string | number): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

/** 2·(1 − Φ(|z|)) = erfc(|z|/√2) = Q(1/2, z²/2). */
function normalTwoSidedP(z: number): number {
  return gammaQ(0.5, (z * z) / 2);
}

/**
 * Population stability index: Σ (actual − expected) · ln(actual / expected) over bins, on shares (each
 * vector sums to 1). Shares must be positive: use {@link binShares}, which replaces empty bins by 0.0001 as
 * Evidently does, because a zero share makes the logarithm infinite. Throws {@link DriftInputError} for
 * mismatched lengths, non-positive or non-finite shares.
 */
export function populationStabilityIndex(
  expectedShares: readonly number[],
  actualShares: readonly number[],
): number {
  if (expectedShares.length === 0 || expectedShares.length !== actualShares.length) {
    throw new DriftInputError(
      `PSI needs two share vectors of the same non-zero length (got ${expectedShares.length} and ${actualShares.length})`,
    );
  }
  let psi = 0;
  for (let i = 0; i < expectedShares.length; i++) {
    const e = expectedShares[i];
    const a = actualShares[i];
    if (!(e > 0) || !(a > 0) || !Number.isFinite(e) || !Number.isFinite(a)) {
      throw new DriftInputError(
        `PSI bin ${i} has share ${e} / ${a}; shares must be positive (see binShares for empty bins)`,
      );
    }
    psi += (a - e) * Math.log(a / e);
  }
  return psi;
}

/**
 * The share given to empty bins (Evidently's `get_binned_data` zero fill), so PSI stays finite. When the
 * smallest non-empty share of a side is itself ≤ 0.0001, that side's empty bins get that share / 10⁶ instead.
 */
export const EMPTY_BIN_SHARE = 0.0001;

/**
 * Bins two samples on shared edges and returns the share of each sample per bin.
 * - `equal-width` (default): `bins` equal-width bins from the reference minimum to maximum, edges as numpy
 *   `histogram_bin_edges(reference, bins)`; current values outside that range fall in no bin (numpy).
 * - `sturges`: Evidently's binning for its PSI / KL / Jensen–Shannon stattests on numerical features:
 *   equal-width edges over the pooled reference + current data with the bin count of numpy's `'sturges'`
 *   rule (⌈range / (range / (log₂ n + 1))⌉ bins); `bins` is ignored.
 * - `quantile`: edges at the reference's k/bins quantiles (linear interpolation), outer edges widened to
 *   ±Infinity so every current value is counted.
 * Empty bins are filled as Evidently does (see {@link EMPTY_BIN_SHARE}), so shares may not sum to exactly 1.
 * Constant data yields bins around the value of total width 1 (numpy's rule).
 */
export function binShares(
  reference: readonly number[],
  current: readonly number[],
  opts: { bins?: number; strategy?: 'quantile' | 'equal-width' | 'sturges' } = {},
): { edges: number[]; reference: number[]; current: number[] } {
  checkSample(reference, 'reference');
  checkSample(current, 'current');
  let bins = opts.bins ?? 10;
  if (!Number.isInteger(bins) || bins < 1)
    throw new DriftInputError(`bins must be a positive integer (got ${bins})`);
  const sorted = Float64Array.from(reference).sort();
  let edges: number[];
  if (opts.strategy === 'quantile') {
    edges = Array.from({ length: bins + 1 }, (_, k) => quantileSorted(sorted, k / bins));
    edges[0] = Number.NEGATIVE_INFINITY;
    edges[bins] = Number.POSITIVE_INFINITY;
  } else {
    let lo = sorted[0];
    let hi = sorted[sorted.length - 1];
    if (opts.strategy === 'sturges') {
      for (const v of current) {
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      const width = (hi - lo) / (Math.log2(reference.length + current.length) + 1);
      bins = width > 0 ? Math.ceil((hi - lo) / width) : 1;
    }
    if (lo === hi) {
      lo -= 0.5;
      hi += 0.5;
    }
    // numpy.linspace: start + k·step, last edge exactly the stop.
    const step = (hi - lo) / bins;
    edges = Array.from({ length: bins + 1 }, (_, k) => lo + k * step);
    edges[bins] = hi;
  }
  const share = (values: readonly number[]) => {
    const counts = new Array<number>(bins).fill(0);
    for (const v of values) {
      const b = binIndex(edges, v);
      if (b >= 0) counts[b]++;
    }
    const shares = counts.map((c) => c / values.length);
    const minShare = Math.min(...shares.filter((x) => x > 0));
    const fill = minShare <= EMPTY_BIN_SHARE ? minShare / 1e6 : EMPTY_BIN_SHARE;
    return shares.map((x) => (x === 0 ? fill : x));
  };
  return { edges, reference: share(reference), current: share(current) };
}

/** numpy histogram semantics: bins are half-open [e_k, e_k+1) except the last, which is closed. */
function binIndex(edges: readonly number[], v: number): number {
  const last = edges.length - 1;
  if (v < edges[0] || v > edges[last]) return -1;
  if (v === edges[last]) return last - 1;
  let lo = 0;
  let hi = last;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (v >= edges[mid]) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Quantile with linear interpolation (numpy's default method) on sorted data. */
export function quantileSorted(sorted: Float64Array | readonly number[], q: number): number {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Jensen–Shannon distance between two discrete distributions, matching `scipy.spatial.distance.jensenshannon`:
 * p and q are normalised to sum 1, m = (p+q)/2, JS = sqrt((KL(p‖m) + KL(q‖m)) / 2), natural log unless `base`
 * is given (then divided by ln(base)). Range [0, sqrt(ln 2)] in nats, [0, 1] in base 2.
 * Throws {@link DriftInputError} for different lengths, negative or non-finite weights, or an all-zero vector.
 */
export function jensenShannonDistance(
  p: readonly number[],
  q: readonly number[],
  opts: { base?: number } = {},
): number {
  if (p.length === 0 || p.length !== q.length)
    throw new DriftInputError(
      `Jensen–Shannon needs two vectors of the same non-zero length (got ${p.length} and ${q.length})`,
    );
  const sp = sumChecked(p, 'p');
  const sq = sumChecked(q, 'q');
  let js = 0;
  for (let i = 0; i < p.length; i++) {
    const pi = p[i] / sp;
    const qi = q[i] / sq;
    const mi = (pi + qi) / 2;
    if (pi > 0) js += pi * Math.log(pi / mi);
    if (qi > 0) js += qi * Math.log(qi / mi);
  }
  js /= 2;
  if (opts.base !== undefined) {
    if (!(opts.base > 0) || opts.base === 1)
      throw new DriftInputError(`log base must be positive and not 1 (got ${opts.base})`);
    js /= Math.log(opts.base);
  }
  return Math.sqrt(Math.max(0, js));
}

function sumChecked(v: readonly number[], name: string): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i]) || v[i] < 0)
      throw new DriftInputError(`${name}[${i}] is ${v[i]}; weights must be finite and non-negative`);
    s += v[i];
  }
  if (s === 0) throw new DriftInputError(`${name} sums to 0`);
  return s;
}

/**
 * First Wasserstein (earth mover's) distance between two 1-D samples, matching
 * `scipy.stats.wasserstein_distance(a, b)`: ∫ |F_a(x) − F_b(x)| dx over the pooled support.
 * Throws {@link DriftInputError} for empty samples or NaN.
 */
export function wassersteinDistance(a: readonly number[], b: readonly number[]): number {
  checkSample(a, 'first sample');
  checkSample(b, 'second sample');
  const x = Float64Array.from(a).sort();
  const y = Float64Array.from(b).sort();
  const all = Float64Array.from([...x, ...y]).sort();
  let i = 0;
  let j = 0;
  let w = 0;
  for (let k = 0; k < all.length - 1; k++) {
    const v = all[k];
    while (i < x.length && x[i] <= v) i++;
    while (j < y.length && y[j] <= v) j++;
    w += Math.abs(i / x.length - j / y.length) * (all[k + 1] - v);
  }
  return w;
}

/**
 * Wasserstein distance divided by the reference's population standard deviation, floored at 0.001, as
 * Evidently's `wasserstein` stattest computes it (default drift threshold 0.1). Constant reference data
 * uses the 0.001 floor.
 */
export function normedWassersteinDistance(reference: readonly number[], current: readonly number[]): number {
  const w = wassersteinDistance(reference, current);
  let mean = 0;
  for (const v of reference) mean += v / reference.length;
  let variance = 0;
  for (const v of reference) variance += (v - mean) ** 2 / reference.length;
  return w / Math.max(Math.sqrt(variance), 0.001);
}

function clamp01(p: number): number {
  return Math.min(1, Math.max(0, p));
}
