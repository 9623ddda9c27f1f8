import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import { createTrail } from '../../src/trail/index.js';
import { snapshot } from '../fixtures/snapshot.js';

const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], {
    encoding: 'utf8',
    env: { ...process.env, MLTRAIL_ACCESS_JOURNAL: '', MLTRAIL_SIGNING_KEY: '', ...env },
  });

async function smallJournal(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-access-'));
  const trail = await createTrail({ serviceName: 'svc', sink: new AuditLog({ dir }) });
  await trail.dataset({ name: 'd', data: 'x', source: 'file:d.csv' });
  await trail.shutdown();
  return dir;
}

describe('who looked: every command that reads audit data records an access in the access journal', () => {
  it('lineage, export, drift, report and verify append mltrail.access records there, and nothing where they read', async () => {
    const dir = await smallJournal();
    const access = join(mkdtempSync(join(tmpdir(), 'mltrail-access-journal-')), 'access');
    const before = snapshot(dir);
    const [ds] = [...new JournalReader(dir).lines()]
      .map((l) => parseRecordLine(l.text))
      .filter((r) => r.event === 'ml.dataset.registered');
    const dsId = JSON.parse(ds.body)['ml.dataset.id'];
    const who = ['--actor', 'auditor-7'];
    expect(cli(['lineage', dsId, '--journal', dir, ...who, '--access-journal', access]).status).toBe(0);
    // The environment variable configures it as well as the flag.
    const env = { MLTRAIL_ACCESS_JOURNAL: access };
    expect(cli(['export', 'openlineage', '--journal', dir, ...who], env).status).toBe(0);
    expect(cli(['drift', '--journal', dir, ...who], env).status).toBe(1);
    const report = cli(['report', '--prediction', 'none', '--journal', dir, ...who], env);
    expect(report.status).toBe(1);
    const verified = cli(['verify', dir, ...who], env);
    expect(verified.status).toBe(0);
    expect(verified.stderr).toBe('');
    expect(snapshot(dir)).toEqual(before);
    const records = [...new JournalReader(access).lines()]
      .map((l) => parseRecordLine(l.text))
      .filter((r) => r.event === 'mltrail.access')
      .map((r) => JSON.parse(r.body));
    expect(records.map((a) => a['mltrail.access.command'])).toEqual([
      'lineage',
      'export openlineage',
      'drift',
      'report',
      'verify',
    ]);
    for (const a of records) {
      expect(a).toEqual(
        expect.objectContaining({
          'mltrail.access.actor': 'auditor-7',
          'mltrail.access.args_digest': expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
          'mltrail.access.result_count': expect.any(Number),
          timestamp: expect.any(String),
        }),
      );
    }
    // The access journal is a journal like any other: it verifies, and its key lives in it.
    expect(cli(['verify', access]).status).toBe(0);
    expect(existsSync(join(access, 'signing-key.private'))).toBe(true);
  });

  it('without an access journal the read answers and says in one line that the access was not recorded', async () => {
    const dir = await smallJournal();
    const r = cli(['verify', dir]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe(
      'mltrail: note: this access was not recorded (no access journal: set --access-journal DIR or MLTRAIL_ACCESS_JOURNAL)\n',
    );
  });

  it('an access journal inside the evidence is refused: the evidence stays byte-identical', async () => {
    const dir = await smallJournal();
    const before = snapshot(dir);
    const r = cli(['drift', '--journal', dir, '--access-journal', join(dir, 'access')]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/not recorded: the access journal .* is inside what was read/);
    expect(snapshot(dir)).toEqual(before);
  });

  it('an access journal that cannot be written: the read still answers, and says the access was not recorded', async () => {
    const dir = await smallJournal();
    const access = mkdtempSync(join(tmpdir(), 'mltrail-access-bad-'));
    mkdirSync(access, { recursive: true });
    // The access chain cannot be sealed: its signing key is unusable.
    writeFileSync(join(access, 'signing-key.private'), 'not a key\n');
    const r = cli(['drift', '--journal', dir, '--access-journal', access]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/no drift records/);
    expect(r.stderr).toMatch(/note: this access was not recorded in the access journal .*signing key/);
  });
});
