import { diag, type Meter, metrics } from '@opentelemetry/api';
import {
  ATTR_ML_DRIFT_FEATURE,
  ATTR_ML_DRIFT_TEST,
  ATTR_ML_MODEL_NAME,
  ATTR_ML_MODEL_VERSION,
  METRIC_ML_DRIFT_SCORE,
} from '../semconv/index.js';
import { checkSample, DriftInputError } from './errors.js';
import type { NumericFeatureProfile, ReferenceProfile } from './profile.js';
import {
  chiSquareTest,
  jensenShannonDistance,
  ksTestSorted,
  wassersteinDistance,
  zTest,
} from './statistics.js';

/** What the monitor reports for one drifted feature (or the whole data set). */
export interface DriftDetail {
  /** The feature, or `__dataset__` for dataset-level drift. */
  feature: string;
  test: 'ks' | 'wasserstein' | 'chisquare' | 'z' | 'jensenshannon' | 'share';
  statistic: number;
  /** p-value for hypothesis tests. */
  pValue?: number;
  /** The threshold the p-value (below) or distance (above) crossed. */
  threshold: number;
  /** Comparable score: the distance, or 1 − p-value. */
  score: number;
  datasetDrift?: boolean;
  driftShare?: number;
  windowStart: string;
  windowEnd: string;
  windowSize: number;
  referenceDigest: string;
  method?: string;
  model?: { name: string; version: string };
  deploymentId?: string;
}

/** Where drift records go: `trail.recordDrift()` implements this. */
export interface DriftRecordSink {
  recordDrift(detail: DriftDetail): { id: string };
}

/** One feature's result in a window. */
export interface FeatureDriftResult {
  feature: string;
  test: DriftDetail['test'];
  statistic: number;
  pValue?: number;
  threshold: number;
  score: number;
  drifted: boolean;
}

/** The evaluation of a closed window. */
export interface DriftWindowResult {
  windowStart: string;
  windowEnd: string;
  size: number;
  features: FeatureDriftResult[];
  driftShare: number;
  datasetDrift: boolean;
  /** Ids of the `ml.drift.detected` records written. */
  recordIds: string[];
}

/** Options of {@link DriftMonitor}. */
export interface DriftMonitorOptions {
  reference: ReferenceProfile;
  model?: { name: string; version: string };
  deploymentId?: string;
  /** Close a window after `size` observations and/or `ms` milliseconds (default size 100). */
  window?: { size?: number; ms?: number };
  /** p-value threshold for KS and χ² (default 0.05, Evidently's). */
  pValueThreshold?: number;
  /** Distance threshold for normed Wasserstein and Jensen–Shannon (default 0.1, Evidently's). */
  distanceThreshold?: number;
  /** Dataset drift when at least this share of features drift (default 0.5, Evidently's). */
  driftShare?: number;
  /** Divide the p-value threshold by the number of features (Bonferroni). */
  bonferroni?: boolean;
  /** Reference sizes above this switch to distances (default 1000, Evidently's rule). */
  largeReference?: number;
  sink?: DriftRecordSink;
  meter?: Meter;
  /** Called for every closed window (drifted or not). */
  onWindow?: (result: DriftWindowResult) => void;
}

/**
 * A streaming drift monitor for a deployed model. `observe()` each prediction's features; when a window
 * closes (by count or time) every profiled feature is tested against the reference profile with
 * Evidently's default selection — numerical: KS (p < 0.05) for references of ≤ 1000 rows, else normed
 * Wasserstein (> 0.1); categorical: χ² (p < 0.05) for ≤ 1000 rows, else Jensen–Shannon (> 0.1) — and every
 * drifted feature, plus dataset-level drift, becomes an `ml.drift.detected` audit record through the sink.
 * Scores go to the `ml.drift.score` gauge. Never throws into the caller.
 */
export class DriftMonitor {
  readonly #o: Required<
    Pick<DriftMonitorOptions, 'pValueThreshold' | 'distanceThreshold' | 'driftShare' | 'largeReference'>
  > &
    DriftMonitorOptions;
  readonly #gauge;
  #window: Record<string, unknown>[] = [];
  #start = new Date();
  /**
   * What the tests need of each reference feature, worked out at its first window: the reference never
   * changes, so its sort, its counts and its expanded values are the same for every window.
   */
  readonly #prepared = new Map<string, PreparedFeature>();

  constructor(opts: DriftMonitorOptions) {
    this.#o = {
      pValueThreshold: 0.05,
      distanceThreshold: 0.1,
      driftShare: 0.5,
      largeReference: 1000,
      ...opts,
    };
    validateOptions(this.#o);
    const meter = opts.meter ?? metrics.getMeter('mltrail');
    // Unit "1" as in model/metrics.yaml: Prometheus' OTLP translation names the gauge ml_drift_score_ratio
    // from it, which is what the dashboards query (test/drift/grafana-names.test.ts).
    this.#gauge = meter.createGauge(METRIC_ML_DRIFT_SCORE, {
      description: 'Drift score per feature (distance or 1 - p-value)',
      unit: '1',
    });
  }

  /** Adds one observation; returns the window result when this observation closed a window. */
  observe(features: Record<string, unknown>, prediction?: unknown): DriftWindowResult | undefined {
    try {
      if (this.#window.length === 0) this.#start = new Date();
      this.#window.push(prediction === undefined ? features : { ...features, __prediction__: prediction });
      const size = this.#o.window?.size ?? (this.#o.window?.ms === undefined ? 100 : undefined);
      const full = size !== undefined && this.#window.length >= size;
      const expired =
        this.#o.window?.ms !== undefined && Date.now() - this.#start.getTime() >= this.#o.window.ms;
      return full || expired ? this.flush() : undefined;
    } catch (err) {
      diag.error('mltrail: drift monitor failed to observe', err);
      return undefined;
    }
  }

  /** Evaluates the current (possibly partial) window now. */
  flush(): DriftWindowResult | undefined {
    const rows = this.#window;
    this.#window = [];
    if (rows.length === 0) return undefined;
    const start = this.#start.toISOString();
    const end = new Date().toISOString();
    const profiled = Object.keys(this.#o.reference.features);
    const alpha = this.#o.bonferroni ? this.#o.pValueThreshold / profiled.length : this.#o.pValueThreshold;
    const results: FeatureDriftResult[] = [];
    for (const feature of profiled) {
      try {
        const r = this.#testFeature(feature, rows, alpha);
        if (r !== undefined) results.push(r);
      } catch (err) {
        diag.warn(`mltrail: drift test on ${feature} skipped: ${(err as Error).message}`);
      }
    }
    const drifted = results.filter((r) => r.drifted);
    const share = results.length === 0 ? 0 : drifted.length / results.length;
    const datasetDrift = results.length > 0 && share >= this.#o.driftShare;
    const base = {
      windowStart: start,
      windowEnd: end,
      windowSize: rows.length,
      referenceDigest: this.#o.reference.digest,
      model: this.#o.model,
      deploymentId: this.#o.deploymentId,
    };
    const recordIds: string[] = [];
    const record = (d: DriftDetail) => {
      if (this.#o.sink === undefined) return;
      try {
        recordIds.push(this.#o.sink.recordDrift(d).id);
      } catch (err) {
        diag.error('mltrail: could not record drift', err);
      }
    };
    for (const r of results) {
      this.#gauge.record(r.score, {
        [ATTR_ML_DRIFT_FEATURE]: r.feature,
        [ATTR_ML_DRIFT_TEST]: r.test,
        ...modelAttrs(this.#o.model),
      });
    }
    for (const r of drifted) {
      record({
        ...base,
        feature: r.feature,
        test: r.test,
        statistic: r.statistic,
        pValue: r.pValue,
        threshold: r.threshold,
        score: r.score,
        method: this.#o.bonferroni ? 'bonferroni' : undefined,
      });
    }
    if (datasetDrift) {
      record({
        ...base,
        feature: '__dataset__',
        test: 'share',
        statistic: share,
        threshold: this.#o.driftShare,
        score: share,
        datasetDrift: true,
        driftShare: share,
      });
    }
    const result: DriftWindowResult = {
      windowStart: start,
      windowEnd: end,
      size: rows.length,
      features: results,
      driftShare: share,
      datasetDrift,
      recordIds,
    };
    try {
      this.#o.onWindow?.(result);
    } catch (err) {
      diag.error('mltrail: onWindow callback threw', err);
    }
    return result;
  }

  #testFeature(
    feature: string,
    rows: Record<string, unknown>[],
    alpha: number,
  ): FeatureDriftResult | undefined {
    const ref = this.#o.reference.features[feature];
    const large = ref.count > this.#o.largeReference;
    let prepared = this.#prepared.get(feature);
    if (prepared === undefined) {
      prepared = {};
      this.#prepared.set(feature, prepared);
    }
    if (ref.kind === 'numeric') {
      const cur = rows
        .map((r) => r[feature])
        .filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      if (cur.length === 0) return undefined;
      if (!('counts' in prepared)) prepared.counts = numericCounts(ref);
      const refCounts = prepared.counts;
      // Evidently counts distinct values over reference and current together; ≤ 5 → tested as categories.
      if (refCounts !== undefined && distinct(refCounts.keys(), cur.map(String)) <= 5) {
        return this.#testCategories(prepared, refCounts, feature, cur, large, alpha, Number);
      }
      if (!large) {
        if (prepared.sorted === undefined) {
          checkSample(ref.sample, 'first sample');
          prepared.sorted = Float64Array.from(ref.sample).sort();
        }
        const ks = ksTestSorted(prepared.sorted, cur);
        return {
          feature,
          test: 'ks',
          statistic: ks.statistic,
          pValue: ks.pValue,
          threshold: alpha,
          score: 1 - ks.pValue,
          drifted: ks.pValue < alpha,
        };
      }
      // Normed by the std of the whole reference (kept in the profile), as Evidently's np.std(reference).
      const w = wassersteinDistance(ref.sample, cur) / Math.max(ref.std, 0.001);
      return {
        feature,
        test: 'wasserstein',
        statistic: w,
        threshold: this.#o.distanceThreshold,
        score: w,
        drifted: w >= this.#o.distanceThreshold,
      };
    }
    const cur = rows
      .map((r) => r[feature])
      .filter((v) => v !== undefined && v !== null)
      .map(String);
    if (cur.length === 0) return undefined;
    prepared.counts ??= new Map(Object.entries(ref.frequencies));
    return this.#testCategories(prepared, prepared.counts, feature, cur, large, alpha, String);
  }

  /**
   * Evidently's categorical branch: χ² (more than two values) or z-test (binary) for small references,
   * Jensen–Shannon (natural log as Evidently 0.7 — older releases used base 2 —, no zero filling, drift
   * when ≥ threshold) for large ones.
   */
  #testCategories<T extends string | number>(
    prepared: PreparedFeature,
    refCounts: Map<string, number>,
    feature: string,
    current: T[],
    large: boolean,
    alpha: number,
    parse: (key: string) => T,
  ): FeatureDriftResult {
    if (!large) {
      prepared.values ??= [...refCounts].flatMap(([k, n]) => Array<T>(n).fill(parse(k)));
      const refValues = prepared.values as T[];
      const binary = distinct(refCounts.keys(), current.map(String)) <= 2;
      const r = binary ? zTest(refValues, current) : chiSquareTest(refValues, current);
      return {
        feature,
        test: binary ? 'z' : 'chisquare',
        statistic: r.statistic,
        pValue: r.pValue,
        threshold: alpha,
        score: 1 - r.pValue,
        drifted: r.pValue < alpha,
      };
    }
    const curCounts = new Map<string, number>();
    for (const c of current) curCounts.set(String(c), (curCounts.get(String(c)) ?? 0) + 1);
    const keys = [...new Set([...refCounts.keys(), ...curCounts.keys()])];
    const js = jensenShannonDistance(
      keys.map((k) => refCounts.get(k) ?? 0),
      keys.map((k) => curCounts.get(k) ?? 0),
    );
    return {
      feature,
      test: 'jensenshannon',
      statistic: js,
      threshold: this.#o.distanceThreshold,
      score: js,
      drifted: js >= this.#o.distanceThreshold,
    };
  }
}

/** One reference feature as the window tests use it (each part made when first needed). */
interface PreparedFeature {
  /** A numeric feature's per-value counts (undefined: too many distinct values to count). */
  counts?: Map<string, number> | undefined;
  /** A numeric feature's sample, checked and sorted (the KS test's first sample). */
  sorted?: Float64Array;
  /** The reference as one value per row, for χ² and the z-test. */
  values?: (string | number)[];
}

/** Rejects options that would make every window meaningless, at construction (never later, in observe). */
function validateOptions(o: DriftMonitorOptions): void {
  const bad = (what: string, v: unknown) => {
    throw new DriftInputError(`DriftMonitor: ${what} (got ${String(v)})`);
  };
  if (o.reference?.features === undefined || typeof o.reference.digest !== 'string')
    bad('reference must be a profile from buildProfile()/loadProfile()', o.reference);
  if (Object.keys(o.reference.features).length === 0) bad('reference profiles no feature', 0);
  const size = o.window?.size;
  if (size !== undefined && !(Number.isInteger(size) && size >= 1))
    bad('window.size must be a positive integer', size);
  const ms = o.window?.ms;
  if (ms !== undefined && !(Number.isFinite(ms) && ms >= 0)) bad('window.ms must be a number ≥ 0', ms);
  for (const k of ['pValueThreshold', 'driftShare'] as const) {
    const v = o[k];
    if (v !== undefined && !(v > 0 && v <= 1)) bad(`${k} must be in (0, 1]`, v);
  }
  if (o.distanceThreshold !== undefined && !(o.distanceThreshold > 0))
    bad('distanceThreshold must be > 0', o.distanceThreshold);
  if (o.largeReference !== undefined && !(o.largeReference >= 0))
    bad('largeReference must be ≥ 0', o.largeReference);
}

/** Per-value counts of a numerical reference feature, when it has few distinct values. */
function numericCounts(ref: NumericFeatureProfile): Map<string, number> | undefined {
  if (ref.frequencies !== undefined) return new Map(Object.entries(ref.frequencies));
  return undefined;
}

function distinct(a: Iterable<string>, b: readonly string[]): number {
  const s = new Set(a);
  for (const v of b) s.add(v);
  return s.size;
}

function modelAttrs(model: { name: string; version: string } | undefined): Record<string, string> {
  return model === undefined
    ? {}
    : { [ATTR_ML_MODEL_NAME]: model.name, [ATTR_ML_MODEL_VERSION]: model.version };
}
