export {
  type DriftDetail,
  DriftMonitor,
  type DriftMonitorOptions,
  type DriftRecordSink,
  type DriftWindowResult,
  type FeatureDriftResult,
} from './drift-monitor.js';
export { checkSample, DriftInputError } from './errors.js';
export {
  buildProfile,
  type CategoricalFeatureProfile,
  loadProfile,
  type NumericFeatureProfile,
  PREDICTION_FEATURE,
  type ProfileOptions,
  type ReferenceProfile,
  saveProfile,
} from './profile.js';
export { chiSquareSf, gammaQ, kolmogorovSf, kstwoSf, logGamma, smirnovSf } from './special.js';
export {
  binShares,
  type ChiSquareResult,
  chiSquareTest,
  EMPTY_BIN_SHARE,
  jensenShannonDistance,
  type KsResult,
  ksTest,
  normedWassersteinDistance,
  populationStabilityIndex,
  quantileSorted,
  wassersteinDistance,
  type ZTestResult,
  zTest,
} from './statistics.js';
