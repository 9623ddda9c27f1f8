import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { DETECTOR_PATTERNS } from '../../src/privacy/index.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorBinary,
  collectorSkipReason,
  freePort,
  startTestCollector,
  type TestCollector,
} from '../collector/harness.js';
import { ID_SAMPLES, PII_SAMPLES } from './samples.js';

// Skips (naming why) when the collector is not built here; under CI=true a missing binary fails instead.
const haveCollector = collectorAvailable();
const skipNote = haveCollector ? '' : ` (skipped: ${collectorSkipReason})`;

const configPath = fileURLToPath(new URL('../../collector/config.yaml', import.meta.url));

/**
 * Compiles an RE2 pattern for the check in JavaScript. The patterns used here are in the common subset
 * (no lookarounds, no backreferences); RE2's leading `(?i)` becomes the `i` flag.
 */
function re2ToJs(source: string): RegExp {
  const ci = source.startsWith('(?i)');
  return new RegExp(ci ? source.slice(4) : source, ci ? 'gi' : 'g');
}

/** What the collector's redaction processor does to a value: each blocked pattern in order, masked. */
function maskLikeCollector(value: string, patterns: RegExp[]): string {
  let out = value;
  for (const re of patterns) out = out.replace(re, '****');
  return out;
}

function blockedValues(): string[] {
  const config = parse(readFileSync(configPath, 'utf8'));
  const values = config?.processors?.redaction?.blocked_values;
  if (!Array.isArray(values))
    throw new Error('collector/config.yaml has no processors.redaction.blocked_values');
  return values.map(String);
}

describe('DETECTOR_PATTERNS (RE2, for the collector)', () => {
  const patterns = Object.values(DETECTOR_PATTERNS).map(re2ToJs);
  it('mask every sample of every detector', () => {
    for (const [name, samples] of Object.entries(PII_SAMPLES)) {
      for (const [text, secret] of samples) {
        expect(maskLikeCollector(text, patterns), `${name}: ${text}`).not.toContain(secret);
      }
    }
  });
  it('never change the ids mltrail writes', () => {
    for (const id of ID_SAMPLES) expect(maskLikeCollector(id, patterns), id).toBe(id);
  });
});

describe('collector/config.yaml mirrors the detector set', () => {
  it("its redaction blocked_values mask every detector's samples", () => {
    const patterns = blockedValues().map(re2ToJs);
    const missing: string[] = [];
    for (const [name, samples] of Object.entries(PII_SAMPLES)) {
      for (const [text, secret] of samples) {
        if (maskLikeCollector(text, patterns).includes(secret))
          missing.push(`${name}: ${JSON.stringify(text)}`);
      }
    }
    expect(missing, `add DETECTOR_PATTERNS from mltrail/privacy to blocked_values`).toEqual([]);
  });

  it('its blocked_values never change the ids mltrail writes (a masked id breaks verification)', () => {
    const patterns = blockedValues().map(re2ToJs);
    const changed = ID_SAMPLES.filter((id) => maskLikeCollector(id, patterns) !== id);
    expect(changed).toEqual([]);
  });
});

describe.skipIf(!collectorAvailable())(
  'a record that bypassed the SDK is redacted by the real collector',
  () => {
    let collector: TestCollector;
    beforeAll(async () => {
      collector = await startTestCollector();
    }, 60_000);
    afterAll(() => collector?.stop());

    it('raw OTLP/JSON with an email, a card and a token in attributes and body arrives masked', async () => {
      const planted =
        'jane.roe@example.org paid with 4111 1111 1111 1111 using ghp_0123456789abcdefghijABCDEFGHIJ012345';
      const marker = `bypass-${Math.random()
        .toString(36)
        .replace(/[^a-z]/g, '')}`;
      const request = {
        resourceLogs: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'raw-client' } }] },
            scopeLogs: [
              {
                scope: { name: 'raw' },
                logRecords: [
                  {
                    timeUnixNano: String(Date.now() * 1e6),
                    severityText: 'INFO',
                    body: { stringValue: `${marker} ${planted}` },
                    attributes: [
                      { key: 'event.name', value: { stringValue: marker } },
                      { key: 'exception.message', value: { stringValue: planted } },
                      { key: 'customer.email', value: { stringValue: 'jane.roe@example.org' } },
                    ],
                  },
                ],
              },
            ],
          },
        ],
      };
      const res = await fetch(`${collector.httpEndpoint}/v1/logs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${collector.token}` },
        body: JSON.stringify(request),
      });
      expect(res.status).toBe(200);
      // Wait (without a time assertion) until the file exporter has written the record.
      let records = archivedLogRecords(collector.archive).filter(
        (r) => r.attributes['event.name'] === marker,
      );
      for (let i = 0; i < 200 && records.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        records = archivedLogRecords(collector.archive).filter((r) => r.attributes['event.name'] === marker);
      }
      expect(records).toHaveLength(1);
      const text = JSON.stringify(records[0].raw);
      for (const secret of [
        'jane.roe@example.org',
        '4111 1111 1111 1111',
        'ghp_0123456789abcdefghijABCDEFGHIJ012345',
      ]) {
        expect(text).not.toContain(secret);
      }
      expect(String(records[0].body)).toContain(marker);
      expect(records[0].attributes['customer.email']).toBeUndefined();
    }, 60_000);

    it('a clean audit record (ids, digests, timestamps, scores) passes unchanged, so it still verifies', async () => {
      const marker = `clean-${Math.random()
        .toString(36)
        .replace(/[^a-z]/g, '')}`;
      const body = JSON.stringify({
        'event.name': marker,
        'ml.prediction.id': ID_SAMPLES[0],
        'ml.model.digest': ID_SAMPLES[4],
        'ml.prediction.output_score': 0.7310585786300049,
        span_id: ID_SAMPLES[7],
        timestamp: ID_SAMPLES[8],
        trace_id: ID_SAMPLES[6],
      });
      const request = {
        resourceLogs: [
          {
            resource: { attributes: [{ key: 'service.name', value: { stringValue: 'raw-client' } }] },
            scopeLogs: [
              {
                scope: { name: 'raw' },
                logRecords: [
                  {
                    timeUnixNano: String(Date.now() * 1e6),
                    body: { stringValue: body },
                    attributes: [
                      { key: 'event.name', value: { stringValue: marker } },
                      { key: 'ml.prediction.id', value: { stringValue: ID_SAMPLES[0] } },
                    ],
                  },
                ],
              },
            ],
          },
        ],
      };
      const res = await fetch(`${collector.httpEndpoint}/v1/logs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${collector.token}` },
        body: JSON.stringify(request),
      });
      expect(res.status).toBe(200);
      let records = archivedLogRecords(collector.archive).filter(
        (r) => r.attributes['event.name'] === marker,
      );
      for (let i = 0; i < 200 && records.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        records = archivedLogRecords(collector.archive).filter((r) => r.attributes['event.name'] === marker);
      }
      expect(records).toHaveLength(1);
      expect(records[0].body).toBe(body);
      expect(records[0].attributes['ml.prediction.id']).toBe(ID_SAMPLES[0]);
    }, 60_000);
  },
);

/** Waits (no time assertion) until `pick` finds what it needs in the file exporter's output. */
async function waitForRecords<T>(pick: () => T[], count: number): Promise<T[]> {
  let found = pick();
  for (let i = 0; i < 300 && found.length < count; i++) {
    await new Promise((r) => setTimeout(r, 100));
    found = pick();
  }
  return found;
}

describe.skipIf(!haveCollector)(`DETECTOR_PATTERNS in the real collector (RE2)${skipNote}`, () => {
  let child: ChildProcess | undefined;
  let endpoint = '';
  let output = '';
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-privacy-collector-'));
    output = join(dir, 'logs.jsonl');
    const [http, health] = [await freePort(), await freePort()];
    const config = {
      extensions: { health_check: { endpoint: `127.0.0.1:${health}` } },
      receivers: { otlp: { protocols: { http: { endpoint: `127.0.0.1:${http}` } } } },
      processors: {
        redaction: {
          allow_all_keys: true,
          summary: 'info',
          blocked_values: Object.values(DETECTOR_PATTERNS),
        },
      },
      exporters: { file: { path: output, format: 'json', flush_interval: '100ms' } },
      service: {
        extensions: ['health_check'],
        pipelines: { logs: { receivers: ['otlp'], processors: ['redaction'], exporters: ['file'] } },
        telemetry: { logs: { level: 'warn' }, metrics: { level: 'none' } },
      },
    };
    const configPath = join(dir, 'config.yaml');
    writeFileSync(configPath, stringify(config));
    child = spawn(collectorBinary, [`--config=${configPath}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    for (let i = 0; i < 300; i++) {
      // A pattern RE2 cannot compile makes the collector exit here, with the reason on stderr.
      if (child.exitCode !== null) throw new Error(`collector exited (${child.exitCode}): ${stderr}`);
      try {
        if ((await fetch(`http://127.0.0.1:${health}/`)).ok) break;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    endpoint = `http://127.0.0.1:${http}`;
  }, 60_000);
  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('compile in RE2, mask every sample in attributes and bodies, and leave mltrail ids alone', async () => {
    const cases: { id: string; text: string; secret?: string }[] = [];
    for (const [name, samples] of Object.entries(PII_SAMPLES)) {
      for (const [i, [text, secret]] of samples.entries()) cases.push({ id: `${name}_${i}`, text, secret });
    }
    for (const [i, text] of ID_SAMPLES.entries()) cases.push({ id: `id_${i}`, text });
    const request = {
      resourceLogs: [
        {
          scopeLogs: [
            {
              logRecords: cases.map((c) => ({
                body: { stringValue: c.text },
                attributes: [
                  { key: 'case', value: { stringValue: c.id } },
                  { key: 'value', value: { stringValue: c.text } },
                ],
              })),
            },
          ],
        },
      ],
    };
    const res = await fetch(`${endpoint}/v1/logs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(request),
    });
    expect(res.status).toBe(200);
    const records = await waitForRecords(() => archivedLogRecords(output), cases.length);
    expect(records).toHaveLength(cases.length);
    for (const c of cases) {
      const r = records.find((x) => x.attributes.case === c.id)!;
      if (c.secret !== undefined) {
        expect(String(r.body), c.id).not.toContain(c.secret);
        expect(String(r.attributes.value), c.id).not.toContain(c.secret);
      } else {
        expect(r.body, c.id).toBe(c.text);
        expect(r.attributes.value, c.id).toBe(c.text);
      }
    }
  }, 60_000);
});
