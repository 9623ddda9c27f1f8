import { spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalize } from '../../src/integrity/index.js';
import { AuditLog, listSegments } from '../../src/journal/index.js';
import { indexFile, JournalIndex } from '../../src/journal-index/index.js';
import { createTrail } from '../../src/trail/index.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });

/**
 * A `lineage --json` answer as sets: the index streams predictions after the in-memory part, so nodes and
 * edges may come in another order than the full scan's breadth-first one.
 */
const canon = (stdout: string) => {
  const r = JSON.parse(stdout) as { root: unknown; nodes: unknown[]; edges: unknown[] };
  return {
    root: r.root,
    nodes: r.nodes.map((n) => JSON.stringify(n)).sort(),
    edges: r.edges.map((e) => JSON.stringify(e)).sort(),
  };
};

/** What a command said on stderr, without the access-journal note (no access journal is set here). */
const said = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l !== '' && !/access was not recorded/.test(l))
    .join('\n');

let j: TrailJournal;
/** The answers of a full scan (`--scan`), the reference every indexed answer must equal. */
const expected = new Map<string, string>();
const queries = (): string[][] => [
  [j.declined, '--upstream'],
  [j.raw.id, '--downstream'],
  ['credit-risk@1', '--downstream'],
  [j.deployment2.id],
];

/** The chain the fixture wrote (lookups add access records in chains of their own). */
let fixtureChain = '';

/** The index files of the fixture's chain (of every chain with `all`). */
function indexFiles(dir: string, all = false): string[] {
  return listSegments(dir)
    .filter(({ chain }) => all || chain === fixtureChain)
    .flatMap(({ chain, files }) => files.map((f) => indexFile(dir, chain, f)));
}

/** The fixture chain's first segment. */
function fixtureSegment(dir: string): string {
  return listSegments(dir).find(({ chain }) => chain === fixtureChain)!.files[0];
}

/** A copy of the fixture journal (each test damages its own). */
function copyJournal(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-index-damage-')), 'journal');
  cpSync(j.dir, dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  j = await buildTrailJournal();
  fixtureChain = listSegments(j.dir)[0].chain;
  for (const q of queries()) {
    const r = cli(['lineage', ...q, '--journal', j.dir, '--json', '--scan']);
    expect(r.status, r.stderr).toBe(0);
    expect(said(r.stderr)).toBe('');
    expected.set(q.join(' '), r.stdout);
  }
});

describe('the journal writer indexes what it seals', () => {
  it('indexes every segment at rotation and the last one at close, and lineage then reads no segment whole', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-index-writer-')), 'journal');
    const trail = await createTrail({
      serviceName: 'w',
      redactor: false,
      sink: new AuditLog({ dir, segmentBytes: 4096 }),
    });
    const data = await trail.dataset({ name: 'd', data: 'rows' });
    const model = await trail.register({ name: 'm', version: '1', data: 'w' });
    trail.train({ model: 'm', inputs: [data] }, () => 1)();
    let last = '';
    const predict = trail.predict({ model, onRecorded: (p) => (last = p.id) }, (x: number) => x);
    for (let i = 0; i < 40; i++) {
      predict(i);
      await trail.flush();
    }
    await trail.shutdown();
    const segments = listSegments(dir)[0].files;
    expect(segments.length).toBeGreaterThan(3);
    for (const f of indexFiles(dir, true)) expect(existsSync(f), f).toBe(true);
    const ix = JournalIndex.open(dir);
    expect({ notes: ix.notes, scanned: ix.scannedLines, indexed: ix.indexedSegments }).toEqual({
      notes: [],
      scanned: 0,
      indexed: segments.length,
    });
    ix.close();
    expect(statSync(indexFiles(dir, true)[0]).mode & 0o777).toBe(0o600);
    const r = cli(['lineage', last, '--upstream', '--journal', dir, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(canon(r.stdout)).toEqual(
      canon(cli(['lineage', last, '--upstream', '--journal', dir, '--json', '--scan']).stdout),
    );
  });
});

describe('a record with something other than ids in a lineage list', () => {
  it('is indexed with the rest of its segment: only its string ids are edges, in the index and in a scan', async () => {
    // An app's bug, not an attack: a validator notes it in the record, the record is kept, and it used to
    // make its whole segment's index build throw (the segment then answered only by scanning).
    const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-index-odd-list-')), 'journal');
    const sink = new AuditLog({ dir, warn: false });
    const trail = await createTrail({ serviceName: 'w', redactor: false, sink });
    const data = await trail.dataset({ name: 'd', data: 'rows' });
    const ts = new Date().toISOString();
    const body = {
      'event.name': 'ml.transform.completed',
      timestamp: ts,
      severity_text: 'INFO',
      'ml.transform.id': 'odd-transform',
      'ml.transform.input_ids': [1, data.id, null, { id: 'x' }],
      'ml.transform.output_id': 'odd-output',
    };
    sink.append({ event: 'ml.transform.completed', sev: 'INFO', ts, attrs: {}, body: canonicalize(body) });
    await trail.shutdown();
    const built = cli(['index', dir, '--force']);
    expect(built.status, built.stderr).toBe(0);
    const ix = JournalIndex.open(dir);
    expect({ notes: ix.notes, scanned: ix.scannedLines }).toEqual({ notes: [], scanned: 0 });
    ix.close();
    const q = ['lineage', 'odd-transform', '--upstream', '--journal', dir, '--json'];
    const indexed = cli(q);
    const scanned = cli([...q, '--scan']);
    expect(indexed.status, indexed.stderr).toBe(0);
    expect(scanned.status, scanned.stderr).toBe(0);
    expect(canon(indexed.stdout)).toEqual(canon(scanned.stdout));
    const edges = (JSON.parse(indexed.stdout) as { edges: { from: unknown; to: unknown }[] }).edges;
    expect(edges.filter((e) => e.to === 'odd-transform').map((e) => e.from)).toEqual([data.id]);
  });
});

describe('a damaged, stale or missing index is detected and never changes an answer', () => {
  const damages: [string, (dir: string) => void, RegExp | undefined][] = [
    ['no index at all', () => undefined, undefined],
    ['deleted', (dir) => rmSync(join(dir, 'index'), { recursive: true }), undefined],
    ['truncated', (dir) => truncateSync(indexFiles(dir)[0], 100), /truncated/],
    [
      'a byte of an entry block altered',
      (dir) => {
        const f = indexFiles(dir)[0];
        const b = readFileSync(f);
        // The entry blocks end where the filter (64-byte blocks, the header says how many) begins.
        const header = JSON.parse(b.toString('utf8', 12, 12 + b.readUInt32BE(8)));
        b[b.length - header.filterBlocks * 64 - 3] ^= 0x20;
        writeFileSync(f, b);
      },
      /block \d+ checksum does not match/,
    ],
    [
      'a byte of the filter altered',
      (dir) => {
        const f = indexFiles(dir)[0];
        const b = readFileSync(f);
        const header = JSON.parse(b.toString('utf8', 12, 12 + b.readUInt32BE(8)));
        // Every filter block: whichever one a lookup reads is found damaged.
        for (let i = 0; i < header.filterBlocks; i++) b[b.length - i * 64 - 20] ^= 0x04;
        writeFileSync(f, b);
      },
      /filter block \d+ checksum does not match/,
    ],
    [
      'its header altered',
      (dir) => {
        const f = indexFiles(dir)[0];
        writeFileSync(f, readFileSync(f, 'utf8').replace('"records":', '"records":1'));
      },
      /header checksum does not match|is \d+ bytes/,
    ],
    [
      'the segment cut back',
      (dir) => {
        const seg = fixtureSegment(dir);
        truncateSync(seg, statSync(seg).size - 1000);
      },
      /cut back/,
    ],
    [
      'the segment replaced by one as long whose last line differs',
      (dir) => {
        const seg = fixtureSegment(dir);
        const b = readFileSync(seg);
        b[b.length - 20] = b[b.length - 20] === 0x30 ? 0x31 : 0x30;
        writeFileSync(seg, b);
      },
      /not the one indexed/,
    ],
  ];

  it.each(damages)('%s', (_name, damage, note) => {
    const dir = copyJournal();
    // The writers indexed their segments as they closed them.
    expect(cli(['index', dir]).stdout).toMatch(/^indexed 0 segment\(s\) .* \d+ already current/);
    if (_name === 'no index at all') rmSync(join(dir, 'index'), { recursive: true });
    damage(dir);
    const segmentCut = /segment/.test(_name);
    // What the journal's own index files hold (each lookup adds an access record in a chain of its own).
    const indexed = () =>
      indexFiles(dir)
        .slice(0, 1)
        .map((f) => (existsSync(f) ? readFileSync(f).toString('base64') : 'none'));
    const indexBefore = indexed();
    for (const q of queries()) {
      const r = cli(['lineage', ...q, '--journal', dir, '--json']);
      if (segmentCut) {
        // The journal itself changed: the answer is the full scan's of the changed journal.
        expect(canon(r.stdout)).toEqual(
          canon(cli(['lineage', ...q, '--journal', dir, '--json', '--scan']).stdout),
        );
      } else {
        expect(r.status, r.stderr).toBe(0);
        expect(canon(r.stdout), q.join(' ')).toEqual(canon(expected.get(q.join(' '))!));
      }
      if (note !== undefined) expect(said(r.stderr)).toMatch(note);
      else expect(said(r.stderr)).toBe('');
    }
    // Reading never writes an index: the damaged one is as the damage left it.
    expect(indexed()).toEqual(indexBefore);
    // `mltrail index` rebuilds what is stale, and the answers come from the index again.
    const rebuilt = cli(['index', dir]);
    expect(rebuilt.status, rebuilt.stderr).toBe(0);
    expect(rebuilt.stdout).toMatch(/^indexed [1-9]\d* segment\(s\)/);
    expect(cli(['index', dir]).stdout).toMatch(/^indexed 0 segment\(s\) .* already current/);
    const ix = JournalIndex.open(dir);
    expect(ix.notes).toEqual([]);
    ix.close();
    rmSync(join(dir, '..'), { recursive: true, force: true });
  });

  it('verify reads the journal, never the index: a garbage index changes nothing it says', () => {
    const dir = copyJournal();
    const clean = cli(['verify', dir, '--json']);
    cli(['index', dir]);
    for (const f of indexFiles(dir)) writeFileSync(f, 'garbage\n{"chain":"x"}\n');
    const r = cli(['verify', dir, '--json']);
    expect(r.status).toBe(clean.status);
    // (Each verify adds its own access record, so only the verdicts are compared.)
    const strip = (s: string) => {
      const o = JSON.parse(s) as { ok: boolean; problems: unknown[]; chains: { problems: unknown[] }[] };
      return { ok: o.ok, problems: [...o.problems, ...o.chains.flatMap((c) => c.problems)] };
    };
    expect(strip(r.stdout)).toEqual(strip(clean.stdout));
  });
});
