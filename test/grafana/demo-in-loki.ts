import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { expect } from 'vitest';
import { parse } from 'yaml';
import { type AuditRecord, parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { startTestCollector, until } from '../collector/harness.js';
import { type LokiEntry, lokiEntries } from './loki-model.js';

/** The demo's trail as Loki would hold it, next to the journal it came from. */
export interface DemoInLoki {
  /** The demo's journal directory. */
  dir: string;
  /** Every record of the journal, in journal order. */
  journal: AuditRecord[];
  /** What Loki would store (one entry per record: at-least-once duplicates folded, as Loki folds them). */
  entries: LokiEntry[];
}

/**
 * Runs `mltrail demo` shipping through the real collector (the shipped config, auth on), whose Loki
 * exporter posts to a capture server on loopback, and stores what it receives the way Loki 3.5 maps OTLP
 * (loki-model.ts, with the index labels of grafana/loki.yaml). Resolves once every journal record has
 * reached the exporter.
 */
export async function demoInLoki(prefix: string): Promise<DemoInLoki> {
  const requests: unknown[] = [];
  const capture = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      requests.push(JSON.parse(body.toString('utf8')));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => capture.listen(0, '127.0.0.1', r));
  const port = (capture.address() as { port: number }).port;
  const dir = join(mkdtempSync(join(tmpdir(), `${prefix}-`)), 'journal');
  let journal: AuditRecord[] = [];
  let entries: LokiEntry[] = [];
  try {
    const collector = await startTestCollector({ loki: `http://127.0.0.1:${port}/otlp` });
    try {
      const code = await new Promise<number>((resolve) => {
        execFile(
          process.execPath,
          ['dist/cli/main.js', 'demo', '--journal', dir],
          {
            env: {
              ...process.env,
              OTEL_EXPORTER_OTLP_ENDPOINT: collector.httpEndpoint,
              OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${collector.token}`,
            },
          },
          (err) => resolve(err === null ? 0 : 1),
        );
      });
      expect(code).toBe(0);
      journal = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
      const indexLabels = parse(readFileSync('grafana/loki.yaml', 'utf8'))
        .limits_config.otlp_config.resource_attributes.attributes_config.filter(
          (r: { action: string }) => r.action === 'index_label',
        )
        .flatMap((r: { attributes: string[] }) => r.attributes);
      const stored = () => {
        entries = lokiEntries(requests, indexLabels);
        return new Set(
          entries.map((e) => `${e.structuredMetadata.mltrail_chain_id}:${e.structuredMetadata.mltrail_seq}`),
        ).size;
      };
      await until(() => stored() >= journal.length, 'every journal record at the Loki exporter', 100, 600);
    } finally {
      await collector.stop();
    }
  } finally {
    await new Promise<void>((r) => capture.close(() => r()));
  }
  // At-least-once delivery: a record delivered twice is one entry in Loki (same stream, time and line).
  const unique = new Map(entries.map((e) => [`${JSON.stringify(e.stream)}|${e.tsNs}|${e.line}`, e]));
  return { dir, journal, entries: [...unique.values()] };
}
