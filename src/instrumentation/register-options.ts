import type { CaptureMode } from '../trail/index.js';

/** What `mltrail/register` reads from the environment (see docs/instrumentation.md for the table). */
export interface RegisterOptions {
  /** OTEL_SDK_DISABLED=true or MLTRAIL_DISABLED=true: nothing is patched, nothing is recorded. */
  disabled: boolean;
  /** MLTRAIL_DIR: the journal directory (default `./.mltrail`). */
  dir: string | undefined;
  /** MLTRAIL_CAPTURE: what is kept of inference inputs/outputs (default `digest`). */
  capture: CaptureMode;
  /** MLTRAIL_ENVIRONMENT: `deployment.environment.name` of every record (default `development`). */
  environment: string | undefined;
  /** MLTRAIL_FAIL_CLOSED=true: an audited call fails when its record cannot be made durable. */
  failClosed: boolean;
  /** MLTRAIL_PREDICTION_HEADER: the response header carrying prediction ids (default `x-mltrail-prediction-id`). */
  predictionHeader: string;
  /** True when an OTLP endpoint or exporter is configured (OTEL_EXPORTER_OTLP_*ENDPOINT, OTEL_*_EXPORTER). */
  otlpTraces: boolean;
  otlpLogs: boolean;
  otlpMetrics: boolean;
  /** OTEL_METRIC_EXPORT_INTERVAL: milliseconds between metric exports (default 60000). */
  metricExportIntervalMs: number;
  /** OTEL_METRIC_EXPORT_TIMEOUT: milliseconds one metric export may take (default 30000). */
  metricExportTimeoutMs: number;
  /** The journal is shipped to OTLP: see {@link shipsJournal}. */
  ship: boolean;
  /** Problems found in the environment; each is reported as a process warning, defaults are used. */
  problems: string[];
}

const CAPTURE_MODES: readonly CaptureMode[] = ['none', 'digest', 'redacted', 'full'];
/** RFC 9110 token characters: what a header name may contain. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Reads {@link RegisterOptions} from an environment (default `process.env`); never throws. */
export function readRegisterOptions(env: NodeJS.ProcessEnv = process.env): RegisterOptions {
  const problems: string[] = [];
  const flag = (name: string): boolean => {
    const raw = env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === '' || raw === 'false' || raw === '0') return false;
    if (raw === 'true' || raw === '1') return true;
    problems.push(`${name}="${env[name]}" is not true or false; treated as false`);
    return false;
  };
  let capture: CaptureMode = 'digest';
  const rawCapture = env.MLTRAIL_CAPTURE?.trim();
  if (rawCapture !== undefined && rawCapture !== '') {
    if ((CAPTURE_MODES as readonly string[]).includes(rawCapture)) capture = rawCapture as CaptureMode;
    else
      problems.push(
        `MLTRAIL_CAPTURE="${rawCapture}" is not one of ${CAPTURE_MODES.join(', ')}; using "digest"`,
      );
  }
  let predictionHeader = 'x-mltrail-prediction-id';
  const rawHeader = env.MLTRAIL_PREDICTION_HEADER?.trim();
  if (rawHeader !== undefined && rawHeader !== '') {
    if (HEADER_NAME.test(rawHeader)) predictionHeader = rawHeader.toLowerCase();
    else
      problems.push(
        `MLTRAIL_PREDICTION_HEADER="${rawHeader}" is not a valid header name; using "${predictionHeader}"`,
      );
  }
  const millis = (name: string, fallback: number): number => {
    const raw = nonEmpty(env[name]);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (Number.isSafeInteger(n) && n > 0) return n;
    problems.push(`${name}="${env[name]}" is not a positive number of milliseconds; using ${fallback}`);
    return fallback;
  };
  const metricExportIntervalMs = millis('OTEL_METRIC_EXPORT_INTERVAL', 60_000);
  // The SDK refuses a timeout longer than the interval.
  const metricExportTimeoutMs = Math.min(
    millis('OTEL_METRIC_EXPORT_TIMEOUT', 30_000),
    metricExportIntervalMs,
  );
  const endpoint = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  /** An OTLP exporter for a signal: an endpoint or an explicit exporter, unless OTEL_<SIGNAL>_EXPORTER=none. */
  const otlp = (signal: 'TRACES' | 'LOGS' | 'METRICS') => {
    const exporter = nonEmpty(env[`OTEL_${signal}_EXPORTER`]);
    if (exporter === 'none') return false;
    return (
      endpoint !== undefined ||
      nonEmpty(env[`OTEL_EXPORTER_OTLP_${signal}_ENDPOINT`]) !== undefined ||
      exporter !== undefined
    );
  };
  return {
    disabled: flag('OTEL_SDK_DISABLED') || flag('MLTRAIL_DISABLED'),
    dir: nonEmpty(env.MLTRAIL_DIR),
    capture,
    environment: nonEmpty(env.MLTRAIL_ENVIRONMENT),
    failClosed: flag('MLTRAIL_FAIL_CLOSED'),
    predictionHeader,
    otlpTraces: otlp('TRACES'),
    otlpLogs: otlp('LOGS'),
    otlpMetrics: otlp('METRICS'),
    metricExportIntervalMs,
    metricExportTimeoutMs,
    ship: shipsJournal(env),
    problems,
  };
}

/**
 * Whether the journal is shipped to an OTLP/HTTP endpoint: when OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is set, unless OTEL_LOGS_EXPORTER=none (audit records are log records;
 * with logs turned off the journal stays local, and `mltrail ship` can deliver it later).
 */
export function shipsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  if (nonEmpty(env.OTEL_LOGS_EXPORTER) === 'none') return false;
  return (
    nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT) !== undefined ||
    nonEmpty(env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT) !== undefined
  );
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t === undefined || t === '' ? undefined : t;
}
