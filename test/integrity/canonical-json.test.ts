import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CanonicalJsonError, canonicalize } from '../../src/integrity/index.js';

describe('canonicalize (RFC 8785)', () => {
  it('sorts members by UTF-16 code units and drops whitespace', () => {
    // U+20AC (€) sorts before U+1F600 (😀, surrogate pair D83D) in UTF-16 order, unlike in code points.
    expect(canonicalize({ '\u{1F600}': 1, '\u20ac': 2, b: [1, { z: 0, a: null }], a: true })).toBe(
      '{"a":true,"b":[1,{"a":null,"z":0}],"€":2,"😀":1}',
    );
  });

  it('serialises numbers the ECMAScript way', () => {
    expect(canonicalize([0, -0, 1e21, 1e-7, 333333333.3333333, 4.5, 2 ** 53, -1.5e-300])).toBe(
      '[0,0,1e+21,1e-7,333333333.3333333,4.5,9007199254740992,-1.5e-300]',
    );
  });

  it('escapes strings as JSON.stringify does', () => {
    expect(canonicalize('\u0000\u001f"\\\n\u2028é')).toBe('"\\u0000\\u001f\\"\\\\\\n\u2028é"');
  });

  it('rejects values JSON cannot hold, naming the path', () => {
    expect(() => canonicalize({ a: [1, Number.NaN] })).toThrow(
      new CanonicalJsonError('NaN is not a JSON number', '$.a[1]'),
    );
    expect(() => canonicalize({ b: 1n })).toThrow(/bigint is not a JSON value at \$\.b/);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => canonicalize(cyclic)).toThrow(/circular reference at \$\.self/);
    expect(() => canonicalize([undefined])).toThrow(/undefined is not a JSON value at \$\[0\]/);
  });

  it('is a fixed point of parse∘canonicalize and independent of member order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const c = canonicalize(v);
        expect(canonicalize(JSON.parse(c))).toBe(c);
        if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
          const reversed = Object.fromEntries(Object.entries(v).reverse());
          expect(canonicalize(reversed)).toBe(c);
        }
      }),
    );
  });

  it('the native fast path gives exactly what a straightforward RFC 8785 writer gives', () => {
    // The reference: sort members by UTF-16 code units, JSON.stringify every leaf.
    const reference = (v: unknown): string => {
      if (Array.isArray(v)) return `[${v.map(reference).join(',')}]`;
      if (v !== null && typeof v === 'object')
        return `{${Object.keys(v)
          .sort()
          .filter((k) => (v as Record<string, unknown>)[k] !== undefined)
          .map((k) => `${JSON.stringify(k)}:${reference((v as Record<string, unknown>)[k])}`)
          .join(',')}}`;
      return JSON.stringify(v);
    };
    const key = fc.oneof(
      fc.string(),
      fc.constantFrom(
        '__proto__',
        '0',
        '1',
        '10',
        '2',
        '-1',
        '01',
        '4294967295',
        'a',
        'B',
        '\u{1F600}',
        '\u20ac',
      ),
    );
    const value = fc.letrec((tie) => ({
      leaf: fc.oneof(
        fc.string(),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.boolean(),
        fc.constant(null),
      ),
      arr: fc.array(tie('node'), { maxLength: 4 }),
      obj: fc.dictionary(key, fc.oneof(tie('node'), fc.constant(undefined)), { maxKeys: 5 }),
      node: fc.oneof({ depthSize: 'small' }, tie('leaf'), tie('arr'), tie('obj')),
    })).node;
    fc.assert(
      fc.property(value, (v) => {
        expect(canonicalize(v)).toBe(reference(v));
      }),
      { seed: 9, numRuns: 2000 },
    );
    // Class instances, boxed strings and Dates keep the explicit writer's meaning.
    expect(canonicalize({ d: new Date(0), s: Object('ab') })).toBe(
      '{"d":"1970-01-01T00:00:00.000Z","s":{"0":"a","1":"b"}}',
    );
    expect(canonicalize({ 10: 'x', 9: 'y', a: 1 })).toBe('{"10":"x","9":"y","a":1}');
  });
});
