import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import { createTrail } from '../../src/trail/index.js';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });

async function smallJournal(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-access-'));
  const trail = await createTrail({ serviceName: 'svc', sink: new AuditLog({ dir }) });
  await trail.dataset({ name: 'd', data: 'x', source: 'file:d.csv' });
  await trail.shutdown();
  return dir;
}

describe('who looked: every command that reads audit data records an access', () => {
  it('lineage, export, drift, report and verify append mltrail.access records that verify like any chain', async () => {
    const dir = await smallJournal();
    const [ds] = [...new JournalReader(dir).lines()]
      .map((l) => parseRecordLine(l.text))
      .filter((r) => r.event === 'ml.dataset.registered');
    const dsId = JSON.parse(ds.body)['ml.dataset.id'];
    expect(cli(['lineage', dsId, '--journal', dir, '--actor', 'auditor-7']).status).toBe(0);
    expect(cli(['export', 'openlineage', '--journal', dir, '--actor', 'auditor-7']).status).toBe(0);
    expect(cli(['drift', '--journal', dir, '--actor', 'auditor-7']).status).toBe(1);
    expect(cli(['verify', dir, '--actor', 'auditor-7']).status).toBe(0);
    const access = [...new JournalReader(dir).lines()]
      .map((l) => parseRecordLine(l.text))
      .filter((r) => r.event === 'mltrail.access')
      .map((r) => JSON.parse(r.body));
    expect(access.map((a) => a['mltrail.access.command'])).toEqual([
      'lineage',
      'export openlineage',
      'drift',
      'verify',
    ]);
    for (const a of access) {
      expect(a).toEqual(
        expect.objectContaining({
          'mltrail.access.actor': 'auditor-7',
          'mltrail.access.args_digest': expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
          'mltrail.access.result_count': expect.any(Number),
          timestamp: expect.any(String),
        }),
      );
    }
    const after = cli(['verify', dir, '--json']);
    expect(after.status).toBe(0);
    expect(JSON.parse(after.stdout).chains.length).toBe(5);
  });

  it('a journal that cannot be written still answers, and says the access was not recorded', async () => {
    const dir = await smallJournal();
    // The access chain cannot be sealed: its signing key is unusable. The read still works.
    writeFileSync(join(dir, 'signing-key.private'), 'not a key\n');
    const r = cli(['drift', '--journal', dir]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/no drift records/);
    expect(r.stderr).toMatch(/note: this access was not recorded in/);
  });
});
