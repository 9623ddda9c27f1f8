import { readFile, writeFile } from 'node:fs/promises';
import { canonicalize } from '../integrity/index.js';
import { digestBytes } from '../trail/digest.js';
import { DriftInputError } from './errors.js';
import { quantileSorted } from './statistics.js';

/** Profile of one numerical feature. */
export interface NumericFeatureProfile {
  kind: 'numeric';
  count: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  /** Percentiles 0, 5, …, 100 (linear interpolation). */
  quantiles: number[];
  /** A deterministic, evenly spaced sample of the sorted values (at most `sampleSize`), for KS/Wasserstein. */
  sample: number[];
  /**
   * Count per value when the feature has at most 20 distinct values (keys are `String(value)`): Evidently
   * tests such low-cardinality numerical features like categories (χ², z-test or Jensen–Shannon).
   */
  frequencies?: Record<string, number>;
}

/** Profile of one categorical feature. */
export interface CategoricalFeatureProfile {
  kind: 'categorical';
  count: number;
  /** Count per category (category as string). */
  frequencies: Record<string, number>;
}

/**
 * The feature name under which a monitor profiles and tests predictions (prediction-distribution drift):
 * `buildProfile(rows, { predictions })` profiles it, `DriftMonitor.observe(features, prediction)` feeds it.
 */
export const PREDICTION_FEATURE = '__prediction__';

/** Numerical features with at most this many distinct values also keep per-value counts. */
const MAX_TRACKED_VALUES = 20;

/** A reference profile of training data: what drift is measured against. */
export interface ReferenceProfile {
  version: 1;
  rows: number;
  features: Record<string, NumericFeatureProfile | CategoricalFeatureProfile>;
  /** `sha256:` of the canonical JSON of the profile without this field; recorded by train()/dataset(). */
  digest: string;
}

/** Options of {@link buildProfile}. */
export interface ProfileOptions {
  /** Features to profile; defaults to every key of the first row. */
  features?: string[];
  /** Features to treat as categorical; defaults to those whose first value is a string or boolean. */
  categorical?: string[];
  /** Values kept per numerical feature for the tests (default 1000). */
  sampleSize?: number;
  /**
   * The model's outputs on the reference data (scores or labels), profiled as {@link PREDICTION_FEATURE}
   * so the monitor also tests prediction-distribution drift.
   */
  predictions?: readonly (number | string | boolean)[];
}

/**
 * Builds a reference profile from rows (objects keyed by feature). Numerical features keep summary
 * statistics, percentiles and an evenly spaced sample of the sorted values; categorical features keep
 * category counts. Missing (null/undefined/NaN) values are skipped and counted out of `count`.
 *
 * @example const profile = buildProfile(trainingRows, { features: ['temp_max', 'wind'] });
 */
export function buildProfile(
  rows: readonly Record<string, unknown>[],
  opts: ProfileOptions = {},
): ReferenceProfile {
  if (rows.length === 0) throw new DriftInputError('cannot profile an empty data set');
  if (opts.predictions !== undefined) {
    if (opts.predictions.length !== rows.length) {
      throw new DriftInputError(
        `predictions has ${opts.predictions.length} values for ${rows.length} rows; pass one per row`,
      );
    }
    const preds = opts.predictions;
    const features = [...(opts.features ?? Object.keys(rows[0])), PREDICTION_FEATURE];
    return buildProfile(
      rows.map((r, i) => ({ ...r, [PREDICTION_FEATURE]: preds[i] })),
      { ...opts, features, predictions: undefined },
    );
  }
  const features = opts.features ?? Object.keys(rows[0]);
  const sampleSize = opts.sampleSize ?? 1000;
  const out: ReferenceProfile['features'] = {};
  for (const f of features) {
    const first = rows.find((r) => r[f] !== undefined && r[f] !== null)?.[f];
    const categorical =
      opts.categorical?.includes(f) ?? (typeof first === 'string' || typeof first === 'boolean');
    if (categorical) {
      const frequencies: Record<string, number> = {};
      let count = 0;
      for (const r of rows) {
        const v = r[f];
        if (v === undefined || v === null) continue;
        frequencies[String(v)] = (frequencies[String(v)] ?? 0) + 1;
        count++;
      }
      out[f] = { kind: 'categorical', count, frequencies };
      continue;
    }
    const values: number[] = [];
    for (const r of rows) {
      const v = r[f];
      if (typeof v === 'number' && Number.isFinite(v)) values.push(v);
      else if (v !== undefined && v !== null && typeof v !== 'number') {
        throw new DriftInputError(
          `feature "${f}" mixes numbers and ${typeof v} values; list it in "categorical"`,
        );
      }
    }
    if (values.length === 0) throw new DriftInputError(`feature "${f}" has no numerical values`);
    const sorted = Float64Array.from(values).sort();
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const std = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
    const step = sorted.length / Math.min(sampleSize, sorted.length);
    const sample = Array.from(
      { length: Math.min(sampleSize, sorted.length) },
      (_, i) => sorted[Math.floor(i * step)],
    );
    const counts = new Map<number, number>();
    for (const v of sorted) {
      counts.set(v, (counts.get(v) ?? 0) + 1);
      if (counts.size > MAX_TRACKED_VALUES) break;
    }
    out[f] = {
      kind: 'numeric',
      count: values.length,
      mean,
      std,
      min: sorted[0],
      max: sorted[sorted.length - 1],
      quantiles: Array.from({ length: 21 }, (_, i) => quantileSorted(sorted, i / 20)),
      sample,
      ...(counts.size <= MAX_TRACKED_VALUES
        ? { frequencies: Object.fromEntries([...counts].map(([v, n]) => [String(v), n])) }
        : {}),
    };
  }
  const body = { version: 1 as const, rows: rows.length, features: out };
  return { ...body, digest: digestBytes(canonicalize(body)) };
}

/** Writes a profile as JSON (0600). */
export async function saveProfile(profile: ReferenceProfile, path: string): Promise<void> {
  await writeFile(path, `${JSON.stringify(profile)}\n`, { mode: 0o600 });
}

/** Reads a profile and checks its digest, so drift is measured against exactly the recorded profile. */
export async function loadProfile(path: string): Promise<ReferenceProfile> {
  let p: ReferenceProfile;
  try {
    p = JSON.parse(await readFile(path, 'utf8')) as ReferenceProfile;
  } catch (err) {
    if (!(err instanceof SyntaxError || err instanceof RangeError)) throw err;
    throw new DriftInputError(`${path}: not a JSON reference profile (${err.message})`);
  }
  if (typeof p !== 'object' || p === null || Array.isArray(p))
    throw new DriftInputError(
      `${path}: a reference profile is a JSON object, not ${Array.isArray(p) ? 'an array' : String(p)}`,
    );
  if (typeof p.features !== 'object' || p.features === null || Array.isArray(p.features))
    throw new DriftInputError(`${path}: field "features" must be an object of feature profiles`);
  for (const [name, f] of Object.entries(p.features))
    if (typeof f !== 'object' || f === null || Array.isArray(f))
      throw new DriftInputError(`${path}: field "features.${name}" must be an object`);
  const { digest, ...body } = p;
  let actual: string;
  try {
    actual = digestBytes(canonicalize(body));
  } catch (err) {
    throw new DriftInputError(`${path}: ${(err as Error).message}`);
  }
  if (actual !== digest)
    throw new DriftInputError(`${path}: profile digest ${digest} does not match its content (${actual})`);
  return p;
}
