import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { generateSigner } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { snapshot } from '../fixtures/snapshot.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';

// Readers never write into what they read (design invariant 8, issue 13): verify, lineage, report, export
// and drift leave every file of the journal byte-identical, generate no key there, and give the same
// output and exit code on a read-only copy (run without the right to write it) as on a writable one,
// tampered or not.

const K = generateSigner('acme-audit');
const asRoot = process.getuid?.() === 0;
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * Runs the CLI; `readOnly` drops the right to write what the permission bits forbid: as root, without the
 * capabilities that override them (setpriv); as any other user the bits already apply.
 */
function cli(args: string[], readOnly = false) {
  const env = { ...process.env, MLTRAIL_ACCESS_JOURNAL: '', MLTRAIL_SIGNING_KEY: '', MLTRAIL_TRUST_FILE: '' };
  const node = [process.execPath, 'dist/cli/main.js', ...args];
  if (readOnly && asRoot && SETPRIV !== undefined)
    return spawnSync(SETPRIV, ['--bounding-set=-dac_override,-dac_read_search,-fowner', '--', ...node], {
      encoding: 'utf8',
      env,
    });
  return spawnSync(node[0], node.slice(1), {
    encoding: 'utf8',
    env,
  });
}

function setReadOnly(root: string): void {
  const walk = (p: string) => {
    if (statSync(p).isDirectory()) {
      for (const name of readdirSync(p)) walk(join(p, name));
      chmodSync(p, 0o555);
    } else chmodSync(p, 0o444);
  };
  walk(root);
}

let j: TrailJournal;
let work = '';
let vkey = '';

/** Every read command, as an auditor would run it (report output outside the journal). */
const commands = (dir: string): string[][] => [
  ['verify', dir],
  ['verify', dir, '--json'],
  ['verify', dir, '--trusted-key', vkey],
  ['lineage', j.declined, '--journal', dir],
  ['lineage', j.model1.digest!, '--journal', dir, '--json'],
  ['report', '--prediction', j.declined, '--journal', dir, '--json', '--trusted-key', vkey],
  ['report', '--model', 'credit-risk@1', '--journal', dir, '--out', join(work, 'out', 'model.html')],
  ['export', 'openlineage', '--journal', dir],
  ['drift', '--journal', dir],
  ['drift', '--journal', dir, '--json'],
];

/** Output with the one field that is the time of the run taken out. */
const stable = (text: string) => text.replace(/"generatedAt": "[^"]+"/g, '"generatedAt": "…"');

beforeAll(async () => {
  const saved = process.env.MLTRAIL_SIGNING_KEY;
  process.env.MLTRAIL_SIGNING_KEY = K.privateKey;
  try {
    j = await buildTrailJournal();
  } finally {
    if (saved === undefined) delete process.env.MLTRAIL_SIGNING_KEY;
    else process.env.MLTRAIL_SIGNING_KEY = saved;
  }
  vkey = K.signer.verifierKey;
  work = mkdtempSync(join(tmpdir(), 'mltrail-readers-'));
  chmodSync(work, 0o755);
  // Where the report is written: not the journal, and writable by the reader.
  mkdirSync(join(work, 'out'));
  chmodSync(join(work, 'out'), 0o777);
});

describe('read commands leave the journal byte-identical', () => {
  it('every file, directory and mode is the same before and after each command; no key is generated there', () => {
    const before = snapshot(j.dir);
    expect(Object.keys(before)).not.toContain('signing-key.private');
    for (const args of commands(j.dir)) {
      const r = cli(args);
      expect(r.status, `${args.join(' ')}\n${r.stderr}`).toBeLessThan(2);
      expect(snapshot(j.dir), args.join(' ')).toEqual(before);
    }
  });

  it('verify --trusted-key K twice: identical output and exit code', () => {
    const a = cli(['verify', j.dir, '--trusted-key', vkey]);
    const b = cli(['verify', j.dir, '--trusted-key', vkey]);
    expect(a.status).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect(b.status).toBe(a.status);
  });
});

// As root without setpriv the reader would run as nobody, which needs the checkout and the copies to be
// readable by others; setpriv (util-linux) is on every machine the suite runs on.
describe.skipIf(asRoot && SETPRIV === undefined)(
  'a read-only copy answers exactly like a writable one',
  () => {
    for (const tampered of [false, true]) {
      it(`${tampered ? 'tampered' : 'intact'}: same stdout and exit code for every read command`, () => {
        const writable = join(work, tampered ? 'rw-tampered' : 'rw');
        cpSync(j.dir, writable, { recursive: true });
        if (tampered) {
          // The attack from issue 13: one line deleted from the middle of a segment.
          const file = [...new JournalReader(writable).lines()][20].file;
          const lines = readFileSync(file, 'utf8').split('\n');
          lines.splice(19, 1);
          writeFileSync(file, lines.join('\n'));
        }
        const readOnly = join(work, tampered ? 'ro-tampered' : 'ro');
        cpSync(writable, readOnly, { recursive: true });
        setReadOnly(readOnly);
        const before = snapshot(readOnly);
        for (const [i, args] of commands(writable).entries()) {
          const rw = cli(args);
          const ro = cli(commands(readOnly)[i], true);
          const what = `${args.join(' ')}\nrw stderr: ${rw.stderr}\nro stderr: ${ro.stderr}`;
          expect(ro.status, what).toBe(rw.status);
          expect(stable(ro.stdout).replaceAll(readOnly, 'DIR'), what).toBe(
            stable(rw.stdout).replaceAll(writable, 'DIR'),
          );
          expect(ro.stdout.length, what).toBeGreaterThan(0);
        }
        expect(snapshot(readOnly)).toEqual(before);
        const verify = cli(['verify', readOnly], true);
        expect(verify.status).toBe(tampered ? 1 : 0);
      });
    }
  },
);
