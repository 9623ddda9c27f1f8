/**
 * Special functions the tests need, implemented for double precision: log-gamma (Lanczos, g=7, n=9),
 * the regularized incomplete gamma functions (series for x < a+1, Lentz continued fraction otherwise, as in
 * Numerical Recipes §6.2), and the chi-squared survival function built on them.
 */
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
  12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let a = LANCZOS[0];
  const t = z + 7.5;
  for (let i = 1; i < 9; i++) a += LANCZOS[i] / (z + i);
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  if (!Number.isFinite(x)) return 0;
  if (x < a + 1) return 1 - gammaPSeries(a, x);
  return gammaQContinuedFraction(a, x);
}

function gammaPSeries(a: number, x: number): number {
  let sum = 1 / a;
  let term = sum;
  for (let n = 1; n < 10_000; n++) {
    term *= x / (a + n);
    sum += term;
    if (Math.abs(term) < Math.abs(sum) * 1e-17) break;
  }
  return sum * Math.exp(-x + a * Math.log(x) - logGamma(a));
}

function gammaQContinuedFraction(a: number, x: number): number {
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x + a * Math.log(x) - logGamma(a)) * h;
}

/** Survival function of the chi-squared distribution with `df` degrees of freedom. */
export function chiSquareSf(x: number, df: number): number {
  return gammaQ(df / 2, x / 2);
}

/**
 * Survival function of the one-sample two-sided Kolmogorov–Smirnov statistic D_n, P(D_n ≥ d), for sample
 * size n, choosing among the same methods and cut-offs as `scipy.stats.kstwo` (Simard & L'Ecuyer 2011):
 * Ruben–Gambino closed forms near the ends, the exact Durbin matrix (Marsaglia–Tsang–Wang), twice the exact
 * one-sided Smirnov probability where that is accurate, and the Pelz–Good expansion for large n.
 */
export function kstwoSf(d: number, n: number): number {
  if (d >= 1) return 0;
  if (d <= 0) return 1;
  const t = n * d;
  if (t <= 1) {
    if (t <= 0.5) return 1;
    return 1 - Math.exp(logFactorialOverPower(n) + n * Math.log(2 * t - 1));
  }
  if (t >= n - 1) return 2 * (1 - d) ** n;
  if (d >= 0.5) return clamp(2 * smirnovSf(n, d));
  const nx2 = t * d;
  if (n <= 140) {
    if (nx2 <= 4) return clamp(1 - durbinCdf(n, d));
    return clamp(2 * smirnovSf(n, d));
  }
  if (nx2 >= 370) return 0;
  if (nx2 >= 2.2) return clamp(2 * smirnovSf(n, d));
  if (nx2 >= 18) return 0;
  if (n <= 100_000 && n * d ** 1.5 <= 1.4 && 2 * (Math.floor(n * d) + 1) - 1 <= 401)
    return clamp(1 - durbinCdf(n, d));
  return clamp(1 - pelzGoodCdf(n, d));
}

function clamp(p: number): number {
  return Math.min(1, Math.max(0, p));
}

function logFactorialOverPower(n: number): number {
  return logGamma(n + 1) - n * Math.log(n);
}

/**
 * Exact one-sided Smirnov survival P(D+_n ≥ x) by the Birnbaum–Tingey sum
 * x Σ_{j=0}^{⌊n(1−x)⌋} C(n, j) (1 − x − j/n)^{n−j} (x + j/n)^{j−1}, in log space.
 */
export function smirnovSf(n: number, x: number): number {
  if (x <= 0) return 1;
  if (x >= 1) return 0;
  const jmax = Math.floor(n * (1 - x) + 1e-12);
  const lnN = logGamma(n + 1);
  let sum = 0;
  for (let j = 0; j <= jmax; j++) {
    const a = 1 - x - j / n;
    const b = x + j / n;
    const la = n - j === 0 ? 0 : a <= 0 ? Number.NEGATIVE_INFINITY : (n - j) * Math.log(a);
    sum += Math.exp(lnN - logGamma(j + 1) - logGamma(n - j + 1) + la + (j - 1) * Math.log(b));
  }
  return x * sum;
}

/** Pelz–Good asymptotic expansion of P(D_n ≤ x) (four terms), for large n. */
function pelzGoodCdf(n: number, x: number): number {
  const PI2 = Math.PI ** 2;
  const PI4 = PI2 * PI2;
  const PI6 = PI4 * PI2;
  const SQRT2PI = Math.sqrt(2 * Math.PI);
  const z = Math.sqrt(n) * x;
  const z2 = z * z;
  const z4 = z2 * z2;
  const z6 = z4 * z2;
  const qlog = -PI2 / 8 / z2;
  if (qlog < -708) return 0;
  let q = Math.exp(qlog);
  const k1a = -z2;
  const k1b = PI2 / 4;
  const k2a = 6 * z6 + 2 * z4;
  const k2b = ((2 * z4 - 5 * z2) * PI2) / 4;
  const k2c = (PI4 * (1 - 2 * z2)) / 16;
  const k3d = (PI6 * (5 - 30 * z2)) / 64;
  const k3c = (PI4 * (-60 * z2 + 212 * z4)) / 16;
  const k3b = (PI2 * (135 * z4 - 96 * z6)) / 4;
  const k3a = -30 * z6 - 90 * z ** 8;
  const K = [0, 0, 0, 0];
  const maxk = Math.ceil((16 * z) / Math.PI);
  for (let k = maxk; k > 0; k--) {
    const m = 2 * k - 1;
    const m2 = m * m;
    const m4 = m2 * m2;
    const m6 = m4 * m2;
    const qp = q ** (8 * k);
    const c = [1, k1a + k1b * m2, k2a + k2b * m2 + k2c * m4, k3a + k3b * m2 + k3c * m4 + k3d * m6];
    for (let i = 0; i < 4; i++) K[i] = K[i] * qp + c[i];
  }
  const div = [z, 6 * z4, 72 * z ** 7, 6480 * z ** 10];
  for (let i = 0; i < 4; i++) K[i] = (K[i] * q * SQRT2PI) / div[i];
  q = Math.exp(-PI2 / 2 / z2);
  let k2extra = 0;
  let k3extra = 0;
  const s3z = Math.sqrt(3) * z;
  for (let k = maxk; k > 0; k--) {
    const k2 = k * k;
    const qk = q ** k2;
    k2extra += k2 * qk;
    const kpi = Math.PI * k;
    k3extra += (s3z + kpi) * (s3z - kpi) * k2 * qk;
  }
  K[2] += (k2extra * PI2 * SQRT2PI) / (-36 * z ** 3);
  K[3] += (k3extra * PI2 * SQRT2PI) / (216 * z6);
  let sum = 0;
  for (let i = 0; i < 4; i++) sum += K[i] / n ** (i / 2);
  return sum;
}

/** Survival function of the Kolmogorov distribution, P(K ≥ x). */
export function kolmogorovSf(x: number): number {
  if (x <= 0) return 1;
  if (x < 1) {
    // P(K ≤ x) = sqrt(2π)/x Σ exp(-(2k-1)²π²/(8x²)) converges fast for small x.
    let s = 0;
    for (let k = 1; k < 100; k++) {
      const t = Math.exp((-((2 * k - 1) ** 2) * Math.PI ** 2) / (8 * x * x));
      s += t;
      if (t < 1e-20) break;
    }
    return 1 - (Math.sqrt(2 * Math.PI) / x) * s;
  }
  let s = 0;
  for (let k = 1; k < 100; k++) {
    const t = (k % 2 === 1 ? 1 : -1) * Math.exp(-2 * k * k * x * x);
    s += t;
    if (Math.abs(t) < 1e-20) break;
  }
  return Math.min(1, Math.max(0, 2 * s));
}

/** P(D_n < d) by Marsaglia–Tsang–Wang, with exponent tracking to avoid overflow. */
function durbinCdf(n: number, d: number): number {
  const k = Math.floor(n * d) + 1;
  const m = 2 * k - 1;
  const h = k - n * d;
  const H = new Float64Array(m * m);
  for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) H[i * m + j] = i - j + 1 < 0 ? 0 : 1;
  for (let i = 0; i < m; i++) {
    H[i * m] -= h ** (i + 1);
    H[(m - 1) * m + i] -= h ** (m - i);
  }
  H[(m - 1) * m] += 2 * h - 1 > 0 ? (2 * h - 1) ** m : 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) {
      if (i - j + 1 > 0) for (let g = 1; g <= i - j + 1; g++) H[i * m + j] /= g;
    }
  }
  const { matrix: Q, exp: eQ } = matrixPower(H, m, n);
  let s = Q[(k - 1) * m + (k - 1)];
  let e = eQ;
  for (let i = 1; i <= n; i++) {
    s = (s * i) / n;
    if (s < 1e-140) {
      s *= 1e140;
      e -= 140;
    }
  }
  return s * 10 ** e;
}

function matrixMultiply(A: Float64Array, B: Float64Array, m: number): Float64Array {
  const C = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < m; k++) {
      const a = A[i * m + k];
      if (a === 0) continue;
      for (let j = 0; j < m; j++) C[i * m + j] += a * B[k * m + j];
    }
  }
  return C;
}

function matrixPower(A: Float64Array, m: number, n: number): { matrix: Float64Array; exp: number } {
  if (n === 1) return { matrix: Float64Array.from(A), exp: 0 };
  const half = matrixPower(A, m, Math.floor(n / 2));
  let B = matrixMultiply(half.matrix, half.matrix, m);
  let exp = 2 * half.exp;
  if (n % 2 === 1) B = matrixMultiply(A, B, m);
  if (B[Math.floor(m / 2) * m + Math.floor(m / 2)] > 1e140) {
    for (let i = 0; i < m * m; i++) B[i] *= 1e-140;
    exp += 140;
  }
  return { matrix: B, exp };
}
