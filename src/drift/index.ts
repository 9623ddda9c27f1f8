export { checkSample, DriftInputError } from './errors.js';
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
} from './statistics.js';
