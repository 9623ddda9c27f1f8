/**
 * The index's fan-out tables rewritten by someone who can write the journal directory (docs/security.md,
 * docs/internals.md "Fan-out tables"): each forgery below rewrites a table's bytes and recomputes the
 * section's SHA-256 (and the header's own, and its length, where the header changes) as such an attacker
 * would, so no checksum fails. Tables that cannot be what the index builder wrote are damaged tables: the
 * impact answer notes it and reads that segment's records, and equals the `--scan` answer. Tables that stay
 * well-formed (another UUID in a row, the servers' list reordered) are inside the documented boundary: the
 * lean answer takes what the index says; `--facts` and `mltrail verify` read the records.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listSegments } from '../../src/journal/index.js';
import { indexFile, JournalIndex } from '../../src/journal-index/index.js';
import { RELATIONS } from '../../src/lineage/record-lineage.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';

/** The real CLI; a forgery that made it hang fails here (killed after a minute) instead of timing the suite out. */
const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8', timeout: 60_000 });

/** What a command said on stderr, without the access-journal note (no access journal is set here). */
const said = (stderr: string) =>
  stderr
    .split('\n')
    .filter((l) => l !== '' && !/access was not recorded/.test(l))
    .join('\n');

const SERVED_ROW = 40;
const FOLLOW_ROW = 52;

/** An index file's header and where its fan-out section lies. */
interface IndexLayout {
  bytes: Buffer;
  header: {
    blocks: number;
    bytes: number;
    fileBytes: number;
    fanOut: { serverBytes: number; served: number; follows: number; poolBytes: number; sha256: string };
  };
  /** Where the header's JSON ends (its SHA-256 follows), and the fan-out section's bounds. */
  headerEnd: number;
  sectionAt: number;
  sectionEnd: number;
}

function layout(file: string): IndexLayout {
  const bytes = readFileSync(file);
  const len = bytes.readUInt32BE(8);
  const header = JSON.parse(bytes.toString('utf8', 12, 12 + len));
  const f = header.fanOut;
  const sectionAt = 12 + len + 32 + header.blocks * 34;
  const size = f.serverBytes + f.served * SERVED_ROW + f.follows * FOLLOW_ROW + f.poolBytes;
  return { bytes, header, headerEnd: 12 + len, sectionAt, sectionEnd: sectionAt + size };
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest();

/**
 * Writes the index file again with `section` as its fan-out tables and `header` (as edited) as its header:
 * the section's checksum in the header, the header's length, checksum and file size made to match, so every
 * check on checksums and sizes passes. `hashed` is what the section's checksum covers (default: `section`).
 */
function rewrite(file: string, l: IndexLayout, section: Buffer, hashed = section): void {
  const h = l.header;
  h.fanOut.sha256 = sha256(hashed).toString('hex');
  const table = l.bytes.subarray(l.headerEnd + 32, l.sectionAt);
  const rest = l.bytes.subarray(l.sectionEnd);
  let json = Buffer.alloc(0);
  for (let round = 0; round < 4; round++) {
    json = Buffer.from(JSON.stringify(h), 'utf8');
    const total = 12 + json.length + 32 + table.length + section.length + rest.length;
    if (total === h.fileBytes) break;
    h.fileBytes = total;
  }
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length, 0);
  writeFileSync(file, Buffer.concat([l.bytes.subarray(0, 8), len, json, sha256(json), table, section, rest]));
}

/** Edits the fan-out section in place (same size) and re-checksums it. */
function forgeRows(file: string, edit: (section: Buffer, l: IndexLayout) => void): void {
  const l = layout(file);
  const section = Buffer.from(l.bytes.subarray(l.sectionAt, l.sectionEnd));
  edit(section, l);
  rewrite(file, l, section);
}

/** Replaces the servers' list (the header's `serverBytes` follows) and re-checksums. */
function forgeServers(file: string, servers: (list: string[]) => string[]): void {
  const l = layout(file);
  const f = l.header.fanOut;
  const section = l.bytes.subarray(l.sectionAt, l.sectionEnd);
  const list = Buffer.from(JSON.stringify(servers(JSON.parse(section.toString('utf8', 0, f.serverBytes)))));
  const rows = section.subarray(f.serverBytes);
  f.serverBytes = list.length;
  rewrite(file, l, Buffer.concat([list, rows]));
}

/** Makes served row `row`'s id the pooled string `pool.subarray(start, end)`, `pool` appended to the string pool. */
function forgePooledId(file: string, row: number, pool: Buffer, start: number, end: number): void {
  const l = layout(file);
  const f = l.header.fanOut;
  const section = Buffer.concat([l.bytes.subarray(l.sectionAt, l.sectionEnd), pool]);
  const at = servedAt(l, row);
  section[at + 20] = 1;
  section.writeUInt32BE(f.poolBytes + start, at + 24);
  section.writeUInt32BE(end - start, at + 28);
  f.poolBytes += pool.length;
  rewrite(file, l, section);
}

const servedAt = (l: IndexLayout, r: number) => l.header.fanOut.serverBytes + r * SERVED_ROW;
const followAt = (l: IndexLayout, r: number) =>
  l.header.fanOut.serverBytes + l.header.fanOut.served * SERVED_ROW + r * FOLLOW_ROW;

let j: TrailJournal;
let chain = '';
/** The fixture chain's index file (it has one segment, holding both deployments' predictions). */
let indexOf: (dir: string) => string;
const queries = (): string[][] => [
  [j.raw.id, '--downstream'],
  [j.deployment1.id, '--downstream'],
  ['credit-risk@2', '--downstream'],
];
/** Each query's `--scan` answer: what every impact answer must be when a forgery is structurally impossible. */
const scanned = new Map<string, string>();
const work: string[] = [];

function copyJournal(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-fan-out-forgery-')), 'journal');
  work.push(dir);
  cpSync(j.dir, dir, { recursive: true });
  return dir;
}

beforeAll(async () => {
  j = await buildTrailJournal();
  const segments = listSegments(j.dir);
  expect(segments.map((s) => s.files.length)).toEqual([1]);
  chain = segments[0].chain;
  indexOf = (dir) => indexFile(dir, chain, listSegments(dir)[0].files[0]);
  for (const q of queries()) {
    const r = cli(['lineage', ...q, '--journal', j.dir, '--json', '--scan']);
    expect(r.status, r.stderr).toBe(0);
    scanned.set(q.join(' '), r.stdout);
  }
  // The fixture's table has what the forgeries need: two servers, decisions and feedback, no pooled id.
  const f = layout(indexOf(j.dir)).header.fanOut;
  expect(f).toMatchObject({ served: 2 * 6, poolBytes: 0 });
  expect(f.follows).toBeGreaterThan(12);
});

afterAll(() => {
  for (const d of work) rmSync(join(d, '..'), { recursive: true, force: true });
});

describe('fan-out tables that cannot be what the builder wrote are damaged tables, checksum or not', () => {
  const forgeries: [string, (file: string) => void, RegExp][] = [
    [
      'every served row names a server past the list',
      (file) =>
        forgeRows(file, (s, l) => {
          for (let r = 0; r < l.header.fanOut.served; r++) s.writeUInt32BE(2, servedAt(l, r) + 16);
        }),
      /served row 0 names server 2, the list has 2/,
    ],
    [
      "a served row's pooled id reference lies past the pool",
      (file) =>
        forgeRows(file, (s, l) => {
          const at = servedAt(l, 3);
          s[at + 20] = 1;
          s.writeUInt32BE(l.header.fanOut.poolBytes + 1, at + 24);
          s.writeUInt32BE(36, at + 28);
        }),
      /served row 3's id is not in the string pool/,
    ],
    [
      'a pooled id that is not UTF-8',
      (file) => forgePooledId(file, 3, Buffer.from([0x70, 0xff, 0xfe]), 0, 3),
      /the string pool is not UTF-8/,
    ],
    [
      'a pooled id that begins inside a character',
      (file) => forgePooledId(file, 3, Buffer.from('pé-1', 'utf8'), 2, 5),
      /served row 3's id is not in the string pool/,
    ],
    [
      "a decision's pooled prediction reference lies past the pool",
      (file) =>
        forgeRows(file, (s, l) => {
          const at = followAt(l, 0);
          s[at + 17] |= 1;
          s.writeUInt32BE(0, at + 20);
          s.writeUInt32BE(36, at + 24);
        }),
      /follow row 0's id is not in the string pool/,
    ],
    [
      "the rows' leading bytes overwritten",
      (file) => forgeRows(file, (s, l) => s.fill(0xff, servedAt(l, 0), servedAt(l, 0) + 64)),
      /served row 0's seq NaN is out of record order/,
    ],
    [
      'two served rows swapped (out of record order)',
      (file) =>
        forgeRows(file, (s, l) => {
          const a = Buffer.from(s.subarray(servedAt(l, 0), servedAt(l, 1)));
          s.copy(s, servedAt(l, 0), servedAt(l, 1), servedAt(l, 2));
          a.copy(s, servedAt(l, 1));
        }),
      /served row 1's seq \d+ is out of record order/,
    ],
    [
      "a served row's seq is not a whole number",
      (file) =>
        forgeRows(file, (s, l) =>
          s.writeDoubleBE(s.readDoubleBE(servedAt(l, 4) + 8) + 0.5, servedAt(l, 4) + 8),
        ),
      /served row 4's seq [\d.]+ is out of record order/,
    ],
    [
      "a decision's relation is not one that follows a prediction",
      (file) => forgeRows(file, (s, l) => (s[followAt(l, 2) + 16] = RELATIONS.indexOf('served'))),
      /follow row 2 has relation code 8/,
    ],
    [
      "a decision's relation code is past the relations",
      (file) => forgeRows(file, (s, l) => (s[followAt(l, 2) + 16] = 0xfe)),
      /follow row 2 has relation code 254/,
    ],
    [
      'the server list replaced by a shorter one',
      (file) => forgeServers(file, (list) => list.slice(0, 1)),
      /names server 1, the list has 1/,
    ],
    [
      'the server list replaced by a longer one',
      (file) => forgeServers(file, (list) => [...list, 'deployment-nobody-served']),
      /the server list has 3 servers, the rows name 2/,
    ],
    [
      'the server list naming one server twice',
      (file) => forgeServers(file, (list) => [list[0], list[0]]),
      /server list names a server twice/,
    ],
    [
      'the header counting one more served row, the section reaching into the entry blocks',
      (file) => {
        const l = layout(file);
        l.header.fanOut.served++;
        // The rows read are the section's, then the entry blocks' first 40 bytes: that is what is hashed.
        const section = l.bytes.subarray(l.sectionAt, l.sectionEnd);
        const read = l.bytes.subarray(l.sectionAt, l.sectionEnd + SERVED_ROW);
        rewrite(file, l, section, read);
        // The header grew by nothing or a digit; the file size it states is the rewritten file's.
      },
      // The pipeline's lookups read the entry blocks first, where the shifted section is found.
      /block 0 checksum does not match/,
    ],
  ];

  it.each(forgeries)('%s', (_name, forge, reason) => {
    const dir = copyJournal();
    forge(indexOf(dir));
    const note = new RegExp(
      `^mltrail: note: index not used for .*, scanned instead: .*\\.idx: .*(${reason.source}).*; "mltrail index" rebuilds it$`,
    );
    for (const q of queries()) {
      const r = cli(['lineage', ...q, '--journal', dir, '--json']);
      expect(r.error, q.join(' ')).toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      expect(() => JSON.parse(r.stdout)).not.toThrow();
      // The segment read from its records: the scan's answer, byte for byte.
      expect(r.stdout, q.join(' ')).toBe(scanned.get(q.join(' ')));
      expect(said(r.stderr)).toMatch(note);
    }
    // `mltrail index` finds the same tables stale and writes them again; the answers then come from them.
    const rebuilt = cli(['index', dir]);
    expect(rebuilt.stdout).toMatch(/^indexed 1 segment\(s\)/);
    const again = cli(['lineage', j.raw.id, '--downstream', '--journal', dir, '--json']);
    expect({ out: again.stdout, err: said(again.stderr) }).toEqual({
      out: scanned.get(`${j.raw.id} --downstream`),
      err: '',
    });
  });
});

describe('fan-out tables whose counts do not fit the sections around them', () => {
  it('are damaged even where no entry block is read first', () => {
    const dir = copyJournal();
    const l = layout(indexOf(dir));
    // Two more served rows and a follow row fewer: the section is 28 bytes longer, so the entry blocks
    // would begin 28 bytes later; the rows themselves are left as they are.
    l.header.fanOut.served += 2;
    l.header.fanOut.follows -= 1;
    rewrite(
      indexOf(dir),
      l,
      l.bytes.subarray(l.sectionAt, l.sectionEnd),
      l.bytes.subarray(l.sectionAt, l.sectionEnd + 2 * SERVED_ROW - FOLLOW_ROW),
    );
    const ix = JournalIndex.open(dir);
    try {
      expect(ix.fanOut(0)).toEqual({
        table: undefined,
        from: 0,
        size: statSync(listSegments(dir)[0].files[0]).size,
      });
      expect(ix.notes.map((n) => n.reason)).toEqual([
        `${indexOf(dir)}: fan-out tables do not end where the entry blocks begin`,
      ]);
    } finally {
      ix.close();
    }
  });
});

describe('an index file that is not one is no index', () => {
  const damages: [string, (file: string) => void, RegExp][] = [
    ['zero-length', (file) => writeFileSync(file, ''), /is not an mltrail segment index/],
    ['garbage', (file) => writeFileSync(file, 'garbage\n{"chain":"x"}\n'), /is not an mltrail segment index/],
    [
      'cut inside its fan-out tables',
      (file) => {
        const l = layout(file);
        writeFileSync(file, l.bytes.subarray(0, l.sectionAt + SERVED_ROW + 7));
      },
      /is \d+ bytes, its header says \d+ \(truncated or appended to\)/,
    ],
  ];
  it.each(damages)('%s', (_name, damage, reason) => {
    const dir = copyJournal();
    damage(indexOf(dir));
    for (const q of queries()) {
      const r = cli(['lineage', ...q, '--journal', dir, '--json']);
      expect(r.error).toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout, q.join(' ')).toBe(scanned.get(q.join(' ')));
      expect(said(r.stderr)).toMatch(reason);
    }
  });
});

describe('well-formed forgeries are inside the documented boundary', () => {
  // docs/internals.md: the lean answer takes what the index says; --facts and `mltrail verify` read the
  // records. So what is asserted is that: a well-formed answer (which may name other predictions: that is
  // the boundary, not a promise either way), and the answers from the records unchanged.
  const forgeries: [string, (file: string) => void][] = [
    [
      "a served row's UUID replaced by another",
      (file) =>
        forgeRows(file, (s, l) =>
          Buffer.from('019a0000000070008000000000000001', 'hex').copy(s, servedAt(l, 2) + 24),
        ),
    ],
    ['the server list reordered', (file) => forgeServers(file, (list) => [...list].reverse())],
  ];
  it.each(forgeries)('%s', (_name, forge) => {
    const dir = copyJournal();
    const verifiedBefore = cli(['verify', dir, '--json']);
    forge(indexOf(dir));
    for (const q of queries()) {
      const r = cli(['lineage', ...q, '--journal', dir, '--json']);
      expect(r.error).toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      const lean = JSON.parse(r.stdout) as { root: unknown; nodes: unknown[]; edges: unknown[] };
      expect(lean.root).toEqual(JSON.parse(scanned.get(q.join(' '))!).root);
      expect([Array.isArray(lean.nodes), Array.isArray(lean.edges)]).toEqual([true, true]);
      const facts = cli(['lineage', ...q, '--journal', dir, '--json', '--facts']);
      const factsScanned = cli(['lineage', ...q, '--journal', j.dir, '--json', '--facts', '--scan']);
      expect(facts.status, facts.stderr).toBe(0);
      expect(facts.stdout).toBe(factsScanned.stdout);
    }
    const verified = cli(['verify', dir, '--json']);
    expect(verified.status).toBe(verifiedBefore.status);
  });
});
