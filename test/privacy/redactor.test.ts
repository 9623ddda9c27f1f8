import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compileKeyPath,
  createRedactor,
  PSEUDONYM_PATTERN,
  pseudonymKeyId,
  RedactionConfigError,
  redactionAttributes,
} from '../../src/privacy/index.js';
import { ATTR_ML_PREDICTION_SUBJECT_ID } from '../../src/semconv/index.js';

const KEY = 'test-key-0123456789abcdef';
const OTHER_KEY = 'another-key-0123456789abcdef';

describe('key-path rules', () => {
  const record = {
    user: { email: 'x', name: 'Jane Roe', address: { street: '1 Main St', city: 'Springfield' } },
    'user.phone': 'flat',
    items: [
      { sku: 'A1', card: 'c1' },
      { sku: 'B2', card: 'c2' },
    ],
    headers: { 'x-api-key': 'k', Authorization: 'Basic Zm9vOmJhcg==' },
    score: 0.93,
  };

  it('mask, remove, hash and allow by path, with dotted, bracket, index and wildcard steps', () => {
    const r = createRedactor({
      key: KEY,
      env: {},
      rules: [
        'user.name',
        { path: 'user.address', action: 'remove' },
        { path: 'user.email', action: 'hash' },
        { path: 'user.phone', action: 'mask', censor: '***' },
        { path: 'items[*].card', action: 'remove' },
        { path: 'items[0].sku', action: 'hash' },
      ],
    });
    const { value, summary } = r.redact(record);
    const pseudo = (v: string) => r.redact({ user: { email: v } }).value as { user: { email: string } };
    expect(value).toEqual({
      user: { email: pseudo('x').user.email, name: '[REDACTED]' },
      'user.phone': '***',
      items: [{ sku: expect.stringMatching(PSEUDONYM_PATTERN) }, { sku: 'B2' }],
      headers: { 'x-api-key': '[REDACTED]', Authorization: '[REDACTED]' },
      score: 0.93,
    });
    expect(summary).toEqual({
      masked: ['user.name', '["user.phone"]', 'headers["x-api-key"]', 'headers.Authorization'],
      removed: ['user.address', 'items[0].card', 'items[1].card'],
      hashed: ['user.email', 'items[0].sku'],
      truncated: [],
      maskedCount: 4,
      removedCount: 3,
      hashedCount: 2,
      byRule: {
        'user.name': 1,
        'user.address': 1,
        'user.email': 1,
        'user.phone': 1,
        'items[*].card': 2,
        'items[0].sku': 1,
        '**["x-api-key"]': 1,
        '**["authorization"]': 1,
      },
    });
  });

  it('flat dotted keys (OTel attributes, audit bodies) match dotted rules and quoted keys', () => {
    const r = createRedactor({ env: {}, rules: ['customer.email', '["ml.prediction.input"].ssn'] });
    const body = {
      'customer.email': 'jane',
      'ml.prediction.input': { ssn: 'x', age: 41 },
    };
    expect(r.redact(body).value).toEqual({
      'customer.email': '[REDACTED]',
      'ml.prediction.input': { ssn: '[REDACTED]', age: 41 },
    });
  });

  it('rules reach into JSON held in a string (a captured input) and keep it canonical JSON', () => {
    const r = createRedactor({ env: {}, rules: ['["ml.prediction.input"].customer.name'] });
    const body = {
      'ml.prediction.input': '{"amount":120,"customer":{"name":"Jane Roe","note":"mail jane@x.example"}}',
    };
    expect(r.redact(body).value).toEqual({
      'ml.prediction.input': '{"amount":120,"customer":{"name":"[REDACTED]","note":"mail [REDACTED:email]"}}',
    });
    // Unchanged JSON keeps its exact text (so an already-redacted audit body keeps its digest).
    const clean = { 'ml.prediction.input': '{ "b": 1,  "a": [1, 2] }' };
    expect(r.redact(clean).value).toEqual(clean);
  });

  it('** matches at any depth; the outermost match wins, then the first rule listed', () => {
    const r = createRedactor({
      env: {},
      defaultRules: false,
      rules: [{ path: 'support', action: 'allow' }, '**.email', { path: 'a.email', action: 'remove' }],
    });
    expect(
      r.redact({ a: { email: 'e1' }, b: { c: [{ email: 'e2' }] }, support: { email: 'help@corp.example' } })
        .value,
    ).toEqual({
      a: { email: '[REDACTED]' },
      b: { c: [{ email: '[REDACTED]' }] },
      support: { email: 'help@corp.example' },
    });
  });

  it('invalid rules fail at construction, naming the rule', () => {
    for (const bad of ['', 'a..b', 'a.', 'a[', 'a[b]', 'a["b"', 'a*b', '[*]x', 'a b']) {
      expect(() => createRedactor({ rules: [bad] }), bad).toThrow(RedactionConfigError);
      try {
        createRedactor({ rules: [bad] });
      } catch (err) {
        expect((err as RedactionConfigError).rule).toBe(bad);
        expect((err as Error).message).toContain(JSON.stringify(bad));
      }
    }
    expect(() => createRedactor({ rules: [{ path: 'a', action: 'drop' as 'mask' }] })).toThrow(
      'mltrail: redaction rule "a" has action "drop"; use mask, remove, hash or allow',
    );
    expect(() => createRedactor({ patterns: [{ name: 'bad', pattern: '(' }] })).toThrow(
      /pattern bad is not a valid/,
    );
    expect(() => createRedactor({ patterns: [{ name: 'empty', pattern: 'x*' }] })).toThrow(
      /matches the empty string/,
    );
    expect(() => createRedactor({ detectors: { mail: 'mask' } as never })).toThrow(/unknown detector "mail"/);
  });

  it('compiles paths into name steps', () => {
    expect(compileKeyPath('a["b.c"][0][*].**.d')).toEqual([
      { kind: 'name', name: 'a' },
      { kind: 'name', name: 'b' },
      { kind: 'name', name: 'c' },
      { kind: 'name', name: '0' },
      { kind: 'one' },
      { kind: 'any' },
      { kind: 'name', name: 'd' },
    ]);
  });
});

describe('pseudonyms', () => {
  const subject = { [ATTR_ML_PREDICTION_SUBJECT_ID]: 'customer-4711', note: 'mail jane@x.example' };

  it('same input and key give the same pseudonym; another key gives another; the key id is recorded', () => {
    const a = createRedactor({ key: KEY, env: {} });
    const b = createRedactor({ env: { MLTRAIL_PSEUDONYM_KEY: KEY } });
    const c = createRedactor({ key: OTHER_KEY, env: {} });
    const pa = (a.redact(subject).value as Record<string, string>)[ATTR_ML_PREDICTION_SUBJECT_ID];
    const pb = (b.redact(subject).value as Record<string, string>)[ATTR_ML_PREDICTION_SUBJECT_ID];
    const pc = (c.redact(subject).value as Record<string, string>)[ATTR_ML_PREDICTION_SUBJECT_ID];
    expect(pa).toMatch(PSEUDONYM_PATTERN);
    expect(pa).toBe(pb);
    expect(pa.startsWith(`pii:${pseudonymKeyId(KEY)}:`)).toBe(true);
    expect(a.keyId).toBe(pseudonymKeyId(KEY));
    expect(pc).not.toBe(pa);
    expect(pc.startsWith(`pii:${pseudonymKeyId(OTHER_KEY)}:`)).toBe(true);
  });

  it('no key: no hash output (default mode masks), strict mode refuses to start', () => {
    const r = createRedactor({ env: {}, rules: [{ path: 'email', action: 'hash' }] });
    const { value, summary } = r.redact({ ...subject, email: 'x' });
    expect(JSON.stringify(value)).not.toMatch(/pii:/);
    expect(value).toEqual({
      [ATTR_ML_PREDICTION_SUBJECT_ID]: '[REDACTED]',
      note: 'mail [REDACTED:email]',
      email: '[REDACTED]',
    });
    expect(summary.hashedCount).toBe(0);
    expect(r.keyId).toBeUndefined();
    expect(() =>
      createRedactor({ env: {}, strict: true, rules: [{ path: 'email', action: 'hash' }] }),
    ).toThrow(/no key is set/);
    expect(() => createRedactor({ env: {}, strict: true, detectors: { email: 'hash' } })).toThrow(
      RedactionConfigError,
    );
    expect(() => createRedactor({ key: 'short', strict: true })).toThrow(/at least 16/);
    // Strict mode without hash rules starts fine (the default subject rule then masks).
    expect(createRedactor({ env: {}, strict: true }).keyId).toBeUndefined();
  });

  it('detectors can pseudonymise their matches, normalised so the same person maps to one token', () => {
    const r = createRedactor({ key: KEY, env: {}, detectors: { email: 'hash', payment_card: 'hash' } });
    const one = r.redactString('Jane@Example.com / 4111 1111 1111 1111').value;
    const two = r.redactString('jane@example.com / 4111-1111-1111-1111').value;
    expect(one).toBe(two);
    expect(one).toMatch(/^pii:[0-9a-f]{8}:[\w-]{43} \/ pii:[0-9a-f]{8}:[\w-]{43}$/);
  });

  it('summary attributes use the mltrail.redaction.* keys', () => {
    const r = createRedactor({ key: KEY, env: {}, rules: [{ path: 'x', action: 'remove' }] });
    expect(redactionAttributes(r.redact({ ...subject, x: 1 }).summary)).toEqual({
      'mltrail.redaction.masked_count': 1,
      'mltrail.redaction.removed_count': 1,
      'mltrail.redaction.hashed_count': 1,
      'mltrail.redaction.redacted_keys': ['note', 'x', '["ml.prediction.subject_id"]'],
    });
    expect(redactionAttributes(r.redact({ clean: true }).summary)).toEqual({});
  });
});

describe('robustness', () => {
  it('handles cycles, deep nesting, odd values and never mutates its input', () => {
    const a: Record<string, unknown> = { email: 'a@b.example', when: new Date(0), f: () => 1, n: null };
    a.self = a;
    let deep: Record<string, unknown> = { leaf: 'x@y.example' };
    for (let i = 0; i < 10_000; i++) deep = { d: deep };
    const input = { a, deep, m: new Map([['k', 'c@d.example']]), bytes: new Uint8Array([1, 2]) };
    const before = JSON.stringify({ ...input, a: { ...a, self: null }, deep: null });
    const { value, summary } = createRedactor({ env: {} }).redact(input);
    expect(JSON.stringify({ ...input, a: { ...a, self: null }, deep: null })).toBe(before);
    expect(a.email).toBe('a@b.example');
    const v = value as Record<string, Record<string, unknown>>;
    expect(v.a).toEqual({
      email: '[REDACTED:email]',
      when: '1970-01-01T00:00:00.000Z',
      n: null,
      self: '[Circular]',
    });
    expect(v.m).toEqual({ k: '[REDACTED:email]' });
    expect(summary.truncated).toContain('a.self');
    expect(JSON.stringify(v.deep)).toContain('[MaxDepth]');
  });

  it('property: never throws, never mutates, and redacting the output again changes nothing', () => {
    const r = createRedactor({
      key: KEY,
      env: {},
      rules: [
        { path: '**.secretish', action: 'hash' },
        { path: 'a.b', action: 'remove' },
      ],
      detectors: { ipv4: 'hash' },
    });
    const pii = fc.constantFrom(
      'jane@x.example',
      '4111 1111 1111 1111',
      'GB82 WEST 1234 5698 7654 32',
      '+44 20 7946 0958',
      '10.1.2.3',
      'fe80::1',
      'AKIAIOSFODNN7EXAMPLE',
      '123-45-6789',
    );
    const text = fc.oneof(
      fc.string(),
      fc.tuple(fc.string(), pii, fc.string()).map(([x, p, y]) => `${x} ${p} ${y}`),
    );
    const value = fc.letrec((tie) => ({
      node: fc.oneof(
        { depthSize: 'small' },
        text,
        fc.double(),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(tie('node'), { maxLength: 4 }),
        fc.dictionary(
          fc.constantFrom('a', 'b', 'secretish', 'x.y', 'email', 'token', '__proto__'),
          tie('node'),
          {
            maxKeys: 4,
          },
        ),
        text.map((s) => JSON.stringify({ note: s, secretish: s })),
      ),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        const snapshot = JSON.stringify(v);
        const once = r.redact(v);
        expect(JSON.stringify(v)).toBe(snapshot);
        const twice = r.redact(once.value);
        expect(twice.value).toEqual(once.value);
        expect(twice.summary.maskedCount + twice.summary.removedCount + twice.summary.hashedCount).toBe(0);
        const s = JSON.stringify(once.value) ?? '';
        for (const leak of ['jane@x.example', '4111 1111 1111 1111', 'AKIAIOSFODNN7EXAMPLE', '123-45-6789']) {
          expect(s).not.toContain(leak);
        }
      }),
      { numRuns: 400 },
    );
  });

  it('property: detector output is a fixed point, even on strings dense in digits and separators', () => {
    const r = createRedactor({ key: KEY, env: {}, detectors: { email: 'hash', phone: 'hash' } });
    const dense = fc.string({
      unit: fc.constantFrom(...'0123456789    --..::@+()abefxAKIZGB_/'),
      maxLength: 80,
    });
    fc.assert(
      fc.property(dense, (s) => {
        const once = r.redactString(s).value;
        expect(r.redactString(once).value).toBe(once);
      }),
      { numRuns: 2000 },
    );
  });
});
