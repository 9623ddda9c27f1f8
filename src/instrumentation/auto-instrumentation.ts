import type { IncomingMessage, ServerResponse } from 'node:http';
import { diag, type Span } from '@opentelemetry/api';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPLogExporter as OTLPProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPMetricExporter as OTLPProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { ExpressInstrumentation } from '@opentelemetry/instrumentation-express';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import {
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  type ResourceDetector,
  serviceInstanceIdDetector,
} from '@opentelemetry/resources';
import { BatchLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, NoopSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace';
import { AuditLog, Shipper } from '../journal/index.js';
import {
  createRedactor,
  droppedResourceAttributes,
  RedactingLogRecordProcessor,
  RedactingMetricExporter,
  RedactingResourceDetector,
  RedactingSpanProcessor,
} from '../privacy/index.js';
import * as sc from '../semconv/index.js';
import { createTrailSync, getTrail, setGlobalTrail, type Trail } from '../trail/index.js';
import { OnnxRuntimeInstrumentation } from './onnxruntime/index.js';
import { PredictionHeaderGlue } from './prediction-header.js';
import { type RegisterOptions, readRegisterOptions } from './register-options.js';
import { TfjsInstrumentation } from './tfjs/index.js';

/** What {@link startAutoInstrumentation} set up; `shutdown()` flushes the journal and the SDK. */
export interface AutoInstrumentation {
  readonly trail: Trail;
  readonly sdk: NodeSDK;
  readonly options: RegisterOptions;
  /** Ships the journal to the OTLP endpoint; undefined without one. */
  readonly shipper: Shipper | undefined;
  /** Flushes and closes the journal, then shuts the OTel SDK down. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * Sets up everything `mltrail/register` promises, synchronously: the OTel NodeSDK (traces, logs, metrics;
 * exporters only when an OTLP endpoint or exporter is configured), the trail with the journal as its sink
 * (registered models and deployments loaded from the journal so a serving process can name them), the
 * onnxruntime-node, tfjs, http and express instrumentations, and the prediction-id response header.
 * Returns undefined when disabled (OTEL_SDK_DISABLED / MLTRAIL_DISABLED) or when setup failed; it never
 * throws into the host, except in fail-closed mode (MLTRAIL_FAIL_CLOSED), where a setup that failed throws
 * instead of letting the app run unaudited (`mltrail/register` then refuses to start).
 */
export function startAutoInstrumentation(
  options: RegisterOptions = readRegisterOptions(),
): AutoInstrumentation | undefined {
  for (const p of options.problems) process.emitWarning(`mltrail: ${p}`, 'MltrailConfigWarning');
  if (options.disabled) return undefined;
  try {
    return start(options);
  } catch (err) {
    if (options.failClosed) throw err;
    process.emitWarning(
      `mltrail: auto-instrumentation could not start, the app runs unaudited: ${err instanceof Error ? err.message : String(err)}`,
      'MltrailSetupWarning',
    );
    return undefined;
  }
}

/** How often the journal is shipped while the process runs. */
const SHIP_INTERVAL_MS = 1_000;
/** How long shutdown waits for the final delivery of the journal before leaving it for the next start. */
const FINAL_SHIP_MS = 5_000;

function start(options: RegisterOptions): AutoInstrumentation {
  let glue: PredictionHeaderGlue | undefined;
  const http = new HttpInstrumentation({
    applyCustomAttributesOnSpan: (span: Span, request: unknown, response: unknown) => {
      const ids = glue?.idsOf(response as ServerResponse) ?? glue?.idsOf(request as IncomingMessage) ?? [];
      if (ids.length > 0) span.setAttribute(sc.ATTR_ML_PREDICTION_ID, ids.join(','));
    },
  });
  // Span, log and metric data and the resource they share pass the privacy room's redaction before any
  // exporter sees them (the command line is left out of the resource). The OTLP/HTTP exporters send
  // JSON, or protobuf under OTEL_EXPORTER_OTLP[_<SIGNAL>]_PROTOCOL=http/protobuf; they read endpoints and
  // headers from the standard OTEL_EXPORTER_OTLP_* variables. Without a trace exporter no span leaves the
  // process, so there is nothing to redact: a no-op processor keeps the tracer provider, so spans still
  // get real ids (predictions and decisions share a trace), at no cost per span.
  const redactor = createRedactor();
  const proto = (signal: 'TRACES' | 'LOGS' | 'METRICS') =>
    (
      process.env[`OTEL_EXPORTER_OTLP_${signal}_PROTOCOL`] ?? process.env.OTEL_EXPORTER_OTLP_PROTOCOL
    )?.trim() === 'http/protobuf';
  const spanProcessors: SpanProcessor[] = options.otlpTraces
    ? [
        new RedactingSpanProcessor({ redactor }),
        new BatchSpanProcessor({
          exporter: proto('TRACES') ? new OTLPProtoTraceExporter() : new OTLPTraceExporter(),
        }),
      ]
    : [new NoopSpanProcessor()];
  const sdk = new NodeSDK({
    resourceDetectors: [
      new RedactingResourceDetector({
        detectors: resourceDetectorsFromEnv(),
        redactor,
        drop: droppedResourceAttributes(),
      }),
    ],
    spanProcessors,
    logRecordProcessors: options.otlpLogs
      ? [
          new RedactingLogRecordProcessor({
            redactor,
            next: new BatchLogRecordProcessor({
              exporter: proto('LOGS') ? new OTLPProtoLogExporter() : new OTLPLogExporter(),
            }),
          }),
        ]
      : [],
    metricReaders: options.otlpMetrics
      ? [
          new PeriodicExportingMetricReader({
            exporter: new RedactingMetricExporter({
              redactor,
              exporter: proto('METRICS') ? new OTLPProtoMetricExporter() : new OTLPMetricExporter(),
            }),
            // Shutdown collects and exports once more, so a short-lived process still leaves its final counts.
            exportIntervalMillis: options.metricExportIntervalMs,
            exportTimeoutMillis: options.metricExportTimeoutMs,
          }),
        ]
      : [],
    instrumentations: [
      http,
      new ExpressInstrumentation(),
      new OnnxRuntimeInstrumentation(),
      new TfjsInstrumentation(),
    ],
  });
  sdk.start();
  const trail = createTrailSync({
    capture: options.capture,
    environment: options.environment,
    failClosed: options.failClosed,
    sink: new AuditLog({
      dir: options.dir,
      failClosed: options.failClosed,
      signingKey: { warnOnReuse: true },
    }),
  });
  const loaded = trail.loadRegistry(options.dir);
  diag.debug(`mltrail: ${loaded} registered model/deployment record(s) loaded from the journal`);
  setGlobalTrail(trail);
  glue = new PredictionHeaderGlue({ trail: getTrail, header: options.predictionHeader });
  glue.enable();

  // Audit records reach the collector from the journal (at least once, resumable), not through the log
  // pipeline. The shipper runs on an unref'd timer so it never keeps a finishing process alive.
  const shipper = options.ship ? new Shipper({ dir: options.dir }) : undefined;
  const ship = () =>
    shipper?.drain().catch((err: unknown) => diag.error('mltrail: shipping the journal failed', err));
  const shipTimer = shipper === undefined ? undefined : setInterval(ship, SHIP_INTERVAL_MS);
  shipTimer?.unref();

  let closing: Promise<void> | undefined;
  return {
    trail,
    sdk,
    options,
    shipper,
    shutdown() {
      closing ??= (async () => {
        glue?.disable();
        if (shipTimer !== undefined) clearInterval(shipTimer);
        await trail.shutdown().catch((err: unknown) => diag.error('mltrail: journal shutdown failed', err));
        // One last delivery, bounded: the shipper retries forever, and an unreachable or refusing collector
        // must not keep the host from exiting. What is not delivered stays in the journal behind the cursor,
        // and the next start (or `mltrail ship`) sends it.
        const last = await shipper?.drainWithin(FINAL_SHIP_MS);
        if (last !== undefined && !('shipped' in last))
          diag.warn(
            `mltrail: the journal was not all shipped at shutdown (${'error' in last ? last.error.message : `still failing after ${FINAL_SHIP_MS} ms`}); the next start or "mltrail ship --once" sends the rest`,
          );
        await sdk.shutdown().catch((err: unknown) => diag.error('mltrail: OTel SDK shutdown failed', err));
      })();
      return closing;
    },
  };
}

/** The resource detectors OTEL_NODE_RESOURCE_DETECTORS names (default: all of them), as the NodeSDK picks them. */
function resourceDetectorsFromEnv(): ResourceDetector[] {
  const all: Record<string, ResourceDetector> = {
    // In the NodeSDK's order: later detectors win, so OTEL_RESOURCE_ATTRIBUTES (env) comes last.
    serviceinstance: serviceInstanceIdDetector,
    process: processDetector,
    host: hostDetector,
    os: osDetector,
    env: envDetector,
  };
  const names = (process.env.OTEL_NODE_RESOURCE_DETECTORS ?? 'all')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.includes('none')) return [];
  if (names.length === 0 || names.includes('all')) return Object.values(all);
  return names.flatMap((n) => all[n] ?? []);
}
