import { type Attributes, type Context, diag } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor, TimedEvent } from '@opentelemetry/sdk-trace';
import { emptySummary, mergeSummaries, redactionAttributes } from './redaction-attributes.js';
import type { RedactionSummary, Redactor } from './redactor.js';

/** Options of {@link RedactingSpanProcessor}. */
export interface RedactingSpanProcessorOptions {
  /** The redaction policy. */
  redactor: Redactor;
  /**
   * The processor that exports (e.g. a `BatchSpanProcessor`). When given, it only ever sees redacted
   * spans, whatever the order of processors in the provider.
   */
  next?: SpanProcessor;
  /** Also run the detectors over the span name and status message; default true. */
  redactNames?: boolean;
}

type MutableSpan = {
  attributes: Attributes;
  events: TimedEvent[];
  links: { attributes?: Attributes }[];
  name: string;
  status: { code: number; message?: string };
};

/**
 * A `SpanProcessor` that redacts span attributes, span events, link attributes, the span name and status
 * message before any exporter sees them, and adds `mltrail.redaction.*` summary attributes when it
 * changed something.
 *
 * It redacts in `onEnding`, which the SDK calls on every processor before any `onEnd`, while the span is
 * still writable — so every exporting processor in the same provider sees only redacted data, in any
 * order. With `next`, it also forwards every hook to that processor itself. Redaction errors never reach
 * the host: they go to `diag` and the span's attributes are dropped and its names masked instead.
 *
 * @example
 * new TracerProvider({ spanProcessors: [new RedactingSpanProcessor({ redactor, next: new BatchSpanProcessor({ exporter }) })] });
 */
export class RedactingSpanProcessor implements SpanProcessor {
  readonly #redactor: Redactor;
  readonly #next: SpanProcessor | undefined;
  readonly #names: boolean;
  readonly #done = new WeakSet<object>();

  constructor(options: RedactingSpanProcessorOptions) {
    this.#redactor = options.redactor;
    this.#next = options.next;
    this.#names = options.redactNames ?? true;
  }

  onStart(span: Span, parentContext: Context): void {
    this.#next?.onStart(span, parentContext);
  }

  onEnding(span: Span): void {
    this.#redactInPlace(span as unknown as ReadableSpan);
    this.#next?.onEnding?.(span);
  }

  onEnd(span: ReadableSpan): void {
    // SDKs without onEnding: the attribute maps are still plain objects, so redact them here (the processor
    // must then come before the exporting ones, or be given them as `next`).
    if (!this.#done.has(span)) this.#redactInPlace(span);
    this.#next?.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.#next?.forceFlush() ?? Promise.resolve();
  }

  shutdown(): Promise<void> {
    return this.#next?.shutdown() ?? Promise.resolve();
  }

  #redactInPlace(readable: ReadableSpan): void {
    if (this.#done.has(readable)) return;
    this.#done.add(readable);
    const span = readable as unknown as MutableSpan;
    try {
      const summary = emptySummary();
      replaceAttributes(span.attributes, this.#attributes(span.attributes, summary, ''));
      for (let i = 0; i < span.events.length; i++) {
        const ev = span.events[i];
        // Event names are the app's text (`addEvent("sent receipt to …")`): redacted like any string.
        const name = this.#redactor.redactString(ev.name);
        if (name.value !== ev.name) mergeSummaries(summary, name.summary, `event[${i}].name:`);
        const redacted =
          ev.attributes === undefined
            ? undefined
            : this.#attributes(ev.attributes, summary, `event[${i}:${name.value}]:`);
        if (redacted !== ev.attributes || name.value !== ev.name)
          span.events[i] = { ...ev, name: name.value, attributes: redacted };
      }
      for (const link of span.links) {
        if (link.attributes !== undefined) {
          const redacted = this.#attributes(link.attributes, summary, 'link:');
          if (redacted !== link.attributes) link.attributes = redacted;
        }
      }
      if (this.#names) {
        const name = this.#redactor.redactString(span.name);
        if (name.value !== span.name) {
          span.name = name.value;
          mergeSummaries(summary, name.summary, 'span.name:');
        }
        if (typeof span.status.message === 'string') {
          const msg = this.#redactor.redactString(span.status.message);
          if (msg.value !== span.status.message) {
            span.status = { ...span.status, message: msg.value };
            mergeSummaries(summary, msg.summary, 'status.message:');
          }
        }
      }
      Object.assign(span.attributes, redactionAttributes(summary));
    } catch (err) {
      diag.error('mltrail: span redaction failed; its attributes are dropped and its names masked', err);
      try {
        maskStrings(span.attributes);
        for (let i = 0; i < span.events.length; i++) {
          const ev = span.events[i];
          span.events[i] = { ...ev, name: '[REDACTED]' };
          if (ev.attributes !== undefined) maskStrings(ev.attributes as Attributes);
        }
        for (const link of span.links) if (link.attributes !== undefined) maskStrings(link.attributes);
        for (const k of Object.keys(span.attributes)) delete span.attributes[k];
        span.name = '[REDACTED]';
        if (typeof span.status.message === 'string') span.status = { ...span.status, message: '[REDACTED]' };
      } catch {
        // Nothing more can be done without throwing into the host.
      }
    }
  }

  /** The redacted attribute map, or the same object when nothing changed. */
  #attributes(attrs: Attributes, summary: RedactionSummary, prefix: string): Attributes {
    const { value, summary: s } = this.#redactor.redact(attrs);
    if (s.maskedCount + s.removedCount + s.hashedCount + s.truncated.length === 0) return attrs;
    mergeSummaries(summary, s, prefix);
    return toAttributes(value);
  }
}

/** Rewrites `target` to equal `source` without replacing the object (the SDK holds a reference to it). */
function replaceAttributes(target: Attributes, source: Attributes): void {
  if (target === source) return;
  for (const k of Object.keys(target)) if (!(k in source)) delete target[k];
  Object.assign(target, source);
}

/** Keeps only values OTel accepts as attributes (a hashed number becomes its pseudonym string). */
export function toAttributes(value: unknown): Attributes {
  const out: Attributes = {};
  if (value === null || typeof value !== 'object') return out;
  for (const [k, v] of Object.entries(value)) {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (Array.isArray(v))
      out[k] = v.filter((x) => x === null || ['string', 'number', 'boolean'].includes(typeof x)) as string[];
    else if (v !== undefined) out[k] = JSON.stringify(v);
  }
  return out;
}

function maskStrings(attrs: Attributes): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'string') attrs[k] = '[REDACTED]';
    else if (Array.isArray(v))
      attrs[k] = v.map((x) => (typeof x === 'string' ? '[REDACTED]' : x)) as string[];
  }
}
