import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ChainVerifier,
  ChainWriter,
  canonicalize,
  generateSigner,
  serializeRecord,
  uuidv7,
  verifyConsistency,
} from '../../src/integrity/index.js';
import { rootOf } from '../../src/integrity/merkle.js';
import { AuditLog, chainDir, segmentName } from '../../src/journal/index.js';
import {
  indexJournal,
  TileReader,
  tilePath,
  tilesDir,
  verifySinceCheckpoint,
  writeTiles,
} from '../../src/journal-index/index.js';
import { consistencyProofBy } from '../../src/journal-index/merkle-tiles.js';
import { ATTR_ML_PREDICTION_ID } from '../../src/semconv/attributes.js';
import { EVENT_ML_PREDICTION } from '../../src/semconv/events.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });

const root = mkdtempSync(join(tmpdir(), 'mltrail-incremental-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

/** A chain of `n` prediction records (a signed checkpoint after every 50), as its journal lines. */
function chainLines(n: number): { chain: string; lines: string[]; notes: Map<number, string> } {
  const { signer } = generateSigner('incremental-test');
  const w = new ChainWriter({ signer, checkpointEvery: 50 });
  const lines: string[] = [];
  const notes = new Map<number, string>();
  for (let i = 0; i < n; i++) {
    const id = uuidv7();
    const ts = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
    const body = canonicalize({
      'event.name': EVENT_ML_PREDICTION,
      timestamp: ts,
      severity_text: 'INFO',
      [ATTR_ML_PREDICTION_ID]: id,
      'ml.prediction.score': i / n,
    });
    for (const r of w.append({ event: EVENT_ML_PREDICTION, sev: 'INFO', ts, attrs: {}, body })) {
      lines.push(serializeRecord(r));
      const cp = w.latestCheckpoint();
      if (cp !== undefined && !notes.has(cp.size)) notes.set(cp.size, cp.note);
    }
  }
  return { chain: w.chainId, lines, notes };
}

/** Writes lines into a journal directory as segments of `perSegment` lines. */
function writeJournal(dir: string, chain: string, lines: string[], perSegment = 250): void {
  const cdir = chainDir(dir, chain);
  rmSync(cdir, { recursive: true, force: true });
  mkdirSync(cdir, { recursive: true });
  for (let s = 0; s * perSegment < lines.length; s++)
    writeFileSync(
      join(cdir, segmentName(s + 1)),
      lines
        .slice(s * perSegment, (s + 1) * perSegment)
        .map((l) => `${l}\n`)
        .join(''),
    );
}

function newDir(): string {
  return join(root, `j${dirs++}`);
}

/** Full verification of the journal with the held checkpoint (what the tamper tests run). */
function fullVerify(dir: string, held: { note: string; source: string }) {
  const v = new ChainVerifier({ checkpoints: [held] });
  readIntoVerifier(dir, v);
  return v.finish();
}

function incremental(dir: string, held: { note: string; source: string }) {
  const { report, incremental } = verifySinceCheckpoint(dir, held);
  const ok = report.ok && incremental.tilesMatch && incremental.consistency?.verified !== false;
  return { ok, report, incremental };
}

describe('verify --since-checkpoint HELD --incremental', () => {
  const base = chainLines(600);
  // The checkpoint nearest the middle of the chain is the one held.
  const heldSize = [...base.notes.keys()].find((s) => s >= 300)!;
  const held = { note: base.notes.get(heldSize)!, source: 'held.txt' };

  it('reads only the records since the held checkpoint and says the old range is covered by the consistency proof', () => {
    const dir = newDir();
    writeJournal(dir, base.chain, base.lines);
    indexJournal(dir);
    const heldFile = join(root, `held-${dirs}.txt`);
    writeFileSync(heldFile, held.note);
    const r = cli(['verify', dir, '--since-checkpoint', heldFile, '--incremental']);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const newest = Math.max(...base.notes.keys());
    const since = base.lines.length - heldSize;
    expect(r.stdout).toContain(
      `incremental: seq 0..${heldSize - 1} not re-read: covered by the held checkpoint (size ${heldSize}, ${heldFile}) and the RFC 6962 consistency proof to checkpoint size ${newest}`,
    );
    expect(r.stdout).toContain(`${since} record(s) since seq ${heldSize}, verified in full`);
    const json = JSON.parse(
      cli(['verify', dir, '--since-checkpoint', heldFile, '--incremental', '--json']).stdout,
    );
    expect(json.ok).toBe(true);
    expect(json.records).toBe(since);
    expect(json.incremental).toEqual({
      chain: base.chain,
      held: { size: heldSize, source: heldFile },
      tilesMatch: true,
      tilesSize: base.lines.length,
      consistency: { from: heldSize, to: newest, proofHashes: expect.any(Number), verified: true },
      newRecords: since,
    });
  });

  it('catches every mutation of the new records that full verification catches (and raises no false alarm)', () => {
    const dir = newDir();
    // The tiles are written while the journal is intact (as the writer does when it seals a segment).
    writeJournal(dir, base.chain, base.lines);
    indexJournal(dir);
    const mutation = fc.record({
      kind: fc.constantFrom('byte', 'delete', 'swap', 'replay', 'conflict', 'torn', 'none'),
      at: fc.integer({ min: heldSize, max: base.lines.length - 2 }),
      byte: fc.nat(),
      // Small segments, or one segment the start of the new records is searched for by bisection.
      perSegment: fc.constantFrom(250, 1000),
    });
    let caught = 0;
    fc.assert(
      fc.property(mutation, ({ kind, at, byte, perSegment }) => {
        const lines = [...base.lines];
        let tail = '\n';
        if (kind === 'byte') {
          const b = Buffer.from(lines[at]);
          const i = byte % b.length;
          b[i] = b[i] === 0x30 ? 0x31 : 0x30;
          lines[at] = b.toString('latin1');
        } else if (kind === 'delete') lines.splice(at, 1);
        else if (kind === 'swap') [lines[at], lines[at + 1]] = [lines[at + 1], lines[at]];
        else if (kind === 'replay') lines[at] = lines[at - 1 - (byte % 50)];
        else if (kind === 'conflict')
          lines.splice(at + 1, 0, lines[at].replace('"severity_text":"INFO"', '"severity_text":"WARN"'));
        else if (kind === 'torn') {
          lines.length = at + 1;
          tail = '';
        }
        writeJournal(dir, base.chain, lines, perSegment);
        if (tail === '') {
          // The last line loses its newline and some bytes: a torn write.
          const seg = join(chainDir(dir, base.chain), segmentName(Math.floor(at / perSegment) + 1));
          const text = readFileSync(seg, 'utf8');
          writeFileSync(seg, text.slice(0, text.length - 1 - (byte % 20)));
        }
        const full = fullVerify(dir, held);
        const inc = incremental(dir, held);
        expect(inc.ok, `${kind} at ${at}`).toBe(full.ok);
        if (!full.ok) caught++;
        // Every problem full verification names in the new range, incremental names too.
        const kinds = (r: typeof full) =>
          new Set(
            [...r.problems, ...r.chains.flatMap((c) => c.problems)]
              .filter((p) => p.seq === undefined || p.seq >= heldSize)
              .map((p) => p.kind),
          );
        for (const k of kinds(full)) expect(kinds(inc.report), `${kind} at ${at}`).toContain(k);
        // At the same places: the lines read after the search are numbered as in the whole file.
        const places = (r: typeof full) =>
          r.chains
            .flatMap((c) => c.problems)
            .filter((p) => p.seq !== undefined && p.seq >= heldSize)
            .map((p) => `${p.kind} seq ${p.seq} at ${p.location}`);
        expect(places(inc.report), `${kind} at ${at}`).toEqual(places(full));
        if (full.ok)
          expect(inc.report.chains[0].signatures.filter((x) => !x.external).map((x) => x.location)).toEqual(
            full.chains[0].signatures.filter((x) => !x.external && x.size >= heldSize).map((x) => x.location),
          );
      }),
      { numRuns: 40 },
    );
    expect(caught).toBeGreaterThan(10);
  });

  it('a rewritten history is caught by the tiles no longer matching the held root; missing or altered tiles never verify', () => {
    const dir = newDir();
    writeJournal(dir, base.chain, base.lines);
    indexJournal(dir);
    const heldFile = join(root, `held-${dirs}.txt`);
    writeFileSync(heldFile, held.note);
    const run = () => cli(['verify', dir, '--since-checkpoint', heldFile, '--incremental']);
    expect(run().status).toBe(0);

    // A tile altered: the stored tree no longer hashes to the held root. (Leaves 256..511: the held tree's
    // compact range takes its subtree after the first 256 leaves from there; those first 256 come from the
    // level-1 tile, so an altered tile/0/000 would change nothing this check reads.)
    const tile = join(tilesDir(dir, base.chain), tilePath(0, 1));
    const bytes = readFileSync(tile);
    bytes[7] ^= 1;
    writeFileSync(tile, bytes);
    let r = run();
    expect(r.status).toBe(1);
    expect(r.stdout).toContain(`incremental: seq 0..${heldSize - 1} NOT covered`);
    expect(r.stdout).toMatch(/inconsistent-checkpoint .*do not hash to the held checkpoint's root/);

    // Tiles gone: a clear error naming what to run.
    rmSync(join(dir, 'tiles'), { recursive: true });
    r = run();
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/cover 0 records, fewer than the held checkpoint's \d+: run "mltrail index"/);

    // An old record rewritten (its hash changed) and the tiles rebuilt from the rewritten chain: the
    // history no longer extends the held checkpoint, and incremental verification says so (as full does).
    const lines = [...base.lines];
    lines[10] = lines[10].replace(/"hash":"(.)/, (_, c) => `"hash":"${c === 'a' ? 'b' : 'a'}`);
    writeJournal(dir, base.chain, lines);
    expect(cli(['index', dir, '--force']).status).toBe(0);
    r = run();
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('NOT covered');
    expect(fullVerify(dir, held).ok).toBe(false);

    // A byte of an old record's body changed with the tiles left as they were: incremental verification
    // does not re-read the old range (it says so), full verification catches it.
    const edited = [...base.lines];
    edited[10] = edited[10].replace('"severity_text":"INFO"', '"severity_text":"WARN"');
    writeJournal(dir, base.chain, edited);
    rmSync(join(dir, 'tiles'), { recursive: true });
    writeJournal(dir, base.chain, base.lines);
    indexJournal(dir);
    writeJournal(dir, base.chain, edited);
    r = run();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('not re-read');
    expect(fullVerify(dir, held).ok).toBe(false);
  });

  it('the journal writer keeps the tiles up to date as it seals segments', async () => {
    const dir = newDir();
    const { privateKey } = generateSigner('incremental-test');
    const log = new AuditLog({
      dir,
      segmentBytes: 16 * 1024,
      checkpointEvery: 20,
      signingKey: { key: privateKey },
    });
    for (let i = 0; i < 300; i++) {
      const ts = new Date().toISOString();
      log.append({
        event: EVENT_ML_PREDICTION,
        sev: 'INFO',
        ts,
        attrs: {},
        body: canonicalize({ 'event.name': EVENT_ML_PREDICTION, timestamp: ts, severity_text: 'INFO', n: i }),
      });
    }
    await log.close();
    const chain = log.chainId;
    const tiles = new TileReader(dir, chain);
    const lines = readJournalLines(dir, chain);
    expect(tiles.size).toBe(lines.length);
    expect(tiles.mth(0, lines.length)).toEqual(
      rootOf(lines.map((l) => Buffer.from(JSON.parse(l).hash, 'hex'))),
    );
    expect(existsSync(join(tilesDir(dir, chain), 'checkpoint'))).toBe(true);
  });
});

function readJournalLines(dir: string, chain: string): string[] {
  const cdir = chainDir(dir, chain);
  const out: string[] = [];
  for (let s = 1; existsSync(join(cdir, segmentName(s))); s++)
    out.push(
      ...readFileSync(join(cdir, segmentName(s)), 'utf8')
        .split('\n')
        .filter((l) => l !== ''),
    );
  return out;
}

describe('Merkle tiles (C2SP tlog-tiles)', () => {
  it('names tiles as the spec does', () => {
    expect(tilePath(0, 0)).toBe('tile/0/000');
    expect(tilePath(0, 1234067)).toBe('tile/0/x001/x234/067');
    expect(tilePath(1, 5, 17)).toBe('tile/1/005.p/17');
    expect(tilePath(2, 1000)).toBe('tile/2/x001/000');
  });

  it('hold the RFC 6962 tree of the chain, built in any number of steps, across three tile levels', () => {
    // Lines carry only what tiles read (seq and hash): 70,000 leaves reach level 2 (65,536 per level-2 node).
    const n = 70_000;
    const leaves = Array.from({ length: n }, (_, i) => rootOf([Buffer.from(`leaf ${i}`.padEnd(32, '.'))]));
    const lines = leaves.map(
      (h, i) =>
        `{"v":2,"chain":"c","seq":${i},"prev":"${'0'.repeat(64)}","hash":"${h.toString('hex')}","body":{}}`,
    );
    fc.assert(
      fc.property(
        fc
          .uniqueArray(fc.integer({ min: 1, max: n - 1 }), { maxLength: 3 })
          .map((a) => [...a.sort((x, y) => x - y), n]),
        fc.array(fc.tuple(fc.integer({ min: 1, max: n }), fc.integer({ min: 1, max: n })), {
          minLength: 3,
          maxLength: 3,
        }),
        (steps, pairs) => {
          const dir = newDir();
          const seg = join(chainDir(dir, 'c'), segmentName(1));
          mkdirSync(chainDir(dir, 'c'), { recursive: true });
          let written = 0;
          for (const size of steps) {
            writeFileSync(
              seg,
              lines
                .slice(0, size)
                .map((l) => `${l}\n`)
                .join(''),
            );
            expect(writeTiles(dir, 'c', [seg])).toMatchObject({ from: written, size });
            written = size;
          }
          const tiles = new TileReader(dir, 'c');
          expect(tiles.size).toBe(n);
          // The level-0 tile holds the leaves; level 1 the roots of 256 of them.
          expect(readFileSync(join(tilesDir(dir, 'c'), 'tile/0/000'))).toEqual(
            Buffer.concat(leaves.slice(0, 256)),
          );
          expect(tiles.hashAt(1, 3)).toEqual(rootOf(leaves, 768, 1024));
          expect(tiles.hashAt(2, 0)).toEqual(rootOf(leaves, 0, 65536));
          for (const [a, b] of pairs) {
            const [m, k] = a <= b ? [a, b] : [b, a];
            expect(tiles.mth(0, k)).toEqual(rootOf(leaves, 0, k));
            const proof = consistencyProofBy(m, k, (lo, hi) => tiles.mth(lo, hi));
            expect(verifyConsistency(m, k, rootOf(leaves, 0, m), rootOf(leaves, 0, k), proof)).toBe(true);
          }
          rmSync(dir, { recursive: true, force: true });
        },
      ),
      { numRuns: 4 },
    );
  }, 300_000);
});
