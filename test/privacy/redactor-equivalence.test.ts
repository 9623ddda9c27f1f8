import { createHmac, randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/integrity/index.js';
import { mayHoldBuiltinMatch } from '../../src/privacy/detectors.js';
import {
  BUILTIN_DETECTORS,
  createRedactor,
  Pseudonymizer,
  pseudonymKeyId,
  type RedactorOptions,
} from '../../src/privacy/index.js';
import { ATTR_ML_PREDICTION_INPUT, ATTR_ML_PREDICTION_SUBJECT_ID } from '../../src/semconv/index.js';
import { createReferenceRedactor } from './reference-redactor.js';
import { ID_SAMPLES, PII_SAMPLES, SAMPLE_JWT, SAMPLE_PEM } from './samples.js';

// The redactor's fast paths (one pre-filter per string, memoised key-path transitions, a path stack
// instead of a path array per node, lazily built pieces) must not change a single output: every value and
// every summary equals the one the straightforward pre-optimisation redactor (reference-redactor.ts) gives.

const KEY = 'equivalence-key-0123456789abcdef';
const SEED = 20261128;

const digit = fc.integer({ min: 0, max: 9 });
const digits = (n: number) => fc.array(digit, { minLength: n, maxLength: n }).map((d) => d.join(''));

function luhnComplete(partial: string): string {
  for (let c = 0; c <= 9; c++) {
    const d = `${partial}${c}`;
    let sum = 0;
    for (let i = 0; i < d.length; i++) {
      let n = d.charCodeAt(d.length - 1 - i) - 48;
      if (i % 2 === 1) {
        n *= 2;
        if (n > 9) n -= 9;
      }
      sum += n;
    }
    if (sum % 10 === 0) return d;
  }
  throw new Error('unreachable');
}

function ibanWithCheck(country: string, bban: string): string {
  const rearranged = `${bban}${country}00`;
  let rem = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const v = code >= 65 ? String(code - 55) : ch;
    for (const x of v) rem = (rem * 10 + (x.charCodeAt(0) - 48)) % 97;
  }
  return `${country}${String(98 - rem).padStart(2, '0')}${bban}`;
}

const group4 = (s: string, sep: string) => s.match(/.{1,4}/g)?.join(sep) ?? s;

/** Personal data and secrets of every detector, valid and near-miss, in the ways people write them. */
const planted = fc.oneof(
  // cards: a network prefix, Luhn-completed (or off by one), contiguous or grouped
  fc
    .tuple(
      fc.constantFrom('4', '51', '37', '6011', '35'),
      digits(15),
      fc.boolean(),
      fc.constantFrom('', ' ', '-'),
    )
    .map(([prefix, rest, valid, sep]) => {
      const len = prefix === '37' ? 15 : 16;
      const card = luhnComplete((prefix + rest).slice(0, len - 1));
      const out = valid ? card : `${card.slice(0, -1)}${(Number(card.at(-1)) + 1) % 10}`;
      return group4(out, sep);
    }),
  // IBANs: correct or wrong check digits, grouped or not
  fc.tuple(digits(14), fc.boolean(), fc.boolean()).map(([acct, valid, grouped]) => {
    const iban = ibanWithCheck('GB', `WEST${acct}`);
    const out = valid ? iban : `${iban.slice(0, 2)}${iban[2] === '9' ? '1' : '9'}${iban.slice(3)}`;
    return grouped ? group4(out, ' ') : out;
  }),
  fc
    .tuple(
      fc.stringMatching(/^[a-z][a-z0-9._+-]{0,12}$/),
      fc.stringMatching(/^[a-z]{1,8}\.(org|example|co\.uk)$/),
    )
    .map(([l, d]) => `${l}@${d}`),
  fc.tuple(digits(3), digits(2), digits(4)).map(([a, b, c]) => `${a}-${b}-${c}`),
  fc.constantFrom('+44 20 7946 0958', '+14155552671', '(415) 555-2671', '415-555-2671', '020 7946 0958'),
  fc.tuple(digits(3), digits(3), digits(4)).map(([a, b, c]) => `+1 ${a} ${b} ${c}`),
  fc.tuple(fc.nat(300), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.')),
  fc.constantFrom('fe80::1', '2001:db8::8a2e:370:7334', '::ffff:10.0.0.1', '12:30:45', '::'),
  fc.constantFrom(
    SAMPLE_JWT,
    SAMPLE_PEM,
    'Bearer abcdef1234567890XYZ',
    'Basic Zm9vOmJhcg==',
    'token validation',
  ),
  fc.stringMatching(/^[A-Z0-9]{16}$/).map((s) => `AKIA${s}`),
  fc.stringMatching(/^[A-Za-z0-9]{36}$/).map((s) => `ghp_${s}`),
  fc.stringMatching(/^[A-Za-z0-9]{24}$/).map((s) => `sk-${s}`),
  fc.stringMatching(/^[a-z0-9]{10}$/).map((s) => `xoxb-${s}`),
  fc.constantFrom(...Object.values(PII_SAMPLES).flatMap((list) => list.map(([text]) => text))),
  fc.constantFrom(`pii:${pseudonymKeyId(KEY)}:${'A'.repeat(43)}`, '[REDACTED:email]', '[REDACTED]', '***'),
);

/** Values mltrail writes itself and other harmless shapes (must pass untouched, in both). */
const harmless = fc.oneof(
  fc.constantFrom(...ID_SAMPLES, 'credit-risk', 'approve', 'ml.prediction', '7', 'development', 'retail'),
  fc.constant(null).map(() => randomUUID()),
  fc.stringMatching(/^[0-9a-f]{32}$/),
  fc.stringMatching(/^[0-9a-f]{16}$/),
  fc.stringMatching(/^[0-9a-f]{64}$/).map((h) => `sha256:${h}`),
  fc
    .date({ min: new Date(0), max: new Date(4102444800000), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc.tuple(fc.nat(99), fc.nat(99), fc.nat(999)).map((v) => v.join('.')),
);

const separator = fc.constantFrom('', ' ', ', ', ':', '.', '-', '\n', '[', ']', '/', '=', 'pii:', '@');

/** Free text: fragments of personal data, ids and random characters glued by separators. */
const text = fc
  .array(
    fc.tuple(
      fc.oneof(planted, harmless, fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 6 })),
      separator,
    ),
    { maxLength: 5 },
  )
  .map((parts) => parts.map(([p, s]) => p + s).join(''));

const keyName = fc.constantFrom(
  'a',
  'b',
  'note',
  'email',
  'password',
  'Authorization',
  'x-api-key',
  'customer_id',
  'customer',
  'items',
  'address',
  'user.email',
  'user',
  ATTR_ML_PREDICTION_SUBJECT_ID,
  ATTR_ML_PREDICTION_INPUT,
  '0',
  '9',
  '10',
  'Zeta',
  'é',
  '__proto__',
  'constructor',
);

const value = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small' },
    text,
    planted,
    harmless,
    fc.double(),
    fc.integer(),
    fc.constantFrom(4111111111111111, 378282246310005, 1732780800000, 4111111111111112, -0),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.array(tie('node'), { maxLength: 5 }),
    fc.dictionary(keyName, tie('node'), { maxKeys: 6 }),
    fc.dictionary(keyName, tie('node'), { maxKeys: 4 }).map((o) => JSON.stringify(o)),
    fc.dictionary(keyName, tie('node'), { maxKeys: 4 }).map((o) => jsonText(o)),
    fc.array(tie('node'), { maxLength: 3 }).map((a) => ` ${JSON.stringify(a)}`),
  ),
})).node;

/** Canonical JSON, as the trail captures inputs (falls back to JSON.stringify for values it refuses). */
function jsonText(v: unknown): string {
  try {
    return canonicalize(v);
  } catch {
    return JSON.stringify(v);
  }
}

/** A prediction body of the shape the trail writes, with a captured input that may hold planted values. */
const body = fc
  .tuple(fc.dictionary(keyName, value, { maxKeys: 4 }), text, value)
  .map(([customer, note, extra]) => ({
    'event.name': 'ml.prediction',
    'ml.prediction.id': randomUUID(),
    'ml.model.name': 'credit-risk',
    'ml.model.version': '7',
    [ATTR_ML_PREDICTION_SUBJECT_ID]: note,
    [ATTR_ML_PREDICTION_INPUT]: jsonText({ features: [0.1, 3, 12], customer, note }),
    extra,
    timestamp: '2026-11-28T07:00:00.000Z',
  }));

const CONFIGS: Record<string, RedactorOptions> = {
  'no key, default rules and detectors': { env: {} },
  'key, user rules of every shape': {
    key: KEY,
    env: {},
    rules: [
      { path: '**.customer_id', action: 'hash' },
      { path: '**.address', action: 'remove' },
      { path: 'items[*].a', action: 'remove' },
      { path: 'items[0]', action: 'mask', censor: '***' },
      { path: 'user.email', action: 'hash' },
      { path: `["${ATTR_ML_PREDICTION_INPUT}"].customer.note`, action: 'allow' },
      { path: 'customer.**.b', action: 'mask', ignoreCase: true },
      { path: '*.NOTE', action: 'mask', ignoreCase: true },
      { path: '**.0', action: 'mask' },
      'a.b',
    ],
    detectors: { email: 'hash', phone: 'hash', ipv4: 'off' },
  },
  'user patterns, one matching empty strings at word boundaries': {
    key: KEY,
    env: {},
    patterns: [
      { name: 'employee_id', pattern: /\bEMP-\d{6}\b/ },
      { name: 'boundary', pattern: /\b(?:WEST\d)?/u, action: 'hash' },
      { name: 'ticket', pattern: 'T-[0-9]{3}' },
    ],
  },
  'no detectors, no default rules, tight limits': {
    env: {},
    detectors: false,
    defaultRules: false,
    rules: ['**.email', { path: 'items', action: 'hash' }],
    maxDepth: 3,
    maxNodes: 25,
    maxStringChars: 40,
  },
  'JSON strings left alone': { key: KEY, env: {}, parseJsonStrings: false },
};

describe('the optimised redactor gives exactly what the reference redactor gives', () => {
  for (const [name, options] of Object.entries(CONFIGS)) {
    it(`property (${name}): same value and summary for random bodies with planted personal data`, () => {
      const fast = createRedactor(options);
      const reference = createReferenceRedactor(options);
      fc.assert(
        fc.property(fc.oneof(body, value), (v) => {
          expect(fast.redact(v)).toEqual(reference.redact(v));
          // The memoised key-path transitions and clean values must give the same answer on a second visit.
          expect(fast.redact(v)).toEqual(reference.redact(v));
        }),
        { numRuns: 300, seed: SEED },
      );
      fc.assert(
        fc.property(text, (s) => {
          expect(fast.redactString(s)).toEqual(reference.redactString(s));
        }),
        { numRuns: 300, seed: SEED },
      );
    });
  }

  it('the pre-filter holds for every detector sample: no text a detector changes is skipped', () => {
    const r = createRedactor({ env: {} });
    const samples = [...Object.values(PII_SAMPLES).flatMap((list) => list.map(([t, secret]) => [t, secret]))];
    for (const [t, secret] of samples) {
      for (const s of [t, secret]) {
        if (r.redactString(s).value !== s) expect(mayHoldBuiltinMatch(s)).toBe(true);
      }
    }
    fc.assert(
      fc.property(text, (s) => {
        if (!mayHoldBuiltinMatch(s)) {
          for (const d of BUILTIN_DETECTORS) {
            d.pattern.lastIndex = 0;
            const found = d.hint?.(s) !== false && d.pattern.test(s);
            d.pattern.lastIndex = 0;
            expect(found, d.name).toBe(false);
          }
        }
      }),
      { numRuns: 1000, seed: SEED },
    );
  });

  it('values seen before, and more clean values than the memory holds, are redacted as the first time', () => {
    const fast = createRedactor({ key: KEY, env: {} });
    const reference = createReferenceRedactor({ key: KEY, env: {} });
    // Clean values (remembered), values with personal data (never remembered), and one as long as the limit.
    const values = Array.from({ length: 10_000 }, (_, i) =>
      i % 3 === 0
        ? `reason ${i}: score 0.${i} < 0.50`
        : i % 3 === 1
          ? `mail r${i}@example.com`
          : `x${i}`.repeat(20),
    );
    for (let round = 0; round < 2; round++) {
      for (const v of values) expect(fast.redactString(v)).toEqual(reference.redactString(v));
      expect(fast.redact({ values }).value).toEqual(reference.redact({ values }).value);
    }
  });

  it('keys seen more often than the transition memory holds still match their rules', () => {
    const options: RedactorOptions = {
      key: KEY,
      env: {},
      rules: [
        { path: 'rows[*].email', action: 'mask' },
        { path: '*.rows[*].email', action: 'remove' },
      ],
    };
    const fast = createRedactor(options);
    const reference = createReferenceRedactor(options);
    const rows = Array.from({ length: 10_000 }, (_, i) => ({ [`k${i}`]: i, email: `r${i}` }));
    const wide: Record<string, unknown> = Object.fromEntries(
      Array.from({ length: 9000 }, (_, i) => [`key.${i}`, 'x']),
    );
    const long = `${'k'.repeat(300)}.rows`;
    wide[long] = [{ email: 'kept' }];
    wide[`${'k'.repeat(300)}.password`] = { deep: 'masked' };
    expect(fast.redact({ rows, wide })).toEqual(reference.redact({ rows, wide }));
    // A key too long to remember is matched afresh, through its dotted parts, every time.
    for (let i = 0; i < 2; i++) {
      expect(fast.redact({ [long]: [{ email: 'x', b: 1 }] }).value).toEqual({ [long]: [{ b: 1 }] });
    }
    expect(fast.redact({ rows: rows.slice(0, 3) }).value).toEqual({
      rows: [
        { k0: 0, email: '[REDACTED]' },
        { k1: 1, email: '[REDACTED]' },
        { k2: 2, email: '[REDACTED]' },
      ],
    });
  });

  it('pseudonyms are HMAC-SHA256 of the value under the key, base64url (short, long and binary keys)', () => {
    const keys = [
      KEY,
      'k'.repeat(64),
      'long-key-'.repeat(20),
      Uint8Array.from({ length: 40 }, (_, i) => i * 7),
    ];
    const values = ['', 'c-1', 'jane@example.org', 'ü€😀'.repeat(21), 'ü'.repeat(300), 'x'.repeat(5000)];
    for (const key of keys) {
      const p = new Pseudonymizer(key);
      for (const v of values) {
        const mac = createHmac('sha256', typeof key === 'string' ? Buffer.from(key, 'utf8') : key)
          .update(v, 'utf8')
          .digest('base64url');
        expect(p.pseudonym(v)).toBe(`pii:${pseudonymKeyId(key)}:${mac}`);
      }
    }
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 120 }), (v) => {
        const mac = createHmac('sha256', Buffer.from(KEY, 'utf8')).update(v, 'utf8').digest('base64url');
        expect(new Pseudonymizer(KEY).pseudonym(v)).toBe(`pii:${pseudonymKeyId(KEY)}:${mac}`);
      }),
      { numRuns: 300, seed: SEED },
    );
  });
});
