import type { IncomingMessage, ServerResponse } from 'node:http';
import { diag, type Span } from '@opentelemetry/api';
import { ExpressInstrumentation } from '@opentelemetry/instrumentation-express';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace';
import { AuditLog } from '../journal/index.js';
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
  /** Flushes and closes the journal, then shuts the OTel SDK down. Safe to call twice. */
  shutdown(): Promise<void>;
}

/**
 * Sets up everything `mltrail/register` promises, synchronously: the OTel NodeSDK (traces, logs, metrics;
 * exporters only when an OTLP endpoint or exporter is configured), the trail with the journal as its sink
 * (registered models and deployments loaded from the journal so a serving process can name them), the
 * onnxruntime-node, tfjs, http and express instrumentations, and the prediction-id response header.
 * Returns undefined when disabled (OTEL_SDK_DISABLED / MLTRAIL_DISABLED) or when setup failed; it never
 * throws into the host.
 */
export function startAutoInstrumentation(
  options: RegisterOptions = readRegisterOptions(),
): AutoInstrumentation | undefined {
  for (const p of options.problems) process.emitWarning(`mltrail: ${p}`, 'MltrailConfigWarning');
  if (options.disabled) return undefined;
  try {
    return start(options);
  } catch (err) {
    process.emitWarning(
      `mltrail: auto-instrumentation could not start, the app runs unaudited: ${err instanceof Error ? err.message : String(err)}`,
      'MltrailSetupWarning',
    );
    return undefined;
  }
}

function start(options: RegisterOptions): AutoInstrumentation {
  let glue: PredictionHeaderGlue | undefined;
  const http = new HttpInstrumentation({
    applyCustomAttributesOnSpan: (span: Span, request: unknown, response: unknown) => {
      const ids = glue?.idsOf(response as ServerResponse) ?? glue?.idsOf(request as IncomingMessage) ?? [];
      if (ids.length > 0) span.setAttribute(sc.ATTR_ML_PREDICTION_ID, ids.join(','));
    },
  });
  const sdk = new NodeSDK({
    // Without a configured exporter spans still get real ids (decisions and predictions share a trace) but
    // nothing is sent anywhere; with one, the SDK's environment configuration applies unchanged.
    spanProcessors: options.otlpTraces ? undefined : [new NoopSpanProcessor()],
    logRecordProcessors: options.otlpLogs ? undefined : [],
    metricReaders: options.otlpMetrics ? undefined : [],
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
    sink: new AuditLog({ dir: options.dir, failClosed: options.failClosed }),
  });
  const loaded = trail.loadRegistry(options.dir);
  diag.debug(`mltrail: ${loaded} registered model/deployment record(s) loaded from the journal`);
  setGlobalTrail(trail);
  glue = new PredictionHeaderGlue({ trail: getTrail, header: options.predictionHeader });
  glue.enable();

  let closing: Promise<void> | undefined;
  return {
    trail,
    sdk,
    options,
    shutdown() {
      closing ??= (async () => {
        glue?.disable();
        await trail.shutdown().catch((err: unknown) => diag.error('mltrail: journal shutdown failed', err));
        await sdk.shutdown().catch((err: unknown) => diag.error('mltrail: OTel SDK shutdown failed', err));
      })();
      return closing;
    },
  };
}
