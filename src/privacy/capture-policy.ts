import { createHash } from 'node:crypto';
import { diag } from '@opentelemetry/api';
import { canonicalize } from '../integrity/index.js';
import { createRedactor, type Redactor } from './redactor.js';

/**
 * How much of an inference input or output is recorded:
 * - `none`: nothing;
 * - `digest` (default): `sha256:` of the canonical JSON, so a disputed prediction can be matched to data
 *   held elsewhere without the trail holding the data;
 * - `redacted`: the digest and the canonical JSON after redaction;
 * - `full`: the digest and the canonical JSON as is (truncated when over the limit).
 */
export type CapturePolicy = 'none' | 'digest' | 'redacted' | 'full';

/** The environment variable OTel GenAI instrumentations use to opt in to message content capture. */
export const GENAI_CAPTURE_ENV = 'OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT';

/**
 * Default content limit in UTF-8 bytes: well under Loki's 64 KB structured-metadata and 256 KB line
 * limits, leaving room for the rest of the record.
 */
export const DEFAULT_CAPTURE_MAX_BYTES = 32 * 1024;

/** Options of {@link captureValue}. */
export interface CaptureOptions {
  /** Largest content in UTF-8 bytes before it is cut with a marker; default {@link DEFAULT_CAPTURE_MAX_BYTES}. */
  maxBytes?: number;
}

/** What a capture policy records for one value. */
export interface CapturedValue {
  /** `sha256:<hex>` of the canonical JSON of the original value (every policy but `none`). */
  digest?: `sha256:${string}`;
  /** Canonical JSON (redacted unless the policy is `full`), possibly truncated. */
  content?: string;
  /** True when `content` was cut to the limit. */
  truncated?: boolean;
}

const CAPTURE_POLICIES: readonly CapturePolicy[] = ['none', 'digest', 'redacted', 'full'];
let fallbackRedactor: Redactor | undefined;
let plainCopier: Redactor | undefined;

/**
 * Applies a capture policy to one value. Never throws: a value that cannot be serialised is recorded as
 * far as it can be, and problems go to `diag`. `redacted` without a redactor uses the built-in detectors.
 *
 * @example
 * const { digest, content } = captureValue(input, 'redacted', redactor);
 */
export function captureValue(
  value: unknown,
  policy: CapturePolicy = 'digest',
  redactor?: Redactor,
  options: CaptureOptions = {},
): CapturedValue {
  try {
    const mode = CAPTURE_POLICIES.includes(policy) ? policy : 'digest';
    if (mode === 'none') return {};
    const canonical = canonicalText(value);
    const out: CapturedValue = {
      digest: `sha256:${createHash('sha256').update(canonical, 'utf8').digest('hex')}`,
    };
    if (mode === 'digest') return out;
    let content = canonical;
    if (mode === 'redacted') {
      fallbackRedactor ??= createRedactor({ key: undefined, env: {} });
      content = canonicalText((redactor ?? fallbackRedactor).redact(value).value);
    }
    const cut = truncateUtf8(content, options.maxBytes ?? DEFAULT_CAPTURE_MAX_BYTES);
    out.content = cut.text;
    if (cut.truncated) out.truncated = true;
    return out;
  } catch (err) {
    diag.error('mltrail: capture failed; nothing captured for this value', err);
    return {};
  }
}

/**
 * Cuts `text` to at most `maxBytes` UTF-8 bytes (never inside a character) and appends a marker that says
 * how much was dropped: `…[truncated 12345 bytes]`. The marker counts toward the limit.
 */
export function truncateUtf8(text: string, maxBytes: number): { text: string; truncated: boolean } {
  const total = Buffer.byteLength(text, 'utf8');
  if (total <= maxBytes) return { text, truncated: false };
  const marker = (dropped: number) => `…[truncated ${dropped} bytes]`;
  const room = Math.max(0, maxBytes - Buffer.byteLength(marker(total), 'utf8'));
  const buf = Buffer.from(text, 'utf8');
  let end = Math.min(room, buf.length);
  // Step back over UTF-8 continuation bytes so the cut lands on a character boundary.
  while (end > 0 && (buf[end] & 0xc0) === 0x80) end--;
  return { text: buf.subarray(0, end).toString('utf8') + marker(total - end), truncated: true };
}

/**
 * The capture policy for gen_ai message content (prompts, completions). Content is recorded only when
 * `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` opts in (`true`, `span_only`, `event_only`,
 * `span_and_event`); otherwise the policy is capped at `digest`. When it opts in and no policy is given,
 * content is captured redacted.
 */
export function genAiCapturePolicy(
  policy?: CapturePolicy,
  env: Record<string, string | undefined> = process.env,
): CapturePolicy {
  const flag = (env[GENAI_CAPTURE_ENV] ?? '').trim().toLowerCase();
  const optedIn =
    flag === 'true' || flag === 'span_only' || flag === 'event_only' || flag === 'span_and_event';
  if (!optedIn) return policy === 'none' ? 'none' : 'digest';
  return policy ?? 'redacted';
}

/** Canonical JSON of anything: made JSON-safe first (cycles, functions, dates, bigint, NaN). */
function canonicalText(value: unknown): string {
  plainCopier ??= createRedactor({ detectors: false, defaultRules: false, parseJsonStrings: false, env: {} });
  const safe = plainCopier.redact(value).value;
  try {
    return canonicalize(safe === undefined ? null : safe);
  } catch {
    return canonicalize(
      JSON.parse(
        JSON.stringify(safe ?? null, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) ?? 'null',
      ),
    );
  }
}
