import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  ChainVerifier,
  ChainWriter,
  canonicalize,
  generateSigner,
  parseRecordLine,
  serializeRecord,
} from '../../src/integrity/index.js';
import { AuditLog } from '../../src/journal/index.js';
import { withoutSigningKeyWarning } from '../process-warnings.js';

const { signer } = generateSigner('mltrail-test');

/** A chain of `n` records with a checkpoint every `every`, as journal lines. */
function journal(n: number, every: number, chainId?: string): { lines: string[]; final: string } {
  const chain = new ChainWriter({ signer, checkpointEvery: every, chainId });
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const ts = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
    const body = canonicalize({
      'event.name': 'ml.feedback',
      timestamp: ts,
      'ml.feedback.id': `f-${i}`,
      'ml.prediction.id': `p-${i}`,
    });
    for (const r of chain.append({
      event: 'ml.feedback',
      sev: 'INFO',
      ts,
      attrs: { 'ml.feedback.id': `f-${i}` },
      body,
    })) {
      lines.push(serializeRecord(r));
    }
  }
  const final = chain.checkpoint();
  lines.push(serializeRecord(final));
  return { lines, final: chain.latestCheckpoint()!.note };
}

function verify(lines: string[], external: string[] = []) {
  const v = new ChainVerifier({ checkpoints: external.map((note, i) => ({ note, source: `held-${i}` })) });
  lines.forEach((l, i) => {
    try {
      v.add(parseRecordLine(l), { file: 'mem', line: i + 1 });
    } catch (err) {
      v.addProblem({ kind: 'malformed', location: `mem:${i + 1}`, message: (err as Error).message });
    }
  });
  return v.finish();
}

describe('verify: intact journals', () => {
  it('an intact journal verifies, with every checkpoint checked', () => {
    const { lines, final } = journal(25, 10);
    const r = verify(lines, [final]);
    expect(r.problems).toEqual([]);
    expect(r.chains).toHaveLength(1);
    expect(r.chains[0]).toEqual(
      expect.objectContaining({
        records: 28,
        firstSeq: 0,
        lastSeq: 27,
        checkpointsVerified: 4,
        problems: [],
        erased: [],
      }),
    );
    expect(r.ok).toBe(true);
  });

  it('exact duplicates (at-least-once delivery) are fine, in any amount', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 30 }), fc.array(fc.nat(), { maxLength: 10 }), (n, picks) => {
        const { lines } = journal(n, 7);
        const dups = picks.map((p) => lines[p % lines.length]);
        const r = verify([...lines, ...dups]);
        expect(r.ok).toBe(true);
        expect(r.chains[0].duplicates).toBe(dups.length);
      }),
      { numRuns: 50 },
    );
  });
});

describe('verify: every single tampering is reported (property)', () => {
  const tamper = fc.record({
    n: fc.integer({ min: 2, max: 40 }),
    every: fc.integer({ min: 2, max: 9 }),
    kind: fc.constantFrom(
      'edit-body',
      'edit-hash',
      'edit-seq',
      'delete',
      'insert',
      'reorder',
      'truncate-tail',
    ),
    at: fc.nat(),
    other: fc.nat(),
  });

  it('detects edit, deletion, insertion, reorder and truncation (given a later checkpoint)', () => {
    fc.assert(
      fc.property(tamper, ({ n, every, kind, at, other }) => {
        const { lines, final } = journal(n, every);
        const i = at % lines.length;
        let j = other % lines.length;
        if (j === i) j = (i + 1) % lines.length;
        const out = [...lines];
        const rec: AuditRecord = parseRecordLine(out[i]);
        switch (kind) {
          case 'edit-body':
            rec.body = rec.body.replace(/"timestamp":"[^"]*"/, '"timestamp":"1999-01-01T00:00:00.000Z"');
            out[i] = serializeRecord(rec);
            break;
          case 'edit-hash':
            rec.hash = (rec.hash[0] === 'a' ? 'b' : 'a') + rec.hash.slice(1);
            out[i] = serializeRecord(rec);
            break;
          case 'edit-seq':
            rec.seq = rec.seq + lines.length;
            out[i] = serializeRecord(rec);
            break;
          case 'delete':
            // The newest record is covered by no checkpoint (it is the final checkpoint itself): deleting it
            // is tail truncation, which only a later checkpoint can reveal — docs/integrity.md says so.
            out.splice(Math.min(i, lines.length - 2), 1);
            break;
          case 'insert': {
            const forged = { ...rec, body: `${rec.body.slice(0, -1)},"forged":true}` };
            out.splice(i, 0, serializeRecord(forged));
            break;
          }
          case 'reorder':
            [out[i], out[j]] = [out[j], out[i]];
            break;
          case 'truncate-tail':
            // The final checkpoint covers every record before it, so cut at least one of those.
            out.splice(Math.min(Math.max(1, i), lines.length - 2), out.length);
            break;
        }
        const r = verify(out, [final]);
        expect(r.ok, `${kind} at ${i}`).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it('reports each problem kind with its location', () => {
    const { lines, final } = journal(12, 5);
    const swapped = [...lines];
    [swapped[3], swapped[4]] = [swapped[4], swapped[3]];
    expect(verify(swapped).chains[0].problems.map((p) => p.kind)).toContain('reordered');
    const cut = lines.slice(0, 6);
    const truncated = verify(cut, [final]).chains[0].problems;
    expect(truncated).toEqual([
      expect.objectContaining({
        kind: 'truncated',
        location: 'held-0',
        message: expect.stringMatching(/covers 14 records but the chain ends at 6/),
      }),
    ]);
    const gap = verify([...lines.slice(0, 2), ...lines.slice(3)]).chains[0].problems;
    expect(gap[0]).toEqual(expect.objectContaining({ kind: 'missing', seq: 2, location: 'mem:3' }));
  });

  it('a checkpoint signed by an unpinned key is reported as unknown key', () => {
    const { lines } = journal(4, 2);
    const other = generateSigner('someone-else').signer.verifierKey;
    const v = new ChainVerifier({ trustedKeys: [other] });
    for (const [i, l] of lines.entries()) v.add(parseRecordLine(l), { file: 'mem', line: i + 1 });
    expect(v.finish().chains[0].problems.map((p) => p.kind)).toEqual([
      'unknown-key',
      'unknown-key',
      'unknown-key',
    ]);
  });
});

describe('mltrail verify and erase (CLI, real files)', () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8', env: { ...process.env } });

  async function realJournal() {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-verify-'));
    const log = new AuditLog({ dir, checkpointEvery: 4 });
    for (let i = 0; i < 10; i++) {
      const ts = new Date().toISOString();
      log.append({
        event: 'ml.prediction',
        sev: 'INFO',
        ts,
        attrs: { 'ml.prediction.id': `p-${i}` },
        body: canonicalize({
          'event.name': 'ml.prediction',
          timestamp: ts,
          'ml.prediction.id': `p-${i}`,
          'ml.prediction.subject_id': `alice-${i}@example.com`,
        }),
      });
    }
    await log.close();
    const chainDirs = readdirSync(join(dir, 'chains'));
    const segment = join(dir, 'chains', chainDirs[0], '000001.ndjson');
    return { dir, segment, chain: chainDirs[0] };
  }

  it('exit 0 on an intact journal, 1 with problems located by file:line, 2 on usage errors', async () => {
    const { dir, segment } = await realJournal();
    const ok = cli(['verify', dir, '--json']);
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual(expect.objectContaining({ ok: true, records: 13 }));
    const lines = readFileSync(segment, 'utf8').split('\n');
    lines[2] = lines[2].replace('alice-2@', 'mallory@');
    writeFileSync(segment, lines.join('\n'));
    const bad = cli(['verify', dir]);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toMatch(
      new RegExp(
        `modified seq 2 at ${segment.replaceAll('/', '\\/')}:3: record hash does not match its chain fields and body`,
      ),
    );
    expect(cli(['verify', '--no-such-flag']).status).toBe(2);
    expect(cli(['verify', join(dir, 'missing')]).status).toBe(2);
  });

  it('erase: verify stays at exit 0 and reports the record as erased; editing the tombstone is a problem', async () => {
    const { dir, segment, chain } = await realJournal();
    const erase = cli(['erase', `${chain}:3`, '--reason', 'GDPR Art. 17 request 4411', '--journal', dir]);
    expect(withoutSigningKeyWarning(erase.stderr)).toBe('');
    expect(erase.status).toBe(0);
    expect(readFileSync(segment, 'utf8')).not.toContain('alice-3@example.com');
    const after = cli(['verify', dir, '--json']);
    expect(after.status).toBe(0);
    const report = JSON.parse(after.stdout);
    const target = report.chains.find((c: { chain: string }) => c.chain === chain);
    expect(target.erased).toEqual([3]);
    expect(report.chains).toHaveLength(2);

    // Forging the tombstone's digest breaks the chain.
    const lines = readFileSync(segment, 'utf8').split('\n');
    const tomb = parseRecordLine(lines[3]);
    tomb.digest = `sha256:${'0'.repeat(64)}`;
    lines[3] = serializeRecord(tomb);
    writeFileSync(segment, lines.join('\n'));
    expect(cli(['verify', dir]).status).toBe(1);
  });

  it('an erasure without its erasure record is a problem', async () => {
    const { dir, segment } = await realJournal();
    const lines = readFileSync(segment, 'utf8').split('\n');
    const rec = parseRecordLine(lines[5]);
    lines[5] = serializeRecord({ ...rec, body: '', attrs: {}, erased_by: `${rec.chain}:999` });
    writeFileSync(segment, lines.join('\n'));
    const r = cli(['verify', dir]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/bad-erasure seq 5 .*no mltrail.erasure record/);
  });

  it('keygen writes a 0600 key that signs checkpoints verify accepts when pinned', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-keygen-'));
    const r = cli(['keygen', '--out', join(dir, 'key'), '--name', 'acme-audit']);
    expect(r.status).toBe(0);
    const vkey = /verifier key: (\S+)/.exec(r.stderr)![1];
    expect(vkey).toMatch(/^acme-audit\+[0-9a-f]{8}\+/);
    const mode = execFileSync('stat', ['-c', '%a', join(dir, 'key')], { encoding: 'utf8' }).trim();
    expect(mode).toBe('600');
    expect(cli(['keygen', '--out', join(dir, 'key')]).status).toBe(2);
  });
});
