import { type Attributes, diag } from '@opentelemetry/api';
import type { ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type {
  AggregationOption,
  AggregationTemporality,
  InstrumentType,
  MetricData,
  PushMetricExporter,
  ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { toAttributes } from './redacting-span-processor.js';
import type { Redactor } from './redactor.js';

/** Options of {@link RedactingMetricExporter}. */
export interface RedactingMetricExporterOptions {
  /** The redaction policy. */
  redactor: Redactor;
  /** The exporter that sends (e.g. an `OTLPMetricExporter`); it only ever sees redacted metrics. */
  exporter: PushMetricExporter;
}

/**
 * A `PushMetricExporter` that redacts what a metric export carries — the keys and values of every data
 * point's attributes (an `error.type` made from an error's name, an `http.route`, an app's own attributes),
 * the resource's attributes and the metric descriptions — before the exporter it wraps sees them.
 * Metrics are redacted once per export (not per measurement), so recording stays as fast as without it.
 * Never throws into the host: when redaction fails the export is dropped with a `diag` error.
 *
 * @example
 * new PeriodicExportingMetricReader({ exporter: new RedactingMetricExporter({ redactor, exporter: new OTLPMetricExporter() }) });
 */
export class RedactingMetricExporter implements PushMetricExporter {
  readonly #redactor: Redactor;
  readonly #exporter: PushMetricExporter;
  /** Redacted resources by the SDK's resource object (one per provider, so this stays tiny). */
  readonly #resources = new WeakMap<object, ResourceMetrics['resource']>();

  constructor(options: RedactingMetricExporterOptions) {
    this.#redactor = options.redactor;
    this.#exporter = options.exporter;
    if (options.exporter.selectAggregationTemporality !== undefined)
      this.selectAggregationTemporality = (t: InstrumentType) =>
        (options.exporter.selectAggregationTemporality as (t: InstrumentType) => AggregationTemporality)(t);
    if (options.exporter.selectAggregation !== undefined)
      this.selectAggregation = (t: InstrumentType) =>
        (options.exporter.selectAggregation as (t: InstrumentType) => AggregationOption)(t);
  }

  selectAggregationTemporality?: (instrumentType: InstrumentType) => AggregationTemporality;
  selectAggregation?: (instrumentType: InstrumentType) => AggregationOption;

  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    let redacted: ResourceMetrics;
    try {
      redacted = this.#redactMetrics(metrics);
    } catch (err) {
      diag.error('mltrail: metric redaction failed; this export is dropped', err);
      resultCallback({ code: 1, error: err instanceof Error ? err : new Error(String(err)) });
      return;
    }
    this.#exporter.export(redacted, resultCallback);
  }

  forceFlush(): Promise<void> {
    return this.#exporter.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#exporter.shutdown();
  }

  #redactMetrics(metrics: ResourceMetrics): ResourceMetrics {
    return {
      resource: this.#resource(metrics.resource),
      scopeMetrics: metrics.scopeMetrics.map((scope) => ({
        scope: scope.scope,
        metrics: scope.metrics.map((m) => this.#metric(m)),
      })),
    };
  }

  #metric(metric: MetricData): MetricData {
    const description = metric.descriptor.description;
    const redactedDescription =
      description === undefined || description === ''
        ? description
        : this.#redactor.redactString(description).value;
    return {
      ...metric,
      descriptor:
        redactedDescription === description
          ? metric.descriptor
          : { ...metric.descriptor, description: redactedDescription as string },
      dataPoints: metric.dataPoints.map((p) => ({ ...p, attributes: this.#attributes(p.attributes) })),
    } as MetricData;
  }

  #attributes(attributes: Attributes): Attributes {
    const { value, summary } = this.#redactor.redact(attributes);
    if (summary.maskedCount + summary.removedCount + summary.hashedCount + summary.truncated.length === 0)
      return attributes;
    return toAttributes(value);
  }

  #resource(resource: ResourceMetrics['resource']): ResourceMetrics['resource'] {
    const known = this.#resources.get(resource);
    if (known !== undefined) return known;
    const attributes = this.#attributes(resource.attributes);
    const out =
      attributes === resource.attributes
        ? resource
        : resourceFromAttributes(
            attributes,
            resource.schemaUrl === undefined ? undefined : { schemaUrl: resource.schemaUrl },
          );
    this.#resources.set(resource, out);
    return out;
  }
}
