import { type AnyValue, diag } from '@opentelemetry/api';
import type {
  DetectedResource,
  DetectedResourceAttributes,
  ResourceDetectionConfig,
  ResourceDetector,
} from '@opentelemetry/resources';
import type { Redactor } from './redactor.js';

/**
 * Resource attributes dropped by default: a process's command line is where secrets are passed
 * (`--db-url=postgres://admin:…@…`, `--api-key=…`), and the OTel semantic conventions warn that
 * `process.command_args` and `process.command_line` may hold them. Every other attribute is redacted.
 */
export const DEFAULT_DROPPED_RESOURCE_ATTRIBUTES: readonly string[] = [
  'process.command_args',
  'process.command_line',
];

/** Options of {@link RedactingResourceDetector}. */
export interface RedactingResourceDetectorOptions {
  /** The detectors whose attributes are redacted (e.g. `envDetector`, `processDetector`). */
  detectors: readonly ResourceDetector[];
  /** The redaction policy applied to every attribute key and value. */
  redactor: Redactor;
  /** Attribute keys left out entirely; default {@link DEFAULT_DROPPED_RESOURCE_ATTRIBUTES}. */
  drop?: readonly string[];
}

/**
 * A `ResourceDetector` that runs other detectors and hands on their attributes redacted (keys and values,
 * including values that resolve later) with the command-line attributes dropped, so the resource every
 * span, log record and metric carries holds no personal data or secret. Give it to the SDK instead of the
 * detectors themselves: `new NodeSDK({ resourceDetectors: [new RedactingResourceDetector({ detectors, redactor })] })`.
 * Never throws: an attribute whose redaction fails is left out.
 */
export class RedactingResourceDetector implements ResourceDetector {
  readonly #detectors: readonly ResourceDetector[];
  readonly #redactor: Redactor;
  readonly #drop: ReadonlySet<string>;

  constructor(options: RedactingResourceDetectorOptions) {
    this.#detectors = options.detectors;
    this.#redactor = options.redactor;
    this.#drop = new Set(options.drop ?? DEFAULT_DROPPED_RESOURCE_ATTRIBUTES);
  }

  detect(config?: ResourceDetectionConfig): DetectedResource {
    const attributes: DetectedResourceAttributes = {};
    for (const detector of this.#detectors) {
      let detected: DetectedResource;
      try {
        detected = detector.detect(config);
      } catch (err) {
        diag.error('mltrail: a resource detector failed', err);
        continue;
      }
      for (const [key, value] of Object.entries(detected.attributes ?? {})) {
        if (this.#drop.has(key)) continue;
        const redactedKey = this.#redactor.redactString(key).value;
        if (this.#drop.has(redactedKey)) continue;
        attributes[redactedKey] =
          value instanceof Promise
            ? value.then(
                (v) => this.#value(v),
                () => undefined,
              )
            : this.#value(value);
      }
    }
    return { attributes };
  }

  #value(value: AnyValue | undefined): AnyValue | undefined {
    if (value === undefined || value === null) return value;
    try {
      return this.#redactor.redact(value).value as AnyValue;
    } catch (err) {
      diag.error('mltrail: redacting a resource attribute failed; it is left out', err);
      return undefined;
    }
  }
}

/**
 * Keys to drop from `MLTRAIL_RESOURCE_DROP` (comma-separated; empty keeps every attribute, redacted), or
 * the default list when it is unset.
 */
export function droppedResourceAttributes(env: NodeJS.ProcessEnv = process.env): string[] {
  const raw = env.MLTRAIL_RESOURCE_DROP;
  if (raw === undefined) return [...DEFAULT_DROPPED_RESOURCE_ATTRIBUTES];
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
