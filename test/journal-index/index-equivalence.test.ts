import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuditLog, listSegments } from '../../src/journal/index.js';
import { buildSegmentIndex, JournalIndex } from '../../src/journal-index/index.js';
import {
  LineageGraph,
  type LineageResult,
  type LineageStream,
  queryIndexed,
} from '../../src/lineage/index.js';
import {
  createTrail,
  type DatasetVersion,
  type Deployment,
  type ModelVersion,
} from '../../src/trail/index.js';

/** A random pipeline: what to create, each step choosing its inputs among what exists by index. */
const planArb = fc.record({
  datasets: fc.integer({ min: 1, max: 3 }),
  transforms: fc.array(fc.record({ inputs: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }) }), {
    maxLength: 2,
  }),
  runs: fc.array(
    fc.record({
      inputs: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }),
      fails: fc.boolean(),
      eval: fc.nat(),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  deployments: fc.array(fc.nat(), { maxLength: 3 }),
  predictions: fc.array(fc.record({ on: fc.nat(), decide: fc.boolean(), feedback: fc.boolean() }), {
    maxLength: 14,
  }),
  drifts: fc.array(fc.nat(), { maxLength: 2 }),
  /** After how many predictions the first half ends (indexed before the rest is written). */
  half: fc.nat(),
  /**
   * What happens to each segment's index: 0 current, 1 deleted, 2 truncated, 3 a filter block altered,
   * 4 header altered, 5 an entry block altered, 6 the fan-out tables altered.
   */
  damage: fc.array(fc.constantFrom(0, 0, 0, 1, 2, 3, 4, 5, 6), { minLength: 8, maxLength: 8 }),
  /** Index everything again once all is written (else segments written after the first half have none). */
  indexAtEnd: fc.boolean(),
});

type Plan = typeof planArb extends fc.Arbitrary<infer T> ? T : never;

/**
 * Writes the plan through the real trail API into a journal of small segments, indexes every segment after
 * the first half (so the last segment's index covers a prefix and the rest is an open tail), writes the
 * second half, then damages indexes as the plan says.
 */
async function writePlan(plan: Plan): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-index-prop-')), 'journal');
  const trail = await createTrail({
    serviceName: 'prop',
    redactor: false,
    sink: new AuditLog({ dir, segmentBytes: 3 * 1024, index: false }),
  });
  const pick = <T>(xs: T[], i: number) => xs[i % xs.length];
  const datasets: DatasetVersion[] = [];
  for (let i = 0; i < plan.datasets; i++)
    datasets.push(await trail.dataset({ name: `d${i}`, data: `rows ${i}`, source: `file:d${i}.csv` }));
  for (const [i, t] of plan.transforms.entries()) {
    let out: DatasetVersion | undefined;
    trail.transform(
      {
        name: `t${i}`,
        inputs: [...new Set(t.inputs.map((n) => pick(datasets, n)))],
        output: { name: `t${i}-out` },
        onRecorded: (d) => {
          out = d;
        },
      },
      () => `out ${i}`,
    )();
    if (out !== undefined) datasets.push(out);
  }
  const models: ModelVersion[] = [];
  for (const [i, r] of plan.runs.entries()) {
    let runId = '';
    try {
      trail.train(
        {
          model: 'm',
          inputs: [...new Set(r.inputs.map((n) => pick(datasets, n)))],
          onRecorded: (run) => {
            runId = run.id;
          },
        },
        () => {
          if (r.fails) throw new Error('did not converge');
          return [i];
        },
      )();
    } catch {
      continue;
    }
    trail.evaluate({ run: runId, dataset: pick(datasets, r.eval), metric: 'auc' }, () => 0.9)();
    models.push(await trail.register({ name: 'm', version: String(i + 1), run: runId, data: `w${i}` }));
    await trail.flush();
  }
  const deployments: Deployment[] = [];
  for (const m of plan.deployments)
    if (models.length > 0) deployments.push(trail.deploy({ model: pick(models, m), environment: 'prod' }));
  const servers: (Deployment | ModelVersion)[] = [...deployments, ...models];
  let written = 0;
  const half = servers.length === 0 ? 0 : plan.half % (plan.predictions.length + 1);
  const indexAll = async () => {
    await trail.flush();
    for (const { files } of listSegments(dir)) for (const f of files) buildSegmentIndex(dir, f);
  };
  for (const p of plan.predictions) {
    if (servers.length === 0) break;
    if (written++ === half) await indexAll();
    let id = '';
    trail.predict(
      {
        model: pick(servers, p.on),
        onRecorded: (r) => {
          id = r.id;
        },
      },
      (x: number) => x * 2,
    )(written);
    if (p.decide) trail.decide({ predictionId: id, outcome: 'approve' });
    if (p.feedback) trail.feedback({ predictionId: id, groundTruth: 'ok' });
    // One commit per prediction, so segments rotate between records (a commit never spans two segments).
    await trail.flush();
  }
  for (const d of plan.drifts)
    if (deployments.length > 0) {
      const dep = pick(deployments, d);
      const { id } = trail.recordDrift({
        feature: 'x',
        test: 'ks',
        statistic: 0.5,
        pValue: 0.01,
        threshold: 0.05,
        windowSize: 10,
        model: { name: dep.model.name, version: dep.model.version },
        deploymentId: dep.id,
      });
      trail.retrain({ reason: 'drift', trigger: 'drift', triggerIds: [id], previous: dep.model });
    }
  if (written <= half || plan.indexAtEnd) await indexAll();
  await trail.shutdown();
  let s = 0;
  for (const { chain, files } of listSegments(dir))
    for (const f of files) {
      const idx = join(dir, 'index', chain, f.split('/').pop()!.replace('.ndjson', '.idx'));
      const damage = plan.damage[s++ % plan.damage.length];
      try {
        const bytes = readFileSync(idx);
        if (damage === 1) rmSync(idx);
        if (damage === 2) truncateSync(idx, Math.floor(bytes.length / 2));
        if (damage === 3) {
          bytes[bytes.length - 5] ^= 1;
          writeFileSync(idx, bytes);
        }
        if (damage === 5) {
          const header = JSON.parse(bytes.toString('utf8', 12, 12 + bytes.readUInt32BE(8)));
          bytes[bytes.length - header.filterBlocks * 64 - 5] ^= 1;
          writeFileSync(idx, bytes);
        }
        if (damage === 6) {
          const len = bytes.readUInt32BE(8);
          const header = JSON.parse(bytes.toString('utf8', 12, 12 + len));
          const at = 12 + len + 32 + header.blocks * 34;
          const size =
            header.fanOut.serverBytes +
            header.fanOut.served * 40 +
            header.fanOut.follows * 52 +
            header.fanOut.poolBytes;
          bytes[at + Math.floor(size / 2)] ^= 1;
          writeFileSync(idx, bytes);
        }
        if (damage === 4) {
          bytes[20] ^= 1;
          writeFileSync(idx, bytes);
        }
      } catch {
        // a segment written after the indexing has no index: already the "deleted" case
      }
    }
  return dir;
}

/** An answer as the CLI writes a streamed one: the in-memory part, then each streamed node and edge. */
const streamedAnswer = (s: LineageStream): LineageResult => {
  const nodes = [...s.result.nodes];
  const edges = [...s.result.edges];
  for (const { node, edge } of s.streamed()) {
    if (node !== undefined) nodes.push(node);
    edges.push(edge);
  }
  return { root: s.root, nodes, edges };
};

/** A streamed answer as the CLI writes it without --facts: the streamed nodes lean. */
const leanAnswer = (s: LineageStream) => {
  const nodes: unknown[] = [...s.result.nodes];
  const edges = [...s.result.edges];
  for (const { node, edge } of s.collectLean()) {
    if (node !== undefined) nodes.push(node);
    edges.push(edge);
  }
  return { nodes, edges };
};

/** A full streamed answer with its streamed nodes made lean (id, kind, record). */
const leanOfFull = (s: LineageStream) => {
  const nodes: unknown[] = [...s.result.nodes];
  const edges = [...s.result.edges];
  for (const { node, edge } of s.streamed()) {
    if (node !== undefined) nodes.push({ id: node.id, kind: node.kind, record: node.record });
    edges.push(edge);
  }
  return { nodes, edges };
};

const canon = (r: LineageResult) => ({
  root: r.root.id,
  nodes: r.nodes.map((n) => JSON.stringify(n)).sort(),
  edges: r.edges.map((e) => `${e.from} ${e.relation} ${e.to}`).sort(),
});

describe('the journal index answers exactly what a full scan answers', () => {
  it('for every id and direction on random journals, whatever state each segment index is in', async () => {
    const seen = { indexed: 0, damaged: 0, missing: 0, segments: 0 };
    await fc.assert(
      fc.asyncProperty(planArb, async (plan) => {
        const dir = await writePlan(plan);
        try {
          const full = LineageGraph.fromJournal(dir);
          const ix = JournalIndex.open(dir);
          seen.segments += ix.segmentCount;
          try {
            const ids = [...full.nodes.keys()];
            for (const id of ids)
              for (const direction of ['upstream', 'downstream', 'both'] as const) {
                const answer = queryIndexed(ix, id, direction);
                expect(answer, `${id} ${direction}`).toBeDefined();
                const expected = canon(full.query(id, direction));
                expect(canon(answer!.collect()), `${id} ${direction}`).toEqual(expected);
                // Streamed (as the CLI writes an impact answer) equals collected, and so does a full scan
                // that streams (what `--scan` writes).
                expect(canon(streamedAnswer(answer!))).toEqual(expected);
                const scan = LineageGraph.streamJournal(dir, id, direction);
                expect(canon(streamedAnswer(scan))).toEqual(expected);
                // The lean answer (from the index's fan-out tables where it can) is the full one's ids,
                // kinds and records, in the same order, and the same from a scan.
                const lean = leanAnswer(answer!);
                expect(lean, `${id} ${direction} lean`).toEqual(leanOfFull(answer!));
                expect(lean, `${id} ${direction} lean scan`).toEqual(leanAnswer(scan));
              }
            expect(queryIndexed(ix, 'no-such-id', 'both')).toBeUndefined();
            seen.indexed += ix.indexedSegments;
            for (const n of ix.notes)
              if (n.reason === 'no index') seen.missing++;
              else seen.damaged++;
          } finally {
            ix.close();
          }
        } finally {
          rmSync(join(dir, '..'), { recursive: true, force: true });
        }
      }),
      { numRuns: 25 },
    );
    // The runs covered every case: segments answered from their index, damaged indexes, missing ones.
    expect(seen.indexed).toBeGreaterThan(10);
    expect(seen.damaged).toBeGreaterThan(5);
    expect(seen.missing).toBeGreaterThan(5);
    expect(seen.segments).toBeGreaterThan(50);
  }, 300_000); // 25 random journals, each written by real writers: minutes on a shared machine
});
