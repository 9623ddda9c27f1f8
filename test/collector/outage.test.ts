import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChainVerifier, canonicalize, parseRecordLine } from '../../src/integrity/index.js';
import { readIntoVerifier } from '../../src/integrity/record-sources.js';
import { AuditLog, JournalReader, Shipper } from '../../src/journal/index.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorSkipReason,
  startTestCollector,
} from './harness.js';

async function writeJournal(dir: string, n: number): Promise<void> {
  const log = new AuditLog({ dir, checkpointEvery: 1000 });
  for (let i = 0; i < n; i++) {
    const ts = new Date().toISOString();
    log.append({
      event: 'ml.prediction',
      sev: 'INFO',
      ts,
      attrs: { 'ml.prediction.id': `p-${i}` },
      body: canonicalize({
        'event.name': 'ml.prediction',
        timestamp: ts,
        'service.name': 'outage-test',
        'ml.prediction.id': `p-${i}`,
        'ml.prediction.latency_ms': 1,
      }),
    });
  }
  await log.close();
}

function keys(records: { attributes: Record<string, unknown> }[]): Set<string> {
  return new Set(records.map((r) => `${r.attributes['mltrail.chain.id']}:${r.attributes['mltrail.seq']}`));
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe.skipIf(!collectorAvailable())(
  `zero-loss delivery through the real collector (${collectorSkipReason})`,
  () => {
    it('collector down while 10 000 records are written, then up: the archive ends with all of them and verifies', async () => {
      const collector = await startTestCollector();
      await collector.stop();
      const dir = mkdtempSync(join(tmpdir(), 'mltrail-outage-'));
      await writeJournal(dir, 10_000);
      const journal = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
      expect(journal).toHaveLength(10_010); // 10 000 records + a checkpoint after every 1000

      const shipper = new Shipper({
        dir,
        endpoint: collector.httpEndpoint,
        headers: { Authorization: `Bearer ${collector.token}` },
        maxBackoffMs: 500,
      });
      const draining = shipper.drain();
      await until(() => shipper.failures >= 2, 'failed attempts while the collector is down');
      expect(shipper.shipped).toBe(0);
      await collector.start();
      await draining;
      expect(shipper.shipped).toBe(journal.length);
      await until(() => archivedLogRecords(collector.archive).length >= journal.length, 'the archive');
      await collector.stop();

      const archived = keys(archivedLogRecords(collector.archive));
      for (const r of journal) expect(archived.has(`${r.chain}:${r.seq}`), `${r.chain}:${r.seq}`).toBe(true);
      const v = new ChainVerifier();
      readIntoVerifier(collector.archive, v);
      const report = v.finish();
      expect(report.problems).toEqual([]);
      expect(report.chains.map((c) => ({ records: c.records, problems: c.problems }))).toEqual([
        { records: journal.length, problems: [] },
      ]);
    });

    it('the shipper killed mid-shipping and restarted resumes from its cursor: nothing lost, duplicates harmless', async () => {
      const collector = await startTestCollector();
      const dir = mkdtempSync(join(tmpdir(), 'mltrail-resume-'));
      await writeJournal(dir, 10_000);
      const journal = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
      const ship = (): ChildProcess =>
        spawn(
          process.execPath,
          [
            'dist/cli/main.js',
            'ship',
            '--once',
            '--journal',
            dir,
            '--endpoint',
            collector.httpEndpoint,
            '--header',
            `Authorization=Bearer ${collector.token}`,
          ],
          {
            stdio: 'ignore',
          },
        );
      const first = ship();
      await until(() => archivedLogRecords(collector.archive).length > 1000, 'a partial delivery');
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      const partial = archivedLogRecords(collector.archive).length;
      expect(partial).toBeLessThan(journal.length);
      const second = ship();
      const code = await new Promise((r) => second.once('exit', r));
      expect(code).toBe(0);
      await until(() => keys(archivedLogRecords(collector.archive)).size >= journal.length, 'the rest');
      await collector.stop();
      const archived = keys(archivedLogRecords(collector.archive));
      for (const r of journal) expect(archived.has(`${r.chain}:${r.seq}`), `${r.chain}:${r.seq}`).toBe(true);
      const v = new ChainVerifier();
      readIntoVerifier(collector.archive, v);
      const report = v.finish();
      expect(report.ok).toBe(true);
      expect(report.chains[0].records).toBe(journal.length);
    });
  },
);
