import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Shipper } from '../../src/journal/index.js';
import { archiveFormat, archiveText } from '../../src/sources/archive-format.js';
import { ACCESS_NOT_RECORDED } from '../fixtures/trust.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorSkipReason,
  startTestCollector,
  until,
  writePredictionJournal,
} from './harness.js';

/**
 * An archive's format is told by its content, never by its name (docs/internals.md): the collector's own
 * archive (length-prefixed zstd frames), renamed anything, and the same records re-compressed as a plain
 * zstd or gzip stream or left as text, named anything, all verify the same.
 */

function verify(file: string): {
  status: number | null;
  stderr: string;
  report: { intact: boolean; records: number; chains: { records: number }[] } | undefined;
} {
  const r = spawnSync(process.execPath, ['dist/cli/main.js', 'verify', file, '--json'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    timeout: 120_000,
  });
  return { status: r.status, stderr: r.stderr, report: r.stdout ? JSON.parse(r.stdout) : undefined };
}

describe('archiveFormat: the first bytes decide', () => {
  const message = '{"resourceLogs":[]}';
  const text = Buffer.from(`${message}\n${message}\n`);
  // The collector's framing: per export a 4-byte big-endian length and one zstd frame of one message.
  const frame = zstdCompressSync(Buffer.from(message));
  const length = Buffer.alloc(4);
  length.writeUInt32BE(frame.length, 0);
  const framed = Buffer.concat([length, frame, length, frame]);

  it('tells text, gzip, a zstd stream and the collector framing apart, and decodes each to the same lines', () => {
    expect(archiveFormat(text)).toBe('text');
    expect(archiveFormat(gzipSync(text))).toBe('gzip');
    expect(archiveFormat(zstdCompressSync(text))).toBe('zstd');
    expect(archiveFormat(framed)).toBe('zstd-framed');
    for (const b of [text, gzipSync(text), zstdCompressSync(text), framed])
      expect(archiveText(b)).toBe(text.toString('utf8'));
    expect(archiveFormat(Buffer.alloc(0))).toBe('text');
  });

  it('data that does not decompress is a line saying so, not an exception', () => {
    const cut = gzipSync(text).subarray(0, 12);
    expect(archiveText(cut)).toMatch(/^\(the gzip data does not decompress: .+\)\n$/);
    const bad = zstdCompressSync(text);
    bad.fill(0xff, 8);
    expect(archiveText(bad)).toMatch(/^\(the zstd data does not decompress: .+\)\n$/);
  });
});

describe.skipIf(!collectorAvailable())(
  `a real collector archive under any name (${collectorSkipReason})`,
  () => {
    it('the framed archive renamed .jsonl.zst, .gz, .ndjson or without extension, and re-compressed as zstd or gzip or plain under misleading names, verifies the same', async () => {
      const collector = await startTestCollector({ archive: 'production' });
      const dir = mkdtempSync(join(tmpdir(), 'mltrail-archive-format-'));
      const n = 300;
      await writePredictionJournal(dir, n, 'archive-format');
      const shipper = new Shipper({
        dir,
        endpoint: collector.httpEndpoint,
        headers: { Authorization: `Bearer ${collector.token}` },
        batchSize: 50,
      });
      try {
        await shipper.drain();
      } finally {
        await shipper.close();
      }
      await until(() => archivedLogRecords(collector.archive).length >= n, 'the archive');
      await collector.stop();

      const archive = readFileSync(collector.archive);
      // The collector's own framing, as written.
      expect(archiveFormat(archive)).toBe('zstd-framed');
      const lines = archiveText(archive);
      const out = join(dir, 'copies');
      mkdirSync(out);
      const copies: [string, Buffer][] = [
        ['x.jsonl.zst', archive],
        ['x.gz', archive],
        ['x.ndjson', archive],
        ['x', archive],
        ['zstd-stream.jsonl', zstdCompressSync(Buffer.from(lines))],
        ['zstd-stream.gz', zstdCompressSync(Buffer.from(lines))],
        ['gzip-stream.zst', gzipSync(Buffer.from(lines))],
        ['gzip-stream.jsonl', gzipSync(Buffer.from(lines))],
        ['plain.jsonl.zst', Buffer.from(lines)],
        ['plain.gz', Buffer.from(lines)],
      ];
      const original = verify(collector.archive);
      expect(original.status, original.stderr).toBe(0);
      const records = original.report!.chains.map((c) => c.records);
      expect(records.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(n);
      for (const [name, bytes] of copies) {
        const file = join(out, name);
        if (bytes === archive) copyFileSync(collector.archive, file);
        else writeFileSync(file, bytes);
        const r = verify(file);
        expect({ name, status: r.status, stderr: r.stderr }).toEqual({
          name,
          status: 0,
          stderr: ACCESS_NOT_RECORDED,
        });
        expect({ name, intact: r.report!.intact, records: r.report!.chains.map((c) => c.records) }).toEqual({
          name,
          intact: true,
          records,
        });
      }
    }, 300_000);
  },
);
