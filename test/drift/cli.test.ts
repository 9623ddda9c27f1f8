import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });

describe('mltrail drift', () => {
  it('summarises drift per model version and links the retraining it triggered', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-driftcli-')), 'journal');
    expect(cli(['demo', '--journal', dir]).status).toBe(0);
    const r = cli(['drift', '--journal', dir, '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as {
      versions: {
        model: string;
        version: string;
        alerts: number;
        retrainingRuns: string[];
        features: { feature: string; test: string }[];
      }[];
    };
    const v1 = report.versions.find((v) => v.version === '1')!;
    expect(v1).toEqual(expect.objectContaining({ model: 'rain-cover' }));
    expect(v1.alerts).toBeGreaterThan(0);
    expect(v1.retrainingRuns).toHaveLength(1);
    expect(v1.features.map((f) => f.feature)).toEqual(expect.arrayContaining(['temp_max']));
    const human = cli(['drift', '--journal', dir]);
    expect(human.stdout).toMatch(/rain-cover v1: \d+ feature alert\(s\)/);
    expect(human.stdout).toMatch(/→ retrained in run\(s\) [0-9a-f-]{36}/);
  });

  it('exit 1 when there is no drift, 2 on a usage error', () => {
    const empty = mkdtempSync(join(tmpdir(), 'mltrail-driftcli-empty-'));
    const r = cli(['drift', '--journal', empty]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/no drift records/);
    expect(cli(['drift', '--bogus']).status).toBe(2);
  });
});
