import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { collectorAvailable, collectorSkipReason, startTestCollector } from '../collector/harness.js';
import { CANARY, encodings, NEEDLES } from '../fixtures/canary/canaries.mjs';

// The canary sweep (issue 14): personal data planted in every input position of a service and a pipeline
// run under `node --import mltrail/register`, then every OTLP payload (traces, logs, metrics; http/json and
// http/protobuf) received by a local receiver, every journal line, the report, the OpenLineage export and
// the archive the real collector writes from the shipped journal are searched for every canary in every
// encoding. Zero hits; each hit is listed with where it was found.

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures/canary');
const haveCollector = collectorAvailable();

/** One thing that left the process or reached the disk, and where it was found. */
interface Artifact {
  where: string;
  /** Text to search (decoded JSON payload, file text, every string of a protobuf message). */
  texts: Array<{ at: string; text: string }>;
  /** Raw bytes searched too (a protobuf string field is its UTF-8 bytes). */
  bytes?: Buffer;
}

interface Received {
  path: string;
  contentType: string;
  body: Buffer;
}

const received: Received[] = [];
let receiver: Server;
let endpoint: string;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
      received.push({ path: req.url ?? '', contentType: String(req.headers['content-type']), body });
      const proto = String(req.headers['content-type']).includes('protobuf');
      res.writeHead(200, { 'content-type': proto ? 'application/x-protobuf' : 'application/json' });
      res.end(proto ? Buffer.alloc(0) : '{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(receiver.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((r) => receiver.close(r));
});

/** Secrets on the command line, as `process.command_args` would carry them. */
const SECRET_ARGS = [
  `--db-url=postgres://admin:${CANARY.password}@db.example.com/app`,
  `--api-key=${CANARY.apiKey}`,
  `--slack=${CANARY.slackWebhook}`,
  `--owner=${CANARY.email}`,
];

function registerEnv(dir: string, protocol: 'http/json' | 'http/protobuf'): NodeJS.ProcessEnv {
  return {
    ...process.env,
    MLTRAIL_DIR: dir,
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
    OTEL_METRIC_EXPORT_INTERVAL: '300',
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_BLRP_SCHEDULE_DELAY: '100',
    OTEL_SERVICE_NAME: 'canary-service',
    OTEL_RESOURCE_ATTRIBUTES: `service.owner=${encodeURIComponent(CANARY.email)},team.phone=${encodeURIComponent(CANARY.phone)}`,
  };
}

function exited(proc: ChildProcess): Promise<number | null> {
  return new Promise((r) => {
    if (proc.exitCode !== null) r(proc.exitCode);
    else proc.once('exit', (code) => r(code));
  });
}

async function runService(dir: string, protocol: 'http/json' | 'http/protobuf'): Promise<string> {
  const proc = spawn(
    process.execPath,
    ['--import', 'mltrail/register', join(FIXTURES, 'service.mjs'), ...SECRET_ARGS],
    { cwd: ROOT, env: registerEnv(dir, protocol), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  proc.stderr?.on('data', (c) => {
    stderr += c;
  });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout?.on('data', (c) => {
      out += c;
      const m = /listening (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proc.once('exit', (code) => reject(new Error(`service exited with ${code}:\n${stderr}`)));
  });
  const query = `email=${encodeURIComponent(CANARY.email)}&phone=${encodeURIComponent(CANARY.phone).replace(/%20/g, '+')}&card=${encodeURIComponent(CANARY.card)}`;
  const headers = { 'user-agent': `canary-agent (${CANARY.email})` };
  for (const path of ['/predict', '/fail', '/decide', '/predict']) {
    const res = await fetch(`http://127.0.0.1:${port}${path}?${query}`, { headers });
    expect(res.status, `${path}: ${await res.text()}`).toBe(200);
  }
  // Let the metric reader export on its interval while the process runs, then stop it like an operator.
  await new Promise((r) => setTimeout(r, 1200));
  proc.kill('SIGTERM');
  await exited(proc);
  return stderr;
}

async function runPipeline(dir: string, protocol: 'http/json' | 'http/protobuf'): Promise<void> {
  const proc = spawn(
    process.execPath,
    ['--import', 'mltrail/register', join(FIXTURES, 'pipeline.mjs'), ...SECRET_ARGS],
    { cwd: ROOT, env: registerEnv(dir, protocol), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout?.on('data', (c) => {
    out += c;
  });
  proc.stderr?.on('data', (c) => {
    out += c;
  });
  expect(await exited(proc), out).toBe(0);
  expect(out).toContain('pipeline done');
}

/**
 * Every string of a protobuf message, with its field path, decoded from the wire format (a length-delimited
 * field is both a candidate string and, when it parses, a nested message).
 */
function protobufStrings(buf: Buffer, path = ''): Array<{ at: string; text: string }> {
  const out: Array<{ at: string; text: string }> = [];
  const varint = (at: number): [number, number] => {
    let v = 0;
    let shift = 0;
    for (let i = at; i < buf.length && i < at + 10; i++) {
      v += (buf[i] & 0x7f) * 2 ** shift;
      shift += 7;
      if ((buf[i] & 0x80) === 0) return [v, i + 1];
    }
    throw new Error('bad varint');
  };
  let i = 0;
  while (i < buf.length) {
    const [tag, next] = varint(i);
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    i = next;
    if (field === 0) throw new Error('field 0');
    if (wire === 0) i = varint(i)[1];
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else if (wire === 2) {
      const [len, start] = varint(i);
      const end = start + len;
      if (end > buf.length) throw new Error('length past end');
      const sub = buf.subarray(start, end);
      const at = `${path}/${field}`;
      out.push({ at, text: sub.toString('utf8') });
      try {
        out.push(...protobufStrings(sub, at));
      } catch {
        // not a message: the string above is all it is
      }
      i = end;
    } else throw new Error(`wire type ${wire}`);
  }
  return out;
}

function payloadArtifacts(): Artifact[] {
  return received.map((r, n) => {
    const where = `OTLP ${r.path} #${n} (${r.contentType})`;
    if (r.contentType.includes('protobuf')) {
      let texts: Array<{ at: string; text: string }>;
      try {
        texts = protobufStrings(r.body);
      } catch (err) {
        texts = [{ at: `undecodable (${(err as Error).message})`, text: r.body.toString('latin1') }];
      }
      return { where, texts, bytes: r.body };
    }
    const text = r.body.toString('utf8');
    // Searched as sent (escaped) and decoded (every string value after JSON.parse).
    const decoded: string[] = [];
    JSON.parse(text, (_k, v) => {
      if (typeof v === 'string') decoded.push(v);
      return v;
    });
    return {
      where,
      texts: [
        { at: 'as sent', text },
        { at: 'decoded strings', text: decoded.join('\n') },
      ],
    };
  });
}

function journalArtifacts(dir: string, label: string): Artifact[] {
  const out: Artifact[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else
        out.push({
          where: `${label} ${p.slice(dir.length + 1)}`,
          texts: readFileSync(p, 'utf8')
            .split('\n')
            .map((text, i) => ({ at: `line ${i + 1}`, text })),
        });
    }
  };
  walk(dir);
  return out;
}

function fileArtifact(path: string, label: string): Artifact {
  return { where: label, texts: [{ at: path, text: readFileSync(path, 'utf8') }] };
}

/** Every canary in every encoding, in every artifact: the hits, each with its location. */
function sweep(artifacts: Artifact[]): string[] {
  const hits: string[] = [];
  for (const needle of NEEDLES) {
    for (const form of encodings(needle)) {
      for (const a of artifacts) {
        let found = false;
        for (const { at, text } of a.texts) {
          const i = text.indexOf(form);
          if (i >= 0) {
            found = true;
            hits.push(
              `${JSON.stringify(form)} in ${a.where} at ${at}: …${text.slice(Math.max(0, i - 60), i + form.length + 20)}…`,
            );
          }
        }
        if (!found && a.bytes !== undefined) {
          const i = a.bytes.indexOf(Buffer.from(form, 'utf8'));
          if (i >= 0) hits.push(`${JSON.stringify(form)} in ${a.where} at byte ${i}`);
        }
      }
    }
  }
  return hits;
}

function records(dir: string) {
  return [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
}

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { cwd: ROOT, encoding: 'utf8' });

describe('canary sweep: no planted personal data leaves the process or reaches the disk', () => {
  const base = mkdtempSync(join(tmpdir(), 'mltrail-canary-'));
  const dirs = { 'http/json': join(base, 'json'), 'http/protobuf': join(base, 'protobuf') } as const;
  const files: Artifact[] = [];
  /** Where the CLI records who looked (access records, with the canary as the actor). */
  const accessDir = join(base, 'access');

  it('a service and a pipeline under mltrail/register, exporting over http/json and http/protobuf', async () => {
    for (const protocol of ['http/json', 'http/protobuf'] as const) {
      const stderr = await runService(dirs[protocol], protocol);
      expect(stderr).not.toMatch(/Error|failed/);
      await runPipeline(dirs[protocol], protocol);
    }
    // Not a vacuous sweep: every signal arrived in both encodings, and the journal holds every stage.
    const kinds = new Set(
      received.map((r) => `${r.path} ${r.contentType.includes('protobuf') ? 'protobuf' : 'json'}`),
    );
    for (const signal of ['/v1/traces', '/v1/logs', '/v1/metrics'])
      for (const enc of ['json', 'protobuf']) expect(kinds, `${signal} ${enc}`).toContain(`${signal} ${enc}`);
    // …and the canaries reached every signal: each carries redaction marks where they were planted.
    for (const signal of ['/v1/traces', '/v1/logs', '/v1/metrics']) {
      for (const proto of [false, true]) {
        const bodies = received
          .filter((r) => r.path === signal && r.contentType.includes('protobuf') === proto)
          .map((r) => r.body.toString('utf8'))
          .join('\n');
        expect(bodies, `${signal} ${proto ? 'protobuf' : 'json'}`).toMatch(/\[REDACTED:email\]/);
      }
    }
    // The command line never leaves the process; the rest of the resource does, redacted.
    const all = received.map((r) => r.body.toString('utf8')).join('\n');
    expect(all).not.toContain('process.command_args');
    expect(all).toContain('process.runtime.name');
    const events = new Set(records(dirs['http/json']).map((r) => r.event));
    for (const e of [
      'ml.prediction',
      'ml.decision',
      'ml.feedback',
      'ml.dataset.registered',
      'ml.training.completed',
      'ml.model.registered',
      'ml.deployment',
    ])
      expect(
        [...events].some((x) => x.startsWith(e)),
        `${e} in ${[...events].join(', ')}`,
      ).toBe(true);
  }, 240_000);

  it('the CLI: erasure with a personal reason and actor, the evidence report and the OpenLineage export', () => {
    const dir = dirs['http/json'];
    const all = records(dir);
    const prediction = all.find((r) => r.event === 'ml.prediction');
    if (prediction === undefined) throw new Error('no prediction in the journal');
    const id = JSON.parse(prediction.body)['ml.prediction.id'];
    const report = join(base, 'report.html');
    expect(
      cli([
        'report',
        '--prediction',
        id,
        '--journal',
        dir,
        '--out',
        report,
        '--actor',
        CANARY.email,
        '--access-journal',
        accessDir,
      ]).status,
    ).toBe(0);
    const lineage = join(base, 'openlineage.ndjson');
    expect(
      cli([
        'export',
        'openlineage',
        '--journal',
        dir,
        '--out',
        lineage,
        '--actor',
        CANARY.email,
        '--access-journal',
        accessDir,
      ]).status,
    ).toBe(0);
    const feedback = all.find((r) => r.event === 'ml.feedback');
    const erased = cli([
      'erase',
      `${feedback?.chain}:${feedback?.seq}`,
      '--journal',
      dir,
      '--reason',
      `request from ${CANARY.email}, tel ${CANARY.phone}`,
      '--actor',
      `Jane <${CANARY.email}>`,
    ]);
    expect(erased.status, erased.stderr).toBe(0);
    files.push(fileArtifact(report, 'evidence report'), fileArtifact(lineage, 'OpenLineage export'));
    expect(cli(['verify', dir]).status).toBe(0);
  }, 120_000);

  it.skipIf(!haveCollector)(
    `the archive the real collector writes from the shipped journals${haveCollector ? '' : ` (skipped: ${collectorSkipReason})`}`,
    async () => {
      const collector = await startTestCollector();
      try {
        for (const dir of Object.values(dirs)) {
          const r = cli([
            'ship',
            '--once',
            '--journal',
            dir,
            '--endpoint',
            collector.httpEndpoint,
            '--header',
            `Authorization=Bearer ${collector.token}`,
          ]);
          expect(r.status, r.stderr).toBe(0);
        }
        for (
          let i = 0;
          i < 100 && (!existsSync(collector.archive) || statSync(collector.archive).size === 0);
          i++
        )
          await new Promise((r) => setTimeout(r, 100));
      } finally {
        await collector.stop();
      }
      const archive = readFileSync(collector.archive, 'utf8');
      expect(archive).toContain('ml.prediction');
      files.push(fileArtifact(collector.archive, 'collector archive'));
    },
    120_000,
  );

  it('zero hits for every canary, in every encoding, in every payload, journal line, report, export and archive', () => {
    const artifacts = [
      ...payloadArtifacts(),
      ...journalArtifacts(dirs['http/json'], 'journal (json run)'),
      ...journalArtifacts(dirs['http/protobuf'], 'journal (protobuf run)'),
      ...journalArtifacts(accessDir, 'access journal'),
      ...files,
    ];
    expect(received.length).toBeGreaterThan(6);
    expect(files.length).toBeGreaterThanOrEqual(2);
    expect(sweep(artifacts)).toEqual([]);
  });

  it('the sweep finds a canary when one is there (it is not blind)', () => {
    const planted: Artifact = {
      where: 'planted',
      texts: [{ at: 'x', text: `ok ${encodeURIComponent(CANARY.email)} ${CANARY.phone.toUpperCase()}` }],
    };
    const proto = Buffer.concat([Buffer.from([0x0a, CANARY.email.length]), Buffer.from(CANARY.email)]);
    const hits = sweep([planted, { where: 'proto', texts: protobufStrings(proto), bytes: proto }]);
    expect(hits.length).toBeGreaterThanOrEqual(3);
    expect(hits.join('\n')).toContain('proto at /1');
  });
});
