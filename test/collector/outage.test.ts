import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader, Shipper } from '../../src/journal/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorSkipReason,
  recordKeys,
  startTestCollector,
  until,
  writePredictionJournal,
} from './harness.js';

describe.skipIf(!collectorAvailable())(
  `zero-loss delivery through the real collector (${collectorSkipReason})`,
  () => {
    it('collector down while 10 000 records are written, then up: the archive ends with all of them and verifies', async () => {
      const collector = await startTestCollector();
      await collector.stop();
      const dir = mkdtempSync(join(tmpdir(), 'mltrail-outage-'));
      await writePredictionJournal(dir, 10_000, 'outage-test');
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

      const archived = recordKeys(archivedLogRecords(collector.archive));
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
      await writePredictionJournal(dir, 10_000, 'outage-test');
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
      await until(() => recordKeys(archivedLogRecords(collector.archive)).size >= journal.length, 'the rest');
      await collector.stop();
      const archived = recordKeys(archivedLogRecords(collector.archive));
      for (const r of journal) expect(archived.has(`${r.chain}:${r.seq}`), `${r.chain}:${r.seq}`).toBe(true);
      const v = new ChainVerifier();
      readIntoVerifier(collector.archive, v);
      const report = v.finish();
      expect(report.ok).toBe(true);
      expect(report.chains[0].records).toBe(journal.length);
    });
  },
);
