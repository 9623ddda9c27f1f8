import { type AnyValue, type Context, diag } from '@opentelemetry/api';
import type { LogRecordProcessor, ReadWriteLogRecord } from '@opentelemetry/sdk-logs';
import { toAttributes } from './redacting-span-processor.js';
import { emptySummary, mergeSummaries, redactionAttributes, summaryChanged } from './redaction-attributes.js';
import type { Redactor } from './redactor.js';

/** Options of {@link RedactingLogRecordProcessor}. */
export interface RedactingLogRecordProcessorOptions {
  /** The redaction policy. */
  redactor: Redactor;
  /** The processor that exports; when given it only ever sees redacted records. */
  next?: LogRecordProcessor;
}

/**
 * A `LogRecordProcessor` that redacts the body and attributes of every log record in `onEmit`, then hands
 * the record to `next`. Without `next` it must be listed before the exporting processors (the SDK calls
 * them in order). String bodies are scanned as text, and as JSON when they hold an object or array; an
 * audit record already redacted by the trail passes unchanged, so its body digest still verifies. Adds
 * `mltrail.redaction.*` attributes when it changed something; never throws into the host.
 *
 * @example
 * new LoggerProvider({ processors: [new RedactingLogRecordProcessor({ redactor, next: new BatchLogRecordProcessor({ exporter }) })] });
 */
export class RedactingLogRecordProcessor implements LogRecordProcessor {
  readonly #redactor: Redactor;
  readonly #next: LogRecordProcessor | undefined;

  constructor(options: RedactingLogRecordProcessorOptions) {
    this.#redactor = options.redactor;
    this.#next = options.next;
  }

  onEmit(logRecord: ReadWriteLogRecord, context?: Context): void {
    this.#redact(logRecord);
    this.#next?.onEmit(logRecord, context);
  }

  forceFlush(): Promise<void> {
    return this.#next?.forceFlush() ?? Promise.resolve();
  }

  shutdown(): Promise<void> {
    return this.#next?.shutdown() ?? Promise.resolve();
  }

  #redact(record: ReadWriteLogRecord): void {
    try {
      const summary = emptySummary();
      if (record.body !== undefined && record.body !== null) {
        const { value, summary: s } =
          typeof record.body === 'string'
            ? this.#redactor.redactString(record.body)
            : this.#redactor.redact(record.body);
        if (summaryChanged(s)) {
          record.setBody((value ?? null) as AnyValue);
          mergeSummaries(summary, s, 'body:');
        }
      }
      if (typeof record.eventName === 'string' && record.eventName !== '') {
        const { value, summary: s } = this.#redactor.redactString(record.eventName);
        if (summaryChanged(s)) {
          record.setEventName(value);
          mergeSummaries(summary, s, 'event_name:');
        }
      }
      const attrs = record.attributes as Record<string, unknown>;
      const { value, summary: s } = this.#redactor.redact(attrs);
      if (summaryChanged(s)) {
        const redacted = toAttributes(value);
        for (const k of Object.keys(attrs)) if (!(k in redacted)) delete attrs[k];
        record.setAttributes(redacted);
        mergeSummaries(summary, s);
      }
      record.setAttributes(redactionAttributes(summary));
    } catch (err) {
      diag.error('mltrail: log redaction failed; the body and names are masked, the attributes dropped', err);
      try {
        record.setBody('[REDACTED]');
        if (record.eventName !== undefined) record.setEventName('[REDACTED]');
        // Keys may hold what failed to be redacted too: no attribute survives.
        const attrs = record.attributes as Record<string, unknown>;
        for (const k of Object.keys(attrs)) delete attrs[k];
      } catch {
        // Nothing more can be done without throwing into the host.
      }
    }
  }
}
