import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildProfile, DriftInputError, loadProfile, saveProfile } from '../../src/drift/index.js';
import {
  CanonicalJsonError,
  ChainVerifier,
  canonicalize,
  parseRecordLine,
} from '../../src/integrity/index.js';
import { readIntoVerifier } from '../../src/integrity/record-sources.js';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import { createRedactor } from '../../src/privacy/index.js';
import { createTrail } from '../../src/trail/index.js';

/**
 * Hostile values through the public APIs (fixed seeds): every one either works or fails with the API's own
 * typed error that says what and where — never a RangeError, a TypeError or a hang.
 */

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `mltrail-${p}-`));

function nested(depth: number, array: boolean): unknown {
  let v: unknown = 1;
  for (let i = 0; i < depth; i++) v = array ? [v] : { a: v };
  return v;
}

function cyclic(): unknown {
  const o: Record<string, unknown> = { a: [1, 2] };
  o.self = o;
  (o.a as unknown[]).push(o);
  return o;
}

/** Values no API should choke on: arbitrary data, cycles, nesting deeper than the stack, NaN/Infinity, lone surrogates, huge strings. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.anything({
    withBigInt: true,
    withMap: true,
    withSet: true,
    withTypedArray: true,
    withNullPrototype: true,
  }),
  fc.constant(null).map(cyclic),
  fc.tuple(fc.integer({ min: 100, max: 50_000 }), fc.boolean()).map(([d, a]) => nested(d, a)),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0),
  fc.record({
    x: fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY),
    s: fc.constantFrom('\ud800', 'a\udfffb', '\udc00\ud800'),
  }),
  fc.integer({ min: 1 << 20, max: 8 << 20 }).map((n) => ({ big: 'x'.repeat(n) })),
);

describe('hostile values through the public APIs', () => {
  it('canonicalize: a string or a CanonicalJsonError naming the path, nothing else', () => {
    fc.assert(
      fc.property(hostileValue, (v) => {
        try {
          expect(typeof canonicalize(v)).toBe('string');
        } catch (err) {
          expect(err).toBeInstanceOf(CanonicalJsonError);
          expect((err as Error).message).toMatch(/ at \$/);
        }
      }),
      { numRuns: 200, seed: 20261128 },
    );
  });

  it('the redactor never throws and its output is plain bounded data (cycles and depth cut, so it always serialises)', () => {
    const redactor = createRedactor({ key: 'hostile-test-key' });
    fc.assert(
      fc.property(hostileValue, (v) => {
        const out = redactor.redact({ 'ml.prediction.input': v, note: v });
        // BigInts pass through as numbers do (the trail's canonical JSON turns them into strings).
        const plain = JSON.stringify(out.value, (_k, x) => (typeof x === 'bigint' ? String(x) : x));
        expect(typeof plain).toBe('string');
        if (typeof v === 'string') expect(typeof redactor.redactString(v).value).toBe('string');
      }),
      { numRuns: 200, seed: 20261128 },
    );
  });

  it('the stage API never throws on cyclic, deep, NaN or huge values, and every call is recorded in a journal that verifies', async () => {
    const dir = tmp('hostile-stages');
    const trail = await createTrail({ serviceName: 'hostile', sink: new AuditLog({ dir }) });
    let calls = 0;
    const ids: string[] = [];
    await fc.assert(
      fc.asyncProperty(hostileValue, async (v) => {
        const predict = trail.predict(
          {
            input: () => v,
            output: () => v as never,
            subject: () => v as string,
            onRecorded: (p) => ids.push(p.id),
          },
          () => v,
        );
        expect(predict()).toBe(v);
        calls++;
        expect(() =>
          trail.decide({
            predictionId: 'p',
            outcome: v as string,
            reason: v as string,
            attributions: v as never,
          }),
        ).not.toThrow();
        await expect(
          trail.dataset({ name: 'd', rows: [v as Record<string, unknown>] }),
        ).resolves.toBeDefined();
      }),
      { numRuns: 60, seed: 20261128 },
    );
    await trail.shutdown();
    // Sent vs stored: one prediction record per call, by id; nothing already recorded was lost.
    expect(ids).toHaveLength(calls);
    const stored = new Set(
      [...new JournalReader(dir).lines()]
        .map((l) => parseRecordLine(l.text))
        .filter((r) => r.event === 'ml.prediction')
        .map((r) => JSON.parse(r.body)['ml.prediction.id']),
    );
    for (const id of ids) expect(stored.has(id), id).toBe(true);
    const v = new ChainVerifier();
    readIntoVerifier(dir, v);
    expect(v.finish().ok).toBe(true);
  }, 120_000);

  it('loadProfile: a malformed, deep, wrong-typed or tampered profile is a DriftInputError naming the file; a saved one loads', async () => {
    const dir = tmp('hostile-profile');
    const good = join(dir, 'good.json');
    const profile = buildProfile(
      Array.from({ length: 50 }, (_, i) => ({ income: 1000 + i, region: i % 2 ? 'north' : 'south' })),
    );
    await saveProfile(profile, good);
    expect(await loadProfile(good)).toEqual(profile);
    const saved = JSON.parse(readFileSync(good, 'utf8'));
    const contents = fc.oneof(
      fc.string(),
      fc.json(),
      fc.integer({ min: 1_000, max: 200_000 }).map((d) => `${'['.repeat(d)}${']'.repeat(d)}`),
      fc
        .integer({ min: 1_000, max: 200_000 })
        .map((d) => `{"features":${'{"a":'.repeat(d)}1${'}'.repeat(d)}}`),
      fc
        .tuple(fc.constantFrom('version', 'rows', 'features', 'digest'), fc.jsonValue())
        .map(([k, val]) => JSON.stringify({ ...saved, [k]: val })),
      fc.constantFrom('{"rows":NaN}', '{"features":{"income":{"kind":"numeric","mean":Infinity}}}', ''),
    );
    let n = 0;
    await fc.assert(
      fc.asyncProperty(contents, async (text) => {
        const path = join(dir, `p${n++}.json`);
        writeFileSync(path, text);
        try {
          await loadProfile(path);
          // Only an intact profile loads: its content still matches its digest.
          expect(JSON.parse(text)).toEqual(saved);
        } catch (err) {
          expect(err).toBeInstanceOf(DriftInputError);
          expect((err as Error).message).toContain(path);
        }
      }),
      { numRuns: 150, seed: 20261128 },
    );
  });

  it('loadRegistry over a journal with hostile lines never throws and loads exactly the intact model registrations', async () => {
    const dir = tmp('hostile-registry');
    const writer = await createTrail({ serviceName: 'reg', sink: new AuditLog({ dir }) });
    await writer.register({ name: 'a', version: '1', data: 'w1' });
    await writer.register({ name: 'b', version: '2', data: 'w2' });
    await writer.shutdown();
    const [seg] = [...new JournalReader(dir).lines()].map((l) => l.file);
    const model = [...new JournalReader(dir).lines()].find((l) =>
      l.text.includes('"ml.model.registered"'),
    )!.text;
    writeFileSync(
      seg,
      Buffer.concat([
        readFileSync(seg),
        Buffer.from('{"event":"ml.model.registered" garbage\n'),
        Buffer.from([0xff, 0xfe, 0x0a]),
        Buffer.from(`${model.replace('"seq":', '"seq":"x","s":')}\n`),
        Buffer.from(`${'['.repeat(100_000)}"ml.model.registered"${']'.repeat(100_000)}\n`),
      ]),
    );
    const reader = await createTrail({
      serviceName: 'reader',
      sink: new AuditLog({ dir: tmp('hostile-registry-own') }),
    });
    expect(() => reader.loadRegistry(dir)).not.toThrow();
    expect([...reader.registry.models.keys()].sort()).toEqual(['a@1', 'b@2']);
    await reader.shutdown();
  });
});
