import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecordLine, serializeRecord } from '../../src/integrity/record.js';
import { AuditLog, listSegments } from '../../src/journal/index.js';
import {
  buildSegmentIndex,
  indexFile,
  TileReader,
  tilesDir,
  writeTiles,
} from '../../src/journal-index/index.js';
import { LINEAGE_KEYS, recordLineage } from '../../src/lineage/record-lineage.js';
import * as attributes from '../../src/semconv/attributes.js';
import * as events from '../../src/semconv/events.js';
import { createTrail } from '../../src/trail/index.js';
import { referenceSegmentIndex, referenceTileLeaves } from './reference-index-builder.js';

/**
 * The builder reads lines as bytes and takes the common records' entries straight from them; the files it
 * writes must be byte for byte those of the builder before it (kept in reference-index-builder.ts), for
 * journals written by the trail and for every kind of line the old builder parsed one way or another:
 * damaged, torn, re-spaced, escaped, non-UTF-8, format 1, erased, of another chain.
 */

let base: string;

/** A journal of every record kind, written by the real trail into small segments. */
async function writeBase(dir: string): Promise<void> {
  const trail = await createTrail({
    serviceName: 'bytes',
    redactor: false,
    sink: new AuditLog({ dir, segmentBytes: 48 * 1024, index: false }),
  });
  const data = await trail.dataset({ name: 'd', data: 'rows', source: 'file:d.csv' });
  const other = await trail.dataset({ name: 'é', data: 'more rows', uri: 's3://b/π' });
  let out = data;
  trail.transform(
    { name: 't', inputs: [data, other], output: { name: 'clean' }, onRecorded: (d) => (out = d) },
    () => 'x',
  )();
  let runId = '';
  trail.train({ model: 'm', inputs: [out], onRecorded: (r) => (runId = r.id) }, () => [1])();
  try {
    trail.train({ model: 'm', inputs: [data] }, () => {
      throw new Error('did not converge');
    })();
  } catch {
    // a failed run is part of the lineage
  }
  trail.evaluate({ run: runId, dataset: other, metric: 'auc' }, () => 0.9)();
  const model = await trail.register({ name: 'm', version: '1', run: runId, data: 'w' });
  const dep = trail.deploy({ model, environment: 'prod' });
  const names = ['Zoë', '李雷', 'a "quoted" name', 'tab\there', 'plain'];
  for (let i = 0; i < 240; i++) {
    let pid = '';
    trail.predict(
      {
        model: i % 9 === 0 ? model : dep,
        capture: i % 2 ? 'full' : 'digest',
        onRecorded: (p) => (pid = p.id),
      },
      (x: { v: number; who: string }) => ({ score: x.v / 3 }),
    )({ v: i % 5, who: names[i % names.length] });
    if (i % 3 === 0)
      trail.decide({ predictionId: pid, outcome: 'approve', reason: `≥ ${names[i % names.length]}` });
    if (i % 4 === 0) trail.feedback({ predictionId: pid, groundTruth: i % 2 === 0 ? 'yes' : 'no' });
    if (i === 120) {
      const { id } = trail.recordDrift({
        feature: 'x',
        test: 'ks',
        statistic: 0.5,
        pValue: 0.01,
        threshold: 0.05,
        windowSize: 10,
        model: { name: 'm', version: '1' },
        deploymentId: dep.id,
      });
      trail.retrain({ reason: 'drift', trigger: 'drift', triggerIds: [id], previous: model });
    }
    if (i % 20 === 0) await trail.flush();
  }
  await trail.shutdown();
}

beforeAll(async () => {
  base = join(mkdtempSync(join(tmpdir(), 'mltrail-index-bytes-')), 'journal');
  await writeBase(base);
});

afterAll(() => rmSync(join(base, '..'), { recursive: true, force: true }));

/** Ways to change one line, each something the old builder parsed one way or another. */
const MUTATIONS: ((line: string, rnd: number) => string | Buffer)[] = [
  // ids the byte reader leaves to the parser, or takes itself
  (l) => l.replace(/("ml\.prediction\.id":")[^"]*/, '$1Zoë-π'),
  (l) => l.replace(/("ml\.prediction\.id":")/, '$1\\u0041'),
  (l) => l.replace(/"ml\.prediction\.id"/, '"ml.prediction\\u002eid"'),
  (l) => l.replace(/("ml\.deployment\.id":")[^"]*/, '$1not-a-uuid'),
  (l) => l.replace(/("ml\.decision\.id":")[^"]*/, '$101A25340-8848-72C9-BA7B-83609665A758'),
  (l) => l.replace(/("ml\.prediction\.id":")[^"]*"/, '$1"'),
  (l) => l.replace(/("ml\.prediction\.id":)"[^"]*"/, '$1 12'),
  (l) => l.replace(/("ml\.prediction\.id":)"[^"]*"/, '$1{"a":[1,{"b":null}]}'),
  (l) => l.replace(/("ml\.prediction\.id":)"[^"]*"/, '$1["a","b"]'),
  (l) => l.replace(/("ml\.deployment\.id":)("[^"]*")/, '$1$2,"ml.deployment.id":"x"'),
  (l) => l.replace(/"ml\.deployment\.id":"[^"]*",/, ''),
  (l) => l.replace(/("ml\.prediction\.id":)("[^"]*")/, '$1$2,"ml.deployment.id":$2'),
  (l) => l.replace(/("ml\.transform\.input_ids":)\[[^\]]*\]/, '$1["a","a"]'),
  (l) => l.replace(/("ml\.training\.input_dataset_ids":)\[[^\]]*\]/, '$1[]'),
  (l) => l.replace(/("ml\.training\.input_dataset_ids":)\[[^\]]*\]/, '$1["x\\"y"]'),
  (l) => l.replace(/"event\.name":"[^"]*"/, '"event.name":"ml.prediction"'),
  (l) => l.replace(/"event\.name":"[^"]*"/, '"event.name":"ml.decision"'),
  (l) => l.replace(/"event\.name":"[^"]*"/, '"event.name":7'),
  (l) => l.replace(/"event\.name":"ml\.([^"]*)"/, '"event.name":"ml\\u002e$1"'),
  (l) => l.replace(/,"event\.name":"[^"]*"/, ''),
  // JSON the parser accepts or rejects
  (l) => l.replace(/"body":\{/, '"body": {'),
  (l) => l.replace(/\}\}$/, '} }'),
  (l) => l.replace(/\}\}$/, '}\t}'),
  (l) => l.replace(/\}\}$/, '},}'),
  (l) => l.replace(/\}\}$/, '}}}'),
  (l) => l.replace(/\}\}$/, '}'),
  (l) => `${l}\r`,
  (l) => l.replace(/:0\.(\d)/, ':0$1'),
  (l) => l.replace(/:0\.(\d)/, ':-0.$1e+5'),
  (l) => l.replace(/:0\.(\d)/, ':.$1'),
  (l) => l.replace(/:true/, ':tru'),
  (l) => l.replace(/:true/, ':[true,false,null,{},[],-1.5E-3,"\\ud800"]'),
  (l) => l.replace(/("severity_text":")/, '$1\\x'),
  (l) => l.replace(/("severity_text":")/, '$1\\u12g4'),
  (l) => l.replace(/("severity_text":")/, '$1\u0001'),
  (l) => l.replace(/("severity_text":")/, `$1${'['.repeat(3)}`),
  (l) => l.replace(/("severity_text":)("[^"]*")/, `$1${'['.repeat(70)}${']'.repeat(70)}`),
  (l) => l.replace(/("severity_text":)("[^"]*")/, `$1${'{"a":'.repeat(70)}1${'}'.repeat(70)}`),
  (l) => l.replace(/("severity_text":)("[^"]*")/, '$1{"ml.prediction.id":"x"}'),
  // a line longer than a read (4 MiB): the reader's buffer grows
  (l) => l.replace(/("severity_text":")/, `$1${'é'.repeat(2_500_000)}`),
  (l) => l.slice(0, Math.max(1, l.length - 40)),
  (l, r) => l.slice(0, Math.floor(r * l.length)),
  (l) => l.replace('"body":{', '"body":{"__proto__":{"ml.prediction.id":"p"},'),
  (l) => l.replace('"body":{', '"body":{}'),
  (l) => l.replace(/"body":\{.*\}$/, '"body":[]}'),
  (l) => l.replace(/"body":\{.*\}$/, '"body":{}}'),
  // the head
  (l) => l.replace(/"seq":(\d+)/, '"seq":0$1'),
  (l) => l.replace(/"seq":(\d+)/, '"seq":1234567890123456'),
  (l) => l.replace(/"seq":(\d+)/, '"seq":123456789012345'),
  (l) => l.replace(/"prev":"(.)/, '"prev":"A'),
  (l) => l.replace(/"hash":"[0-9a-f]/, '"hash":"'),
  (l) => l.replace(/"chain":"[^"]*"/, '"chain":"01a25340-0000-7000-8000-000000000000"'),
  (l) => l.replace(/"chain":"[^"]*"/, '"chain":"chaîne"'),
  (l) => l.replace(/"chain":"[^"]*"/, '"chain":""'),
  (l) => l.replace('{"v":2,', '{"v":3,'),
  (l) => l.replace('{"v":2,', '{"v":2 ,'),
  // other formats
  (l) => {
    const r = parseRecordLine(l);
    return serializeRecord({ ...r, v: 1 });
  },
  (l) => {
    const r = parseRecordLine(l);
    return serializeRecord({ ...r, body: '', erased_by: `${r.chain}:9` });
  },
  // bytes that are not UTF-8
  (l) =>
    Buffer.concat([
      Buffer.from(l.replace(/("severity_text":")/, '$1'), 'utf8').subarray(
        0,
        l.indexOf('"severity_text":"') + 17,
      ),
      Buffer.from([0xff, 0xe2, 0x82]),
      Buffer.from(l.slice(l.indexOf('"severity_text":"') + 17), 'utf8'),
    ]),
  (l) => Buffer.concat([Buffer.from(l, 'utf8'), Buffer.from([0xc3])]),
  (l) => Buffer.concat([Buffer.from(l.slice(0, -2), 'utf8'), Buffer.from([0xf0, 0x9f]), Buffer.from('}}')]),
  (l) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(l, 'utf8')]),
  (l) => l.replace(/("ml\.prediction\.id":")/, '$1\uFFFD'),
  () => '',
  () => 'not json at all',
];

const planArb = fc.array(
  fc.record({
    segment: fc.nat(),
    line: fc.nat(),
    mutation: fc.nat({ max: MUTATIONS.length - 1 }),
    rnd: fc.double({ min: 0, max: 1, noNaN: true }),
    /** Also insert the changed line as a new line instead of replacing. */
    insert: fc.boolean(),
  }),
  { maxLength: 12 },
);

type Plan = typeof planArb extends fc.Arbitrary<infer T> ? T : never;

/** A copy of the base journal with the planned lines changed. */
function mutatedJournal(plan: Plan): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-index-bytes-')), 'journal');
  cpSync(base, dir, { recursive: true });
  const [{ files }] = listSegments(dir);
  const lines = files.map((f) => readFileSync(f, 'utf8').split('\n').slice(0, -1) as (string | Buffer)[]);
  for (const p of plan) {
    const seg = lines[p.segment % lines.length];
    const at = p.line % seg.length;
    const line = seg[at];
    if (typeof line !== 'string') continue;
    let changed: string | Buffer;
    try {
      changed = MUTATIONS[p.mutation](line, p.rnd);
    } catch {
      continue;
    }
    if (p.insert) seg.splice(at, 0, changed);
    else seg[at] = changed;
  }
  for (const [i, f] of files.entries()) {
    const parts: Buffer[] = [];
    for (const l of lines[i]) parts.push(Buffer.isBuffer(l) ? l : Buffer.from(l, 'utf8'), Buffer.from('\n'));
    // Now and then a torn last line (no newline): not indexed.
    if (i % 2 === 1) parts.push(Buffer.from('{"v":2,"chain":"torn'));
    writeFileSync(f, Buffer.concat(parts));
  }
  return dir;
}

/** The tiles written for each chain, as the leaves they hold and the checkpoint beside them, and the reference's. */
function bothTiles(dir: string): { built: unknown[]; reference: unknown[] } {
  const built: unknown[] = [];
  const reference: unknown[] = [];
  for (const { chain, files } of listSegments(dir)) {
    const { size, checkpoint } = writeTiles(dir, chain, files, { force: true });
    const reader = new TileReader(dir, chain);
    const leaves: Buffer[] = [];
    for (let i = 0; i < size; i++) leaves.push(Buffer.from(reader.hashAt(0, i)));
    const note = join(tilesDir(dir, chain), 'checkpoint');
    built.push({
      leaves,
      checkpoint:
        checkpoint === undefined ? undefined : { size: checkpoint, note: readFileSync(note, 'utf8') },
    });
    reference.push(referenceTileLeaves(dir, files));
  }
  return { built, reference };
}

/** The index bytes of every segment, from the builder and from the reference (or what each threw). */
function bothBuilds(dir: string): { built: (string | Buffer)[]; reference: (string | Buffer)[] } {
  const built: (string | Buffer)[] = [];
  const reference: (string | Buffer)[] = [];
  for (const { chain, files } of listSegments(dir))
    for (const f of files) {
      try {
        reference.push(referenceSegmentIndex(dir, f));
      } catch (err) {
        reference.push(`threw: ${(err as Error).name}`);
      }
      try {
        buildSegmentIndex(dir, f);
        built.push(readFileSync(indexFile(dir, chain, f)));
      } catch (err) {
        built.push(`threw: ${(err as Error).name}`);
      }
    }
  return { built, reference };
}

describe('segment index bytes', () => {
  it('are those of the previous builder for a journal of every record kind', () => {
    const { built, reference } = bothBuilds(base);
    expect(built.length).toBeGreaterThan(3);
    expect(built).toEqual(reference);
    const tiles = bothTiles(base);
    expect(tiles.built).toEqual(tiles.reference);
    expect(tiles.reference[0]).toMatchObject({ checkpoint: { size: expect.any(Number) } });
    expect((tiles.reference[0] as { leaves: Buffer[] }).leaves.length).toBeGreaterThan(300);
    // The journal has what the fast path takes and what it leaves to the parser.
    const text = listSegments(base)[0]
      .files.map((f) => readFileSync(f, 'utf8'))
      .join('');
    for (const e of [
      events.EVENT_ML_PREDICTION,
      events.EVENT_ML_DECISION,
      events.EVENT_ML_FEEDBACK,
      events.EVENT_ML_TRANSFORM_COMPLETED,
      events.EVENT_ML_STAGE_FAILED,
      events.EVENT_ML_DRIFT_DETECTED,
      events.EVENT_ML_RETRAINING_TRIGGERED,
      events.EVENT_ML_EVALUATION_COMPLETED,
    ])
      expect(text).toContain(`"event.name":"${e}"`);
  });

  it('are those of the previous builder for journals with changed, damaged and foreign lines', () => {
    fc.assert(
      fc.property(planArb, (plan) => {
        const dir = mutatedJournal(plan);
        try {
          const { built, reference } = bothBuilds(dir);
          expect(built).toEqual(reference);
          const tiles = bothTiles(dir);
          expect(tiles.built).toEqual(tiles.reference);
        } finally {
          rmSync(join(dir, '..'), { recursive: true, force: true });
        }
      }),
      { numRuns: 60 },
    );
  });

  it('are those of the previous builder with every mutation applied to every kind of line', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-index-bytes-')), 'journal');
    try {
      cpSync(base, dir, { recursive: true });
      const [{ files }] = listSegments(dir);
      const lines = readFileSync(files[0], 'utf8').split('\n').slice(0, -1);
      // One line of each event, each mutation applied to it, in segments of their own.
      const samples = [...new Map(lines.map((l) => [/"event\.name":"([^"]*)"/.exec(l)?.[1], l])).values()];
      for (const f of files) rmSync(f);
      for (const [m, mutate] of MUTATIONS.entries()) {
        const out: Buffer[] = [];
        for (const l of samples) {
          let changed: string | Buffer;
          try {
            changed = mutate(l, 0.5);
          } catch {
            continue;
          }
          out.push(Buffer.isBuffer(changed) ? changed : Buffer.from(changed, 'utf8'), Buffer.from('\n'));
        }
        writeFileSync(
          join(
            dir,
            'chains',
            readdirSync(join(dir, 'chains'))[0],
            `${String(m + 1).padStart(6, '0')}.ndjson`,
          ),
          Buffer.concat(out),
        );
      }
      const { built, reference } = bothBuilds(dir);
      expect(built.length).toBe(MUTATIONS.length);
      expect(built).toEqual(reference);
    } finally {
      rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  });
});

describe('LINEAGE_KEYS', () => {
  const lineageEvents = Object.values(events).filter((e) => typeof e === 'string' && e.startsWith('ml.'));
  const keys = [
    ...new Set([
      ...LINEAGE_KEYS,
      ...Object.values(attributes).filter((a) => typeof a === 'string' && a.startsWith('ml.')),
    ]),
  ];
  const value = fc.oneof(
    fc.constantFrom('a', 'b', 'train', 'prod', '1', 'train@1'),
    fc.uuid(),
    fc.integer(),
    fc.constant(null),
    fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 3 }),
  );

  it('decide the ids, edges and aliases recordLineage finds in a body', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...lineageEvents),
        fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 14 }),
        (event, body) => {
          const r = parseRecordLine(
            `{"v":2,"chain":"c","seq":1,"prev":"${'0'.repeat(64)}","hash":"${'0'.repeat(64)}","body":${JSON.stringify({ ...body, 'event.name': event })}}`,
          );
          const lean = Object.fromEntries(Object.entries(body).filter(([k]) => LINEAGE_KEYS.includes(k)));
          const ids = (b: Record<string, unknown>) => {
            const l = recordLineage(r, b);
            return { nodes: l.nodes.map((n) => n.id), edges: l.edges, aliases: l.aliases };
          };
          expect(ids(lean)).toEqual(ids(body));
        },
      ),
      { numRuns: 3000 },
    );
  });
});
