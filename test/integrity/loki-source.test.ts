import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalize, parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import { ACCESS_NOT_RECORDED } from '../fixtures/trust.js';

/**
 * Loki cannot run here (no container engine; AGPL modules are not built), so this serves Loki's documented
 * query_range response shape (streams, values of [ns, line, {structuredMetadata}]) from a real HTTP server
 * on loopback, built from a real journal the way the collector ships it, and checks `mltrail verify --loki`
 * end to end: pagination, tenant header, categorize-labels flag, and tampering detection.
 */
let server: Server;
let url = '';
let entries: [string, string, { structuredMetadata: Record<string, string> }][] = [];
const seen: { tenant?: string; flags?: string }[] = [];

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-loki-'));
  const log = new AuditLog({ dir, checkpointEvery: 10 });
  for (let i = 0; i < 25; i++) {
    const ts = new Date(Date.now() - 60_000 + i).toISOString();
    log.append({
      event: 'ml.prediction',
      sev: 'INFO',
      ts,
      attrs: { 'ml.prediction.id': `p-${i}` },
      body: canonicalize({ 'event.name': 'ml.prediction', timestamp: ts, 'ml.prediction.id': `p-${i}` }),
    });
  }
  await log.close();
  entries = [...new JournalReader(dir).lines()].map((l, i) => {
    const r = parseRecordLine(l.text);
    const ns = (BigInt(Date.parse(r.ts)) * 1_000_000n + BigInt(i)).toString();
    return [
      ns,
      r.body,
      {
        structuredMetadata: {
          event_name: r.event,
          mltrail_chain_id: r.chain,
          mltrail_seq: String(r.seq),
          mltrail_prev_hash: r.prev,
          mltrail_hash: r.hash,
          mltrail_body_digest: r.digest,
          mltrail_record_version: String(r.v),
        },
      },
    ];
  });
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    seen.push({
      tenant: req.headers['x-scope-orgid'] as string,
      flags: req.headers['x-loki-response-encoding-flags'] as string,
    });
    if (u.pathname !== '/loki/api/v1/query_range') {
      res.writeHead(404).end();
      return;
    }
    const start = BigInt(u.searchParams.get('start') ?? '0');
    const limit = Number(u.searchParams.get('limit'));
    // Loki answers in timestamp order (direction=forward).
    const page = entries
      .filter((e) => BigInt(e[0]) >= start)
      .sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1))
      .slice(0, limit);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        status: 'success',
        data: { resultType: 'streams', result: [{ stream: { service_name: 'svc' }, values: page }] },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => server?.close());

/** The CLI runs asynchronously: the Loki stand-in answers from this process's event loop. */
const run = (args: string[]) =>
  new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ status: err === null ? 0 : Number((err as { code?: number }).code ?? 2), stdout, stderr });
    });
  });
const verify = (extra: string[] = []) =>
  run([
    'verify',
    '--loki',
    url,
    '--query',
    '{service_name="svc"}',
    '--tenant',
    'prod',
    '--page-size',
    '10',
    '--json',
    ...extra,
  ]);

describe('mltrail verify --loki', () => {
  it('reads every page with the tenant header and verifies the chain', async () => {
    const r = await verify();
    expect(r.stderr).toBe(ACCESS_NOT_RECORDED);
    expect(JSON.parse(r.stdout).chains[0].problems).toEqual([]);
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.ok).toBe(true);
    expect(report.chains[0]).toEqual(
      expect.objectContaining({ records: entries.length, checkpointsVerified: 3 }),
    );
    expect(seen.length).toBeGreaterThan(1);
    expect(seen.every((s) => s.tenant === 'prod' && s.flags === 'categorize-labels')).toBe(true);
  });

  it('a line edited in Loki is reported', async () => {
    const original = entries[5][1];
    entries[5][1] = original.replace('p-5', 'p-X');
    try {
      const r = await verify();
      expect(r.status).toBe(1);
      expect(JSON.parse(r.stdout).chains[0].problems.map((p: { kind: string }) => p.kind)).toContain(
        'modified',
      );
    } finally {
      entries[5][1] = original;
    }
  });

  it('an unreachable Loki is an I/O error (exit 2)', async () => {
    const r = await run(['verify', '--loki', 'http://127.0.0.1:9', '--query', '{a="b"}']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/reading from Loki failed/);
  });
});
