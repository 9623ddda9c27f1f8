import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import { createTrail } from '../../src/trail/index.js';
import { withoutSigningKeyWarning } from '../process-warnings.js';

// What the CLI writes itself — the erasure request, access records, reports and exports — passes the same
// redaction as what the trail writes, and files holding trail data are the owner's only (issue 14).

const EMAIL = 'jane.doe@example.com';
const PHONE = '+44 7700 900123';

/** Runs the CLI under umask 000, the worst case for file modes. */
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync('sh', ['-c', 'umask 000; exec "$0" dist/cli/main.js "$@"', process.execPath, ...args], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });

async function journal(): Promise<{ dir: string; predictionId: string; ref: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-cli-privacy-'));
  const trail = await createTrail({ serviceName: 'svc', sink: new AuditLog({ dir }) });
  await trail.dataset({ name: 'd', data: 'x', source: 'file:d.csv' });
  const model = await trail.register({ name: 'm', version: '1', data: 'weights-1' });
  const predict = trail.predict({ model }, (x: number) => x * 2);
  predict(2);
  await trail.shutdown();
  const records = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
  const p = records.find((r) => r.event === 'ml.prediction');
  if (p === undefined) throw new Error('no prediction written');
  return { dir, predictionId: JSON.parse(p.body)['ml.prediction.id'], ref: `${p.chain}:${p.seq}` };
}

function journalText(dir: string): string {
  return [...new JournalReader(dir).lines()].map((l) => l.text).join('\n');
}

describe('records the CLI writes', () => {
  it('erase: the reason and the actor are redacted before they enter the tamper-evident log', async () => {
    const { dir, ref } = await journal();
    const r = cli([
      'erase',
      ref,
      '--journal',
      dir,
      '--reason',
      `request from ${EMAIL}, tel ${PHONE}`,
      '--actor',
      `Jane Roe <${EMAIL}>`,
    ]);
    expect(withoutSigningKeyWarning(r.stderr)).toBe('');
    expect(r.status).toBe(0);
    const text = journalText(dir);
    expect(text).not.toContain('jane.doe');
    expect(text).not.toContain('7700');
    const erasure = [...new JournalReader(dir).lines()]
      .map((l) => parseRecordLine(l.text))
      .find((x) => x.event === 'mltrail.erasure');
    const body = JSON.parse(erasure?.body ?? '{}');
    expect(body['mltrail.erasure.reason']).toBe('request from [REDACTED:email], tel [REDACTED:phone]');
    expect(body['ml.actor.id']).toBe('Jane Roe <[REDACTED:email]>');
    expect(cli(['verify', dir]).status).toBe(0);
  });

  it('access records: an actor given as an address is redacted', async () => {
    const { dir } = await journal();
    // Access records go to the access journal, never into the journal read.
    const access = join(mkdtempSync(join(tmpdir(), 'mltrail-cli-access-')), 'access');
    const read = ['export', 'openlineage', '--journal', dir, '--actor', EMAIL, '--access-journal', access];
    expect(cli(read).status).toBe(0);
    const key = 'cli-records-key-0123456789abcdef';
    expect(cli(read, { MLTRAIL_PSEUDONYM_KEY: key }).status).toBe(0);
    expect(journalText(access)).not.toContain('jane.doe');
    const actors = [...new JournalReader(access).lines()]
      .map((l) => parseRecordLine(l.text))
      .filter((x) => x.event === 'mltrail.access')
      .map((x) => JSON.parse(x.body)['mltrail.access.actor']);
    expect(actors).toEqual(['[REDACTED:email]', '[REDACTED:email]']);
  });

  it('report and export files are created 0600 under umask 000, an existing file is tightened', async () => {
    const { dir, predictionId } = await journal();
    const out = join(dir, '..', `report-${predictionId}.html`);
    expect(cli(['report', '--prediction', predictionId, '--journal', dir, '--out', out]).status).toBe(0);
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const exported = join(dir, '..', `lineage-${predictionId}.ndjson`);
    writeFileSync(exported, 'old', { mode: 0o644 });
    expect(cli(['export', 'openlineage', '--journal', dir, '--out', exported]).status).toBe(0);
    expect(statSync(exported).mode & 0o777).toBe(0o600);
    expect(readFileSync(exported, 'utf8')).not.toBe('old');
  });

  it('a symbolic link as --out is refused, nothing is written through it', async () => {
    const { dir } = await journal();
    const target = join(dir, '..', `target-${Date.now()}.txt`);
    writeFileSync(target, 'keep');
    const link = join(dir, '..', `link-${Date.now()}.ndjson`);
    symlinkSync(target, link);
    const r = cli(['export', 'openlineage', '--journal', dir, '--out', link]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('is a symbolic link');
    expect(readFileSync(target, 'utf8')).toBe('keep');
  });
});
