import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/integrity/index.js';
import { flatCanonicalJson, toJsonSafe } from '../../src/trail/json-safe.js';

// A prediction's input (a feature map) is written as canonical JSON straight from its members. That must
// never change a byte of the input digest: for random values — flat and not, odd member names, non-finite
// numbers, long strings, lone surrogates, getters that throw — the fast path either declines or gives
// exactly what the JSON-safe copy followed by canonicalization gives.

const twoStep = (v: unknown) => canonicalize(toJsonSafe(v, [], []) ?? null);

const name = fc.oneof(
  fc.constantFrom(
    'temp_max',
    'temp_min',
    'wind',
    'a',
    'b',
    '',
    '__proto__',
    '0',
    '1',
    '10',
    '01',
    '-1',
    'é',
    '\ud800',
  ),
  fc.string({ maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 4 }),
);
const member = fc.oneof(
  { weight: 4, arbitrary: fc.double() },
  { weight: 2, arbitrary: fc.integer() },
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 6 }) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constantFrom(null, undefined, -0, 1e21, 5e-324, Number.NaN, Infinity, 10n) },
  { weight: 1, arbitrary: fc.constantFrom('x'.repeat(65_536), 'x'.repeat(65_537), [1, 2], { a: 1 }) },
);

describe('flatCanonicalJson', () => {
  it('writes a feature map exactly as the copy and canonicalization do', () => {
    const features = { temp_max: 12.8, temp_min: 5, temp_range: 7.8, wind: 4.7, station: 'Zürich', ok: true };
    expect(flatCanonicalJson(features)).toBe(twoStep(features));
    expect(flatCanonicalJson(features)).toBe(
      '{"ok":true,"station":"Zürich","temp_max":12.8,"temp_min":5,"temp_range":7.8,"wind":4.7}',
    );
  });

  it('declines or equals the two-step path for random objects, whatever shape came before', () => {
    fc.assert(
      fc.property(
        fc.array(fc.dictionary(name, member, { maxKeys: 6 }), { minLength: 1, maxLength: 4 }),
        (objs) => {
          for (const o of objs) {
            const fast = flatCanonicalJson(o);
            if (fast !== undefined) expect(fast).toBe(twoStep(o));
          }
        },
      ),
      { numRuns: 2000, seed: 20261207 },
    );
  });

  it('takes the fast path for flat members of every kind it accepts', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.stringMatching(/^[a-z_]{1,10}$/),
          fc.oneof(
            fc.double({ noNaN: true, noDefaultInfinity: true }),
            fc.string(),
            fc.boolean(),
            fc.constant(null),
          ),
          { maxKeys: 8 },
        ),
        (o) => {
          expect(flatCanonicalJson(o)).toBe(twoStep(o));
        },
      ),
      { numRuns: 1000, seed: 7 },
    );
  });

  it('declines what is not a plain flat object', () => {
    class Features {
      a = 1;
    }
    for (const v of [
      null,
      1,
      'x',
      [1, 2],
      new Features(),
      new Map([['a', 1]]),
      new Date(0),
      new Float32Array(2),
    ])
      expect(flatCanonicalJson(v)).toBeUndefined();
    const withGetter = Object.defineProperty({ a: 1 }, 'b', {
      enumerable: true,
      get() {
        throw new Error('no');
      },
    });
    expect(flatCanonicalJson(withGetter)).toBeUndefined();
    const proto = JSON.parse('{"__proto__": 1, "a": 2}') as Record<string, unknown>;
    expect(flatCanonicalJson(proto)).toBeUndefined();
    expect(flatCanonicalJson({ 1: 'x', a: 2 })).toBeUndefined();
    // A null-prototype object is plain data too.
    const bare = Object.assign(Object.create(null) as Record<string, unknown>, { b: 2, a: 1 });
    expect(flatCanonicalJson(bare)).toBe(twoStep(bare));
  });
});
