import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildProfile,
  DriftInputError,
  DriftMonitor,
  loadProfile,
  saveProfile,
} from '../../src/drift/index.js';
import {
  CanonicalJsonError,
  ChainVerifier,
  canonicalize,
  parseRecordLine,
} from '../../src/integrity/index.js';
import { AuditLog, JournalReader, toOtlp } from '../../src/journal/index.js';
import { createRedactor } from '../../src/privacy/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';
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
  fc.constantFrom(
    Float64Array.from([Number.POSITIVE_INFINITY, Number.NaN]),
    new Map([['k', Float32Array.from([Number.NaN])]]),
  ),
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

  it('NaN and Infinity inside typed arrays are recorded as strings with an issue, not thrown into the host (found by fuzzing)', async () => {
    const dir = tmp('hostile-typed');
    const trail = await createTrail({ serviceName: 'typed', sink: new AuditLog({ dir }) });
    const attributions = new Map([
      ['income', Float64Array.from([Number.POSITIVE_INFINITY, Number.NaN, 0.5])],
    ]);
    expect(() =>
      trail.decide({ predictionId: 'p-1', outcome: 'deny', attributions: attributions as never }),
    ).not.toThrow();
    await trail.shutdown();
    const decision = [...new JournalReader(dir).lines()]
      .map((l) => parseRecordLine(l.text))
      .find((r) => r.event === 'ml.decision')!;
    const body = JSON.parse(decision.body);
    expect(JSON.parse(body['ml.decision.attributions'])).toEqual({ income: ['Infinity', 'NaN', 0.5] });
  });

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

  it('the drift monitor never throws on hostile feature values, and the drift records it writes verify', async () => {
    const dir = tmp('hostile-drift');
    const trail = await createTrail({ serviceName: 'drift', sink: new AuditLog({ dir }) });
    const reference = buildProfile(
      Array.from({ length: 200 }, (_, i) => ({ income: 1000 + (i % 50), region: i % 3 ? 'north' : 'south' })),
    );
    const windows: unknown[] = [];
    const monitor = new DriftMonitor({
      reference,
      model: { name: 'm', version: '1' },
      window: { size: 10 },
      sink: trail,
      onWindow: (w) => windows.push(w),
    });
    fc.assert(
      fc.property(hostileValue, hostileValue, (income, region) => {
        expect(() => monitor.observe({ income, region } as Record<string, unknown>, income)).not.toThrow();
      }),
      { numRuns: 200, seed: 20261128 },
    );
    expect(windows.length).toBeGreaterThanOrEqual(20);
    await trail.shutdown();
    const v = new ChainVerifier();
    readIntoVerifier(dir, v);
    expect(v.finish().ok).toBe(true);
  }, 60_000);

  it('a collector archive with hostile OTLP records: verify reports them as malformed and still counts every intact record', async () => {
    const dir = tmp('hostile-otlp');
    // A real record, as the shipper sends it.
    const journalDir = tmp('hostile-otlp-journal');
    const log = new AuditLog({ dir: journalDir, checkpointEvery: 1000 });
    const ts = new Date().toISOString();
    log.append({
      event: 'ml.feedback',
      sev: 'INFO',
      ts,
      attrs: {},
      body: canonicalize({ 'event.name': 'ml.feedback', timestamp: ts, 'ml.feedback.id': 'f-1' }),
    });
    await log.close();
    const real = [...new JournalReader(journalDir).lines()].map((l) => parseRecordLine(l.text));
    const realOtlp = (toOtlp(real) as { resourceLogs: { scopeLogs: { logRecords: unknown[] }[] }[] })
      .resourceLogs[0].scopeLogs[0].logRecords;
    const intact = {
      timeUnixNano: '1764316800000000000',
      body: { stringValue: '{}' },
      attributes: [{ key: 'event.name', value: { stringValue: 'ml.feedback' } }],
    };
    const withChain = (lr: Record<string, unknown>, seq: unknown) => ({
      ...lr,
      attributes: [
        ...(Array.isArray(lr.attributes) ? lr.attributes : [lr.attributes]),
        { key: 'mltrail.chain.id', value: { stringValue: 'hostile-chain' } },
        { key: 'mltrail.seq', value: seq },
      ],
    });
    const hostileRecord = fc.oneof(
      fc.jsonValue({ maxDepth: 4 }),
      fc
        .tuple(
          fc.constantFrom('timeUnixNano', 'body', 'attributes', 'traceId', 'spanId'),
          fc.jsonValue({ maxDepth: 3 }),
        )
        .map(([k, val]) => withChain({ ...intact, [k]: val }, { intValue: '0' })),
      fc.jsonValue({ maxDepth: 3 }).map((seq) => withChain(intact, seq)),
    );
    let n = 0;
    fc.assert(
      fc.property(fc.array(hostileRecord, { minLength: 1, maxLength: 5 }), (records) => {
        const file = join(dir, `archive-${n++}.jsonl`);
        writeFileSync(
          file,
          `${JSON.stringify({ resourceLogs: [{ scopeLogs: [{ logRecords: [...records, ...realOtlp] }] }] })}\n`,
        );
        const v = new ChainVerifier();
        expect(() => readIntoVerifier(file, v)).not.toThrow();
        const report = v.finish();
        for (const p of report.problems) expect(p.location).toContain(file);
        const intact = report.chains.find((c) => c.chain === real[0].chain)!;
        expect({ records: intact.records, problems: intact.problems }).toEqual({
          records: real.length,
          problems: [],
        });
      }),
      { numRuns: 300, seed: 20261128 },
    );
  });
});
