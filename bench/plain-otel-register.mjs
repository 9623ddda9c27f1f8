// The baseline `bench/server.mjs` compares mltrail with: the same server traced by plain OpenTelemetry, set
// up the way the OTel docs set up a Node service (`node --import ./bench/plain-otel-register.mjs app.mjs`):
// the NodeSDK with the HTTP instrumentation and a batch span processor. Its exporter drops the spans (no
// collector runs in the bench), so what is measured is the cost of tracing in the process, as on the mltrail
// side, which has no trace exporter either. No log or metric pipeline: the app writes no logs.
import { register } from 'node:module';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';

// ES modules are patched through import-in-the-middle's hook, registered as the OTel docs describe.
register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);

const dropSpans = {
  export: (_spans, done) => done({ code: 0 }),
  shutdown: async () => {},
  forceFlush: async () => {},
};
const sdk = new NodeSDK({
  spanProcessors: [new BatchSpanProcessor({ exporter: dropSpans })],
  logRecordProcessors: [],
  metricReaders: [],
  instrumentations: [new HttpInstrumentation()],
});
sdk.start();
process.once('beforeExit', () => {
  void sdk.shutdown();
});
