import { spawn } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { ChainVerifier, canonicalize, parseRecordLine } from '../../src/integrity/index.js';
import { AuditLog, JournalReader, JournalWriter, repairTornTails } from '../../src/journal/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';

const tmp = (p: string) => mkdtempSync(join(tmpdir(), `mltrail-${p}-`));
const input = (i: number) => {
  const ts = new Date().toISOString();
  return {
    event: 'ml.feedback',
    sev: 'INFO' as const,
    ts,
    attrs: {},
    body: canonicalize({ 'event.name': 'ml.feedback', timestamp: ts, 'ml.feedback.id': `f-${i}` }),
  };
};
function verifyDir(dir: string) {
  const v = new ChainVerifier();
  const s = readIntoVerifier(dir, v);
  for (const f of s.checkpointFiles) v.addCheckpoint(readFileSync(f, 'utf8'), f);
  return v.finish();
}

describe('JournalWriter', () => {
  it('group-commits: 2000 appends become far fewer fsyncs, all durable, in order', async () => {
    const dir = tmp('group');
    const w = new JournalWriter({ dir, chainId: '01a20000-0000-7000-8000-000000000001', groupCommitMs: 5 });
    const durable = Array.from({ length: 2000 }, (_, i) => w.append(`{"i":${i}}`));
    await Promise.all(durable);
    expect(w.written).toBe(2000);
    expect(w.syncs).toBeGreaterThan(0);
    expect(w.syncs).toBeLessThan(100);
    await w.close();
    const lines = [...new JournalReader(dir).lines()].map((l) => JSON.parse(l.text).i);
    expect(lines).toEqual(Array.from({ length: 2000 }, (_, i) => i));
  });

  it('rotates segments by size and creates files 0600 in 0700 directories', async () => {
    const dir = tmp('rotate');
    const w = new JournalWriter({ dir, chainId: '01a20000-0000-7000-8000-000000000002', segmentBytes: 1000 });
    for (let i = 0; i < 100; i++) {
      w.append(`{"i":${i},"pad":"${'x'.repeat(40)}"}`);
      // A group commit never splits across segments, so rotate between commits.
      if (i % 10 === 9) await w.flush();
    }
    await w.close();
    const cdir = join(dir, 'chains', '01a20000-0000-7000-8000-000000000002');
    const files = readdirSync(cdir);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) expect(statSync(join(cdir, f)).mode & 0o777).toBe(0o600);
    expect(statSync(cdir).mode & 0o777).toBe(0o700);
    expect([...new JournalReader(dir).lines()]).toHaveLength(100);
  });

  it('a torn last line is reported precisely and cut only when asked', async () => {
    const dir = tmp('torn');
    // An in-chain checkpoint stays behind the cut, so verify knows the signing key without --trusted-key.
    const log = new AuditLog({ dir, checkpointEvery: 2 });
    for (let i = 0; i < 5; i++) log.append(input(i));
    await log.close();
    const [chain] = readdirSync(join(dir, 'chains'));
    const seg = join(dir, 'chains', chain, '000001.ndjson');
    const full = readFileSync(seg);
    writeFileSync(seg, full.subarray(0, full.length - 30));
    const reader = new JournalReader(dir);
    const lines = [...reader.lines()];
    expect(lines).toHaveLength(7);
    expect(reader.torn).toEqual([
      expect.objectContaining({ file: seg, line: 8, offset: full.lastIndexOf(10, full.length - 2) + 1 }),
    ]);
    expect(reader.torn[0].message).toMatch(/is truncated at byte \d+ .*run "mltrail verify --repair-tail"/);
    expect(readFileSync(seg).length).toBe(full.length - 30);
    expect(repairTornTails(dir)).toHaveLength(1);
    expect(readFileSync(seg, 'utf8').endsWith('\n')).toBe(true);
    const r = verifyDir(dir);
    // The final checkpoint record was cut; the checkpoint file still covers what remains.
    expect(r.problems).toEqual([]);
    expect(r.chains[0].problems).toEqual([]);
  });
});

describe('JournalReader', () => {
  it('streams big segments exactly: every line with its byte offset, across buffer boundaries and past the buffer size', () => {
    const dir = tmp('reader');
    const cdir = join(dir, 'chains', '01a20000-0000-7000-8000-0000000000b1');
    mkdirSync(cdir, { recursive: true });
    // ~20 MB of lines of varying length (multi-byte UTF-8 too), one 9 MiB line, then a torn tail.
    const lines: string[] = [];
    let size = 0;
    for (let i = 0; size < 20_000_000; i++) {
      const l =
        i === 30_000 ? `{"big":"${'b'.repeat(9 * 1024 * 1024)}"}` : `{"i":${i},"s":"${'é'.repeat(i % 97)}"}`;
      lines.push(l);
      size += Buffer.byteLength(l) + 1;
    }
    const text = `${lines.join('\n')}\n{"torn":`;
    writeFileSync(join(cdir, '000001.ndjson'), text);
    const reader = new JournalReader(dir);
    const got = [...reader.lines()];
    expect(got.length).toBe(lines.length);
    const bytes = Buffer.from(text);
    let offset = 0;
    let firstMismatch = -1;
    for (let i = 0; i < lines.length && firstMismatch < 0; i++) {
      if (got[i].text !== lines[i] || got[i].line !== i + 1 || got[i].offset !== offset) firstMismatch = i;
      offset += Buffer.byteLength(lines[i]) + 1;
    }
    expect(firstMismatch).toBe(-1);
    expect(reader.torn).toEqual([
      expect.objectContaining({ line: lines.length + 1, offset, bytes: bytes.length - offset }),
    ]);
  });
});

describe('AuditLog under disk failure', () => {
  it('default mode: the host keeps running, the failure is counted, and a gap record is written on recovery', async () => {
    const dir = tmp('diskfail');
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const log = new AuditLog({ dir, groupCommitMs: 1, segmentBytes: 600, meterProvider });
    log.append(input(0));
    await log.flush();
    const [chain] = readdirSync(join(dir, 'chains'));
    const cdir = join(dir, 'chains', chain);
    // Inject a write failure that even root cannot bypass: the chain directory becomes a file, so opening
    // the next segment fails with ENOTDIR.
    renameSync(cdir, `${cdir}.moved`);
    writeFileSync(cdir, 'not a directory');
    const pending = [1, 2, 3, 4, 5, 6].map((i) => log.append(input(i)).durable);
    await expect(log.flush()).rejects.toThrow(/journal write failed/);
    rmSync(cdir);
    renameSync(`${cdir}.moved`, cdir);
    await Promise.all(pending);
    await log.close();
    // The OTel counter saw every failed attempt.
    await reader.forceFlush();
    const points = exporter
      .getMetrics()
      .at(-1)!
      .scopeMetrics.flatMap((sm) => sm.metrics)
      .filter((m) => m.descriptor.name === 'mltrail.journal.write_errors')
      .flatMap((m) => m.dataPoints as { value: unknown }[]);
    expect(log.counters.writeErrors).toBeGreaterThan(0);
    expect(points.map((p) => p.value)).toEqual([log.counters.writeErrors]);
    await meterProvider.shutdown();
    const records = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
    expect(records.filter((r) => r.event === 'mltrail.journal.gap')).toHaveLength(1);
    expect(JSON.parse(records.find((r) => r.event === 'mltrail.journal.gap')!.body)).toEqual(
      expect.objectContaining({
        'mltrail.gap.lost_count': 0,
        'mltrail.gap.error': expect.stringMatching(/^(EEXIST|ENOTDIR)/),
      }),
    );
    expect(records.filter((r) => r.event === 'ml.feedback').map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const report = verifyDir(dir);
    expect(report.chains[0].problems).toEqual([]);
  });

  it('fail-closed mode: the durability promise rejects while the disk fails', async () => {
    const dir = tmp('failclosed');
    const log = new AuditLog({ dir, groupCommitMs: 1, segmentBytes: 600, failClosed: true });
    log.append(input(0));
    await log.flush();
    const [chain] = readdirSync(join(dir, 'chains'));
    const cdir = join(dir, 'chains', chain);
    renameSync(cdir, `${cdir}.moved`);
    writeFileSync(cdir, 'not a directory');
    const { durable } = log.append(input(1));
    await expect(durable).rejects.toThrow(/journal write failed: .*(EEXIST|ENOTDIR)/);
    rmSync(cdir);
    renameSync(`${cdir}.moved`, cdir);
    await log.close();
  });
});

describe('JournalWriter edge cases', () => {
  const runLimited = (dir: string, mode: 'open' | 'closed') =>
    new Promise<{ code: number | null; out: string }>((resolve) => {
      // An 8 KiB file size limit: the write that crosses it is short, the next one fails with EFBIG.
      const child = spawn(
        'bash',
        [
          '-c',
          'ulimit -f 8; exec "$0" "$@"',
          process.execPath,
          join('test', 'fixtures', 'efbig-writer.mjs'),
          dir,
          mode,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
      });
      child.on('exit', (code) => resolve({ code, out }));
    });

  it.each(['open', 'closed'] as const)(
    'a short write (file size limit) is cut back to the last whole line; the process still exits on its own (%s)',
    async (mode) => {
      const dir = tmp(`efbig-${mode}`);
      const { code, out } = await runLimited(dir, mode);
      expect(code).toBe(0);
      const result = JSON.parse(out);
      expect(result.writeErrors).toBeGreaterThan(0);
      if (mode === 'closed')
        expect(result.outcome).toMatch(/^rejected: mltrail: journal write failed: EFBIG/);
      else expect(result.outcome).toBe('write error');
      const seg = join(dir, 'chains', '01a20000-0000-7000-8000-0000000000fb', '000001.ndjson');
      const bytes = readFileSync(seg);
      expect(bytes.length).toBeLessThanOrEqual(8192);
      expect(bytes[bytes.length - 1]).toBe(10);
      const reader = new JournalReader(dir);
      const lines = [...reader.lines()].map((l) => JSON.parse(l.text).i);
      expect(reader.torn).toEqual([]);
      // Everything acknowledged is there, in order, and nothing else.
      expect(lines).toEqual(Array.from({ length: result.acked }, (_, i) => i));
    },
  );

  it('a reopened chain continues its last segment, but never appends after a torn line', async () => {
    const dir = tmp('reopen');
    const chainId = '01a20000-0000-7000-8000-0000000000a1';
    const first = new JournalWriter({ dir, chainId });
    await first.append('{"n":1}');
    await first.close();
    const second = new JournalWriter({ dir, chainId });
    await second.append('{"n":2}');
    await second.close();
    const cdir = join(dir, 'chains', chainId);
    expect(readdirSync(cdir)).toEqual(['000001.ndjson']);
    writeFileSync(join(cdir, '000001.ndjson'), '{"n":1}\n{"n":2}\n{"n":');
    const third = new JournalWriter({ dir, chainId });
    await third.append('{"n":3}');
    await third.close();
    expect(readdirSync(cdir)).toEqual(['000001.ndjson', '000002.ndjson']);
    const reader = new JournalReader(dir);
    expect([...reader.lines()].map((l) => l.text)).toEqual(['{"n":1}', '{"n":2}', '{"n":3}']);
    expect(reader.torn).toEqual([expect.objectContaining({ file: join(cdir, '000001.ndjson'), line: 3 })]);
  });
});

describe('AuditLog when the memory bound is hit during an outage', () => {
  it('drops and counts what does not fit, and the gap record says how many from which seq; verify reports the missing seqs', async () => {
    const dir = tmp('dropped');
    const log = new AuditLog({
      dir,
      groupCommitMs: 1,
      segmentBytes: 100, // every commit opens a new segment, so the outage below is seen at once
      maxBufferedLines: 5,
      checkpointEvery: 4,
      failClosed: true,
    });
    log.append(input(0));
    await log.flush();
    const [chain] = readdirSync(join(dir, 'chains'));
    const cdir = join(dir, 'chains', chain);
    renameSync(cdir, `${cdir}.moved`);
    writeFileSync(cdir, 'not a directory');
    // The first append after the outage begins fails its write; while the disk fails, only 5 lines are
    // kept. Checkpoints fall due meanwhile (every 4): their promises must not become unhandled rejections.
    const first = log.append(input(1));
    await expect(first.durable).rejects.toThrow(/journal write failed/);
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => log.append(input(i + 2)).durable),
    );
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    expect(log.counters.dropped).toBeGreaterThan(0);
    expect(log.counters.writeErrors).toBeGreaterThan(0);
    rmSync(cdir);
    renameSync(`${cdir}.moved`, cdir);
    await new Promise<void>((resolve) => {
      const poll = () => (log.counters.written > 1 ? resolve() : setTimeout(poll, 10));
      poll();
    });
    await log.close();
    const records = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
    const gap = records.find((r) => r.event === 'mltrail.journal.gap');
    expect(gap).toBeDefined();
    const body = JSON.parse(gap!.body);
    expect(body['mltrail.gap.lost_count']).toBe(log.counters.dropped);
    expect(body['mltrail.gap.from_seq']).toBe(1);
    // Never a silent gap: exactly the dropped seqs are missing, and verify says so ("seq a..b missing ...").
    const missing = verifyDir(dir).chains[0].problems.filter((p) => p.kind === 'missing');
    expect(missing.length).toBeGreaterThan(0);
    const missingSeqs = missing.reduce((n, p) => {
      const m = /^seq (\d+)(?:\.\.(\d+))? missing/.exec(p.message)!;
      return n + Number(m[2] ?? m[1]) - Number(m[1]) + 1;
    }, 0);
    expect(missingSeqs).toBe(log.counters.dropped);
    expect(new Set(records.map((r) => r.seq)).size + log.counters.dropped).toBe(
      Math.max(...records.map((r) => r.seq)) + 1,
    );
  });
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['dist/cli/main.js', ...args], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let stdout = '';
    child.stdout.on('data', (c) => {
      stdout += c;
    });
    child.on('exit', (code) => resolve({ code, stdout }));
  });
}

describe('crash safety', () => {
  it('SIGKILL mid-stream: every record acknowledged durable is present; the journal verifies after --repair-tail', async () => {
    const dir = tmp('crash');
    const child = spawn(process.execPath, [join('test', 'fixtures', 'crash-writer.mjs'), dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let acked = -1;
    let chain = '';
    await new Promise<void>((resolve) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const [, c, seq] = line.split(' ');
        chain = c;
        acked = Number(seq);
        if (acked >= 2000) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await new Promise((r) => child.once('exit', r));
    // A torn tail, if the kill landed mid-write, is only ever the end of the chain's newest segment.
    const reader = new JournalReader(dir);
    for (const _ of reader.lines()) {
      // reading finds torn tails
    }
    expect(reader.torn.length).toBeLessThanOrEqual(1);
    for (const t of reader.torn) {
      const segs = readdirSync(join(dir, 'chains', chain)).sort();
      expect(t.file).toBe(join(dir, 'chains', chain, segs[segs.length - 1]));
      expect(t.offset + t.bytes).toBe(statSync(t.file).size);
    }
    // `mltrail verify` reports it (exit 1) and cuts it only with --repair-tail; then the chain verifies.
    const before = await cli(['verify', '--json', dir]);
    expect(before.code).toBe(reader.torn.length > 0 ? 1 : 0);
    const kinds = JSON.parse(before.stdout).chains.flatMap((c: { problems: { kind: string }[] }) =>
      c.problems.map((p) => p.kind),
    );
    expect(kinds).toEqual(reader.torn.length > 0 ? ['torn-line'] : []);
    if (reader.torn.length > 0) expect(readFileSync(reader.torn[0].file).at(-1)).not.toBe(10);
    const after = await cli(['verify', '--repair-tail', '--json', dir]);
    expect(after.code).toBe(0);
    const seqs = new Set<number>();
    for (const l of new JournalReader(dir).lines()) {
      const r = parseRecordLine(l.text);
      if (r.chain === chain) seqs.add(r.seq);
    }
    for (let s = 0; s <= acked; s++) expect(seqs.has(s), `acknowledged seq ${s}`).toBe(true);
    const report = verifyDir(dir);
    expect(report.problems).toEqual([]);
    expect(report.chains.flatMap((c) => c.problems)).toEqual([]);
  });
});
