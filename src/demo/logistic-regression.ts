/**
 * Binary logistic regression trained by full-batch gradient descent on standardised features: small,
 * deterministic (no random initialisation), and exportable to ONNX as one MatMul + Add + Sigmoid by folding
 * the standardisation into the weights.
 */
export interface LogisticModel {
  /** Weights on standardised features. */
  coef: number[];
  intercept: number;
  mean: number[];
  std: number[];
}

/** Training settings (recorded as the run's hyperparameters). */
export interface LogisticOptions {
  learningRate: number;
  epochs: number;
  l2: number;
}

export function trainLogistic(
  xs: readonly number[][],
  ys: readonly number[],
  opts: LogisticOptions,
): LogisticModel {
  if (xs.length === 0) throw new Error('trainLogistic: no training examples');
  const d = xs[0].length;
  const n = xs.length;
  const mean = new Array<number>(d).fill(0);
  const std = new Array<number>(d).fill(0);
  for (const x of xs) for (let j = 0; j < d; j++) mean[j] += x[j] / n;
  for (const x of xs) for (let j = 0; j < d; j++) std[j] += (x[j] - mean[j]) ** 2 / n;
  for (let j = 0; j < d; j++) std[j] = Math.sqrt(std[j]) || 1;
  const z = xs.map((x) => x.map((v, j) => (v - mean[j]) / std[j]));
  const coef = new Array<number>(d).fill(0);
  let intercept = 0;
  for (let epoch = 0; epoch < opts.epochs; epoch++) {
    const g = new Array<number>(d).fill(0);
    let g0 = 0;
    for (let i = 0; i < n; i++) {
      const p = sigmoid(dot(coef, z[i]) + intercept);
      const err = p - ys[i];
      for (let j = 0; j < d; j++) g[j] += (err * z[i][j]) / n;
      g0 += err / n;
    }
    for (let j = 0; j < d; j++) coef[j] -= opts.learningRate * (g[j] + opts.l2 * coef[j]);
    intercept -= opts.learningRate * g0;
  }
  return { coef, intercept, mean, std };
}

/** Probability of the positive class. */
export function predictProba(model: LogisticModel, x: readonly number[]): number {
  return sigmoid(dot(model.coef, standardise(model, x)) + model.intercept);
}

/**
 * Per-feature contributions to the log-odds (coefficient × standardised value): exact attributions for a
 * linear model, recorded as the decision's reasons.
 */
export function attributions(
  model: LogisticModel,
  x: readonly number[],
  names: readonly string[],
): Record<string, number> {
  const z = standardise(model, x);
  return Object.fromEntries(names.map((n, j) => [n, Math.round(model.coef[j] * z[j] * 1e4) / 1e4]));
}

/** Accuracy at a 0.5 threshold. */
export function accuracy(model: LogisticModel, xs: readonly number[][], ys: readonly number[]): number {
  let ok = 0;
  for (let i = 0; i < xs.length; i++) if ((predictProba(model, xs[i]) >= 0.5 ? 1 : 0) === ys[i]) ok++;
  return xs.length === 0 ? 0 : ok / xs.length;
}

/** Weights and bias on raw (unstandardised) features: what the ONNX graph computes. */
export function rawWeights(model: LogisticModel): { weights: number[]; bias: number } {
  const weights = model.coef.map((c, j) => c / model.std[j]);
  const bias = model.intercept - model.coef.reduce((s, c, j) => s + (c * model.mean[j]) / model.std[j], 0);
  return { weights, bias };
}

function standardise(model: LogisticModel, x: readonly number[]): number[] {
  return x.map((v, j) => (v - model.mean[j]) / model.std[j]);
}

function dot(a: readonly number[], b: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function sigmoid(t: number): number {
  return 1 / (1 + Math.exp(-t));
}
