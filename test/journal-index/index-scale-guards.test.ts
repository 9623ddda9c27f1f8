import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { listSegments } from '../../src/journal/index.js';
import {
  EntryKind,
  indexFile,
  indexJournal,
  JournalIndex,
  lineEntries,
  SegmentIndexFile,
  type SegmentIndexHeader,
} from '../../src/journal-index/index.js';
import { IndexCoverageError } from '../../src/journal-index/journal-index.js';
import { uuidV7Time } from '../../src/journal-index/segment-index.js';
import { segmentLines } from '../../src/journal-index/segment-lines.js';
import { LineageGraph, queryIndexed } from '../../src/lineage/index.js';
import { EvidenceDir } from '../../src/sources/evidence-files.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });

let j: TrailJournal;
beforeAll(async () => {
  j = await buildTrailJournal();
  indexJournal(j.dir);
});

/** Every index file of the journal with its header. */
function headers(dir: string): { file: string; header: SegmentIndexHeader }[] {
  const files = new EvidenceDir(dir);
  return listSegments(dir).flatMap(({ chain, files: segs }) =>
    segs.map((s) => {
      const f = SegmentIndexFile.open(files, indexFile(dir, chain, s));
      f.close();
      return { file: f.file, header: f.header };
    }),
  );
}

describe('a lookup never silently turns into holding the whole journal', () => {
  it('refuses, naming what to run, when more of the journal than it may scan has no current index', () => {
    const dir = j.dir;
    // With a limit below the journal's size and no index, opening the index is a clear error, not a scan.
    const copy = `${dir}-noindex`;
    spawnSync('cp', ['-a', dir, copy]);
    rmSync(`${copy}/index`, { recursive: true });
    try {
      expect(() => JournalIndex.open(copy, { maxScanBytes: 1024 })).toThrow(IndexCoverageError);
      expect(() => JournalIndex.open(copy, { maxScanBytes: 1024 })).toThrow(
        /does not cover \d+ segment\(s\) .*run "mltrail index --journal .*" to bring the index up to date, or pass --scan/,
      );
      // Within the limit the same journal is scanned, and answers as the full scan does.
      const ix = JournalIndex.open(copy);
      const answer = queryIndexed(ix, j.declined, 'upstream')!.collect();
      ix.close();
      expect(answer.nodes.map((n) => n.id).sort()).toEqual(
        LineageGraph.fromJournal(copy)
          .query(j.declined, 'upstream')
          .nodes.map((n) => n.id)
          .sort(),
      );
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it('an index of an older format is not read: its segment is scanned and "mltrail index" rebuilds it', () => {
    const copy = `${j.dir}-old`;
    spawnSync('cp', ['-a', j.dir, copy]);
    try {
      const [{ file }] = headers(copy);
      const b = readFileSync(file);
      const len = b.readUInt32BE(8);
      // Same length, checksum recomputed: an index as format 3 wrote it, as far as its header goes.
      const json = Buffer.from(b.toString('utf8', 12, 12 + len).replace('"version":4', '"version":3'));
      json.copy(b, 12);
      createHash('sha256')
        .update(json)
        .digest()
        .copy(b, 12 + len);
      writeFileSync(file, b);
      const ix = JournalIndex.open(copy);
      expect(ix.notes).toEqual([
        {
          segment: expect.any(String),
          reason: expect.stringMatching(/unsupported index format mltrail-segment-index 3$/),
        },
      ]);
      ix.close();
      expect(indexJournal(copy).built.map((x) => x.file)).toEqual([file]);
      const again = JournalIndex.open(copy);
      expect(again.notes).toEqual([]);
      again.close();
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });
});

describe('segment headers let a lookup skip a segment without reading it', () => {
  it('every UUIDv7 key of every entry lies inside its kind’s time ranges, and other keys are flagged', () => {
    const files = new EvidenceDir(j.dir);
    let checked = 0;
    for (const { chain, files: segs } of listSegments(j.dir))
      for (const s of segs) {
        const f = SegmentIndexFile.open(files, indexFile(j.dir, chain, s));
        for (const l of segmentLines(files, s))
          for (const e of lineEntries(l.text, l.offset, l.length)?.entries ?? []) {
            const kt = f.header.keyTimes[e.kind];
            expect(kt, `${e.kind} ${e.key}`).toBeDefined();
            const t = uuidV7Time(e.key);
            if (t === undefined) expect(kt!.other).toBe(true);
            else
              expect(
                kt!.ranges.some(([a, b]) => a <= t && t <= b),
                e.key,
              ).toBe(true);
            expect(f.mayHold(e.key, e.kind)).toBe(true);
            checked++;
          }
        // A UUIDv7 from before the journal began is ruled out by every kind's ranges, with no read.
        expect(f.mayHold('00000000-0001-7000-8000-000000000000', EntryKind.Node)).toBe(false);
        f.close();
      }
    expect(checked).toBeGreaterThan(50);
  });

  it('a served prediction is kept apart from what else comes out of a deployment', () => {
    const ix = JournalIndex.open(j.dir);
    try {
      // In the fan-out tables (and, for an open segment's unindexed tail, as scanned Served entries).
      const served: string[] = [];
      for (let s = 0; s < ix.segmentCount; s++) {
        const { table } = ix.fanOut(s);
        if (table !== undefined)
          for (let r = 0; r < table.served; r++)
            if (table.servers[table.servedServer(r)] === j.deployment1.id)
              served.push(table.servedPrediction(r));
      }
      for (const h of ix.entries(j.deployment1.id, EntryKind.Served)) served.push(h.other);
      expect(served.sort()).toEqual([...j.predictions1].sort());
      // The segments that hold them say so without a block read (filter and key times).
      for (let s = 0; s < ix.segmentCount; s++)
        if (ix.fanOut(s).table?.servers.includes(j.deployment1.id))
          expect(ix.mayHold(s, j.deployment1.id, EntryKind.Served)).toBe(true);
      expect([...ix.entries(j.deployment1.id, EntryKind.Out)].every((h) => h.relation !== 'served')).toBe(
        true,
      );
    } finally {
      ix.close();
    }
  });

  it('the impact answer through the index equals the streamed full scan, written by the CLI either way', () => {
    const canon = (stdout: string) => {
      const r = JSON.parse(stdout) as { nodes: unknown[]; edges: unknown[] };
      return {
        nodes: r.nodes.map((n) => JSON.stringify(n)).sort(),
        edges: r.edges.map((e) => JSON.stringify(e)).sort(),
      };
    };
    const indexed = cli(['lineage', j.raw.id, '--downstream', '--json', '--journal', j.dir]);
    const scanned = cli(['lineage', j.raw.id, '--downstream', '--json', '--scan', '--journal', j.dir]);
    expect(indexed.status, indexed.stderr).toBe(0);
    expect(scanned.status, scanned.stderr).toBe(0);
    // Byte for byte: the lean answer from the index's fan-out tables is the one read from the records.
    expect(indexed.stdout).toEqual(scanned.stdout);
    const full = LineageGraph.fromJournal(j.dir).query(j.raw.id, 'downstream');
    const streamed = new Set(['prediction', 'decision', 'feedback']);
    const lean = {
      ...full,
      nodes: full.nodes.map((n) => (streamed.has(n.kind) ? { id: n.id, kind: n.kind, record: n.record } : n)),
    };
    expect(canon(indexed.stdout)).toEqual(canon(JSON.stringify(lean)));
    // With --facts, every node as the full graph has it, through the index or not.
    const facts = cli(['lineage', j.raw.id, '--downstream', '--json', '--facts', '--journal', j.dir]);
    const factsScanned = cli([
      'lineage',
      j.raw.id,
      '--downstream',
      '--json',
      '--facts',
      '--scan',
      '--journal',
      j.dir,
    ]);
    expect(facts.stdout).toEqual(factsScanned.stdout);
    expect(canon(facts.stdout)).toEqual(canon(JSON.stringify(full)));
  });
});
