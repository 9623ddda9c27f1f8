import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { canonicalize, generateSigner } from '../../src/integrity/index.js';
import { AuditLog } from '../../src/journal/index.js';

// mltrail's journals checked by an independent implementation written in Go on golang.org/x/mod/sumdb/note
// and github.com/transparency-dev/merkle (test/interop/go), and a chain signed by Go's note.Sign checked by
// mltrail: the record hash, the Merkle tree and the signed notes are the standards docs/integrity.md names,
// not merely self-consistent. The commands are the ones docs/integrity.md gives ("Verify it yourself").

const GO_DIR = fileURLToPath(new URL('./go/', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });

/** Builds the Go verifier once per version of its sources (cached under test/interop/go/_build). */
function buildInterop(): string {
  const key = createHash('sha256');
  for (const f of ['go.mod', 'go.sum', 'main.go']) key.update(readFileSync(join(GO_DIR, f)));
  const bin = join(GO_DIR, '_build', key.digest('hex').slice(0, 16), 'mltrail-interop');
  if (!existsSync(bin))
    execFileSync('go', ['build', '-o', bin, '.'], {
      cwd: GO_DIR,
      env: { ...process.env, GOFLAGS: '-mod=mod' },
      stdio: 'pipe',
    });
  return bin;
}

/** The fenced `sh` blocks of the "Verify it yourself" section of docs/integrity.md. */
function docBlocks(): string[] {
  const doc = readFileSync(join(ROOT, 'docs/integrity.md'), 'utf8');
  const section = doc.slice(doc.indexOf('### Verify it yourself with standard tools'));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
}

const { signer, privateKey } = generateSigner('acme-audit');
let go = '';
let dir = '';
let chain = '';

beforeAll(async () => {
  go = buildInterop();
  dir = mkdtempSync(join(tmpdir(), 'mltrail-journal-'));
  const log = new AuditLog({
    dir,
    checkpointEvery: 5,
    checkpointIntervalMs: 0,
    signingKey: { key: privateKey },
  });
  for (let i = 0; i < 23; i++) {
    const ts = new Date(Date.UTC(2026, 11, 7, 12, 0, i)).toISOString();
    const event = i % 2 === 0 ? 'ml.prediction' : 'ml.decision';
    log.append({
      event,
      sev: 'INFO',
      ts,
      attrs: {},
      body: canonicalize({
        'event.name': event,
        timestamp: ts,
        severity_text: 'INFO',
        'ml.prediction.id': `p-${i - (i % 2)}`,
        ...(event === 'ml.decision'
          ? { 'ml.decision.id': `d-${i}`, 'ml.decision.outcome': i % 4 === 1 ? 'decline' : 'approve' }
          : { 'ml.model.name': 'credit', 'ml.model.version': '3', note: 'quote " backslash \\ é 雨 \u0001' }),
      }),
    });
  }
  await log.close();
  chain = readdirSync(join(dir, 'chains'))[0];
  // An erasure (GDPR Art. 17), signed with the same key.
  const erased = cli(['erase', `${chain}:4`, '--reason', 'request 4411', '--journal', dir], {
    MLTRAIL_SIGNING_KEY: privateKey,
  });
  expect(erased.status, erased.stderr).toBe(0);
}, 300_000);

describe('an independent Go verifier (x/mod/sumdb/note, transparency-dev/merkle) and mltrail agree', () => {
  it('Go verifies an mltrail journal: record hashes from the line bytes, roots against every checkpoint, signatures, the erasure', () => {
    const out = JSON.parse(execFileSync(go, ['verify', dir, signer.verifierKey], { encoding: 'utf8' }));
    expect(out.problems).toEqual([]);
    expect(out.ok).toBe(true);
    const main = out.chains.find((c: { chain: string }) => c.chain === chain);
    // 23 records, a checkpoint after every 5 (4 of them) and one at close: 28 records, 5 checkpoints.
    expect(main).toEqual({ chain, records: 28, checkpointsVerified: 5, erased: [4] });
    expect(out.chains).toHaveLength(2);
    expect(cli(['verify', dir, '--trusted-key', signer.verifierKey]).status).toBe(0);
  });

  it('Go and mltrail both reject an edited line (a byte of a body, an extra field)', () => {
    for (const edit of [
      (l: string) => l.replace('"ml.model.version":"3"', '"ml.model.version":"4"'),
      (l: string) => l.replace(',"body":', ',"approved_by":"CFO","body":'),
    ]) {
      const copy = mkdtempSync(join(tmpdir(), 'mltrail-interop-edit-'));
      cpSync(dir, copy, { recursive: true });
      const segment = join(copy, 'chains', chain, '000001.ndjson');
      const lines = readFileSync(segment, 'utf8').split('\n');
      lines[2] = edit(lines[2]);
      writeFileSync(segment, lines.join('\n'));
      const out = JSON.parse(execFileSync(go, ['verify', copy, signer.verifierKey], { encoding: 'utf8' }));
      expect(out.ok).toBe(false);
      expect(out.problems.join('\n')).toContain(`${segment}:3`);
      expect(cli(['verify', copy, '--trusted-key', signer.verifierKey]).status).toBe(1);
    }
  });

  it("Go checks the evidence report's inclusion proofs against their signed checkpoints", () => {
    const r = cli([
      'report',
      '--prediction',
      'p-8',
      '--journal',
      dir,
      '--json',
      '--trusted-key',
      signer.verifierKey,
    ]);
    expect(r.status, r.stderr).toBe(0);
    const report = join(dir, '..', `${chain}-report.json`);
    writeFileSync(report, r.stdout);
    const proofs = (r.stdout.match(/"leafIndex"/g) ?? []).length;
    expect(proofs).toBeGreaterThanOrEqual(2);
    const out = JSON.parse(execFileSync(go, ['proofs', report, signer.verifierKey], { encoding: 'utf8' }));
    expect(out).toEqual({ proofsVerified: proofs });
  });

  it('Go reads the Merkle tiles mltrail writes (C2SP tlog-tiles) with x/mod/sumdb/tlog: the signed tree, and a consistency proof both Go libraries accept', () => {
    const copy = mkdtempSync(join(tmpdir(), 'mltrail-interop-tiles-'));
    cpSync(dir, copy, { recursive: true });
    expect(cli(['index', copy, '--force']).status).toBe(0);
    const out = JSON.parse(execFileSync(go, ['tiles', copy, signer.verifierKey], { encoding: 'utf8' }));
    const size = Number(readFileSync(join(copy, 'tiles', chain, 'checkpoint'), 'utf8').split('\n')[1]);
    expect(size).toBeGreaterThan(20);
    // Every chain's tree is read (the erasure's own chain too: one record, no consistency to prove).
    expect(out.chains).toContainEqual({ chain, size, consistency: true });
    // A tile altered: tlog's reader refuses it (it checks every tile against the signed tree).
    const tile = join(copy, 'tiles', chain, 'tile', '0', `000.p/${size}`);
    const bytes = readFileSync(tile);
    bytes[0] ^= 1;
    writeFileSync(tile, bytes);
    expect(() => execFileSync(go, ['tiles', copy, signer.verifierKey], { stdio: 'pipe' })).toThrow();
  });

  it("mltrail verify accepts a chain whose checkpoints Go's note.Sign signed, under that pinned key", () => {
    const goDir = mkdtempSync(join(tmpdir(), 'mltrail-interop-go-'));
    const vkey = execFileSync(go, ['write', goDir, '10'], { encoding: 'utf8' }).trim();
    expect(vkey).toMatch(/^go-interop\+[0-9a-f]{8}\+/);
    const r = cli(['verify', goDir, '--trusted-key', vkey, '--json']);
    expect(r.status, r.stdout).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    // 10 records, a checkpoint after every 4 (2) and a final one: 13 records.
    expect(report.chains.map((c: { records: number }) => c.records)).toEqual([13]);
    // Another key is not trusted for it.
    expect(cli(['verify', goDir, '--trusted-key', signer.verifierKey]).status).toBe(1);
  });

  it('the commands of docs/integrity.md "Verify it yourself" run as written (POSIX sh, then the Go verifier)', () => {
    const [byHand, goCommands] = docBlocks();
    const segment = join(dir, 'chains', chain, '000001.ndjson');
    const script = byHand
      .replace('.mltrail/chains/<chain>/000001.ndjson', segment)
      .replace('sed -n 42p', 'sed -n 3p');
    const hand = execFileSync('sh', ['-c', script], { encoding: 'utf8' }).trim().split('\n');
    // The body digest, the recomputed record hash, and the line's own hash: the last two are equal.
    expect(hand).toHaveLength(3);
    expect(hand[1].split(' ')[0]).toBe(hand[2]);
    const report = join(dir, '..', `${chain}-doc-report.json`);
    const r = cli([
      'report',
      '--prediction',
      'p-8',
      '--journal',
      dir,
      '--json',
      '--trusted-key',
      signer.verifierKey,
    ]);
    writeFileSync(report, r.stdout);
    const out = execFileSync(
      'sh',
      [
        '-c',
        goCommands
          .replaceAll('<journal dir>', dir)
          .replaceAll("'<verifier key>'", `'${signer.verifierKey}'`)
          .replaceAll('report.json', report)
          .replaceAll('/tmp/mltrail-interop ', `${join(dir, '..', 'interop-doc-bin')} `),
      ],
      { encoding: 'utf8', cwd: ROOT, env: { ...process.env, GOFLAGS: '-mod=mod' } },
    )
      .trim()
      .split('\n');
    // The first line is `cd -` naming the directory it returns to.
    expect(out.slice(1).map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({ ok: true, problems: [] }),
      { proofsVerified: expect.any(Number) },
    ]);
  });
});
