import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog, JournalReader, Shipper } from '../../src/journal/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';
import { createTrail } from '../../src/trail/index.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorSkipReason,
  startTestCollector,
} from '../collector/harness.js';

const N = 50_000;

describe.skipIf(!collectorAvailable())(
  `load: ${N} audited predictions from concurrent callers (${collectorSkipReason})`,
  () => {
    it('every prediction is in the journal and, through the real collector, in its archive; both verify', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'mltrail-load-'));
      const trail = await createTrail({ serviceName: 'load', sink: new AuditLog({ dir }) });
      const model = await trail.register({ name: 'm', version: '1', data: 'w' });
      const ids: string[] = [];
      const predict = trail.predict({ model, onRecorded: (p) => ids.push(p.id) }, async (x: number) => {
        await new Promise((r) => setImmediate(r));
        return x * 2;
      });
      // 200 concurrent callers, each making N/200 awaited predictions.
      await Promise.all(
        Array.from({ length: 200 }, async (_, c) => {
          for (let i = 0; i < N / 200; i++) await predict(c * 1000 + i);
        }),
      );
      await trail.shutdown();
      expect(ids).toHaveLength(N);

      const journal = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
      const predicted = new Set(
        journal.filter((r) => r.event === 'ml.prediction').map((r) => JSON.parse(r.body)['ml.prediction.id']),
      );
      expect(predicted.size).toBe(N);
      for (const id of ids) expect(predicted.has(id)).toBe(true);
      const local = new ChainVerifier();
      readIntoVerifier(dir, local);
      expect(local.finish().ok).toBe(true);

      const collector = await startTestCollector();
      try {
        const shipper = new Shipper({
          dir,
          endpoint: collector.httpEndpoint,
          headers: { Authorization: `Bearer ${collector.token}` },
          batchSize: 2048,
        });
        expect(await shipper.drain()).toBe(journal.length);
        const key = (r: { attributes: Record<string, unknown> }) =>
          `${r.attributes['mltrail.chain.id']}:${r.attributes['mltrail.seq']}`;
        for (let i = 0; i < 300; i++) {
          if (new Set(archivedLogRecords(collector.archive).map(key)).size >= journal.length) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        const archived = new Set(archivedLogRecords(collector.archive).map(key));
        const missing = journal.filter((r) => !archived.has(`${r.chain}:${r.seq}`));
        expect(missing.map((r) => `${r.chain}:${r.seq}`)).toEqual([]);
        const remote = new ChainVerifier();
        readIntoVerifier(collector.archive, remote);
        const report = remote.finish();
        expect(report.ok).toBe(true);
        expect(report.chains[0].records).toBe(journal.length);
      } finally {
        await collector.stop();
      }
    }, 300_000);
  },
);
