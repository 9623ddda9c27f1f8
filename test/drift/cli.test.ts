import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { between, featuresOf, loadWeather, wetLabel } from '../../src/demo/weather-data.js';
import { buildProfile, DriftMonitor, PREDICTION_FEATURE } from '../../src/drift/index.js';
import { trailHarness } from '../trail/harness.js';

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

  it('reads a journal written by a real trail and monitors: per model version, --model filter', async () => {
    const h = await trailHarness();
    const { days } = loadWeather();
    const reference = between(days, '2012-01-01', '2014-01-01');
    const rows = (d: typeof days) => d.map((day) => ({ ...featuresOf(day), weather: day.weather }));
    const profile = buildProfile(rows(reference), { predictions: reference.map(wetLabel) });
    const summer = between(days, '2015-06-01', '2015-09-01').slice(0, 90);
    const windows: { model: string; version: string; ids: number; dataset: boolean }[] = [];
    for (const [name, version] of [
      ['rain-cover', '1'],
      ['rain-cover', '2'],
      ['umbrella', '7'],
    ]) {
      const monitor = new DriftMonitor({
        reference: profile,
        model: { name, version },
        window: { size: 45 },
        sink: h.trail,
        onWindow: (w) =>
          windows.push({ model: name, version, ids: w.recordIds.length, dataset: w.datasetDrift }),
      });
      for (const d of summer) monitor.observe({ ...featuresOf(d), weather: d.weather }, wetLabel(d));
    }
    await h.trail.shutdown();

    const r = cli(['drift', '--journal', h.dir, '--json']);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as {
      versions: {
        model: string;
        version: string;
        alerts: number;
        datasetDriftWindows: number;
        features: { feature: string; alerts: number }[];
      }[];
    };
    expect(report.versions.map((v) => `${v.model}@${v.version}`)).toEqual([
      'rain-cover@1',
      'rain-cover@2',
      'umbrella@7',
    ]);
    for (const v of report.versions) {
      const mine = windows.filter((w) => w.model === v.model && w.version === v.version);
      const datasetWindows = mine.filter((w) => w.dataset).length;
      expect(v.datasetDriftWindows).toBe(datasetWindows);
      expect(v.alerts).toBe(mine.reduce((a, w) => a + w.ids, 0) - datasetWindows);
      expect(v.features.map((f) => f.feature)).toContain(PREDICTION_FEATURE);
    }
    const only = JSON.parse(cli(['drift', '--journal', h.dir, '--json', '--model', 'umbrella']).stdout);
    expect(only.versions.map((v: { version: string }) => v.version)).toEqual(['7']);
    const human = cli(['drift', '--journal', h.dir, '--model', 'nobody']);
    expect(human.status).toBe(1);
  });
});
