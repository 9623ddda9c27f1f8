import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import { ATTRIBUTE_TYPES } from '../../src/semconv/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';
import { createTrail } from '../../src/trail/index.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorBinary,
  collectorSkipReason,
  productionConfig,
  startTestCollector,
  type TestCollector,
} from './harness.js';

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('collector manifest and configuration (static)', () => {
  const manifest = parse(readFileSync(join('collector', 'builder-config.yaml'), 'utf8'));
  const config = parse(readFileSync(productionConfig, 'utf8'));
  const modules: string[] = ['receivers', 'processors', 'exporters', 'extensions', 'providers'].flatMap((k) =>
    (manifest[k] ?? []).map((m: { gomod: string }) => m.gomod),
  );

  it('pins every component to one release', () => {
    const versions = new Set(modules.map((m) => m.split(' ')[1]).filter((v) => v.startsWith('v0.')));
    expect([...versions]).toEqual(['v0.161.0']);
    const providers = new Set((manifest.providers as { gomod: string }[]).map((m) => m.gomod.split(' ')[1]));
    expect([...providers]).toEqual(['v1.67.0']);
  });

  it('every component the config uses is in the manifest', () => {
    const moduleOf: Record<string, string> = {
      otlp: 'otlpreceiver',
      memory_limiter: 'memorylimiterprocessor',
      batch: 'batchprocessor',
      redaction: 'redactionprocessor',
      transform: 'transformprocessor',
      otlp_grpc: 'otlpexporter',
      otlp_http: 'otlphttpexporter',
      file: 'fileexporter',
      debug: 'debugexporter',
      file_storage: 'filestorage',
      health_check: 'healthcheckextension',
      bearertokenauth: 'bearertokenauthextension',
    };
    for (const section of ['receivers', 'processors', 'exporters', 'extensions']) {
      for (const name of Object.keys(config[section])) {
        const type = name.split('/')[0];
        expect(moduleOf[type], `${section}.${name}`).toBeDefined();
        expect(
          modules.some((m) => m.includes(`/${moduleOf[type]} `)),
          `${section}.${name} → ${moduleOf[type]}`,
        ).toBe(true);
      }
    }
  });

  it('the redaction allow-list keeps every key of the registry and never rewrites chain fields', () => {
    const allowed = new Set<string>(config.processors.redaction.allowed_keys);
    const missing = Object.keys(ATTRIBUTE_TYPES).filter(
      (k) => !allowed.has(k) && !k.startsWith('mltrail.redaction'),
    );
    expect(missing).toEqual([]);
    expect(config.processors.redaction.ignored_keys).toEqual(
      expect.arrayContaining([
        'mltrail.chain.id',
        'mltrail.seq',
        'mltrail.prev_hash',
        'mltrail.hash',
        'mltrail.body.digest',
      ]),
    );
  });

  it('persistent queues fsync and retries never give up', () => {
    expect(config.extensions['file_storage/queue'].fsync).toBe(true);
    expect(config.exporters['otlp_http/loki'].retry_on_failure.max_elapsed_time).toBe('0s');
    expect(config.exporters['otlp_http/loki'].sending_queue.storage).toBe('file_storage/queue');
  });
});

describe.skipIf(!collectorAvailable())(`the real collector binary (${collectorSkipReason})`, () => {
  let collector: TestCollector;
  beforeAll(async () => {
    collector = await startTestCollector();
  });
  afterAll(async () => {
    await collector?.stop();
  });

  it('validates the production config (with the env it needs)', () => {
    const r = spawnSync(collectorBinary, ['validate', `--config=${productionConfig}`], {
      env: { ...process.env, MLTRAIL_COLLECTOR_TOKEN: 'x' },
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('refuses OTLP without the bearer token', async () => {
    const res = await fetch(`${collector.httpEndpoint}/v1/logs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resourceLogs: [] }),
    });
    expect(res.status).toBe(401);
    const wrong = await fetch(`${collector.httpEndpoint}/v1/logs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer wrong' },
      body: JSON.stringify({ resourceLogs: [] }),
    });
    expect(wrong.status).toBe(401);
  });

  it('delivers audit records intact (body, attributes, chain), redacts planted PII, truncates oversized attributes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-e2e-'));
    const loggerProvider = new LoggerProvider({
      processors: [
        new SimpleLogRecordProcessor({
          exporter: new OTLPLogExporter({
            url: `${collector.httpEndpoint}/v1/logs`,
            headers: { Authorization: `Bearer ${collector.token}` },
          }),
        }),
      ],
    });
    const trail = await createTrail({
      serviceName: 'e2e',
      environment: 'test',
      loggerProvider,
      sink: new AuditLog({ dir }),
    });
    const ds = await trail.dataset({ name: 'rows', rows: [{ a: 1 }, { a: 2 }] });
    const model = await trail.register({ name: 'm', version: '1', data: 'weights' });
    // Scores whose digits look like card numbers must reach the archive unchanged (bodies are evidence).
    const predict = trail.predict(
      { model, output: () => ({ score: 0.5432109876543211 }) },
      (x: number) => x * 2,
    );
    for (let i = 0; i < 20; i++) predict(i);
    trail.decide({ predictionId: 'p-1', outcome: 'deny', reason: 'x'.repeat(20_000) });
    // A record that bypassed the SDK's redaction: raw personal data in attributes.
    loggerProvider.getLogger('bypass').emit({
      body: 'raw log line',
      attributes: {
        'ml.prediction.subject_id': 'alice@example.com',
        'ml.decision.reason': 'card 4111 1111 1111 1111 on file',
        'customer.ssn': '123-45-6789',
      },
    });
    await loggerProvider.forceFlush();
    await trail.shutdown();
    void ds;

    const journal = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
    const audit = journal.filter((r) => r.event !== 'mltrail.checkpoint');
    await until(() => archivedLogRecords(collector.archive).length >= audit.length + 1, 'the archive');
    const archived = archivedLogRecords(collector.archive);

    // Every audit record: same body, same chain fields, lookup attributes intact.
    for (const r of audit) {
      const a = archived.find(
        (x) => x.attributes['mltrail.chain.id'] === r.chain && Number(x.attributes['mltrail.seq']) === r.seq,
      );
      expect(a, `${r.chain}:${r.seq}`).toBeDefined();
      expect(a!.body).toBe(r.body);
      expect(a!.attributes['mltrail.hash']).toBe(r.hash);
      expect(a!.attributes['mltrail.prev_hash']).toBe(r.prev);
      expect(a!.attributes['mltrail.body.digest']).toBe(r.digest);
      for (const [k, v] of Object.entries(r.attrs)) {
        if (typeof v === 'string' && v.length > 8192) expect(String(a!.attributes[k]).length).toBe(8192);
        else if (!Array.isArray(v))
          expect(a!.attributes[k], k).toEqual(typeof v === 'number' && Number.isInteger(v) ? String(v) : v);
      }
    }
    // The archive itself verifies.
    const v = new ChainVerifier();
    readIntoVerifier(collector.archive, v);
    const report = v.finish();
    expect(report.problems).toEqual([]);
    expect(report.chains.map((c) => c.problems)).toEqual([[]]);
    expect(report.chains[0].records).toBe(audit.length);

    // The planted personal data was masked or dropped by the collector.
    const bypass = archived.find((x) => x.body === 'raw log line')!;
    expect(bypass.attributes['ml.prediction.subject_id']).not.toContain('alice@example.com');
    expect(String(bypass.attributes['ml.decision.reason'])).not.toMatch(/4111 1111 1111 1111/);
    expect(bypass.attributes['customer.ssn']).toBeUndefined();
  });

  it('never cuts a body over the Loki line limit: it reaches the archive whole and flagged; attribute count is capped, chain fields kept', async () => {
    const loggerProvider = new LoggerProvider({
      // The SDK's own default (128) would drop attributes before the collector sees them.
      logRecordLimits: { attributeCountLimit: 1000 },
      processors: [
        new SimpleLogRecordProcessor({
          exporter: new OTLPLogExporter({
            url: `${collector.httpEndpoint}/v1/logs`,
            headers: { Authorization: `Bearer ${collector.token}` },
          }),
        }),
      ],
    });
    // A client that bypassed the SDK (which keeps bodies under 256 KB) sends a 300 KB audit-shaped body and
    // more allowed attributes than Loki's 128-entry structured-metadata limit.
    const body = `{"event.name":"ml.prediction","ml.prediction.input":"${'a'.repeat(300_000)}"}`;
    const chain = {
      'mltrail.chain.id': 'oversized-chain',
      'mltrail.seq': 7,
      'mltrail.prev_hash': 'p'.repeat(64),
      'mltrail.hash': 'h'.repeat(64),
      'mltrail.body.digest': 'd'.repeat(64),
    };
    const allowed: string[] = parse(readFileSync(productionConfig, 'utf8')).processors.redaction.allowed_keys;
    const many = Object.fromEntries(
      allowed
        .filter((k) => !(k in chain))
        .slice(0, 140)
        .map((k) => [k, 'v']),
    );
    expect(Object.keys(many).length).toBe(140);
    loggerProvider.getLogger('oversized').emit({ body, attributes: { ...many, ...chain } });
    await loggerProvider.forceFlush();
    await loggerProvider.shutdown();

    const find = () =>
      archivedLogRecords(collector.archive).find(
        (x) => x.attributes['mltrail.chain.id'] === 'oversized-chain',
      );
    await until(() => find() !== undefined, 'the oversized record in the archive');
    const a = find()!;
    expect(a.body).toBe(body);
    expect(a.attributes['mltrail.collector.oversized']).toBe(true);
    // 100 kept by limit() (chain fields first), plus the flag set after it.
    expect(Object.keys(a.attributes).length).toBe(101);
    for (const [k, v] of Object.entries(chain))
      expect(a.attributes[k], k).toBe(typeof v === 'number' ? String(v) : v);

    // An ordinary record is not flagged.
    const small = archivedLogRecords(collector.archive).find((x) => x.body === 'raw log line');
    if (small !== undefined) expect(small.attributes['mltrail.collector.oversized']).toBeUndefined();
  });
});
