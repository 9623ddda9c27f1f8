import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  canonicalTensorsJson,
  dtypeOf,
  plainValues,
  type TensorLike,
} from '../../src/instrumentation/tensor-view.js';
import { canonicalize } from '../../src/integrity/index.js';
import { toJsonSafe } from '../../src/trail/json-safe.js';

interface Tensor extends TensorLike {
  data?: unknown;
}
const parts = {
  dims: (t: Tensor | undefined) => t?.dims,
  type: (t: Tensor | undefined) => dtypeOf(t),
  data: (t: Tensor | undefined) => t?.data,
};

/** What the input digest hashed before: the JSON-safe copy of the tensors view, canonicalized. */
function viaCopy(entries: [string, Tensor | undefined][]): string {
  const view: Record<string, unknown> = {};
  for (const [name, t] of entries)
    view[name] = { dims: t?.dims ?? null, type: dtypeOf(t), data: plainValues(t?.data) };
  return canonicalize(toJsonSafe(view, [], []) ?? null);
}

const numbers = fc.oneof(
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1e21, 5e-324),
);
const data = fc.oneof(
  fc.array(fc.float({ noDefaultInfinity: false }), { maxLength: 8 }).map((a) => Float32Array.from(a)),
  fc.array(numbers, { maxLength: 8 }).map((a) => Float64Array.from(a)),
  fc
    .array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 8 })
    .map((a) => Int32Array.from(a)),
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 8 }).map((a) => Uint8Array.from(a)),
  fc
    .array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), { maxLength: 4 })
    .map((a) => BigInt64Array.from(a)),
  fc.array(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), { maxLength: 4 }).map((a) => BigUint64Array.from(a)),
  fc.array(fc.oneof(fc.string(), numbers), { maxLength: 3 }),
  fc.constantFrom(undefined, null, 'text', new DataView(new ArrayBuffer(2))),
);
const dims = fc.oneof(
  fc.array(fc.nat({ max: 64 }), { maxLength: 4 }),
  fc.array(numbers, { maxLength: 3 }),
  fc.constantFrom(undefined, null, { length: 2 }, ['1', '2']),
);
const tensor = fc.oneof(
  fc.record({ data, dims, type: fc.oneof(fc.constantFrom('float32', 'int64', 'string'), fc.string()) }),
  fc.record({ data, dims, dtype: fc.string() }),
  fc.record({ data, dims, type: fc.constantFrom(7 as unknown as string) }),
  fc.constantFrom(undefined),
);
const name = fc.oneof(
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.constantFrom('features', '__proto__', '0', '10', '1.5', 'a"b', '\ud800', 'é', 'e\u0301'),
);

describe('canonicalTensorsJson (the input digest of instrumented inference, written without copies)', () => {
  it('is byte-identical to canonicalizing the JSON-safe copy of the tensors view, or declines', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(name, tensor), { maxLength: 4 }), (entries) => {
        const fast = canonicalTensorsJson(entries as [string, Tensor | undefined][], parts);
        if (fast !== undefined) expect(fast).toBe(viaCopy(entries as [string, Tensor | undefined][]));
      }),
      { numRuns: 2000 },
    );
  });

  it('takes the direct path for ordinary tensors, sorted by name', () => {
    const entries: [string, Tensor][] = [
      ['x', { type: 'float32', dims: [1, 3], data: Float32Array.from([0.1, Number.NaN, -0]) }],
      ['ids', { type: 'int64', dims: [2], data: BigInt64Array.from([1n, -9007199254740993n]) }],
    ];
    const fast = canonicalTensorsJson(entries, parts);
    expect(fast).toBe(
      '{"ids":{"data":["1","-9007199254740993"],"dims":[2],"type":"int64"},' +
        `"x":{"data":[${Math.fround(0.1)},"NaN",0],"dims":[1,3],"type":"float32"}}`,
    );
    expect(fast).toBe(viaCopy(entries));
  });

  it('declines what only the general path handles: plain arrays, odd dims, __proto__, throwing getters', () => {
    const t = (over: Partial<Tensor>): [string, Tensor][] => [['x', { type: 'float32', dims: [1], ...over }]];
    expect(canonicalTensorsJson(t({ data: [1, 2] }), parts)).toBeUndefined();
    expect(canonicalTensorsJson(t({ data: Float32Array.of(1), dims: [Number.NaN] }), parts)).toBeUndefined();
    expect(canonicalTensorsJson([['__proto__', { data: Float32Array.of(1) }]], parts)).toBeUndefined();
    const throwing = {
      get data(): unknown {
        throw new Error('on the GPU');
      },
    };
    expect(canonicalTensorsJson([['x', throwing]], parts)).toBeUndefined();
  });
});
