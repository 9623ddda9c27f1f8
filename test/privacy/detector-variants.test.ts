import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createRedactor, normalizeForDetection } from '../../src/privacy/index.js';

// The ways personal data is written that plain patterns miss (issue 14): each must be found, and the
// values mltrail and ML code write every day must still pass untouched.

const redactor = createRedactor({ env: {} });
const keyed = createRedactor({
  env: {},
  key: 'variants-key-0123456789abcdef',
  detectors: { email: 'hash', phone: 'hash' },
});

const ZWSP = '\u200b';
const NBSP = '\u00a0';
const fullWidth = (s: string) => s.replace(/[0-9@]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0));

/** [variant, text as it appears, a piece of the sensitive part that must not survive (in any form)]. */
const VARIANTS: Array<[string, string, string[]]> = [
  ['URL-encoded e-mail', 'email=jane.doe%40example.com&x=1', ['jane.doe', 'jane.doe%40example.com']],
  ['URL-encoded phone (+ as space)', 'phone=%2B44+7700+900123&x=1', ['7700', '900123']],
  ['form-encoded query', 'q=hi&email=jane.doe%40example.com&phone=%2B44+7700+900123', ['jane.doe', '900123']],
  ['internationalised e-mail', 'from jörg@bücher.de today', ['jörg', 'bücher']],
  ['internationalised e-mail, URL-encoded', 'u=j%C3%B6rg%40b%C3%BCcher.de', ['j%C3%B6rg', 'b%C3%BCcher']],
  ['UK national mobile', 'call 07700 900123 now', ['07700 900123', '900123']],
  ['UK landline', 'call 020 7946 0958', ['7946 0958']],
  ['00 international prefix', 'call 0044 7700 900123', ['7700 900123']],
  ['lower-case IBAN', 'iban gb82 west 1234 5698 7654 32', ['gb82 west', '5698 7654']],
  ['lower-case IBAN, ungrouped', 'iban gb82west12345698765432', ['gb82west12345698765432']],
  ['card grouped with dots', 'card 4111.1111.1111.1111', ['4111.1111.1111.1111', '1111.1111']],
  [
    'card grouped with non-breaking spaces',
    `card 4111${NBSP}1111${NBSP}1111${NBSP}1111`,
    [`1111${NBSP}1111`],
  ],
  ['card grouped with thin spaces', 'card 4111\u20091111\u20091111\u20091111', ['1111\u20091111']],
  ['full-width card digits', `card ${fullWidth('4111 1111 1111 1111')}`, [fullWidth('1111 1111')]],
  ['full-width phone', `tel ${fullWidth('+44 20 7946 0958')}`, [fullWidth('7946')]],
  ['full-width @ in an e-mail', `mail jane.doe${fullWidth('@')}example.com`, ['jane.doe']],
  ['zero-width space inside an e-mail', `mail jane${ZWSP}.doe@example.com`, ['jane', 'doe@example']],
  ['zero-width joiner inside a card', `card 4111${ZWSP}1111\u200d1111\u200c1111`, ['4111', '1111']],
  ['soft hyphen inside an IBAN', 'GB82\u00adWEST\u00ad1234\u00ad5698\u00ad7654\u00ad32', ['WEST', '5698']],
  [
    'all-letter bearer token in JSON text inside a string',
    'upstream said {"headers":{"auth":"Bearer abcdefghijklmnopqrstuvwxyzABCDEF"}} (401',
    ['abcdefghijklmnopqrstuvwxyz'],
  ],
  ['upper-case BEARER', 'AUTHORIZATION: BEARER abcdef1234567890XYZ', ['abcdef1234567890XYZ']],
  [
    'Slack webhook URL',
    'post to https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX',
    ['T00000000/B00000000', 'XXXXXXXXXXXXXXXXXXXXXXXX'],
  ],
  [
    'AWS secret access key (assignment)',
    'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    ['wJalrXUtnFEMI', 'bPxRfiCYEXAMPLEKEY'],
  ],
  [
    'AWS secret access key (JSON)',
    '{"AccessKeyId":"AKIAIOSFODNN7EXAMPLE","SecretAccessKey":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"} trailing',
    ['wJalrXUtnFEMI', 'AKIAIOSFODNN7EXAMPLE'],
  ],
  [
    'password in a database URL',
    '--db-url=postgres://admin:S3cretPassw0rd@10.0.0.5:5432/app',
    ['S3cretPassw0rd'],
  ],
  [
    'OpenAI key on a command line',
    '--api-key=sk-proj-abcdefghijklmnopqrstuvwx',
    ['abcdefghijklmnopqrstuvwx'],
  ],
];

describe('detector variants: each is found, in the original text and everything around it kept', () => {
  for (const [name, text, secrets] of VARIANTS) {
    it(name, () => {
      const { value, summary } = redactor.redactString(text);
      for (const secret of secrets) expect(value, `${name}: ${value}`).not.toContain(secret);
      expect(summary.maskedCount, value).toBeGreaterThan(0);
      // A fixed point: redacting the output again changes nothing.
      expect(redactor.redactString(value).value).toBe(value);
    });
  }

  it('a URL-encoded match is replaced URL-encoded, and the rest of the query string is kept as written', () => {
    expect(
      redactor.redactString('q=a%20b&email=jane.doe%40example.com&phone=%2B44+7700+900123&n=1').value,
    ).toBe('q=a%20b&email=%5BREDACTED%3Aemail%5D&phone=%5BREDACTED%3Aphone%5D&n=1');
  });

  it('only the characters of the match are replaced around invisible and full-width characters', () => {
    expect(redactor.redactString(`Ünïcode name, mail jane${ZWSP}.doe@example.com, ok`).value).toBe(
      'Ünïcode name, mail [REDACTED:email], ok',
    );
    expect(redactor.redactString(`card ${fullWidth('4111 1111 1111 1111')} — thanks`).value).toBe(
      'card [REDACTED:payment_card] — thanks',
    );
  });

  it('the password of a URL goes, the user and host stay', () => {
    expect(redactor.redactString('postgres://admin:S3cretPassw0rd@db.internal:5432/app').value).toBe(
      'postgres://admin:[REDACTED:url_password]@db.internal:5432/app',
    );
  });

  it('a pseudonym does not depend on how the value was written', () => {
    const plain = keyed.redactString('jane.doe@example.com').value;
    expect(plain).toMatch(/^pii:[0-9a-f]{8}:/);
    expect(keyed.redactString(`jane${ZWSP}.doe${fullWidth('@')}example.com`).value).toBe(plain);
    expect(keyed.redactString('JANE.DOE@EXAMPLE.COM').value).toBe(plain);
    expect(keyed.redactString('jane.doe%40example.com').value).toBe(encodeURIComponent(plain));
    expect(keyed.redactString(fullWidth('+44 20 7946 0958')).value).toBe(
      keyed.redactString('+44 20 7946 0958').value,
    );
  });
});

describe('keys are redacted like values', () => {
  it('an attributions map keyed by personal data keeps every entry, so it still adds up', () => {
    const attributions = {
      'jane.doe@example.com': 0.4,
      'JANE.DOE@example.com': 0.1,
      'iban GB82WEST12345698765432': 0.2,
      income: 0.3,
    };
    const { value, summary } = redactor.redact({ attributions });
    const out = (value as { attributions: Record<string, number> }).attributions;
    expect(out).toEqual({
      '[REDACTED:email]': 0.4,
      '[REDACTED:email]#2': 0.1,
      'iban [REDACTED:iban]': 0.2,
      income: 0.3,
    });
    expect(Object.values(out).reduce((a, b) => a + b, 0)).toBeCloseTo(1);
    expect(summary.masked).toEqual(['attributions']);
    expect(summary.maskedCount).toBe(3);
  });

  it('with a key, the same person is the same pseudonym key in every record', () => {
    const one = keyed.redact({ attributions: { 'jane.doe@example.com': 0.7 } }).value as {
      attributions: object;
    };
    const two = keyed.redact({ x: { 'Jane.Doe@Example.com': 1 } }).value as { x: object };
    expect(Object.keys(one.attributions)).toEqual(Object.keys(two.x));
    expect(Object.keys(one.attributions)[0]).toMatch(/^pii:[0-9a-f]{8}:[A-Za-z0-9_-]{43}$/);
  });

  it('dotted attribute keys, keys inside captured JSON, Map keys; summaries never name the raw key', () => {
    const { value, summary } = redactor.redact({
      'app.customer.jane.doe@example.com': 'vip',
      'ml.prediction.input': JSON.stringify({ features: { 'jane.doe@example.com': [1, 2] } }),
      m: new Map([['+44 20 7946 0958', 1]]),
    });
    const text = JSON.stringify(value) + JSON.stringify(summary);
    expect(text).not.toContain('jane.doe');
    expect(text).not.toContain('7946');
  });

  it('rules see the redacted key (a rule on the parent still applies to every entry)', () => {
    const r = createRedactor({ env: {}, rules: [{ path: 'attributions.*', action: 'remove' }] });
    expect(r.redact({ attributions: { 'jane.doe@example.com': 1, a: 2 } }).value).toEqual({
      attributions: {},
    });
  });

  it('clean keys are remembered; personal-data keys are not (they are redacted on every visit)', () => {
    for (let i = 0; i < 3; i++)
      expect(redactor.redact({ 'jane.doe@example.com': i }).value).toEqual({ '[REDACTED:email]': i });
  });
});

describe('the normal form', () => {
  it('maps each character back to where it came from', () => {
    const n = normalizeForDetection(`a%40b${ZWSP}${fullWidth('1')}`);
    expect(n.text).toBe('a@b1');
    expect([...n.starts]).toEqual([0, 1, 4, 6]);
    expect([...n.ends]).toEqual([1, 4, 5, 7]);
  });
});

describe('false positives: what ML code and mltrail write stays untouched', () => {
  const CLEAN = [
    randomUUID(),
    '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
    'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
    '4bf92f3577b34da6a3ce929d0e0e4736',
    '00f067aa0ba902b7',
    '2026-11-28T07:00:00.000Z',
    '2026-11-28 07:00:00',
    '1.2.3',
    '2.14.1-rc.2',
    'v2024.01.15',
    '0.7310585786300049',
    '[0.4111111111111111,0.5555555555554444,1111.1111,12.5]',
    '0.4111111111111111 0.4532015112830366',
    '1732780800000',
    '0012345678',
    'feature_12 feature_1234 f2024',
    'model de12abcdef sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709',
    'token validation basic features',
    'Bearer of bad news',
    'Jörg Müller, Straße 5',
    '価格は１２３円です',
    'https://example.com/path?x=1&y=2',
    'https://hooks.example.com/services/abc',
    'rate 4.5% of 100%',
    'aws region eu-west-1, secret rotation enabled',
    '01-02-2026',
  ];
  for (const text of CLEAN) {
    it(JSON.stringify(text), () => {
      const { value, summary } = redactor.redactString(text);
      expect(value).toBe(text);
      expect(summary.maskedCount).toBe(0);
    });
  }

  it('random decimal feature vectors, as numbers and as JSON text', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { maxLength: 30 }), (v) => {
        const body = { features: v, 'ml.prediction.input': JSON.stringify({ features: v }) };
        const { value, summary } = redactor.redact(body);
        expect(summary.maskedCount).toBe(0);
        expect(value).toEqual(body);
      }),
      { numRuns: 300, seed: 14 },
    );
  });
});
