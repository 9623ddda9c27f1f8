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
});
