/**
 * mltrail/privacy: redaction, keyed pseudonymisation and the input-capture policy, applied before anything
 * is written — to audit bodies (by the trail), to spans (`RedactingSpanProcessor`) and to log records
 * (`RedactingLogRecordProcessor`). See docs/privacy.md.
 */
export {
  type CapturedValue,
  type CaptureOptions,
  type CapturePolicy,
  captureValue,
  DEFAULT_CAPTURE_MAX_BYTES,
  GENAI_CAPTURE_ENV,
  genAiCapturePolicy,
  truncateUtf8,
} from './capture-policy.js';
export {
  BUILTIN_DETECTORS,
  cardNetworkPrefix,
  DETECTOR_PATTERNS,
  type Detector,
  type DetectorName,
  ibanValid,
  luhnValid,
} from './detectors.js';
export { RedactionConfigError } from './errors.js';
export { compileKeyPath, type PathStep, renderPath } from './key-path.js';
export {
  MIN_PSEUDONYM_KEY_BYTES,
  PSEUDONYM_KEY_ENV,
  PSEUDONYM_PATTERN,
  Pseudonymizer,
  pseudonymKeyId,
  resolvePseudonymKey,
} from './pseudonymizer.js';
export {
  RedactingLogRecordProcessor,
  type RedactingLogRecordProcessorOptions,
} from './redacting-log-record-processor.js';
export {
  RedactingMetricExporter,
  type RedactingMetricExporterOptions,
} from './redacting-metric-exporter.js';
export {
  DEFAULT_DROPPED_RESOURCE_ATTRIBUTES,
  droppedResourceAttributes,
  RedactingResourceDetector,
  type RedactingResourceDetectorOptions,
} from './redacting-resource-detector.js';
export {
  RedactingSpanProcessor,
  type RedactingSpanProcessorOptions,
  toAttributes,
} from './redacting-span-processor.js';
export { emptySummary, mergeSummaries, redactionAttributes, summaryChanged } from './redaction-attributes.js';
export {
  createRedactor,
  DEFAULT_RULES,
  type DetectorAction,
  type Redacted,
  type RedactionPattern,
  type RedactionRule,
  type RedactionSummary,
  type Redactor,
  type RedactorOptions,
  type RuleAction,
} from './redactor.js';
export { type NormalizedText, needsNormalizing, normalizeForDetection } from './text-normalizer.js';
