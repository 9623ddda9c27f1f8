import { describe, expect, it } from 'vitest';
import { readRegisterOptions } from '../../src/instrumentation/register-options.js';

describe('readRegisterOptions', () => {
  it('defaults: enabled, digest capture, standard header, no exporters, no shipping', () => {
    expect(readRegisterOptions({})).toEqual({
      disabled: false,
      dir: undefined,
      capture: 'digest',
      environment: undefined,
      failClosed: false,
      predictionHeader: 'x-mltrail-prediction-id',
      otlpTraces: false,
      otlpLogs: false,
      otlpMetrics: false,
      metricExportIntervalMs: 60_000,
      metricExportTimeoutMs: 30_000,
      ship: false,
      problems: [],
    });
  });

  it('reads every variable; an endpoint turns on all signals and shipping unless a signal says none', () => {
    expect(
      readRegisterOptions({
        MLTRAIL_DIR: '/var/lib/audit',
        MLTRAIL_CAPTURE: 'full',
        MLTRAIL_ENVIRONMENT: 'prod',
        MLTRAIL_FAIL_CLOSED: 'TRUE',
        MLTRAIL_PREDICTION_HEADER: 'X-Pred',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_METRICS_EXPORTER: 'none',
        OTEL_METRIC_EXPORT_INTERVAL: '1000',
      }),
    ).toEqual({
      disabled: false,
      dir: '/var/lib/audit',
      capture: 'full',
      environment: 'prod',
      failClosed: true,
      predictionHeader: 'x-pred',
      otlpTraces: true,
      otlpLogs: true,
      otlpMetrics: false,
      metricExportIntervalMs: 1000,
      metricExportTimeoutMs: 1000,
      ship: true,
      problems: [],
    });
  });

  it('OTEL_LOGS_EXPORTER=none also stops shipping the journal (audit records are log records)', () => {
    const endpoint = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' };
    expect(readRegisterOptions({ ...endpoint, OTEL_LOGS_EXPORTER: 'none' })).toEqual(
      expect.objectContaining({ otlpTraces: true, otlpLogs: false, ship: false }),
    );
    expect(
      readRegisterOptions({
        OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://c:4318/v1/logs',
        OTEL_LOGS_EXPORTER: 'none',
      }).ship,
    ).toBe(false);
    expect(readRegisterOptions({ ...endpoint, OTEL_TRACES_EXPORTER: 'none' }).ship).toBe(true);
  });

  it('either disable switch disables', () => {
    expect(readRegisterOptions({ OTEL_SDK_DISABLED: 'true' }).disabled).toBe(true);
    expect(readRegisterOptions({ MLTRAIL_DISABLED: '1' }).disabled).toBe(true);
    expect(readRegisterOptions({ MLTRAIL_DISABLED: 'false' }).disabled).toBe(false);
  });

  it('bad values become specific problems and the defaults apply', () => {
    const o = readRegisterOptions({
      MLTRAIL_CAPTURE: 'everything',
      MLTRAIL_PREDICTION_HEADER: 'x prediction',
      MLTRAIL_DISABLED: 'maybe',
      OTEL_METRIC_EXPORT_INTERVAL: '5s',
    });
    expect(o.capture).toBe('digest');
    expect(o.predictionHeader).toBe('x-mltrail-prediction-id');
    expect(o.disabled).toBe(false);
    expect(o.problems).toEqual([
      'MLTRAIL_CAPTURE="everything" is not one of none, digest, redacted, full; using "digest"',
      'MLTRAIL_PREDICTION_HEADER="x prediction" is not a valid header name; using "x-mltrail-prediction-id"',
      'OTEL_METRIC_EXPORT_INTERVAL="5s" is not a positive number of milliseconds; using 60000',
      'MLTRAIL_DISABLED="maybe" is not true or false; treated as false',
    ]);
    expect(o.metricExportIntervalMs).toBe(60_000);
  });
});
