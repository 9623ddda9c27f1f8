import {
  appendFileSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zstdCompressSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lineEventName } from '../../src/integrity/index.js';
import { type CliRun, runCli } from '../fixtures/cli-run.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';

/**
 * Every CLI command that reads a journal, run as a real child process (heap capped at 256 MB) on copies of a
 * realistic journal into which hostile lines were written: garbage, invalid UTF-8, huge and deeply nested
 * lines, NaN/Infinity literals, records with fields of the wrong type. Fixed seeds: CI sees the same cases.
 */

type Run = CliRun;

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runCli(args, { env });
}

/** No crash: the process ended by itself, with a documented exit code and no stack trace or internal error. */
function expectClean(r: Run, allowed: number[], what: string): void {
  const context = `${what}: exit ${r.status} ${r.signal ?? ''}\n${r.stderr.slice(0, 2000)}`;
  expect(r.signal, context).toBeNull();
  expect(allowed, context).toContain(r.status);
  expect(r.stderr, context).not.toMatch(/^\s+at .*:\d+:\d+\)?$/m);
  expect(r.stderr, context).not.toMatch(
    /internal error|is not a function|Cannot read propert|is not iterable|Maximum call stack|heap out of memory/,
  );
}

/** An error the user can act on names where: a file and line, or the field that was wrong. */
function expectLocatedError(r: Run, what: string): void {
  expect(r.stderr, what).toMatch(/^mltrail( \w+)?: /);
  expect(r.stderr, what).toMatch(/\.ndjson:\d+|field "|line \d+/);
}

const CHAIN = '01a20000-0000-7000-8000-00000000bad0';

/** Bytes that print short in a counterexample. */
function described(b: Buffer): Buffer {
  return Object.assign(b, {
    [fc.toStringMethod]: () =>
      `<${b.length} bytes: ${JSON.stringify(b.subarray(0, 160).toString('latin1'))}${b.length > 160 ? '…' : ''}>`,
  });
}

/** One hostile line (bytes, no newline). */
function hostileLine(sample: Record<string, unknown>): fc.Arbitrary<Buffer> {
  // Blank lines are not content (readers skip them); everything else must be noticed.
  return hostileBytes(sample)
    .filter((b) => b.toString('latin1').trim() !== '')
    .map(described);
}

function hostileBytes(sample: Record<string, unknown>): fc.Arbitrary<Buffer> {
  const text = (s: string) => Buffer.from(s);
  const recordWith = (key: string, value: string) =>
    text(JSON.stringify({ ...sample, [key]: '\u0000' }).replace('"\\u0000"', value));
  return fc.oneof(
    fc.string({ maxLength: 200 }).map(text),
    fc.json({ maxDepth: 4 }).map(text),
    fc.string({ unit: 'binary', maxLength: 200 }).map(text),
    // Invalid UTF-8, sometimes inside a record-shaped line.
    fc
      .tuple(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.boolean())
      .map(([bytes, inRecord]) =>
        inRecord
          ? Buffer.concat([
              text(`{"chain":"${CHAIN}","event":"ml.prediction","body":"`),
              Buffer.from([0xff, ...bytes]),
              text('"}'),
            ])
          : Buffer.from([0xc3, 0x28, ...bytes]),
      ),
    // A real record with one field replaced by another JSON value, or a NaN/Infinity literal.
    fc
      .tuple(
        fc.constantFrom(...Object.keys(sample)),
        fc.oneof(
          fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
          fc.constantFrom('NaN', 'Infinity', '-Infinity', '1e999', '-0', '9007199254740993'),
        ),
      )
      .map(([key, value]) => recordWith(key, value)),
    // Deeply nested: raw, or as a record's body (which verify, lineage and the report parse).
    fc
      .tuple(fc.integer({ min: 1_000, max: 200_000 }), fc.boolean())
      .map(([depth, asBody]) =>
        asBody
          ? recordWith('body', `{"event.name":"ml.prediction","x":${'['.repeat(depth)}${']'.repeat(depth)}}`)
          : text(`${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`),
      ),
    // Huge: a record-shaped line of megabytes.
    fc
      .integer({ min: 1 << 20, max: 6 << 20 })
      .map((n) => text(`{"chain":"${CHAIN}","event":"ml.prediction","body":"${'a'.repeat(n)}"}`)),
  );
}

describe('the CLI on journals with hostile lines', () => {
  let base: TrailJournal;
  let sample: Record<string, unknown>;
  let server: Server;
  let endpoint = '';
  let received = 0;

  beforeAll(async () => {
    base = await buildTrailJournal();
    const [chain] = readdirSync(join(base.dir, 'chains'));
    const lines = readFileSync(join(base.dir, 'chains', chain, '000001.ndjson'), 'utf8').split('\n');
    sample = JSON.parse(lines.find((l) => lineEventName(l) === 'ml.prediction')!);
    // A real OTLP/HTTP endpoint that accepts everything, for `mltrail ship`.
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => {
        body += d;
      });
      req.on('end', () => {
        const doc = JSON.parse(body) as { resourceLogs: { scopeLogs: { logRecords: unknown[] }[] }[] };
        for (const rl of doc.resourceLogs) for (const sl of rl.scopeLogs) received += sl.logRecords.length;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  }, 60_000);

  afterAll(async () => {
    await new Promise((r) => server?.close(r));
  });

  it('verify, lineage, drift, export, report, erase and ship: a located error or a result, never a crash, a hang or an unbounded heap', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(hostileLine(sample), { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        async (hostile, tornTail) => {
          const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-hostile-cli-')), 'journal');
          cpSync(base.dir, dir, { recursive: true });
          const [chain] = readdirSync(join(dir, 'chains'));
          const bytes = Buffer.concat(hostile.flatMap((l) => [l, Buffer.from('\n')]));
          const payload = tornTail ? bytes.subarray(0, bytes.length - 1) : bytes;
          // Behind the real chain's records, and as a chain of its own.
          appendFileSync(join(dir, 'chains', chain, '000001.ndjson'), payload);
          mkdirSync(join(dir, 'chains', CHAIN));
          writeFileSync(join(dir, 'chains', CHAIN, '000001.ndjson'), payload);

          const verify = await cli(['verify', dir, '--json']);
          expectClean(verify, [1], 'verify');
          const report = JSON.parse(verify.stdout);
          const located = [
            ...report.problems,
            ...report.chains.flatMap((c: { problems: unknown[] }) => c.problems),
          ];
          expect(located.length).toBeGreaterThan(0);
          // The real chain's own records still verify up to where the hostile lines begin.
          expect(
            report.chains.find((c: { chain: string }) => c.chain === chain).records,
          ).toBeGreaterThanOrEqual(40);

          const runs: [string, string[], number[]][] = [
            ['lineage', ['lineage', base.declined, '--journal', dir, '--json'], [0, 1, 2]],
            ['drift', ['drift', '--journal', dir, '--json'], [0, 1, 2]],
            [
              'export',
              ['export', 'openlineage', '--journal', dir, '--out', join(dir, '..', 'ol.ndjson')],
              [0, 2],
            ],
            [
              'report',
              ['report', '--prediction', base.declined, '--journal', dir, '--out', join(dir, '..', 'r.html')],
              [0, 1, 2],
            ],
            ['erase', ['erase', `${chain}:3`, '--reason', 'hostile-input test', '--journal', dir], [0, 1, 2]],
          ];
          for (const [what, args, allowed] of runs) {
            const r = await cli(args);
            expectClean(r, allowed, what);
            if (r.status === 2) expectLocatedError(r, what);
          }

          const before = received;
          const ship = await cli(['ship', '--once', '--json', '--journal', dir, '--endpoint', endpoint]);
          expectClean(ship, [0], 'ship');
          // Every line that is a record was delivered (the hostile ones that parse as records too); the rest
          // were reported and skipped, never a stall.
          const delivered = JSON.parse(ship.stdout).delivered;
          expect(delivered).toBe(received - before);
          expect(delivered).toBeGreaterThanOrEqual(40);
        },
      ),
      { numRuns: 12, seed: 20261128 },
    );
  }, 900_000);

  it('key, checkpoint and archive files that do not parse: exit 2 or 1 with a message naming them, nothing written', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-hostile-files-')), 'journal');
    cpSync(base.dir, dir, { recursive: true });
    const [chain] = readdirSync(join(dir, 'chains'));
    const segment = join(dir, 'chains', chain, '000001.ndjson');
    const before = readFileSync(segment);

    const keygen = await cli(['keygen', '--out', join(dir, 'no-such-dir', 'key')]);
    expectClean(keygen, [2], 'keygen');
    expect(keygen.stderr).toMatch(/^mltrail: cannot write the signing key to .*no-such-dir.*ENOENT/);

    const trusted = await cli(['verify', dir, '--trusted-key', 'not-a-key']);
    expectClean(trusted, [2], 'verify --trusted-key');
    // Named by where it came from, not repeated (it may be a private key or part of one).
    expect(trusted.stderr).toMatch(/^mltrail: --trusted-key #1 is not a verifier key/);
    expect(trusted.stderr).not.toContain('not-a-key');

    for (const key of ['garbage', 'PRIVATE+KEY+x+00000000+AAAA', 'PRIVATE+KEY+x+00000000+%%%']) {
      const erase = await cli(['erase', `${chain}:3`, '--reason', 'test', '--journal', dir], {
        MLTRAIL_SIGNING_KEY: key,
      });
      expectClean(erase, [2], `erase with signing key ${key}`);
      expect(erase.stderr).toMatch(/^mltrail: signing key: /);
      // A mistyped key is never echoed (it may be most of a real one).
      expect(erase.stderr).not.toContain(key);
    }
    // Nothing was erased and no erasure record was written.
    expect(readFileSync(segment)).toEqual(before);
    expect(readdirSync(join(dir, 'chains'))).toEqual([chain]);

    const garbageCheckpoint = join(dir, '..', 'held-checkpoint.txt');
    writeFileSync(garbageCheckpoint, Buffer.from([0xff, 0x00, 0x0a, 0x41]));
    const since = await cli(['verify', dir, '--since-checkpoint', garbageCheckpoint, '--json']);
    expectClean(since, [1], 'verify --since-checkpoint');
    expect(JSON.stringify(JSON.parse(since.stdout))).toContain('held-checkpoint.txt');

    // The collector's zstd archive: a message that does not decompress and a last one cut short by a crash.
    const message = (text: string) => {
      const frame = zstdCompressSync(Buffer.from(text));
      const len = Buffer.alloc(4);
      len.writeUInt32BE(frame.length);
      return Buffer.concat([len, frame]);
    };
    const good = message('{"resourceLogs":[]}');
    const corrupt = Buffer.from(good);
    corrupt.fill(0x41, 12);
    const archive = join(dir, '..', 'audit.jsonl');
    writeFileSync(archive, Buffer.concat([good, corrupt, good, good.subarray(0, good.length - 3)]));
    const zst = await cli(['verify', archive, '--json']);
    expectClean(zst, [1], 'verify zstd archive');
    const problems = JSON.parse(zst.stdout).problems as { kind: string; location: string }[];
    expect(problems.map((p) => p.kind).sort()).toEqual(['malformed', 'torn-line']);
    for (const p of problems) expect(p.location).toMatch(/audit\.jsonl:\d+$/);
  }, 120_000);

  it('bounded memory: verify, lineage and export stream a 100 MB journal of garbage lines and a 64 MB line in a 256 MB heap', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-hostile-big-')), 'journal');
    cpSync(base.dir, dir, { recursive: true });
    mkdirSync(join(dir, 'chains', CHAIN));
    const big = join(dir, 'chains', CHAIN, '000001.ndjson');
    const chunk = Buffer.from(
      `${'{"garbage":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}\n'.repeat(20_000)}`,
    );
    for (let written = 0; written < 100 << 20; written += chunk.length) appendFileSync(big, chunk);
    appendFileSync(big, `{"event":"ml.prediction","body":"${'a'.repeat(64 << 20)}"}\n`);
    const verify = await cli(['verify', dir, '--json']);
    expectClean(verify, [1], 'verify');
    // One problem per line for the first 10 000, then one entry counting the rest: not a heap per line.
    const problems = JSON.parse(verify.stdout).problems as { message: string }[];
    expect(problems).toHaveLength(10_001);
    expect(problems.at(-1)!.message).toMatch(/^\d+ more torn or malformed lines from here on are not listed/);
    const lineage = await cli(['lineage', base.declined, '--journal', dir, '--json']);
    expectClean(lineage, [0, 2], 'lineage');
    if (lineage.status === 2) expectLocatedError(lineage, 'lineage');
    const exported = await cli([
      'export',
      'openlineage',
      '--journal',
      dir,
      '--out',
      join(dir, '..', 'ol.ndjson'),
    ]);
    expectClean(exported, [0, 2], 'export');
    if (exported.status === 2) expectLocatedError(exported, 'export');
  }, 300_000);

  it('verify --loki and lineage --loki against answers that are not Loki\'s: exit 2 naming what was wrong, never "intact", never a hang', async () => {
    const page = (n: number) =>
      JSON.stringify({
        status: 'success',
        data: {
          resultType: 'streams',
          result: [{ stream: {}, values: Array.from({ length: n }, () => ['1000', '{}']) }],
        },
      });
    const answers: Record<string, [number, string]> = {
      garbage: [200, 'not json at all'],
      empty: [200, ''],
      deep: [200, `${'['.repeat(200_000)}${']'.repeat(200_000)}`],
      'not loki': [200, '{"hello":"world"}'],
      'wrong stream': [200, '{"status":"success","data":{"result":[{"stream":5,"values":[]}]}}'],
      'wrong values': [
        200,
        '{"status":"success","data":{"result":[{"stream":{},"values":[[1,2],"x",null]}]}}',
      ],
      'NaN timestamp': [
        200,
        '{"status":"success","data":{"result":[{"stream":{},"values":[["NaN","{}"]]}]}}',
      ],
      'the same full page forever': [200, page(10)],
      'bad gateway': [502, '<html>502 Bad Gateway</html>'],
    };
    let answer: [number, string] = [200, ''];
    const loki = createServer((_req, res) => {
      res.writeHead(answer[0], { 'content-type': 'application/json' }).end(answer[1]);
    });
    await new Promise<void>((r) => loki.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(loki.address() as { port: number }).port}`;
    try {
      for (const [what, a] of Object.entries(answers)) {
        answer = a;
        const args = ['--loki', url, '--query', '{service_name="x"}', '--page-size', '10'];
        const verify = await cli(['verify', ...args]);
        expectClean(verify, [2], `verify --loki, ${what}`);
        expect(verify.stderr, what).toMatch(/^mltrail: .*Loki http:\/\/127\.0\.0\.1:\d+: \S/);
        // lineage reads Loki's default page (5000): ten entries are one page, not an endless one.
        if (what === 'the same full page forever') continue;
        const lineage = await cli(['lineage', 'some-id', ...args.slice(0, 4)]);
        expectClean(lineage, [2], `lineage --loki, ${what}`);
        expect(lineage.stderr, what).toMatch(/Loki http:\/\/127\.0\.0\.1:\d+/);
      }
    } finally {
      await new Promise((r) => loki.close(r));
    }
  }, 180_000);
});
