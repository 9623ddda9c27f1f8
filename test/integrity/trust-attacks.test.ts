import { spawnSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  bodyDigest,
  ChainWriter,
  canonicalize,
  generateSigner,
  parseRecordLine,
  recordHash,
  serializeRecord,
  uuidv7,
} from '../../src/integrity/index.js';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import * as sc from '../../src/semconv/index.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';

// Each attack from issue 13, reproduced on real journal files with the real CLI, and the exact verdict and
// exit code with and without trust options. The operator signs with the key K (pinned by the auditor);
// the attacker can write the journal directory but does not hold K.

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    encoding: 'utf8',
    env: {
      ...process.env,
      MLTRAIL_ACCESS_JOURNAL: '',
      MLTRAIL_TRUST_FILE: '',
      MLTRAIL_SIGNING_KEY: '',
      ...env,
    },
  });
const json = (args: string[]) => {
  const r = cli([...args, '--json']);
  return { status: r.status, out: JSON.parse(r.stdout) };
};

const K = generateSigner('acme-audit');
const attacker = generateSigner('mallory');
let j: TrailJournal;
let main = '';
let held = '';
let work = '';

beforeAll(async () => {
  const saved = process.env.MLTRAIL_SIGNING_KEY;
  process.env.MLTRAIL_SIGNING_KEY = K.privateKey;
  try {
    j = await buildTrailJournal();
    // A second process of the operator's: a second signed chain beside the first.
    const other = new AuditLog({ dir: j.dir });
    const ts = new Date().toISOString();
    other.append({
      event: sc.EVENT_ML_FEEDBACK,
      sev: 'INFO',
      ts,
      attrs: {},
      body: canonicalize({
        'event.name': sc.EVENT_ML_FEEDBACK,
        timestamp: ts,
        [sc.ATTR_ML_PREDICTION_ID]: 'x',
      }),
    });
    await other.close();
  } finally {
    if (saved === undefined) delete process.env.MLTRAIL_SIGNING_KEY;
    else process.env.MLTRAIL_SIGNING_KEY = saved;
  }
  main = recordsOf(j.dir).find((r) => r.event === sc.EVENT_ML_DECISION)!.chain;
  work = mkdtempSync(join(tmpdir(), 'mltrail-attacks-'));
  // The auditor's copy of the operator's checkpoint, taken when the journal was handed over.
  held = join(work, 'held.txt');
  cpSync(join(j.dir, `checkpoint-${main}.txt`), held);
});

afterAll(() => {
  if (work !== '') rmSync(work, { recursive: true, force: true });
});

function recordsOf(dir: string): (AuditRecord & { file: string; text: string })[] {
  return [...new JournalReader(dir).lines()].map((l) => ({
    ...parseRecordLine(l.text, l),
    file: l.file,
    text: l.text,
  }));
}

/** A fresh copy of the operator's journal for one attack. */
function copy(name: string): string {
  const dir = join(work, name);
  cpSync(j.dir, dir, { recursive: true });
  return dir;
}

/** Writes records of a new chain as the journal writer would. */
function writeChain(dir: string, records: AuditRecord[]): void {
  const chainDir = join(dir, 'chains', records[0].chain);
  mkdirSync(chainDir, { recursive: true });
  writeFileSync(join(chainDir, '000001.ndjson'), records.map((r) => `${serializeRecord(r)}\n`).join(''));
}

function replaceLine(file: string, from: string, to: string): void {
  const text = readFileSync(file, 'utf8');
  expect(text).toContain(from);
  writeFileSync(file, text.replace(from, to));
}

function event(name: string, fields: Record<string, unknown>) {
  const ts = new Date().toISOString();
  return {
    event: name,
    sev: 'INFO' as const,
    ts,
    attrs: {},
    body: canonicalize({ 'event.name': name, timestamp: ts, ...fields }),
  };
}

/**
 * The forged override: the real `decline` is tombstoned behind an erasure record on a new chain, and
 * another new chain holds an `approve` by officer-17. With `sign`, the attacker also signs both chains'
 * checkpoints with a key of their own.
 */
function forgeOverride(dir: string, sign: boolean): { erasureChain: string; overrideChain: string } {
  const decline = recordsOf(dir).find(
    (r) => r.event === sc.EVENT_ML_DECISION && JSON.parse(r.body)[sc.ATTR_ML_DECISION_OUTCOME] === 'decline',
  )!;
  const erasures = new ChainWriter({ signer: attacker.signer, checkpointEvery: 0 });
  const ref = `${decline.chain}:${decline.seq}`;
  const erasure = erasures.append(
    event(sc.EVENT_MLTRAIL_ERASURE, {
      [sc.ATTR_MLTRAIL_ERASURE_RECORD_REF]: ref,
      [sc.ATTR_MLTRAIL_ERASURE_REASON]: 'request 4411',
      [sc.ATTR_MLTRAIL_BODY_DIGEST]: decline.digest,
    }),
  );
  writeChain(dir, sign ? [...erasure, erasures.checkpoint()] : erasure);
  const { file, text, ...target } = decline;
  replaceLine(
    file,
    text,
    serializeRecord({ ...target, body: '', attrs: {}, erased_by: `${erasure[0].chain}:${erasure[0].seq}` }),
  );
  const overrides = new ChainWriter({ signer: attacker.signer, checkpointEvery: 0 });
  const forged = {
    ...JSON.parse(decline.body),
    [sc.ATTR_ML_DECISION_OUTCOME]: 'approve',
    [sc.ATTR_ML_DECISION_REVIEWER]: 'officer-17',
    [sc.ATTR_ML_DECISION_OVERRIDE]: true,
  };
  const approve = overrides.append({ ...event(sc.EVENT_ML_DECISION, {}), body: canonicalize(forged) });
  writeChain(dir, sign ? [...approve, overrides.checkpoint()] : approve);
  return { erasureChain: erasures.chainId, overrideChain: overrides.chainId };
}

const trusted = () => ['--trusted-key', K.signer.verifierKey];

describe('the operator journal, untouched', () => {
  it('pinned key and held checkpoint: VERIFIED, every seq of both chains covered, exit 0', () => {
    const r = cli(['verify', j.dir, ...trusted(), '--since-checkpoint', held]);
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^VERIFIED: \d+ records in 2 chain\(s\)/);
    expect(r.stdout).toContain(
      `trust basis: pinned key ${K.signer.name}+${K.signer.keyId}, held checkpoint size`,
    );
    const { out } = json(['verify', j.dir, ...trusted(), '--since-checkpoint', held]);
    expect(out.ok).toBe(true);
    expect(out.trust.mode).toBe('pinned');
    for (const c of out.trust.chains) {
      const chain = out.chains.find((x: { chain: string }) => x.chain === c.chain);
      expect(c.status).toBe('verified');
      expect(c.covered).toEqual(
        expect.objectContaining({ first: 0, last: chain.lastSeq, key: `${K.signer.name}+${K.signer.keyId}` }),
      );
      expect(c.unsigned).toBeUndefined();
    }
    expect(out.trust.chains.find((c: { chain: string }) => c.chain === main).basis).toMatch(
      /^pinned key acme-audit\+[0-9a-f]{8}, held checkpoint size \d+$/,
    );
  });

  it('without trust options: intact, exit 0, and it says trust on first use, never "verified" or "ok"', () => {
    const r = cli(['verify', j.dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^intact, NOT VERIFIED against a pinned key/);
    expect(r.stdout).toContain('trust basis: trust on first use: the key the chain declares');
    expect(r.stdout).toMatch(/— signed \(trust on first use\)/);
    expect(r.stdout).not.toMatch(/\bok\b|— verified/);
  });

  it('verify --trusted-key K twice gives the same output', () => {
    const a = cli(['verify', j.dir, ...trusted()]);
    const b = cli(['verify', j.dir, ...trusted()]);
    expect(a.status).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect(b.status).toBe(a.status);
  });
});

describe('forged erasure and forged override by officer-17 on unsigned chains', () => {
  let dir = '';
  let forged: { erasureChain: string; overrideChain: string };
  beforeAll(() => {
    dir = copy('forged-override');
    forged = forgeOverride(dir, false);
  });

  it('--trusted-key K --since-checkpoint held: NOT VERIFIED, exit 1; the tombstone is an unauthorised erasure', () => {
    const r = cli(['verify', dir, ...trusted(), '--since-checkpoint', held]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^PROBLEMS FOUND — NOT VERIFIED/);
    expect(r.stdout).toMatch(
      /unauthorised-erasure seq \d+ at .*: erased by .*no trusted signed checkpoint covers/,
    );
    expect(r.stdout).toContain(
      `chain ${forged.overrideChain}: 1 records (seq 0..0) — UNSIGNED (no signed checkpoint covers it)`,
    );
    expect(r.stdout).toContain(
      `chain ${forged.erasureChain}: 1 records (seq 0..0) — UNSIGNED (no signed checkpoint covers it)`,
    );
    expect(r.stdout).not.toMatch(/\bok\b|erased:/);
    const { status, out } = json(['verify', dir, ...trusted(), '--since-checkpoint', held]);
    expect(status).toBe(1);
    expect(out.verified).toBe(false);
    const statuses = Object.fromEntries(
      out.trust.chains.map((c: { chain: string; status: string }) => [c.chain, c.status]),
    );
    expect(statuses[main]).toBe('problems');
    expect(statuses[forged.erasureChain]).toBe('unsigned');
    expect(statuses[forged.overrideChain]).toBe('unsigned');
  });

  it('without trust options: still exit 1 — an erasure record no signature covers has no authority', () => {
    const r = cli(['verify', dir]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/unauthorised-erasure/);
    expect(r.stdout).toContain(`chain ${forged.overrideChain}: 1 records (seq 0..0) — UNSIGNED`);
  });

  it('the report says NOT VERIFIED and marks the forged decision as not covered', () => {
    const out = join(work, 'forged-report.html');
    const r = cli([
      'report',
      '--prediction',
      j.declined,
      '--journal',
      dir,
      '--out',
      out,
      ...trusted(),
      '--since-checkpoint',
      held,
    ]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/— NOT VERIFIED: /);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('NOT VERIFIED');
    expect(html).not.toContain('verified: pinned key');
    const e = JSON.parse(
      cli([
        'report',
        '--prediction',
        j.declined,
        '--journal',
        dir,
        '--json',
        ...trusted(),
        '--since-checkpoint',
        held,
      ]).stdout,
    );
    expect(e.integrity.verified).toBe(false);
    expect(e.integrity.badge).toMatch(/^NOT VERIFIED: /);
    expect(e.decisions.map((d: Record<string, unknown>) => d[sc.ATTR_ML_DECISION_OUTCOME])).toEqual([
      'approve',
    ]);
    const decision = e.integrity.records.find((x: { role: string }) => x.role === 'decision');
    expect(decision).toEqual(expect.objectContaining({ covered: false }));
    expect(decision.record.chain).toBe(forged.overrideChain);
    expect(decision.proof).toBeUndefined();
  });
});

describe('the same forgery with checkpoints the attacker signed with a key of their own', () => {
  let dir = '';
  beforeAll(() => {
    dir = copy('forged-signed');
    forgeOverride(dir, true);
  });

  it('--trusted-key K: NOT VERIFIED, exit 1 (unknown key); the report says NOT VERIFIED', () => {
    const r = cli(['verify', dir, ...trusted()]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/unknown-key .*checkpoint signed by a key that is not trusted \(mallory\+/);
    expect(r.stdout).toMatch(/unauthorised-erasure/);
    const e = JSON.parse(
      cli(['report', '--prediction', j.declined, '--journal', dir, '--json', ...trusted()]).stdout,
    );
    expect(e.integrity.badge).toMatch(/^NOT VERIFIED: /);
  });

  it('without a pinned key it is trust on first use — and the output names both signing keys', () => {
    const r = cli(['verify', dir]);
    // This is exactly what trust on first use cannot catch; the output says so and shows who signed what.
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^intact, NOT VERIFIED against a pinned key/);
    expect(r.stdout).toContain(`declared key ${attacker.signer.name}+${attacker.signer.keyId}`);
    expect(r.stdout).toContain(`declared key ${K.signer.name}+${K.signer.keyId}`);
    const e = JSON.parse(cli(['report', '--prediction', j.declined, '--journal', dir, '--json']).stdout);
    expect(e.integrity.badge).toMatch(/^NOT VERIFIED: no trusted key given/);
  });
});

describe('stripped checkpoints: the chain rewritten without them and its checkpoint file deleted', () => {
  let dir = '';
  beforeAll(() => {
    dir = copy('stripped');
    const records = recordsOf(dir).filter((r) => r.chain === main);
    const rewritten = new ChainWriter({ signer: attacker.signer, chainId: main, checkpointEvery: 0 });
    const out: AuditRecord[] = [];
    for (const r of records) {
      if (r.event === sc.EVENT_MLTRAIL_CHECKPOINT) continue;
      out.push(
        ...rewritten.append({
          event: r.event,
          sev: r.sev as 'INFO',
          ts: r.ts,
          attrs: r.attrs,
          body: r.body,
          traceId: r.trace_id,
          spanId: r.span_id,
        }),
      );
    }
    rmSync(join(dir, 'chains', main), { recursive: true });
    rmSync(join(dir, `checkpoint-${main}.txt`));
    writeChain(dir, out);
  });

  it('--trusted-key K: NOT VERIFIED, exit 1, the chain has no trusted checkpoint', () => {
    const r = cli(['verify', dir, ...trusted()]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^NOT VERIFIED: /);
    expect(r.stdout).toMatch(
      new RegExp(
        `reason: chain ${main}: no checkpoint signed by a trusted key covers its \\d+ record\\(s\\)`,
      ),
    );
    expect(r.stdout).toContain(`chain ${main}: `);
    expect(r.stdout).toMatch(/— UNSIGNED \(no signed checkpoint covers it\)/);
  });

  it('--allow-unsigned-tail does not accept a chain with no signed part at all', () => {
    expect(cli(['verify', dir, ...trusted(), '--allow-unsigned-tail']).status).toBe(1);
  });

  it('with the held checkpoint: the records it signed are still proven by it — VERIFIED on that basis', () => {
    // Stripping the checkpoint records changes no record hash before them, so the checkpoint the auditor
    // holds (signed by K) still covers exactly those records: that is what holding one is for.
    const r = cli(['verify', dir, ...trusted(), '--since-checkpoint', held]);
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toContain(`(pinned key acme-audit+${K.signer.keyId}) at ${held}\n`);
    expect(r.stdout).toMatch(/basis: pinned key acme-audit\+[0-9a-f]{8}, held checkpoint size \d+/);
  });

  it('without trust options: exit 0, but the chain is reported UNSIGNED, never ok', () => {
    const r = cli(['verify', dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`chain ${main}: .* — UNSIGNED \\(no signed checkpoint covers it\\)`));
    expect(r.stdout).toMatch(/UNSIGNED: seq 0\.\.\d+ — no signed checkpoint covers them/);
    expect(r.stdout).not.toMatch(/\bok\b/);
  });
});

describe('an unsigned tail appended after the last checkpoint', () => {
  let dir = '';
  let first = 0;
  beforeAll(() => {
    dir = copy('tail');
    const records = recordsOf(dir).filter((r) => r.chain === main);
    const { file, text: _, ...last } = records.at(-1)!;
    let prev = last;
    let lines = '';
    first = last.seq + 1;
    for (let i = 0; i < 2; i++) {
      const e = event(sc.EVENT_ML_DECISION, {
        [sc.ATTR_ML_PREDICTION_ID]: j.declined,
        [sc.ATTR_ML_DECISION_OUTCOME]: 'approve',
        [sc.ATTR_ML_DECISION_REVIEWER]: 'officer-17',
      });
      const seq = prev.seq + 1;
      const digest = bodyDigest(e.body);
      const r: AuditRecord = {
        ...prev,
        ...e,
        seq,
        digest,
        prev: prev.hash,
        hash: recordHash(main, seq, prev.hash, digest),
      };
      lines += `${serializeRecord(r)}\n`;
      prev = r;
    }
    writeFileSync(file, readFileSync(file, 'utf8') + lines);
  });

  it('--trusted-key K: NOT VERIFIED, exit 1, naming the unsigned seqs', () => {
    const r = cli(['verify', dir, ...trusted()]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/^NOT VERIFIED: /);
    expect(r.stdout).toContain(
      `reason: chain ${main}: seq ${first}..${first + 1} after the last trusted checkpoint are unsigned`,
    );
    expect(r.stdout).toContain(
      `UNSIGNED: seq ${first}..${first + 1} — no trusted signed checkpoint covers them\n`,
    );
    expect(r.stdout).toMatch(/— UNSIGNED TAIL/);
    const { out } = json(['verify', dir, ...trusted()]);
    const c = out.trust.chains.find((x: { chain: string }) => x.chain === main);
    expect(c).toEqual(
      expect.objectContaining({
        status: 'unsigned-tail',
        tailAccepted: false,
        unsigned: { first, last: first + 1 },
      }),
    );
    expect(c.covered.last).toBe(first - 1);
  });

  it('--allow-unsigned-tail: exit 0, and the tail is still reported as unsigned (accepted)', () => {
    const r = cli(['verify', dir, ...trusted(), '--allow-unsigned-tail']);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('unsigned tails accepted (--allow-unsigned-tail)');
    expect(r.stdout).toContain(
      `UNSIGNED: seq ${first}..${first + 1} — no trusted signed checkpoint covers them (accepted: --allow-unsigned-tail)`,
    );
    expect(r.stdout).toMatch(/— unsigned tail accepted/);
  });

  it('without trust options: exit 0, UNSIGNED TAIL, never ok', () => {
    const r = cli(['verify', dir]);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/— UNSIGNED TAIL/);
    expect(r.stdout).not.toMatch(/\bok\b/);
  });
});

describe('checkpoint origins', () => {
  it('a chain whose checkpoints name another log (signed by K): wrong-origin, exit 1 either way', () => {
    const dir = copy('foreign-origin');
    const foreign = new ChainWriter({
      signer: K.signer,
      origin: `mltrail/chain/${uuidv7()}`,
      checkpointEvery: 0,
    });
    writeChain(dir, [
      ...foreign.append(event(sc.EVENT_ML_FEEDBACK, { [sc.ATTR_ML_PREDICTION_ID]: 'y' })),
      foreign.checkpoint(),
    ]);
    for (const args of [[], trusted()]) {
      const r = cli(['verify', dir, ...args]);
      expect(r.status).toBe(1);
      expect(r.stdout).toMatch(
        new RegExp(
          `wrong-origin seq 1 at .*: checkpoint origin "mltrail/chain/[0-9a-f-]+" is not this chain's \\(mltrail/chain/${foreign.chainId}\\)`,
        ),
      );
    }
  });

  it('swapped checkpoint files: each names the other chain — wrong-origin, exit 1 either way', () => {
    const dir = copy('swapped');
    const files = readdirSync(dir).filter((f) => /^checkpoint-.*\.txt$/.test(f));
    expect(files.length).toBe(2);
    renameSync(join(dir, files[0]), join(dir, 'tmp'));
    renameSync(join(dir, files[1]), join(dir, files[0]));
    renameSync(join(dir, 'tmp'), join(dir, files[1]));
    for (const args of [[], trusted()]) {
      const r = cli(['verify', dir, ...args]);
      expect(r.status).toBe(1);
      for (const f of files)
        expect(r.stdout).toMatch(
          new RegExp(
            `wrong-origin at .*${f}: checkpoint file for chain [0-9a-f-]+ holds a checkpoint of "mltrail/chain/`,
          ),
        );
    }
  });
});

describe('a private key where a verifier key belongs', () => {
  /** Every 8-character piece of the key's secret part: none may appear in any output. */
  const pieces = (key: string) => {
    const secret = key.split('+').slice(4).join('+');
    return Array.from({ length: secret.length - 7 }, (_, i) => secret.slice(i, i + 8));
  };

  it('--trusted-key PRIVATE+KEY+…: exit 2, a clear error, and no part of the key in stdout or stderr', () => {
    for (const cmd of [
      ['verify', j.dir],
      ['report', '--prediction', j.declined, '--journal', j.dir, '--json'],
    ]) {
      const r = cli([...cmd, '--trusted-key', K.privateKey]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(
        /^mltrail: --trusted-key #1 is a PRIVATE signing key, not a verifier key; it is not shown here/,
      );
      for (const p of pieces(K.privateKey)) {
        expect(r.stdout).not.toContain(p);
        expect(r.stderr).not.toContain(p);
      }
      expect(r.stderr).not.toContain(K.signer.name);
    }
  });

  it('in a trust file: exit 2 naming the file and line, without the key; a verifier key there pins like --trusted-key', () => {
    const file = join(work, 'trust-private.txt');
    writeFileSync(file, `# operators\n${K.privateKey}\n`);
    const r = cli(['verify', j.dir], { MLTRAIL_TRUST_FILE: file });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`mltrail: ${file}:2 is a PRIVATE signing key`);
    for (const p of pieces(K.privateKey)) expect(r.stderr + r.stdout).not.toContain(p);
    const good = join(work, 'trust.txt');
    writeFileSync(good, `# operators\n${K.signer.verifierKey}\n`);
    const pinned = cli(['verify', j.dir], { MLTRAIL_TRUST_FILE: good });
    expect(pinned.status).toBe(0);
    expect(pinned.stdout).toBe(cli(['verify', j.dir, ...trusted()]).stdout);
    expect(cli(['verify', j.dir, '--trust-file', good]).stdout).toBe(pinned.stdout);
    // A trusted key that is not the operator's: nothing is covered by it.
    const other = generateSigner('someone-else').signer.verifierKey;
    expect(cli(['verify', j.dir, '--trusted-key', other]).status).toBe(1);
  });

  it('something that is not a key at all: exit 2 without repeating it', () => {
    const r = cli(['verify', j.dir, '--trusted-key', 'hunter2-secret-value']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--trusted-key #1 is not a verifier key: expected <name>\+<key id>\+<key>/);
    expect(r.stderr).not.toContain('hunter2');
  });
});
