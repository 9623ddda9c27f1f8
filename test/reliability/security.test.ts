import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, makeGenericClientConstructor, status } from '@grpc/grpc-js';
import { DiagLogLevel, diag } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog, Shipper } from '../../src/journal/index.js';
import { createTrail } from '../../src/trail/index.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorSkipReason,
  startTestCollector,
  type TestCollector,
} from '../collector/harness.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

function cli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/cli/main.js', ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => resolve({ code, out }));
  });
}

/** Every form the private key's secret part could leak in: the key text, and the seed as base64, base64url and hex. */
function secretForms(privateKey: string): string[] {
  // PRIVATE+KEY+<name>+<key id>+<base64 key>: the base64 part may itself contain '+'.
  const encoded = privateKey.trim().split('+').slice(4).join('+');
  const raw = Buffer.from(encoded, 'base64');
  const seed = raw.subarray(1);
  expect(seed).toHaveLength(32);
  return [
    encoded,
    seed.toString('base64').replace(/=+$/, ''),
    seed.toString('base64url'),
    seed.toString('hex'),
    seed.toString('hex').toUpperCase(),
    raw.toString('hex'),
  ];
}

describe.skipIf(!collectorAvailable())(`security controls end to end (${collectorSkipReason})`, () => {
  let collector: TestCollector;
  beforeAll(async () => {
    collector = await startTestCollector();
  });
  afterAll(async () => {
    await collector?.stop();
  });

  it('the signing key never appears in the journal, the collector archive, diagnostics or any command output; key and journal files are 0600', async () => {
    const work = mkdtempSync(join(tmpdir(), 'mltrail-secrets-e2e-'));
    const keyFile = join(work, 'signing.key');
    const keygen = await cli(['keygen', '--out', keyFile, '--name', 'auditor-test']);
    expect(keygen.code).toBe(0);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const forms = secretForms(readFileSync(keyFile, 'utf8'));
    expect(readFileSync(keyFile, 'utf8')).toContain(forms[0]);

    // Everything the library reports, at the most verbose level.
    const diagnostics: string[] = [];
    const keep = (...args: unknown[]) => diagnostics.push(args.map((a) => String(a)).join(' '));
    diag.setLogger({ error: keep, warn: keep, info: keep, debug: keep, verbose: keep }, DiagLogLevel.ALL);
    const dir = join(work, 'journal');
    let declined = '';
    try {
      const trail = await createTrail({
        serviceName: 'secrets',
        sink: new AuditLog({ dir, checkpointEvery: 5, signingKey: { file: keyFile } }),
      });
      const model = await trail.register({ name: 'm', version: '1', data: 'weights' });
      const predict = trail.predict({ model, onRecorded: (p) => (declined ||= p.id) }, (x: number) => x * 2);
      for (let i = 0; i < 30; i++) predict(i);
      trail.decide({ predictionId: declined, outcome: 'deny', reason: 'test' });
      await trail.shutdown();
      const shipper = new Shipper({
        dir,
        endpoint: collector.httpEndpoint,
        headers: { Authorization: `Bearer ${collector.token}` },
      });
      const shipped = await shipper.drain();
      await shipper.close();
      for (let i = 0; i < 100 && archivedLogRecords(collector.archive).length < shipped; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(archivedLogRecords(collector.archive).length).toBeGreaterThanOrEqual(shipped);
    } finally {
      diag.disable();
    }

    // Every command that reads the trail, with the key configured the way production does it.
    const env = { MLTRAIL_SIGNING_KEY: keyFile };
    const outputs = [
      keygen.out,
      (await cli(['verify', dir, '--json'], env)).out,
      (await cli(['verify', collector.archive], env)).out,
      (await cli(['lineage', declined, '--journal', dir, '--json'], env)).out,
      (await cli(['report', '--prediction', declined, '--journal', dir, '--out', join(work, 'r.html')], env))
        .out,
      (await cli(['export', 'openlineage', '--journal', dir, '--out', join(work, 'ol.ndjson')], env)).out,
      (await cli(['drift', '--journal', dir], env)).out,
    ];
    expect(keygen.out).toMatch(/verifier key: auditor-test\+/);

    const checked: [string, string][] = [
      ...filesUnder(dir).map((f) => [f, readFileSync(f, 'latin1')] as [string, string]),
      [collector.archive, readFileSync(collector.archive, 'latin1')],
      [collector.traces, existsSync(collector.traces) ? readFileSync(collector.traces, 'latin1') : ''],
      ['report', readFileSync(join(work, 'r.html'), 'latin1')],
      ['export', readFileSync(join(work, 'ol.ndjson'), 'latin1')],
      ['diagnostics', diagnostics.join('\n')],
      ...outputs.map((o, i) => [`command output ${i}`, o] as [string, string]),
    ];
    expect(checked.length).toBeGreaterThan(10);
    for (const [where, text] of checked) for (const form of forms) expect(text, where).not.toContain(form);
    // The journal carries checkpoints signed with it (the key was used), and every file is owner-only.
    expect(readdirSync(dir).some((n) => n.startsWith('checkpoint-'))).toBe(true);
    for (const f of filesUnder(dir)) expect(statSync(f).mode & 0o077, f).toBe(0);
  }, 120_000);

  it('the OTLP/gRPC receiver refuses a request without the bearer token or with a wrong one (UNAUTHENTICATED), and nothing of it is stored', async () => {
    const grpcEndpoint = collector.env.MLTRAIL_OTLP_GRPC_ENDPOINT;
    // A hand-encoded ExportLogsServiceRequest: resource_logs { scope_logs { log_records { body { string_value } } } }.
    const field = (tag: number, bytes: Buffer) => Buffer.concat([Buffer.from([tag, bytes.length]), bytes]);
    const request = (text: string) =>
      field(0x0a, field(0x12, field(0x12, field(0x2a, field(0x0a, Buffer.from(text))))));
    const Client = makeGenericClientConstructor({}, 'LogsService');
    const client = new Client(grpcEndpoint, credentials.createInsecure());
    const call = (text: string, authorization?: string) =>
      new Promise<number>((resolve) => {
        const md = new Metadata();
        if (authorization !== undefined) md.set('authorization', authorization);
        client.makeUnaryRequest(
          '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
          (b: Buffer) => b,
          (b: Buffer) => b,
          request(text),
          md,
          (err) => resolve(err?.code ?? status.OK),
        );
      });
    try {
      expect(await call('grpc-probe-anonymous')).toBe(status.UNAUTHENTICATED);
      expect(await call('grpc-probe-wrong', 'Bearer wrong-token')).toBe(status.UNAUTHENTICATED);
      // The same request with the token is accepted: the refusals were about authentication alone.
      expect(await call('grpc-probe-authorized', `Bearer ${collector.token}`)).toBe(status.OK);
    } finally {
      client.close();
    }
    const bodies = () => archivedLogRecords(collector.archive).map((r) => r.body);
    for (let i = 0; i < 100 && !bodies().includes('grpc-probe-authorized'); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(bodies()).toContain('grpc-probe-authorized');
    expect(bodies()).not.toContain('grpc-probe-anonymous');
    expect(bodies()).not.toContain('grpc-probe-wrong');
  }, 60_000);
});
