import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { cursorFile, JournalReader, Shipper } from '../../src/journal/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';
import { ACCESS_NOT_RECORDED } from '../fixtures/trust.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorSkipReason,
  productionConfig,
  recordKey,
  startTestCollector,
  until,
  writePredictionJournal,
} from './harness.js';

describe('the archive exporter writes before it acknowledges (static)', () => {
  it('keeps rotation on: each export is one unbuffered write to the file, not a user-space buffer', () => {
    // Without `rotation` the v0.161 file exporter wraps the file in a 4 KiB bufio.Writer flushed only on a
    // timer or when full, so a killed collector loses records it had already acknowledged.
    const archive = parse(readFileSync(productionConfig, 'utf8')).exporters['file/archive'];
    expect(archive.rotation).toEqual(expect.objectContaining({ max_megabytes: expect.any(Number) }));
    expect(archive.flush_interval).toBeUndefined();
    expect(archive.append).toBeUndefined();
  });
});

describe.skipIf(!collectorAvailable())(`the collector killed mid-batch (${collectorSkipReason})`, () => {
  it('SIGKILL while the shipper sends: every acknowledged record is in the archive; after a restart on the same storage all are, and it verifies', async () => {
    const collector = await startTestCollector({ archive: 'production' });
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-collector-crash-'));
    await writePredictionJournal(dir, 20_000, 'crash-test');
    const lines = [...new JournalReader(dir).lines()];
    const journal = lines.map((l) => ({
      segment: relative(dir, l.file),
      line: l.line,
      record: parseRecordLine(l.text),
    }));
    expect(journal).toHaveLength(20_020); // 20 000 records + a checkpoint after every 1000

    const shipper = new Shipper({
      dir,
      endpoint: collector.httpEndpoint,
      headers: { Authorization: `Bearer ${collector.token}` },
      batchSize: 100,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
    });
    const draining = shipper.drain();
    try {
      await until(() => shipper.shipped >= 3000, 'a partial delivery');
      await collector.stop('SIGKILL');
      const failuresAtKill = shipper.failures;

      // What the collector acknowledged is what the shipper's persisted cursor covers (it advances only on
      // a 2xx). Every one of those records is in the archive the killed process left behind.
      const cursor = JSON.parse(readFileSync(cursorFile(dir, shipper.url), 'utf8')) as {
        segments: Record<string, { lines: number }>;
      };
      const acked = journal.filter((j) => j.line <= (cursor.segments[j.segment]?.lines ?? 0));
      expect(acked.length).toBeGreaterThanOrEqual(3000);
      expect(acked.length).toBeLessThan(journal.length);
      const afterKill = new Set(archivedLogRecords(collector.archive).map(recordKey));
      const lostAcked = acked
        .map((j) => `${j.record.chain}:${j.record.seq}`)
        .filter((k) => !afterKill.has(k));
      expect(lostAcked).toEqual([]);
      // Nothing beyond what was sent: the archive holds the acknowledged records plus at most the batch
      // that was in flight when the process died.
      expect(afterKill.size).toBeLessThanOrEqual(acked.length + 100);

      // The shipper keeps retrying the unacknowledged batch against the dead endpoint.
      await until(() => shipper.failures > failuresAtKill, 'a failed attempt while the collector is down');
      await collector.start();
      expect(await draining).toBe(journal.length);
    } finally {
      await shipper.close();
    }
    await until(
      () => new Set(archivedLogRecords(collector.archive).map(recordKey)).size >= journal.length,
      'the rest in the archive',
    );
    await collector.stop();

    const archived = archivedLogRecords(collector.archive);
    const stored = new Set(archived.map(recordKey));
    const missing = journal.map((j) => `${j.record.chain}:${j.record.seq}`).filter((k) => !stored.has(k));
    expect(missing).toEqual([]);
    expect(stored.size).toBe(journal.length);
    // Re-sent batches are duplicates (same chain and seq, same hash), never different records.
    expect(archived.length).toBeGreaterThanOrEqual(journal.length);

    const v = new ChainVerifier();
    readIntoVerifier(collector.archive, v);
    const report = v.finish();
    expect(report.problems).toEqual([]);
    expect(report.chains.map((c) => ({ records: c.records, problems: c.problems }))).toEqual([
      { records: journal.length, problems: [] },
    ]);
    // And the auditor's command reads the production (zstd) archive as it is.
    const cli = spawnSync(process.execPath, ['dist/cli/main.js', 'verify', collector.archive, '--json'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    expect(cli.stderr).toBe(ACCESS_NOT_RECORDED);
    expect(cli.status).toBe(0);
    expect(JSON.parse(cli.stdout).chains[0].records).toBe(journal.length);
  }, 180_000);

  it("the Loki path: records acknowledged while Loki refuses them survive a SIGKILL in the fsync'd queue and all reach Loki after the restart", async () => {
    // A server playing Loki's OTLP endpoint: refuses (503) until it is "up", then keeps every record.
    const work = mkdtempSync(join(tmpdir(), 'mltrail-loki-queue-'));
    const received = join(work, 'loki.jsonl');
    let up = false;
    let refused = 0;
    const loki = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        if (!up) {
          refused++;
          res.writeHead(503).end('not ready');
          return;
        }
        const raw = Buffer.concat(chunks);
        const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
        appendFileSync(received, `${body.toString('utf8').replace(/\n/g, '')}\n`);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => loki.listen(0, '127.0.0.1', r));
    const collector = await startTestCollector({
      loki: `http://127.0.0.1:${(loki.address() as { port: number }).port}/otlp`,
    });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'mltrail-loki-queue-journal-'));
      await writePredictionJournal(dir, 5_000, 'crash-test');
      const journal = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
      expect(journal).toHaveLength(5_005); // and a checkpoint after every 1000
      const shipper = new Shipper({
        dir,
        endpoint: collector.httpEndpoint,
        headers: { Authorization: `Bearer ${collector.token}` },
      });
      // The collector acknowledges everything: the records are in its persistent queue, not yet in Loki.
      expect(await shipper.drain()).toBe(journal.length);
      await shipper.close();
      await until(() => refused > 0, 'a delivery attempt Loki refused');
      expect(archivedLogRecords(received)).toEqual([]);

      await collector.stop('SIGKILL');
      up = true;
      await collector.start();
      await until(
        () => new Set(archivedLogRecords(received).map(recordKey)).size >= journal.length,
        'the queued records in Loki',
      );
      const inLoki = new Set(archivedLogRecords(received).map(recordKey));
      expect(journal.map((r) => `${r.chain}:${r.seq}`).filter((k) => !inLoki.has(k))).toEqual([]);
      const v = new ChainVerifier();
      readIntoVerifier(received, v);
      const report = v.finish();
      expect(report.problems).toEqual([]);
      expect(report.chains.map((c) => ({ records: c.records, problems: c.problems }))).toEqual([
        { records: journal.length, problems: [] },
      ]);
    } finally {
      await collector.stop();
      await new Promise((r) => loki.close(r));
    }
  }, 180_000);
});
