import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { withoutSigningKeyWarning } from '../process-warnings.js';

const demoDir = join(mkdtempSync(join(tmpdir(), 'mltrail-demo-')), 'journal');

describe('the demo (npm start → mltrail demo)', () => {
  it('runs end to end on the real data set, and leaves a journal that verifies', () => {
    const dir = demoDir;
    const run = spawnSync(process.execPath, ['dist/cli/main.js', 'demo', '--journal', dir], {
      encoding: 'utf8',
    });
    expect(run.stderr).toMatch(/MltrailSigningKeyWarning: mltrail: generated a checkpoint signing key at /);
    expect(withoutSigningKeyWarning(run.stderr)).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/integrity: \d+ records in \d+ chain\(s\) verified/);
    expect(run.stdout).toMatch(/retrain {2}v2 deployed, retrained because of \d+ drift record/);

    const records = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
    const count = (e: string) => records.filter((r) => r.event === e).length;
    expect(count('ml.dataset.registered')).toBe(1);
    expect(count('ml.model.registered')).toBe(2);
    expect(count('ml.deployment.completed')).toBe(2);
    expect(count('ml.prediction')).toBe(365);
    expect(count('ml.decision')).toBe(365);
    expect(count('ml.drift.detected')).toBeGreaterThan(0);
    expect(count('ml.retraining.triggered')).toBe(1);

    // Predictions come from the ONNX server under `node --import mltrail/register`, on its own chain,
    // and name the deployed version it matched by model digest.
    const pred = records.find((r) => r.event === 'ml.prediction')!;
    const trainingChain = records.find((r) => r.event === 'ml.dataset.registered')!.chain;
    expect(pred.chain).not.toBe(trainingChain);
    const predBody = JSON.parse(pred.body);
    expect(predBody).toEqual(
      expect.objectContaining({
        'ml.model.format': 'onnx',
        'ml.model.version': '1',
        'ml.prediction.registered': true,
        'service.name': 'rain-cover-api',
      }),
    );
    expect(predBody['ml.prediction.subject_id'] ?? '').not.toContain('@');

    // The retraining names the drift records that caused it, and the v2 run carries the trigger.
    const retrain = JSON.parse(records.find((r) => r.event === 'ml.retraining.triggered')!.body);
    const driftIds = new Set(
      records.filter((r) => r.event === 'ml.drift.detected').map((r) => JSON.parse(r.body)['ml.drift.id']),
    );
    expect(retrain['ml.retraining.trigger_ids'].length).toBeGreaterThan(0);
    for (const id of retrain['ml.retraining.trigger_ids']) expect(driftIds.has(id)).toBe(true);
    const v2run = records
      .filter((r) => r.event === 'ml.training.completed')
      .map((r) => JSON.parse(r.body))[1];
    expect(v2run['ml.run.id']).toBe(retrain['ml.run.id']);

    const verify = spawnSync(process.execPath, ['dist/cli/main.js', 'verify', dir], { encoding: 'utf8' });
    expect(verify.status).toBe(0);
  });

  it('--fresh starts a new journal and keeps the old one beside it, still verifiable; --help says so', () => {
    const chainsOf = (d: string) =>
      new Set([...new JournalReader(d).lines()].map((l) => parseRecordLine(l.text).chain));
    const before = chainsOf(demoDir);
    expect(before.size).toBeGreaterThanOrEqual(2);
    const again = spawnSync(process.execPath, ['dist/cli/main.js', 'demo', '--fresh', '--journal', demoDir], {
      encoding: 'utf8',
    });
    expect(again.status, again.stderr).toBe(0);
    const moved =
      /^mltrail demo: --fresh: the existing journal in (.+) was moved to (.+\.replaced-[0-9TZ-]+)\n$/.exec(
        withoutSigningKeyWarning(again.stderr),
      );
    expect(moved?.[1]).toBe(demoDir);
    const aside = moved![2];
    // This run's summary covers this run only: two new chains, none of the old ones.
    expect(again.stdout).toMatch(/integrity: \d+ records in 2 chain\(s\) verified/);
    const after = chainsOf(demoDir);
    expect(after.size).toBe(2);
    expect([...after].filter((c) => before.has(c))).toEqual([]);
    // The old journal is kept whole, and still verifies with its own key.
    expect(chainsOf(aside)).toEqual(before);
    expect(
      spawnSync(process.execPath, ['dist/cli/main.js', 'verify', aside], { encoding: 'utf8' }).status,
    ).toBe(0);

    const help = spawnSync(process.execPath, ['dist/cli/main.js', 'demo', '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(
      /--fresh +start a new journal: an existing DIR is first moved aside to DIR\.replaced-<time>/,
    );
  });

  it('with a collector that is down or refusing, it says so and finishes; the journal keeps every record', async () => {
    // One endpoint refuses (503 on every request), the other has nothing listening.
    const refusing = createServer((_req, res) => res.writeHead(503).end('overloaded'));
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    try {
      for (const endpoint of [
        `http://127.0.0.1:${(refusing.address() as { port: number }).port}`,
        `http://127.0.0.1:${closedPort}`,
      ]) {
        const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-demo-noship-')), 'journal');
        // Asynchronous: the refusing server answers from this process.
        const child = spawn(
          process.execPath,
          ['dist/cli/main.js', 'demo', '--journal', dir, '--ship-timeout', '2'],
          { env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_LOGS_EXPORTER: '' } },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d) => (stdout += d));
        child.stderr.on('data', (d) => (stderr += d));
        const status = await new Promise<number | null>((r) => child.on('close', r));
        expect(status, stderr).toBe(0);
        expect(stderr).toContain(`mltrail demo: could not ship the journal to ${endpoint}/v1/logs (`);
        expect(stderr).toContain(`send it later with "npx mltrail ship --once --journal ${dir}"`);
        expect(stdout).toContain(`not shipped to ${endpoint}/v1/logs`);
        expect(stdout).toMatch(/integrity: \d+ records in \d+ chain\(s\) verified/);
        expect(
          spawnSync(process.execPath, ['dist/cli/main.js', 'verify', dir], { encoding: 'utf8' }).status,
        ).toBe(0);
      }
    } finally {
      refusing.close();
    }
    const bad = spawnSync(process.execPath, ['dist/cli/main.js', 'demo', '--ship-timeout', 'soon'], {
      encoding: 'utf8',
    });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--ship-timeout: "soon" is not a positive number of seconds');
  }, 300_000); // each run waits out the OTel exporters' own timeouts (~20 s) besides the 2 s it is given
});
