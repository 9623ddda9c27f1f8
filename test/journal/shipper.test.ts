import { spawn } from 'node:child_process';
import diagnostics from 'node:diagnostics_channel';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { isTracingSuppressed } from '@opentelemetry/core';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  canonicalize,
  parseOtlpLogRecord,
  parseRecordLine,
  serializeRecord,
} from '../../src/integrity/index.js';
import {
  AuditLog,
  cursorFile,
  JournalReader,
  otlpLogsTarget,
  Shipper,
  toOtlp,
} from '../../src/journal/index.js';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `mltrail-ship-${p}-`));

function event(i: number, extra: Record<string, unknown> = {}) {
  const ts = new Date().toISOString();
  return {
    event: 'ml.prediction',
    sev: 'INFO' as const,
    ts,
    attrs: { 'ml.prediction.id': `p-${i}` },
    body: canonicalize({
      'event.name': 'ml.prediction',
      timestamp: ts,
      'service.name': 'ship-test',
      'ml.prediction.id': `p-${i}`,
      ...extra,
    }),
  };
}

async function writeJournal(dir: string, n: number, checkpointEvery = 100): Promise<void> {
  const log = new AuditLog({ dir, checkpointEvery, checkpointIntervalMs: 0 });
  for (let i = 0; i < n; i++) log.append(event(i));
  await log.close();
}

function journalRecords(dir: string): AuditRecord[] {
  return [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
}

const key = (r: { chain: string; seq: number }) => `${r.chain}:${r.seq}`;

/** What an OTLP/HTTP server answers to request number n (0-based). */
type Answer = 'ok' | 'fail' | 'ok-after-reading-but-500' | 'hang-up';

/** A real OTLP/HTTP logs receiver on loopback: records every request, answers per `plan`. */
class Receiver {
  readonly server: Server;
  requests = 0;
  /** Records from requests answered 2xx, in order. */
  acked: AuditRecord[] = [];
  /** Records from every request whose body was read, in order (including ones answered with an error). */
  seen: AuditRecord[] = [];
  headers: IncomingMessage['headers'][] = [];
  plan: (n: number) => Answer = () => 'ok';
  url = '';

  constructor() {
    this.server = createServer((req, res) => this.#handle(req, res));
  }

  async listen(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const n = this.requests++;
    const answer = this.plan(n);
    if (answer === 'hang-up') {
      req.socket.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      expect(req.url).toBe('/v1/logs');
      expect(req.method).toBe('POST');
      this.headers.push(req.headers);
      const records: AuditRecord[] = [];
      const payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rl of payload.resourceLogs)
        for (const sl of rl.scopeLogs)
          for (const lr of sl.logRecords) {
            const r = parseOtlpLogRecord(lr);
            if (r !== undefined) records.push(r);
          }
      this.seen.push(...records);
      if (answer === 'ok') {
        this.acked.push(...records);
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      } else if (answer === 'ok-after-reading-but-500') {
        res.writeHead(500).end('stored, but the answer is lost');
      } else res.writeHead(503).end('unavailable');
    });
  }
}

let receivers: Receiver[] = [];
afterEach(async () => {
  await Promise.all(receivers.map((r) => r.close()));
  receivers = [];
});
async function receiver(): Promise<Receiver> {
  const r = await new Receiver().listen();
  receivers.push(r);
  return r;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gave up waiting for ${what}`);
}

describe('OTLP mapping', () => {
  it('maps a journal record to an OTLP log record that maps back to the same record', async () => {
    const dir = tmp('map');
    const log = new AuditLog({ dir, checkpointIntervalMs: 0 });
    const ts = new Date().toISOString();
    // Format 2: event, time, severity, trace ids and lookup attributes are all read from the body.
    const body = canonicalize({
      'event.name': 'ml.decision',
      timestamp: ts,
      severity_text: 'WARN',
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      span_id: 'b7ad6b7169203331',
      'service.name': 'credit-api',
      'deployment.environment.name': 'prod',
      'ml.decision.id': 'd-1',
      'ml.decision.outcome': 'approved',
      note: 'ünïcødé "quoted"',
    });
    log.append({
      event: 'ml.decision',
      sev: 'WARN',
      ts,
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      attrs: { 'ml.decision.id': 'd-1', 'ml.decision.outcome': 'approved' },
      body,
    });
    await log.close();
    const [record] = journalRecords(dir);
    const req = toOtlp([record]) as {
      resourceLogs: {
        resource: { attributes: { key: string; value: { stringValue?: string } }[] };
        scopeLogs: { logRecords: Record<string, unknown>[] }[];
      }[];
    };
    expect(req.resourceLogs).toHaveLength(1);
    const rl = req.resourceLogs[0];
    expect(rl.resource.attributes).toEqual([
      { key: 'service.name', value: { stringValue: 'credit-api' } },
      { key: 'deployment.environment.name', value: { stringValue: 'prod' } },
    ]);
    const lr = rl.scopeLogs[0].logRecords[0] as {
      body: { stringValue: string };
      attributes: { key: string; value: unknown }[];
    } & Record<string, unknown>;
    expect(lr.body).toEqual({ stringValue: body });
    expect(lr.eventName).toBe('ml.decision');
    expect(lr.severityText).toBe('WARN');
    expect(lr.severityNumber).toBe(13);
    expect(lr.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
    expect(lr.spanId).toBe('b7ad6b7169203331');
    expect(lr.timeUnixNano).toBe(String(BigInt(Date.parse(ts)) * 1_000_000n));
    const attrs = Object.fromEntries(lr.attributes.map((a) => [a.key, a.value]));
    expect(attrs).toEqual({
      'deployment.environment.name': { stringValue: 'prod' },
      'service.name': { stringValue: 'credit-api' },
      'ml.decision.id': { stringValue: 'd-1' },
      'ml.decision.outcome': { stringValue: 'approved' },
      'event.name': { stringValue: 'ml.decision' },
      'mltrail.chain.id': { stringValue: record.chain },
      'mltrail.seq': { intValue: '0' },
      'mltrail.prev_hash': { stringValue: record.prev },
      'mltrail.hash': { stringValue: record.hash },
      'mltrail.body.digest': { stringValue: record.digest },
      'mltrail.record.version': { intValue: '2' },
    });
    const back = parseOtlpLogRecord(lr as never);
    expect(back && serializeRecord(back)).toBe(serializeRecord(record));
  });

  it('takes the endpoint and headers from the standard OTLP environment variables', () => {
    const saved = { ...process.env };
    try {
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT = 'http://collector:4318/';
      process.env.OTEL_EXPORTER_OTLP_HEADERS = 'Authorization=Bearer%20s3cret, x-tenant = acme';
      delete process.env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT;
      delete process.env.OTEL_EXPORTER_OTLP_LOGS_HEADERS;
      expect(otlpLogsTarget()).toEqual({
        url: 'http://collector:4318/v1/logs',
        headers: { Authorization: 'Bearer s3cret', 'x-tenant': 'acme' },
      });
      process.env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT = 'http://logs:4318/custom/path';
      expect(otlpLogsTarget().url).toBe('http://logs:4318/custom/path');
      expect(otlpLogsTarget({ endpoint: 'http://x:1', headers: { 'x-tenant': 'other' } })).toEqual({
        url: 'http://x:1/v1/logs',
        headers: { Authorization: 'Bearer s3cret', 'x-tenant': 'other' },
      });
      delete process.env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT;
      delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      expect(() => new Shipper({ dir: tmp('noenv') })).toThrow(/no endpoint/);
      expect(() => new Shipper({ dir: tmp('badurl'), endpoint: 'not a url' })).toThrow(/is not a URL/);
    } finally {
      process.env = saved;
    }
  });
});

describe('Shipper against a real HTTP server', () => {
  it('delivers every record of several chains despite failures and dropped connections, with the headers', async () => {
    const dir = tmp('chains');
    await writeJournal(dir, 700);
    await writeJournal(dir, 300);
    const journal = journalRecords(dir);
    expect(new Set(journal.map((r) => r.chain)).size).toBe(2);
    const rx = await receiver();
    // Fails, hangs up, then stores but loses the answer: all three must be retried.
    rx.plan = (n) => (['fail', 'hang-up', 'ok', 'ok-after-reading-but-500', 'fail'] as const)[n] ?? 'ok';
    const shipper = new Shipper({
      dir,
      endpoint: rx.url,
      headers: { Authorization: 'Bearer t0ken' },
      batchSize: 128,
      initialBackoffMs: 5,
      maxBackoffMs: 20,
    });
    expect(await shipper.drain()).toBe(journal.length);
    expect(shipper.failures).toBe(4);
    expect(shipper.shipped).toBe(journal.length);
    const acked = new Set(rx.acked.map(key));
    for (const r of journal) expect(acked.has(key(r)), key(r)).toBe(true);
    // Exactly what was acknowledged: every record once, in chain order per chain.
    expect(rx.acked).toHaveLength(journal.length);
    for (const chain of new Set(journal.map((r) => r.chain))) {
      const seqs = rx.acked.filter((r) => r.chain === chain).map((r) => r.seq);
      expect(seqs).toEqual(seqs.map((_, i) => i));
    }
    // At least once: the batch whose answer was lost arrived twice, with identical content.
    // Requests 0 (503), 3 (stored, answer lost) and 4 (503) were read by the server: three batches twice.
    expect(rx.seen.length).toBe(journal.length + 3 * 128);
    // (Attributes outside the registry's lookup keys are not read back, and not hashed: compare what is.)
    const content = (r: AuditRecord) => `${r.hash} ${r.digest} ${r.body}`;
    const byKey = new Map(journal.map((r) => [key(r), content(r)]));
    for (const r of rx.seen) expect(content(r)).toBe(byKey.get(key(r)));
    expect(rx.headers.every((h) => h.authorization === 'Bearer t0ken')).toBe(true);
    expect(rx.headers.every((h) => h['content-type'] === 'application/json')).toBe(true);
    // Caught up: nothing more to send.
    expect(await shipper.drain()).toBe(0);
  });

  it('a restart resumes from the persisted cursor: nothing acknowledged is sent again, nothing is lost', async () => {
    const dir = tmp('resume');
    await writeJournal(dir, 1000);
    const journal = journalRecords(dir);
    const rx = await receiver();
    // Two batches get through, then the endpoint is down until the first shipper gives up (is stopped).
    rx.plan = (n) => (n < 2 ? 'ok' : 'fail');
    const first = new Shipper({
      dir,
      endpoint: rx.url,
      batchSize: 100,
      initialBackoffMs: 5,
      maxBackoffMs: 10,
    });
    first.start();
    await until(() => first.failures >= 3, 'failed attempts');
    await first.stop();
    expect(first.shipped).toBe(200);
    const cursor = JSON.parse(readFileSync(cursorFile(dir, `${rx.url}/v1/logs`), 'utf8'));
    expect(cursor.endpoint).toBe(`${rx.url}/v1/logs`);
    expect(Object.values(cursor.segments)).toEqual([expect.objectContaining({ lines: 200 })]);

    rx.plan = () => 'ok';
    const second = new Shipper({ dir, endpoint: rx.url, batchSize: 100 });
    // Only what was not acknowledged goes again. (A request the first shipper abandoned when stopped may
    // still reach the server late and be stored: at least once, so compare sets.)
    expect(await second.drain()).toBe(journal.length - 200);
    expect(new Set(rx.acked.map(key))).toEqual(new Set(journal.map(key)));
    expect(rx.acked.slice(0, 200).map(key)).toEqual(journal.slice(0, 200).map(key));
  });

  it('drains started together send each record once; a bounded drain gives up on a refusing endpoint and the next run sends the rest', async () => {
    const dir = tmp('drain-within');
    await writeJournal(dir, 600);
    const journal = journalRecords(dir);
    const rx = await receiver();
    const one = new Shipper({ dir, endpoint: rx.url, batchSize: 100 });
    // A timer's round and a final drain overlapping in one process: the second waits for the first.
    const [a, b] = await Promise.all([one.drain(), one.drain()]);
    expect(a + b).toBe(journal.length);
    expect(rx.seen.map(key)).toEqual(journal.map(key));
    await one.close();

    await writeJournal(dir, 300);
    const now = journalRecords(dir);
    rx.plan = () => 'fail';
    const bounded = new Shipper({
      dir,
      endpoint: rx.url,
      batchSize: 100,
      initialBackoffMs: 5,
      maxBackoffMs: 20,
    });
    const outcome = await bounded.drainWithin(300);
    expect(outcome).toEqual({ timedOut: true });
    expect(bounded.failures).toBeGreaterThan(0);
    // The lock is released: another shipper takes over at once and sends what was not acknowledged.
    rx.plan = () => 'ok';
    const next = new Shipper({ dir, endpoint: rx.url, batchSize: 100 });
    expect(await next.drainWithin(60_000)).toEqual({ shipped: now.length - journal.length });
    expect(new Set(rx.acked.map(key))).toEqual(new Set(now.map(key)));
  });

  it('follows records appended while it runs, across chains, and stops promptly while the endpoint is down', async () => {
    const dir = tmp('follow');
    const rx = await receiver();
    const shipper = new Shipper({ dir, endpoint: rx.url, pollMs: 10, initialBackoffMs: 5, maxBackoffMs: 20 });
    shipper.start();
    const a = new AuditLog({ dir, checkpointIntervalMs: 0 });
    const b = new AuditLog({ dir, checkpointIntervalMs: 0 });
    for (let i = 0; i < 50; i++) {
      a.append(event(i));
      b.append(event(i));
      if (i % 10 === 9) {
        await Promise.all([a.flush(), b.flush()]);
        await until(() => rx.acked.length === (i + 1) * 2, `records up to ${i}`);
      }
    }
    expect(new Set(rx.acked.map(key)).size).toBe(100);
    rx.plan = () => 'fail';
    a.append(event(99));
    await a.flush();
    await until(() => shipper.failures >= 2, 'failures');
    // Stopping never waits for the endpoint to come back; the unacknowledged record stays for the next run.
    await shipper.stop();
    await Promise.all([a.close(), b.close()]);
    rx.plan = () => 'ok';
    const next = new Shipper({ dir, endpoint: rx.url });
    await next.drain();
    const all = journalRecords(dir);
    expect(new Set(rx.acked.map(key))).toEqual(new Set(all.map(key)));
  });

  it('does not let one busy chain starve another', async () => {
    const dir = tmp('fair');
    await writeJournal(dir, 2000);
    await writeJournal(dir, 10);
    const rx = await receiver();
    const shipper = new Shipper({ dir, endpoint: rx.url, batchSize: 100 });
    await shipper.drain();
    const chains = [...new Set(journalRecords(dir).map((r) => r.chain))];
    const small = chains.find((c) => journalRecords(dir).filter((r) => r.chain === c).length < 100)!;
    const firstOfSmall = rx.acked.findIndex((r) => r.chain === small);
    // The small chain goes out in the second request, not after the 2000 records of the big one.
    expect(firstOfSmall).toBeLessThan(200);
  });

  it('resumes at the right line after a segment is rewritten (erasure) behind its cursor', async () => {
    const dir = tmp('rewrite');
    await writeJournal(dir, 300);
    const journal = journalRecords(dir);
    const rx = await receiver();
    rx.plan = (n) => (n < 1 ? 'ok' : 'fail');
    const first = new Shipper({
      dir,
      endpoint: rx.url,
      batchSize: 100,
      initialBackoffMs: 5,
      maxBackoffMs: 10,
    });
    first.start();
    await until(() => first.failures >= 1, 'a failure');
    await first.stop();
    expect(rx.acked).toHaveLength(100);
    // What `mltrail erase` does: the file is replaced by a copy whose line 10 is a (shorter) tombstone.
    const [chain] = readdirSync(join(dir, 'chains'));
    const seg = join(dir, 'chains', chain, '000001.ndjson');
    const lines = readFileSync(seg, 'utf8').split('\n');
    const target = parseRecordLine(lines[9]);
    lines[9] = serializeRecord({ ...target, body: '', attrs: {}, erased_by: `${chain}:9999` });
    writeFileSync(`${seg}.tmp`, lines.join('\n'));
    renameSync(`${seg}.tmp`, seg);
    rx.plan = () => 'ok';
    const before = rx.acked.length;
    // Exactly the 200 records after the cursor's line, although every byte offset after line 10 moved.
    expect(await new Shipper({ dir, endpoint: rx.url, batchSize: 100 }).drain()).toBe(journal.length - 100);
    expect([...new Set(rx.acked.slice(before).map(key))]).toEqual(journal.slice(100).map(key));
  });

  it('an unreadable cursor is set aside and shipping starts over (duplicates, never a gap)', async () => {
    const dir = tmp('corrupt');
    await writeJournal(dir, 50);
    const rx = await receiver();
    await new Shipper({ dir, endpoint: rx.url }).drain();
    const path = cursorFile(dir, `${rx.url}/v1/logs`);
    writeFileSync(path, '{"endpoint": "trunc');
    const again = new Shipper({ dir, endpoint: rx.url });
    expect(existsSync(`${path}.corrupt`)).toBe(true);
    expect(await again.drain()).toBe(journalRecords(dir).length);
  });

  it('never ships a torn last line; ships it once the writer completes it', async () => {
    const dir = tmp('torn');
    await writeJournal(dir, 20);
    const [chain] = readdirSync(join(dir, 'chains'));
    const seg = join(dir, 'chains', chain, '000001.ndjson');
    const full = readFileSync(seg);
    const lastStart = full.lastIndexOf(10, full.length - 2) + 1;
    writeFileSync(seg, full.subarray(0, lastStart + 20));
    const rx = await receiver();
    const shipper = new Shipper({ dir, endpoint: rx.url });
    expect(await shipper.drain()).toBe(journalRecords(dir).length);
    writeFileSync(seg, full);
    expect(await shipper.drain()).toBe(1);
    expect(rx.acked.map(key)).toEqual(journalRecords(dir).map(key));
  });
});

describe('one shipper per journal and endpoint', () => {
  it('while another live process ships, this one waits; it takes over a dead owner, with its cursor', async () => {
    const dir = tmp('lock');
    await writeJournal(dir, 5);
    const rx = await receiver();
    const lock = cursorFile(dir, `${rx.url}/v1/logs`).replace(/\.json$/, '.lock');
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    await new Promise((r) => other.once('spawn', r));
    const shipper = new Shipper({ dir, endpoint: rx.url });
    try {
      mkdirSync(dirname(lock), { recursive: true });
      writeFileSync(lock, String(other.pid));
      expect(await shipper.drain()).toBe(0);
      expect(shipper.lockedBy).toBe(other.pid);
      expect(rx.requests).toBe(0);
      // Another endpoint has its own cursor and lock.
      const elsewhere = new Shipper({ dir, endpoint: (await receiver()).url });
      expect(await elsewhere.drain()).toBe(6);
      await elsewhere.close();
    } finally {
      other.kill('SIGKILL');
      await new Promise((r) => other.once('exit', r));
    }
    expect(await shipper.drain()).toBe(6);
    expect(shipper.lockedBy).toBeUndefined();
    expect(readFileSync(lock, 'utf8')).toBe(String(process.pid));
    await shipper.close();
    expect(existsSync(lock)).toBe(false);
  });
});

describe('the shipper does not trace itself', () => {
  it('its HTTP requests run with tracing suppressed (what fetch instrumentation checks), others do not', async () => {
    const dir = tmp('suppress');
    await writeJournal(dir, 10);
    const rx = await receiver();
    const manager = new AsyncLocalStorageContextManager().enable();
    context.setGlobalContextManager(manager);
    // undici publishes this synchronously in the caller's context; the OTel undici instrumentation
    // starts its client span here unless tracing is suppressed.
    const seen: { url: string; suppressed: boolean }[] = [];
    const onCreate = (msg: unknown) => {
      const { request } = msg as { request: { origin: string; path: string } };
      seen.push({
        url: `${request.origin}${request.path}`,
        suppressed: isTracingSuppressed(context.active()),
      });
    };
    diagnostics.subscribe('undici:request:create', onCreate);
    try {
      await new Shipper({ dir, endpoint: rx.url }).drain();
      await (await fetch(`${rx.url}/v1/logs`, { method: 'POST', body: '{"resourceLogs":[]}' })).text();
    } finally {
      diagnostics.unsubscribe('undici:request:create', onCreate);
      context.disable();
    }
    expect(seen).toEqual([
      { url: `${rx.url}/v1/logs`, suppressed: true },
      { url: `${rx.url}/v1/logs`, suppressed: false },
    ]);
  });
});

describe('mltrail ship', () => {
  it('--once --json delivers the journal and prints a summary; bad options exit 2', async () => {
    const dir = tmp('cli');
    await writeJournal(dir, 30);
    const rx = await receiver();
    const out = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(
        process.execPath,
        ['dist/cli/main.js', 'ship', '--once', '--json', '--journal', dir, '--endpoint', rx.url],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c) => {
        stdout += c;
      });
      child.stderr.on('data', (c) => {
        stderr += c;
      });
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(JSON.parse(out.stdout)).toEqual({
      delivered: 31, // 30 records and the checkpoint sealed at close
      failedAttempts: 0,
      rejected: 0,
      endpoint: `${rx.url}/v1/logs`,
    });
    expect(rx.acked.map(key)).toEqual(journalRecords(dir).map(key));
    const { run } = await import('../../src/cli/ship.js');
    await expect(run(['--batch-size', '0', '--endpoint', rx.url])).rejects.toMatchObject({
      exitCode: 2,
      message: expect.stringMatching(/--batch-size expects a positive integer/),
    });
    await expect(run(['--nope'])).rejects.toMatchObject({ exitCode: 2 });
    await expect(run(['--header', 'novalue', '--endpoint', rx.url])).rejects.toMatchObject({ exitCode: 2 });
  });
});
