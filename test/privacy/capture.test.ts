import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/integrity/index.js';
import {
  captureValue,
  createRedactor,
  DEFAULT_CAPTURE_MAX_BYTES,
  genAiCapturePolicy,
  truncateUtf8,
} from '../../src/privacy/index.js';

const input = { amount: 120.5, customer: { email: 'jane@x.example', tier: 'gold' }, features: [0.1, 0.2] };
const digest = `sha256:${createHash('sha256').update(canonicalize(input)).digest('hex')}`;

describe('captureValue', () => {
  it('none records nothing; digest (the default) only the sha256 of the canonical JSON', () => {
    expect(captureValue(input, 'none')).toEqual({});
    expect(captureValue(input)).toEqual({ digest });
    expect(captureValue(input, 'digest')).toEqual({ digest });
  });

  it('redacted records the digest of the original and the redacted canonical JSON; full records it as is', () => {
    const redactor = createRedactor({ env: {}, rules: ['customer.tier'] });
    expect(captureValue(input, 'redacted', redactor)).toEqual({
      digest,
      content:
        '{"amount":120.5,"customer":{"email":"[REDACTED:email]","tier":"[REDACTED]"},"features":[0.1,0.2]}',
    });
    // Without a redactor the built-in detectors still run.
    expect(captureValue(input, 'redacted').content).toBe(
      '{"amount":120.5,"customer":{"email":"[REDACTED:email]","tier":"gold"},"features":[0.1,0.2]}',
    );
    expect(captureValue(input, 'full')).toEqual({ digest, content: canonicalize(input) });
  });

  it('oversized content is truncated with a marker; the digest still covers the whole value', () => {
    const big = { text: 'é'.repeat(100_000) };
    const out = captureValue(big, 'full');
    expect(out.truncated).toBe(true);
    expect(Buffer.byteLength(out.content!, 'utf8')).toBeLessThanOrEqual(DEFAULT_CAPTURE_MAX_BYTES);
    expect(out.content).toMatch(/…\[truncated \d+ bytes\]$/);
    expect(out.digest).toBe(`sha256:${createHash('sha256').update(canonicalize(big)).digest('hex')}`);
    expect(captureValue(big, 'full', undefined, { maxBytes: 100 }).content!.length).toBeLessThanOrEqual(100);
  });

  it('never throws: cycles, functions, bigint and NaN are recorded as far as they can be', () => {
    const cyc: Record<string, unknown> = { n: Number.NaN, b: 10n, f: () => 1 };
    cyc.self = cyc;
    const out = captureValue(cyc, 'full');
    expect(out.content).toBe('{"b":"10","n":null,"self":"[Circular]"}');
    expect(out.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});

describe('truncateUtf8', () => {
  it('never cuts inside a character and says how many bytes were dropped', () => {
    const s = '€'.repeat(50); // 150 bytes
    const { text, truncated } = truncateUtf8(s, 64);
    expect(truncated).toBe(true);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(64);
    expect(text).not.toContain('\uFFFD');
    const kept = text.slice(0, text.indexOf('…'));
    expect(text).toBe(`${kept}…[truncated ${150 - Buffer.byteLength(kept)} bytes]`);
    expect(truncateUtf8('short', 64)).toEqual({ text: 'short', truncated: false });
  });
});

describe('gen_ai content follows OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT', () => {
  it('caps the policy at digest unless the variable opts in', () => {
    expect(genAiCapturePolicy('full', {})).toBe('digest');
    expect(
      genAiCapturePolicy('redacted', { OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'false' }),
    ).toBe('digest');
    expect(genAiCapturePolicy('none', {})).toBe('none');
    expect(
      genAiCapturePolicy(undefined, { OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'true' }),
    ).toBe('redacted');
    expect(genAiCapturePolicy('full', { OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'TRUE' })).toBe(
      'full',
    );
    expect(
      genAiCapturePolicy('full', { OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'span_only' }),
    ).toBe('full');
    expect(
      genAiCapturePolicy('full', { OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: 'NO_CONTENT' }),
    ).toBe('digest');
  });
});
