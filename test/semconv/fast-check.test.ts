import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { acceptsEventBody, acceptsMember, EVENT_SCHEMAS, eventShape } from '../../src/semconv/index.js';

/** Enum values and literals a schema field allows, so random bodies hit the valid branch too. */
function allowedValues(field: z.ZodType): unknown[] {
  const f = field instanceof z.ZodOptional ? (field.unwrap() as z.ZodType) : field;
  if (f instanceof z.ZodEnum) return [...f.options];
  if (f instanceof z.ZodLiteral) return [...f.values];
  return [];
}

const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;
const DELETE = Symbol('delete');
const POOL: unknown[] = [
  'rain',
  '',
  'x'.repeat(8192),
  'x'.repeat(8193),
  DIGEST,
  DIGEST.toUpperCase(),
  `${DIGEST}0`,
  '2026-11-28T10:00:00.000Z',
  '2026-02-29T10:00:00.000Z',
  '2024-02-29T23:59:59.999Z',
  '2026-11-28T24:00:00.000Z',
  '2026-11-28T10:00:00Z',
  '2026-11-28T10:00:00.000+01:00',
  '0af7651916cd43dd8448eb211c80319c',
  'b7ad6b7169203331',
  '{"a":1}',
  '[1,2]',
  '{bad',
  0,
  1,
  -3,
  1.5,
  2 ** 53,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  true,
  false,
  null,
  undefined,
  [],
  ['a', 'b'],
  ['a', 1],
  Array.from({ length: 1025 }, () => 'a'),
  { nested: 1 },
];

describe('acceptsEventBody (the allocation-free validator on the hot path)', () => {
  it('never accepts what the zod schema rejects, and accepts every valid body in the forms mltrail writes', () => {
    for (const [event, schema] of Object.entries(EVENT_SCHEMAS)) {
      const shape = (schema as unknown as z.ZodObject).shape as Record<string, z.ZodType>;
      const keys = Object.keys(shape).filter((k) => k !== 'event.name' && k !== 'timestamp');
      const candidates = (k: string) => [...POOL, ...allowedValues(shape[k])];
      // Valid bodies use only values the field's own schema accepts, in the forms mltrail writes.
      const good = (k: string) =>
        candidates(k).filter(
          (v) =>
            v !== undefined &&
            shape[k].safeParse(v).success &&
            !(typeof v === 'string' && /T10:00:00Z|\+01:00/.test(v)) &&
            v !== '[1,2]',
        );
      const valid = fc.record(
        {
          ...Object.fromEntries(keys.map((k) => [k, fc.constantFrom(...good(k))])),
          timestamp: fc.constantFrom('2026-11-28T10:00:00.000Z', '2024-02-29T23:59:59.999Z'),
        },
        {
          requiredKeys: ['timestamp', ...keys.filter((k) => !(shape[k] instanceof z.ZodOptional))] as never[],
        },
      );
      const mutation = fc.tuple(
        fc.constantFrom(...keys, 'timestamp', 'event.name', 'not.in.schema'),
        fc.constantFrom<unknown>(...POOL, DELETE, 'ml.other'),
      );
      let accepted = 0;
      let rejected = 0;
      fc.assert(
        fc.property(valid, fc.array(mutation, { maxLength: 2 }), (base, mutations) => {
          const body: Record<string, unknown> = { ...base, 'event.name': event };
          const untouched = acceptsEventBody(event, body);
          expect(untouched, `${event}: a valid body took the slow path: ${JSON.stringify(body)}`).toBe(true);
          for (const [k, v] of mutations) {
            if (v === DELETE) delete body[k];
            else body[k] = v;
          }
          const fast = acceptsEventBody(event, body);
          // The member-wise form (a shape made once, then one check per member) says the same.
          for (const name of [event, 'ml.other']) {
            const names = Object.keys(body).sort();
            const shape = eventShape(name, names);
            const memberwise = shape !== undefined && names.every((k, i) => acceptsMember(shape, i, body[k]));
            expect(memberwise, `${name}: ${JSON.stringify(body)}`).toBe(acceptsEventBody(name, body));
          }
          if (fast) accepted++;
          else rejected++;
          // Never "valid" where the schema says otherwise; "not sure" is always allowed.
          if (fast) expect(schema.safeParse(body).success, JSON.stringify(body)).toBe(true);
        }),
        { seed: 42, numRuns: 300 },
      );
      expect(accepted, event).toBeGreaterThan(0);
      expect(rejected, event).toBeGreaterThan(0);
    }
  });
});
