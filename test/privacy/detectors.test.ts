import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/integrity/uuidv7.js';
import { createRedactor, ibanValid, luhnValid } from '../../src/privacy/index.js';
import { ID_SAMPLES } from './samples.js';

const redactor = createRedactor({ env: {} });

const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const JWT = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: '1234567890', name: 'Jane' })}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`;
const PEM = [
  '-----BEGIN RSA PRIVATE KEY-----',
  'MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu',
  'KUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQJAIJLixBy2qpFoS4DSmoEm',
  '-----END RSA PRIVATE KEY-----',
].join('\n');

/** Positives: the text, and what must be left of it. */
const POSITIVES: Record<string, [string, string][]> = {
  email: [
    ['contact jane.doe+ml@example.co.uk today', 'contact [REDACTED:email] today'],
    ['{"to":"Bob@Example.com"}x', '{"to":"[REDACTED:email]"}x'],
  ],
  payment_card: [
    ['card 4111 1111 1111 1111 on file', 'card [REDACTED:payment_card] on file'],
    ['4111-1111-1111-1111', '[REDACTED:payment_card]'],
    ['mc 5555555555554444.', 'mc [REDACTED:payment_card].'],
    ['amex 378282246310005', 'amex [REDACTED:payment_card]'],
    ['disc 6011111111111117, qty 2', 'disc [REDACTED:payment_card], qty 2'],
    ['4111 1111 1111 1111 2 items', '[REDACTED:payment_card] 2 items'],
  ],
  iban: [
    ['pay to GB82 WEST 1234 5698 7654 32 now', 'pay to [REDACTED:iban] now'],
    ['DE89370400440532013000', '[REDACTED:iban]'],
  ],
  us_ssn: [['ssn 123-45-6789.', 'ssn [REDACTED:us_ssn].']],
  phone: [
    ['call +14155552671', 'call [REDACTED:phone]'],
    ['call +44 20 7946 0958 now', 'call [REDACTED:phone] now'],
    ['(415) 555-2671', '[REDACTED:phone]'],
    ['tel 415-555-2671', 'tel [REDACTED:phone]'],
    ['uk 020 7946 0958', 'uk [REDACTED:phone]'],
  ],
  ipv4: [
    ['from 192.168.1.23:8080', 'from [REDACTED:ipv4]:8080'],
    ['ip=10.0.0.1.', 'ip=[REDACTED:ipv4].'],
  ],
  ipv6: [
    ['from 2001:db8::8a2e:370:7334 ok', 'from [REDACTED:ipv6] ok'],
    ['2001:0db8:85a3:0000:0000:8a2e:0370:7334', '[REDACTED:ipv6]'],
    ['peer fe80::1', 'peer [REDACTED:ipv6]'],
    ['mapped ::ffff:192.0.2.1', 'mapped [REDACTED:ipv6]'],
  ],
  jwt: [[`token=${JWT}`, 'token=[REDACTED:jwt]']],
  bearer_token: [
    ['Authorization: Bearer abcdef1234567890XYZ', 'Authorization: [REDACTED:bearer_token]'],
    ['Authorization: Basic dXNlcjpwYXNzd29yZA==', 'Authorization: [REDACTED:bearer_token]'],
  ],
  private_key: [
    [`key:\n${PEM}\nend`, 'key:\n[REDACTED:private_key]\nend'],
    [`cut: ${PEM.split('\n').slice(0, 2).join('\n')}`, 'cut: [REDACTED:private_key]'],
  ],
  api_key: [
    ['aws AKIAIOSFODNN7EXAMPLE', 'aws [REDACTED:api_key]'],
    [`gh ghp_${'a1B2c3D4e5'.repeat(4)}`, 'gh [REDACTED:api_key]'],
    ['slack xoxb-123456789012-abcdefghij', 'slack [REDACTED:api_key]'],
    ['openai sk-proj-abcdefghijklmnopqrstuvwx', 'openai [REDACTED:api_key]'],
    ['anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz_0123', 'anthropic [REDACTED:api_key]'],
    ['google AIzaSyA-1234567890abcdefghijklmnopqrstu', 'google [REDACTED:api_key]'],
    ['gitlab glpat-abcdefghij0123456789', 'gitlab [REDACTED:api_key]'],
    ['hf hf_abcdefghijklmnopqrstuvwxyzABCDEF', 'hf [REDACTED:api_key]'],
    [`stripe sk_live_${'4eC39HqLyjWDarjtT1zdp7dc'}`, 'stripe [REDACTED:api_key]'],
  ],
};

describe('detectors: positives are replaced, and only the matching part', () => {
  for (const [name, cases] of Object.entries(POSITIVES)) {
    it(name, () => {
      for (const [input, expected] of cases) {
        const { value, summary } = redactor.redactString(input);
        expect(value, input).toBe(expected);
        expect(summary.byRule[name], input).toBeGreaterThan(0);
      }
    });
  }
});

describe('detectors: near misses stay untouched', () => {
  const cases = [
    '4111 1111 1111 1112', // Luhn-invalid
    '4111111111111112',
    '1234567812345670', // Luhn-valid but no card network starts with 1
    '1732780800000', // epoch ms
    'GB81 WEST 1234 5698 7654 32', // wrong IBAN check digits
    'DE89370400440532013001',
    '000-12-3456',
    '666-12-3456',
    '123-45-67890',
    '12345',
    '00012345678', // zero-padded id, no separators
    '2026-11-28',
    '2026-11-28T07:00:00.000Z',
    '07:00:00',
    '12:30',
    '1.2.3',
    'v10.4.0-rc.1',
    '1.0.0+20130313144700',
    '256.1.1.1',
    '0.123456789',
    '[0.1,0.25,-3.5,1e-7,4111111111111111.5]',
    '3.14159265358979',
    'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
    '4bf92f3577b34da6a3ce929d0e0e4736',
    '00f067aa0ba902b7',
    'pii:0a1b2c3d:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ',
    'a note @ 5pm',
    'std::vector',
    'the token count was 42',
    'the token validation failed; basic features only; bearer instrument',
    ...ID_SAMPLES,
  ];
  for (const c of cases) {
    it(JSON.stringify(c), () => {
      const { value, summary } = redactor.redactString(c);
      expect(value).toBe(c);
      expect(summary.maskedCount).toBe(0);
    });
  }

  it('ids mltrail writes never fire: UUIDs v4/v7, digests, trace and span ids, timestamps, versions, numbers', () => {
    const hex = (n: number) =>
      fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
    fc.assert(
      fc.property(
        fc.constant(null).map(() => randomUUID()),
        fc.constant(null).map(() => uuidv7()),
        hex(64),
        hex(32),
        hex(16),
        fc.date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true }),
        fc.tuple(fc.nat(99), fc.nat(99), fc.nat(999)),
        // Feature values: any finite double except a 13–19 digit integer, which is masked on purpose when
        // it is a valid card number (docs/privacy.md: "a card stored as a number"); found by an unseeded run
        // drawing 2428654706189523.
        fc.array(
          fc
            .double({ noNaN: true, noDefaultInfinity: true })
            .filter((x) => !(Number.isInteger(x) && Math.abs(x) >= 1e12 && Math.abs(x) < 1e19)),
          { maxLength: 20 },
        ),
        (u4, u7, digest, traceId, spanId, date, [a, b, c], vector) => {
          const body = {
            'ml.prediction.id': u7,
            'ml.run.id': u4,
            'ml.model.digest': `sha256:${digest}`,
            trace_id: traceId,
            span_id: spanId,
            timestamp: date.toISOString(),
            'ml.model.version': `${a}.${b}.${c}`,
            'ml.prediction.input': JSON.stringify(vector),
            features: vector,
            text: `${u4} ${digest} ${traceId}/${spanId} at ${date.toISOString()} v${a}.${b}.${c}`,
          };
          const { value, summary } = redactor.redact(body);
          expect(summary.maskedCount + summary.hashedCount + summary.removedCount).toBe(0);
          expect(value).toEqual(body);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('checksums', () => {
  it('Luhn and mod-97', () => {
    expect(luhnValid('4111111111111111')).toBe(true);
    expect(luhnValid('4111111111111112')).toBe(false);
    expect(ibanValid('GB82WEST12345698765432')).toBe(true);
    expect(ibanValid('GB82 WEST 1234 5698 7654 32')).toBe(true);
    expect(ibanValid('GB82WEST12345698765433')).toBe(false);
    expect(ibanValid('GB82WEST1234569876543')).toBe(false); // wrong length for GB
  });

  it('a card stored as a number is masked; other large integers are not', () => {
    const { value } = redactor.redact({
      card: 4111111111111111,
      count: 1732780800000,
      big: 9007199254740991,
    });
    expect(value).toEqual({ card: '[REDACTED:payment_card]', count: 1732780800000, big: 9007199254740991 });
  });
});

describe('user patterns', () => {
  it('are applied like detectors and named in the summary', () => {
    const r = createRedactor({ env: {}, patterns: [{ name: 'employee_id', pattern: /\bEMP-\d{6}\b/ }] });
    const { value, summary } = r.redactString('seen by EMP-123456 and EMP-12');
    expect(value).toBe('seen by [REDACTED:employee_id] and EMP-12');
    expect(summary.byRule).toEqual({ employee_id: 1 });
  });

  it('can be turned off per detector', () => {
    const r = createRedactor({ env: {}, detectors: { ipv4: 'off' } });
    expect(r.redactString('10.0.0.1 a@b.example').value).toBe('10.0.0.1 [REDACTED:email]');
    expect(createRedactor({ env: {}, detectors: false }).redactString('a@b.example').value).toBe(
      'a@b.example',
    );
  });
});

describe('limits', () => {
  it('huge strings are cut with a marker and still scanned up to the limit', () => {
    const r = createRedactor({ env: {}, maxStringChars: 1000 });
    const s = `${'x '.repeat(200)}a@b.example ${'y'.repeat(5000)}`;
    const { value, summary } = r.redactString(s);
    expect(value).toContain('[REDACTED:email]');
    expect(value.endsWith(`[truncated ${s.length - 1000} chars]`)).toBe(true);
    expect(summary.truncated).toEqual(['']);
  });

  it('a 5 MB string of digits and separators is handled in bounded work', () => {
    const s = '1234 '.repeat(1_000_000);
    const { value } = createRedactor({ env: {} }).redactString(s);
    expect(value.length).toBeLessThan(s.length);
  });
});
