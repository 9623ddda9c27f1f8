/** Input a drift statistic cannot be computed on: empty samples, NaN, negative weights, mismatched bins. */
export class DriftInputError extends Error {
  constructor(message: string) {
    super(`mltrail drift: ${message}`);
    this.name = 'DriftInputError';
  }
}

/** Throws unless every value is a finite number; names the sample and index of the first bad one. */
export function checkSample(values: readonly number[], name: string): void {
  if (values.length === 0) throw new DriftInputError(`${name} is empty`);
  for (let i = 0; i < values.length; i++) {
    if (typeof values[i] !== 'number' || !Number.isFinite(values[i])) {
      throw new DriftInputError(`${name}[${i}] is ${String(values[i])}; drop or impute missing values first`);
    }
  }
}
