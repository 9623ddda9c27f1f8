import { execFileSync } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliRun, runCli } from '../fixtures/cli-run.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';

/**
 * The files the CLI opens (docs/security.md): only regular files inside the directory it is given. Each case
 * plants a real file-system object in a copy of a real journal — a symbolic link to /dev/zero, to a FIFO, to
 * /etc/passwd, a FIFO, a socket and a device node as a segment, a chain directory linking out to a
 * valid-looking segment — and runs every reading command as a child process: each must end by itself with
 * exit 2 and the error naming the path. A FIFO that were opened would hang the reader and /dev/zero would
 * never end, so the kill timer below (and the test timeout) only guard against a hang; nothing is timed.
 */

type Run = CliRun;

function cli(args: string[]): Promise<Run> {
  return runCli(args, { env: { MLTRAIL_ACCESS_JOURNAL: '' }, guardMs: 60_000 });
}

const IN_DIR =
  'mltrail reads only regular files inside the directory it is given (remove it, or replace it with a copy of the file it stands for)';
const NAMED = 'mltrail reads only regular files (give the path of one)';

let fixture: TrailJournal;
let work: string;
let outside: string;
let chain: string;
let endpoint: string;
const servers: Server[] = [];

beforeAll(async () => {
  fixture = await buildTrailJournal();
  work = mkdtempSync(join(tmpdir(), 'mltrail-files-'));
  // Somewhere else on the same machine: what a link out of the journal leads to.
  outside = realpathSync(mkdtempSync(join(tmpdir(), 'mltrail-elsewhere-')));
  chain = readdirSync(join(fixture.dir, 'chains')).sort()[0];
  // A real OTLP/HTTP endpoint that accepts everything, for `mltrail ship`.
  const sink = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  servers.push(sink);
  await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r));
  endpoint = `http://127.0.0.1:${(sink.address() as { port: number }).port}`;
}, 120_000);

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
});

let copies = 0;
/** A fresh copy of the fixture journal. */
function copyJournal(): string {
  const dir = join(work, `journal-${copies++}`);
  cpSync(fixture.dir, dir, { recursive: true });
  return dir;
}

/** Every reading command on `dir`, with the prefix its error message carries before the file's own error. */
function readers(dir: string): { args: string[]; prefix: string }[] {
  const prediction = fixture.predictions1[0];
  return [
    { args: ['verify', dir], prefix: `mltrail: cannot read ${dir}: ` },
    {
      args: ['lineage', prediction, '--journal', dir],
      prefix: `mltrail: cannot read the audit records in ${dir}: `,
    },
    {
      args: ['lineage', prediction, '--journal', dir, '--scan'],
      prefix: `mltrail: cannot read the audit records in ${dir}: `,
    },
    {
      args: ['report', '--prediction', prediction, '--journal', dir, '--out', join(work, 'report.html')],
      prefix: `mltrail: cannot read the journal in ${dir}: `,
    },
    {
      args: ['export', 'openlineage', '--journal', dir],
      prefix: `mltrail: cannot read the journal in ${dir}: `,
    },
    { args: ['drift', '--journal', dir], prefix: `mltrail: cannot read the journal in ${dir}: ` },
    { args: ['index', dir], prefix: `mltrail: cannot index ${dir}: ` },
    // No such record: erase reads every segment looking for it.
    { args: ['erase', `${chain}:999999`, '--reason', 'request 7', '--journal', dir], prefix: 'mltrail: ' },
    // The shipper delivers what it can read and names, never reads, what the rules refuse.
    { args: ['ship', '--once', '--journal', dir, '--endpoint', endpoint], prefix: 'mltrail: not shipped: ' },
  ];
}

/** Runs every reader on `dir` and expects each to stop with exit 2 and exactly `message`. */
async function expectRefused(dir: string, message: string): Promise<Run[]> {
  const runs: Run[] = [];
  for (const { args, prefix } of readers(dir)) {
    const r = await cli(args);
    const context = `${args.join(' ')}: exit ${r.status} ${r.signal ?? ''}\n${r.stderr.slice(0, 2000)}`;
    expect(r.signal, context).toBeNull();
    expect(r.status, context).toBe(2);
    expect(r.stderr, context).toContain(`${prefix}${message}\n`);
    expect(r.stderr, context).not.toMatch(/internal error|^\s+at .*:\d+:\d+\)?$/m);
    runs.push(r);
  }
  return runs;
}

const isRoot = process.getuid?.() === 0;

describe('files the CLI opens: regular files inside the directory given', () => {
  it('a segment that is a symbolic link to /dev/zero is refused, not read', {
    timeout: 600_000,
  }, async () => {
    const dir = copyJournal();
    const seg = join(dir, 'chains', chain, '000099.ndjson');
    symlinkSync('/dev/zero', seg);
    await expectRefused(dir, `${seg} leads to /dev/zero, outside ${dir}; ${IN_DIR}`);
  });

  it('a segment that is a symbolic link to a FIFO is refused without waiting for a writer', {
    timeout: 600_000,
  }, async () => {
    const fifo = join(outside, 'pipe.ndjson');
    execFileSync('mkfifo', [fifo]);
    const dir = copyJournal();
    const seg = join(dir, 'chains', chain, '000099.ndjson');
    symlinkSync(fifo, seg);
    await expectRefused(dir, `${seg} leads to ${fifo}, outside ${dir}; ${IN_DIR}`);
    // A link that stays inside the directory is followed, and what it leads to must still be a regular file.
    const inner = copyJournal();
    execFileSync('mkfifo', [join(inner, 'pipe')]);
    const innerSeg = join(inner, 'chains', chain, '000099.ndjson');
    symlinkSync('../../pipe', innerSeg);
    await expectRefused(inner, `${innerSeg} is a FIFO (named pipe), not a regular file; ${IN_DIR}`);
  });

  it('a segment that is a symbolic link to /etc/passwd is refused and nothing of it is printed', {
    timeout: 600_000,
  }, async () => {
    const dir = copyJournal();
    const seg = join(dir, 'chains', chain, '000099.ndjson');
    symlinkSync('/etc/passwd', seg);
    const runs = await expectRefused(dir, `${seg} leads to /etc/passwd, outside ${dir}; ${IN_DIR}`);
    const firstLine = readFileSync('/etc/passwd', 'utf8').split('\n')[0];
    for (const r of runs) expect(r.stdout + r.stderr).not.toContain(firstLine);
  });

  it('a FIFO in a chain directory is refused, and the readers end', { timeout: 600_000 }, async () => {
    const dir = copyJournal();
    const seg = join(dir, 'chains', chain, '000099.ndjson');
    execFileSync('mkfifo', [seg]);
    await expectRefused(dir, `${seg} is a FIFO (named pipe), not a regular file; ${IN_DIR}`);
  });

  it('a socket in a chain directory is refused', { timeout: 600_000 }, async () => {
    const dir = copyJournal();
    const seg = join(dir, 'chains', chain, '000099.ndjson');
    const server = createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen(seg, r));
    await expectRefused(dir, `${seg} is a socket, not a regular file; ${IN_DIR}`);
  });

  it.skipIf(!isRoot)(
    'a device node in a chain directory is refused, never opened (needs root for mknod)',
    { timeout: 600_000 },
    async () => {
      const dir = copyJournal();
      const seg = join(dir, 'chains', chain, '000099.ndjson');
      execFileSync('mknod', [seg, 'c', '1', '5']); // the device /dev/zero is
      await expectRefused(dir, `${seg} is a character device, not a regular file; ${IN_DIR}`);
    },
  );

  it('a chain directory that links out to a valid-looking segment is refused', {
    timeout: 600_000,
  }, async () => {
    // A real chain's segments, elsewhere, under a name that sorts last in the journal.
    const foreign = 'ffffffff-ffff-7fff-bfff-ffffffffffff';
    cpSync(join(fixture.dir, 'chains', chain), join(outside, foreign), { recursive: true });
    const first = readdirSync(join(outside, foreign)).sort()[0];
    const dir = copyJournal();
    symlinkSync(join(outside, foreign), join(dir, 'chains', foreign));
    const seg = join(dir, 'chains', foreign, first);
    await expectRefused(dir, `${seg} leads to ${join(outside, foreign, first)}, outside ${dir}; ${IN_DIR}`);
  });

  it('a chain directory that is a symbolic link loop: ship delivers the other chains and names it; readers end cleanly', {
    timeout: 120_000,
  }, async () => {
    const dir = copyJournal();
    symlinkSync('loop-b', join(dir, 'chains', 'loop-a'));
    symlinkSync('loop-a', join(dir, 'chains', 'loop-b'));
    const shipped = await cli(['ship', '--once', '--journal', dir, '--endpoint', endpoint]);
    expect(shipped.status, shipped.stderr).toBe(2);
    expect(shipped.stderr).toMatch(/^mltrail ship: delivered [1-9]\d* record\(s\)/m);
    expect(shipped.stderr).toContain(
      `mltrail: not shipped: ${join(dir, 'chains', 'loop-a')} cannot be read: ELOOP`,
    );
    expect(shipped.stderr).not.toMatch(/internal error|^\s+at .*:\d+:\d+\)?$/m);
    for (const args of [
      ['verify', dir],
      ['index', dir],
    ]) {
      const r = await cli(args);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr).toContain('ELOOP');
      expect(r.stderr).not.toMatch(/internal error|^\s+at .*:\d+:\d+\)?$/m);
    }
  });

  it('a link that stays inside the directory is followed (the journal reads as before)', {
    timeout: 120_000,
  }, async () => {
    const dir = copyJournal();
    const moved = join(dir, 'kept-chains');
    cpSync(join(dir, 'chains'), moved, { recursive: true });
    execFileSync('rm', ['-r', join(dir, 'chains')]);
    symlinkSync('kept-chains', join(dir, 'chains'));
    const r = await cli(['verify', dir, '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).intact).toBe(true);
  });
});

describe('archives and files named on the command line', () => {
  it('a FIFO or a link to /dev/zero among an archive directory is refused', {
    timeout: 120_000,
  }, async () => {
    const dir = join(work, 'archive-fifo');
    mkdirSync(dir);
    writeFileSync(join(dir, 'a.jsonl'), '');
    execFileSync('mkfifo', [join(dir, 'b.jsonl')]);
    let r = await cli(['verify', dir]);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `mltrail: cannot read ${dir}: ${join(dir, 'b.jsonl')} is a FIFO (named pipe), not a regular file; ${IN_DIR}\n`,
    );
    const zero = join(work, 'archive-zero');
    mkdirSync(zero);
    symlinkSync('/dev/zero', join(zero, 'audit.jsonl.zst'));
    r = await cli(['verify', zero]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `mltrail: cannot read ${zero}: ${join(zero, 'audit.jsonl.zst')} leads to /dev/zero, outside ${zero}; ${IN_DIR}\n`,
    );
    // A checkpoint file too.
    const cp = join(work, 'archive-checkpoint');
    mkdirSync(cp);
    symlinkSync('/etc/passwd', join(cp, `checkpoint-${chain}.txt`));
    r = await cli(['verify', cp]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `mltrail: cannot read ${cp}: ${join(cp, `checkpoint-${chain}.txt`)} leads to /etc/passwd, outside ${cp}; ${IN_DIR}\n`,
    );
  });

  it('a directory link back into the archive directory is read once, not forever', {
    timeout: 120_000,
  }, async () => {
    const dir = join(work, 'archive-loop');
    mkdirSync(dir);
    cpSync(join(fixture.dir, 'chains', chain), join(dir, 'lines'), { recursive: true });
    symlinkSync('..', join(dir, 'lines', 'up'));
    const r = await cli(['verify', dir, '--json']);
    expect(r.signal).toBeNull();
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.intact).toBe(true);
    expect(report.chains[0].duplicates).toBe(0);
  });

  it('a FIFO or a device given as FILE, trust file or held checkpoint is refused', {
    timeout: 120_000,
  }, async () => {
    const fifo = join(work, 'given.jsonl');
    execFileSync('mkfifo', [fifo]);
    let r = await cli(['verify', fifo]);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `mltrail: cannot read ${fifo}: ${fifo} is a FIFO (named pipe), not a regular file; ${NAMED}\n`,
    );
    const zero = join(work, 'zero.jsonl');
    symlinkSync('/dev/zero', zero);
    r = await cli(['verify', zero]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `mltrail: cannot read ${zero}: ${zero} is a character device, not a regular file; ${NAMED}\n`,
    );
    r = await cli(['verify', fixture.dir, '--trust-file', fifo]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `mltrail: cannot read the trust file: ${fifo} is a FIFO (named pipe), not a regular file; ${NAMED}\n`,
    );
    r = await cli([
      'report',
      '--prediction',
      fixture.predictions1[0],
      '--journal',
      fixture.dir,
      '--since-checkpoint',
      zero,
    ]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(
      `mltrail: cannot read checkpoint ${zero}: ${zero} is a character device, not a regular file; ${NAMED}\n`,
    );
  });
});
