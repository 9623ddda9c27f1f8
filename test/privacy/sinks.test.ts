import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, SpanStatusCode } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import {
  BatchSpanProcessor,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog } from '../../src/journal/index.js';
import {
  createRedactor,
  RedactingLogRecordProcessor,
  RedactingSpanProcessor,
  type Redactor,
} from '../../src/privacy/index.js';
import { createTrail } from '../../src/trail/index.js';

// Planted secrets: each must never reach a sink.
const EMAIL = 'jane.roe@example.org';
const CARD = '4111 1111 1111 1111';
const CARD_DIGITS = '4111111111111111';
const TOKEN = 'ghp_0123456789abcdefghijABCDEFGHIJ012345';
const SUBJECT = 'customer-4711';
const PLANTED = [EMAIL, CARD, CARD_DIGITS, TOKEN, SUBJECT];

function expectClean(label: string, text: string): void {
  for (const p of PLANTED) expect(text.includes(p), `${label} contains ${p}`).toBe(false);
}

// Ids that are personal but not pattern-shaped are marked by key; the same key pseudonymises them everywhere.
/** What an exporter reads of a span. */
function spanText(s: ReadableSpan): string {
  return JSON.stringify({
    name: s.name,
    attributes: s.attributes,
    events: s.events,
    links: s.links,
    status: s.status,
  });
}

const redactor: Redactor = createRedactor({
  key: 'sinks-test-key-0123456789',
  env: {},
  rules: [{ path: '**.customerId', action: 'hash' }],
});

/** A real OTLP/HTTP endpoint that keeps every request body as received. */
class OtlpCapture {
  readonly bodies: string[] = [];
  #server: Server | undefined;
  url = '';
  async start(): Promise<void> {
    this.#server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.bodies.push(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => this.#server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }
  stop(): Promise<void> {
    return new Promise((resolve) => this.#server?.close(() => resolve()) ?? resolve());
  }
}

function plantSpan(provider: TracerProvider, name = `lookup ${EMAIL}`): void {
  const span = provider.getTracer('privacy-test').startSpan(name, {
    attributes: { 'user.email': EMAIL, 'http.request.header.authorization': `Bearer ${TOKEN}` },
  });
  span.setAttribute('payload', JSON.stringify({ customer: { card: CARD, note: `token ${TOKEN}` } }));
  span.setAttribute('ml.prediction.subject_id', SUBJECT);
  span.setAttribute('ml.model.version', '1.2.3');
  span.addEvent('exception', { 'exception.message': `charge failed for ${CARD} (${EMAIL})` });
  span.addLink({ context: span.spanContext(), attributes: { note: EMAIL } });
  span.setStatus({ code: SpanStatusCode.ERROR, message: `declined: ${CARD}` });
  span.end();
}

describe('spans: a planted email/card/token never reaches an exporter', () => {
  it('the in-memory exporter sees redacted attributes, events, links, name and status, plus a summary', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({
      spanProcessors: [new RedactingSpanProcessor({ redactor, next: new SimpleSpanProcessor({ exporter }) })],
    });
    plantSpan(provider);
    await provider.forceFlush();
    const [span] = exporter.getFinishedSpans();
    expectClean('span', spanText(span));
    expect(span.name).toBe('lookup [REDACTED:email]');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'declined: [REDACTED:payment_card]' });
    expect(span.attributes).toEqual({
      'user.email': '[REDACTED:email]',
      'http.request.header.authorization': '[REDACTED]',
      payload: '{"customer":{"card":"[REDACTED:payment_card]","note":"token [REDACTED:api_key]"}}',
      'ml.prediction.subject_id': expect.stringMatching(/^pii:[0-9a-f]{8}:[\w-]{43}$/),
      'ml.model.version': '1.2.3',
      'mltrail.redaction.masked_count': 9,
      'mltrail.redaction.removed_count': 0,
      'mltrail.redaction.hashed_count': 1,
      'mltrail.redaction.redacted_keys': [
        '["user.email"]',
        '["http.request.header.authorization"]',
        'payload.customer.card',
        'payload.customer.note',
        'event[0:exception]:["exception.message"]',
        'link:note',
        'span.name:',
        'status.message:',
        '["ml.prediction.subject_id"]',
      ],
    });
    expect(span.events[0].attributes).toEqual({
      'exception.message': 'charge failed for [REDACTED:payment_card] ([REDACTED:email])',
    });
    expect(span.links[0].attributes).toEqual({ note: '[REDACTED:email]' });
    await provider.shutdown();
  });

  it('works in any processor order without `next` (redaction happens in onEnding, before every onEnd)', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({
      spanProcessors: [new SimpleSpanProcessor({ exporter }), new RedactingSpanProcessor({ redactor })],
    });
    plantSpan(provider);
    await provider.forceFlush();
    const [span] = exporter.getFinishedSpans();
    expectClean('span', spanText(span));
    expect(span.attributes['user.email']).toBe('[REDACTED:email]');
    await provider.shutdown();
  });
});

describe('processors never throw into the host', () => {
  const broken: Redactor = {
    keyId: undefined,
    redact() {
      throw new Error('boom');
    },
    redactString() {
      throw new Error('boom');
    },
  };

  it('a failing redactor drops the attributes (their keys may hold personal data too) and masks the names', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({
      spanProcessors: [
        new RedactingSpanProcessor({ redactor: broken, next: new SimpleSpanProcessor({ exporter }) }),
      ],
    });
    expect(() => plantSpan(provider)).not.toThrow();
    await provider.forceFlush();
    const [span] = exporter.getFinishedSpans();
    expectClean('span', spanText(span));
    expect(span.name).toBe('[REDACTED]');
    expect(span.attributes).toEqual({});
    expect(span.events.map((e) => e.name)).toEqual(span.events.map(() => '[REDACTED]'));
    await provider.shutdown();
  });

  it('a failing redactor masks the log body and drops the attributes', async () => {
    const exporter = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({
      processors: [
        new RedactingLogRecordProcessor({
          redactor: broken,
          next: new SimpleLogRecordProcessor({ exporter }),
        }),
      ],
    });
    expect(() =>
      provider.getLogger('t').emit({ body: `mail ${EMAIL}`, attributes: { 'user.email': EMAIL, n: 1 } }),
    ).not.toThrow();
    await provider.forceFlush();
    const [record] = exporter.getFinishedLogRecords();
    expect(record.body).toBe('[REDACTED]');
    expect(record.attributes).toEqual({});
    await provider.shutdown();
  });

  it('without onEnding (an SDK that lacks it) the span is redacted in onEnd before `next` sees it', async () => {
    const exporter = new InMemorySpanExporter();
    const processor = new RedactingSpanProcessor({ redactor, next: new SimpleSpanProcessor({ exporter }) });
    // A provider that knows nothing of our processor produces a finished span; we then hand it over.
    const plain = new InMemorySpanExporter();
    const source = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: plain })] });
    plantSpan(source);
    await source.forceFlush();
    const [finished] = plain.getFinishedSpans();
    processor.onEnd(finished);
    await processor.forceFlush();
    const [span] = exporter.getFinishedSpans();
    expectClean('span', spanText(span));
    expect(span.attributes['mltrail.redaction.masked_count']).toBe(9);
    await source.shutdown();
  });
});

describe('OTLP payloads and the journal', () => {
  const otlp = new OtlpCapture();
  beforeAll(async () => {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    await otlp.start();
  });
  afterAll(() => otlp.stop());

  it('the trail, spans and log records through real OTLP/HTTP exporters and a real journal carry no planted value', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-privacy-'));
    const spanMemory = new InMemorySpanExporter();
    const logMemory = new InMemoryLogRecordExporter();
    const tracerProvider = new TracerProvider({
      spanProcessors: [
        new RedactingSpanProcessor({ redactor }),
        new SimpleSpanProcessor({ exporter: spanMemory }),
        new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${otlp.url}/v1/traces` }) }),
      ],
    });
    const loggerProvider = new LoggerProvider({
      processors: [
        new RedactingLogRecordProcessor({
          redactor,
          next: new SimpleLogRecordProcessor({ exporter: logMemory }),
        }),
        new RedactingLogRecordProcessor({
          redactor,
          next: new SimpleLogRecordProcessor({
            exporter: new OTLPLogExporter({ url: `${otlp.url}/v1/logs` }),
          }),
        }),
      ],
    });
    const trail = await createTrail({
      serviceName: 'privacy-test',
      environment: 'test',
      tracerProvider,
      loggerProvider,
      sink: new AuditLog({ dir, groupCommitMs: 1 }),
      redactor,
      capture: 'redacted',
    });
    const predict = trail.predict(
      {
        subject: (req: { customerId: string }) => req.customerId,
        output: (r: { label: string }) => ({ label: r.label }),
      },
      (req: { customerId: string; card: string; contact: { email: string }; note: string }) => ({
        label: 'approve',
        echo: `approved for ${req.contact.email}`,
      }),
    );
    predict({ customerId: SUBJECT, card: CARD, contact: { email: EMAIL }, note: `use ${TOKEN}` });
    plantSpan(tracerProvider);
    loggerProvider.getLogger('privacy-test').emit({
      body: {
        message: `login by ${EMAIL}`,
        nested: { card: CARD_DIGITS, headers: { authorization: TOKEN } },
      },
      attributes: { 'user.email': EMAIL },
    });
    loggerProvider.getLogger('privacy-test').emit({ body: `raw line with ${CARD} and ${TOKEN}` });
    await trail.flush();
    await tracerProvider.forceFlush();
    await loggerProvider.forceFlush();

    // Journal: every byte of every segment file.
    const files: string[] = [];
    const walk = (d: string) => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(dir);
    const journal = files.filter((f) => f.endsWith('.ndjson')).map((f) => readFileSync(f, 'utf8'));
    expect(journal.join('').length).toBeGreaterThan(0);
    expectClean('journal', journal.join('\n'));
    // The redacted record still verifies: redaction happened before hashing.
    const verifier = new ChainVerifier();
    const lines = journal
      .join('')
      .split('\n')
      .filter((l) => l !== '');
    for (const [i, line] of lines.entries()) {
      const where = { file: 'journal', line: i + 1 };
      verifier.add(parseRecordLine(line, where), where);
    }
    expect(verifier.finish().ok).toBe(true);
    const prediction = lines.map((l) => parseRecordLine(l)).find((r) => r.event === 'ml.prediction');
    const body = JSON.parse(prediction!.body);
    const SUBJECT_PSEUDONYM = body['ml.prediction.subject_id'];
    expect(SUBJECT_PSEUDONYM).toMatch(/^pii:[0-9a-f]{8}:[\w-]{43}$/);
    expect(JSON.parse(body['ml.prediction.input'])).toEqual({
      card: '[REDACTED:payment_card]',
      contact: { email: '[REDACTED:email]' },
      customerId: SUBJECT_PSEUDONYM,
      note: 'use [REDACTED:api_key]',
    });
    expect(body['ml.prediction.input_digest']).toMatch(/^sha256:[0-9a-f]{64}$/);

    // OTLP request bodies as they went over the wire, and the in-memory exporters.
    expect(otlp.bodies.length).toBeGreaterThanOrEqual(2);
    expectClean('OTLP payload', otlp.bodies.join('\n'));
    // Not vacuous: the payloads carry the redacted records.
    for (const marker of [
      '[REDACTED:email]',
      '[REDACTED:payment_card]',
      '[REDACTED:api_key]',
      'ml.prediction',
    ]) {
      expect(otlp.bodies.join('\n')).toContain(marker);
    }
    expectClean('in-memory spans', spanMemory.getFinishedSpans().map(spanText).join('\n'));
    const logs = logMemory.getFinishedLogRecords();
    expectClean(
      'in-memory logs',
      JSON.stringify(logs.map((l) => ({ body: l.body, attributes: l.attributes }))),
    );
    const login = logs.find((l) => typeof l.body === 'object');
    expect(login?.body).toEqual({
      message: 'login by [REDACTED:email]',
      nested: { card: '[REDACTED:payment_card]', headers: { authorization: '[REDACTED]' } },
    });
    expect(login?.attributes).toEqual({
      'user.email': '[REDACTED:email]',
      'mltrail.redaction.masked_count': 4,
      'mltrail.redaction.removed_count': 0,
      'mltrail.redaction.hashed_count': 0,
      'mltrail.redaction.redacted_keys': [
        'body:message',
        'body:nested.card',
        'body:nested.headers.authorization',
        '["user.email"]',
      ],
    });
    // The audit record mirrored to the logger was already redacted: its body passes unchanged.
    const audit = logs.find((l) => l.eventName === 'ml.prediction');
    expect(audit?.body).toBe(prediction?.body);
    expect(audit?.attributes['mltrail.redaction.masked_count']).toBeUndefined();
    await trail.shutdown();
    await tracerProvider.shutdown();
    await loggerProvider.shutdown();
  });
});
