import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';

/**
 * Fail-closed and fail-open against a journal that really cannot be written: a small tmpfs filled to the
 * last byte (ENOSPC; needs root to mount), a read-only tmpfs (EROFS), a file where the directory should be,
 * and a file size limit (`ulimit -f`, EFBIG). The app is a child process (test/fixtures/full-disk-app.mjs)
 * that catches every call's error itself and installs no unhandledRejection handler, run with
 * `node --import mltrail/register` or creating its trail itself.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const APP = join('test', 'fixtures', 'full-disk-app.mjs');
const asRoot = process.getuid?.() === 0;
/** Named in the titles of the tmpfs tests, so a skipped one says why. */
const ROOT_ONLY = 'tmpfs: skipped unless run as root, mounting needs it';

interface Tally {
  ok: number;
  refused: number;
  other: string[];
}
interface CallsReply {
  decide: Tally;
  feedback: Tally;
  deploy: Tally;
  syncPredict: Tally;
  asyncPredict: Tally;
  asyncOkIds: string[];
}
interface ShutdownReply {
  report: { lost: number; error: string | undefined; dir: string | undefined };
}

/** A tmpfs of `kib` KiB mounted on a fresh directory; the journal goes in its `journal` subdirectory. */
function tmpfs(kib: number, options = '') {
  const mnt = mkdtempSync(join(tmpdir(), 'mltrail-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${kib}k${options}`, 'tmpfs', mnt]);
  if (r.status !== 0) throw new Error(`mount failed: ${r.stderr}`);
  const filler = join(mnt, 'filler');
  return {
    mnt,
    dir: join(mnt, 'journal'),
    /** Writes a file until the file system refuses another byte. */
    fill() {
      const fd = openSync(filler, 'a');
      try {
        for (const size of [65536, 4096, 512, 1])
          for (;;) {
            try {
              writeSync(fd, Buffer.alloc(size, 1));
            } catch {
              break;
            }
          }
      } finally {
        closeSync(fd);
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
    unmount() {
      spawnSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    },
  };
}

function startApp(opts: {
  dir: string;
  failClosed: boolean;
  register: boolean;
  /** A file size limit in KiB (`ulimit -f`). */
  fileLimitKiB?: number;
  env?: Record<string, string>;
}) {
  const node = [
    ...(opts.register ? ['--import', 'mltrail/register'] : []),
    APP,
    opts.register ? 'register' : 'library',
  ];
  const env = {
    ...process.env,
    MLTRAIL_DIR: opts.dir,
    MLTRAIL_FAIL_CLOSED: String(opts.failClosed),
    OTEL_EXPORTER_OTLP_ENDPOINT: '',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_METRICS_EXPORTER: 'none',
    OTEL_LOGS_EXPORTER: 'none',
    ...opts.env,
  };
  const child =
    opts.fileLimitKiB === undefined
      ? spawn(process.execPath, node, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn('bash', ['-c', `ulimit -f ${opts.fileLimitKiB}; exec "$0" "$@"`, process.execPath, ...node], {
          cwd: ROOT,
          env,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const lines = createInterface({ input: child.stdout });
  const queue: string[] = [];
  let waiting: ((line: string | undefined) => void) | undefined;
  lines.on('line', (l) => {
    stdout += `${l}\n`;
    if (waiting !== undefined) {
      const w = waiting;
      waiting = undefined;
      w(l);
    } else queue.push(l);
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('close', (code) => {
      waiting?.(undefined);
      resolve(code);
    }),
  );
  const next = () =>
    new Promise<string | undefined>((resolve) => {
      if (queue.length > 0) resolve(queue.shift());
      else if (child.exitCode !== null) resolve(undefined);
      else waiting = resolve;
    });
  return {
    get stderr() {
      return stderr;
    },
    get stdout() {
      return stdout;
    },
    exited,
    async read<T>(): Promise<T> {
      const line = await next();
      if (line === undefined) throw new Error(`the app exited (stderr: ${stderr})`);
      return JSON.parse(line) as T;
    },
    async send<T>(cmd: string): Promise<T> {
      child.stdin.write(`${cmd}\n`);
      return this.read<T>();
    },
    end() {
      child.stdin.end();
    },
  };
}

function verifyDir(dir: string) {
  const v = new ChainVerifier();
  const s = readIntoVerifier(dir, v);
  for (const f of s.checkpointFiles) v.addCheckpoint(readFileSync(f, 'utf8'), f);
  return v.finish();
}

function journal(dir: string) {
  const records = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
  const bodies = records.map((r) => JSON.parse(r.body) as Record<string, unknown>);
  return { records, bodies };
}

const allOk = (r: CallsReply, n: number) =>
  expect(r).toEqual({
    decide: { ok: n, refused: 0, other: [] },
    feedback: { ok: n, refused: 0, other: [] },
    deploy: { ok: n, refused: 0, other: [] },
    syncPredict: { ok: n, refused: 0, other: [] },
    asyncPredict: { ok: n, refused: 0, other: [] },
    asyncOkIds: expect.any(Array),
  });

/** A process that died of an unhandled rejection prints the error with its stack; none may appear. */
const noCrash = (stderr: string) => {
  expect(stderr).not.toMatch(/unhandled|Unhandled/);
  expect(stderr).not.toMatch(/\n\s+at /);
};

describe('fail-closed: a journal that cannot take a write at start', () => {
  const refuses = async (dir: string, cause: RegExp, fileLimitKiB?: number) => {
    for (const register of [true, false]) {
      const app = startApp({ dir, failClosed: true, register, fileLimitKiB });
      app.end();
      const code = await app.exited;
      if (register) {
        // mltrail/register refuses before the app's first line runs: it never says "ready".
        expect(code).toBe(1);
        expect(app.stdout).toBe('');
        expect(app.stderr).toContain(
          `mltrail: refusing to start: MLTRAIL_FAIL_CLOSED=true and the audit journal directory ${dir} cannot be used (`,
        );
        expect(app.stderr).toMatch(cause);
      } else {
        // createTrail({ failClosed: true }) rejects with an AuditWriteError the app catches.
        expect(code).toBe(2);
        const { startFailed } = JSON.parse(app.stdout);
        expect(startFailed.name).toBe('AuditWriteError');
        expect(startFailed.message).toContain(`the audit journal directory ${dir} cannot be used (`);
        expect(startFailed.message).toMatch(cause);
      }
      noCrash(app.stderr);
    }
  };

  it('MLTRAIL_DIR is a file', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'mltrail-notdir-')), 'journal');
    writeFileSync(file, 'not a directory');
    await refuses(file, /is not a directory/);
  });

  it('a setup failure under mltrail/register (an unreadable MLTRAIL_SIGNING_KEY)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-badkey-'));
    const app = startApp({
      dir,
      failClosed: true,
      register: true,
      env: { MLTRAIL_SIGNING_KEY: join(dir, 'absent') },
    });
    app.end();
    expect(await app.exited).toBe(1);
    expect(app.stdout).toBe('');
    expect(app.stderr).toContain(
      `mltrail: refusing to start: MLTRAIL_FAIL_CLOSED=true and the audit journal directory ${dir} cannot be used (setup failed: signing key: MLTRAIL_SIGNING_KEY is neither`,
    );
    noCrash(app.stderr);
  });

  it('a file size limit smaller than the test write (ulimit -f 8)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-fsize-'));
    await refuses(dir, /test write stored only 8192 bytes/, 8);
  });

  it.skipIf(!asRoot)(`a full disk (${ROOT_ONLY})`, async () => {
    const fs = tmpfs(512);
    try {
      mkdirSync(fs.dir);
      fs.fill();
      await refuses(fs.dir, /ENOSPC/);
      // Fail-open, the same start: no signing key can be written, so the app runs unaudited, and says so.
      const app = startApp({ dir: fs.dir, failClosed: false, register: true });
      expect(await app.read()).toEqual({ unaudited: true });
      expect(await app.exited).toBe(0);
      expect(app.stderr).toMatch(
        /MltrailSetupWarning: mltrail: auto-instrumentation could not start, the app runs unaudited: ENOSPC/,
      );
    } finally {
      fs.unmount();
    }
  });

  it.skipIf(!asRoot)(`a read-only file system (${ROOT_ONLY})`, async () => {
    const fs = tmpfs(512, ',ro');
    try {
      await refuses(fs.mnt, /EROFS/);
      await refuses(fs.dir, /EROFS/);
    } finally {
      fs.unmount();
    }
  });
});

describe.skipIf(!asRoot)(`fail-closed: the disk fills while the app runs (${ROOT_ONLY})`, () => {
  it.each([
    ['mltrail/register', true],
    ['createTrail()', false],
  ])(
    '%s: every call fails where the app catches it, never crashes the host; after space is freed calls work, nothing is lost',
    async (_, register) => {
      const fs = tmpfs(1024);
      try {
        const app = startApp({ dir: fs.dir, failClosed: true, register });
        expect(await app.read()).toEqual({ ready: true });
        const before = await app.send<CallsReply>('calls 5');
        allOk(before, 5);
        // The start-up check left nothing behind.
        expect(readdirSync(fs.dir).filter((n) => n.startsWith('.write-probe'))).toEqual([]);

        fs.fill();
        const during = await app.send<CallsReply>('calls 40');
        // Until a commit fails a synchronous call cannot know; after it, every call of every kind fails with
        // an AuditWriteError the app caught in its own try/catch, and nothing else is thrown.
        for (const kind of ['decide', 'feedback', 'deploy', 'syncPredict', 'asyncPredict'] as const) {
          expect(during[kind].refused, kind).toBeGreaterThan(0);
          expect(during[kind].other, kind).toEqual([]);
          expect(during[kind].ok + during[kind].refused).toBe(40);
        }

        fs.free();
        expect(await app.send('recover')).toEqual({ flush: 'ok' });
        const after = await app.send<CallsReply>('calls 5');
        allOk(after, 5);
        const { report } = await app.send<ShutdownReply>('shutdown');
        expect(report).toEqual({ lost: 0, error: expect.stringMatching(/^ENOSPC/), dir: fs.dir });
        app.end();
        expect(await app.exited).toBe(0);
        noCrash(app.stderr);
        expect(app.stderr).toContain(`mltrail: audit journal ${fs.dir}: write failed (ENOSPC`);
        expect(app.stderr).toContain('fail-closed: audited calls fail until a write succeeds');
        expect(app.stderr).toMatch(
          /writes recovered after \d+ failed attempt\(s\) \(ENOSPC[^)]*\); 0 record\(s\) lost/,
        );

        const { records, bodies } = journal(fs.dir);
        // Every async call that resolved has its record on disk; the chain has no hole; one gap record.
        const predictions = new Set(bodies.map((b) => b['ml.prediction.id']));
        for (const id of [...before.asyncOkIds, ...during.asyncOkIds, ...after.asyncOkIds])
          expect(predictions.has(id), id).toBe(true);
        expect(records.map((r) => r.seq)).toEqual(records.map((_r, i) => i));
        expect(bodies.filter((b) => b['event.name'] === 'mltrail.journal.gap')).toEqual([
          expect.objectContaining({
            'mltrail.gap.lost_count': 0,
            'mltrail.gap.error': expect.stringMatching(/^ENOSPC/),
          }),
        ]);
        expect(verifyDir(fs.dir).chains.flatMap((c) => c.problems)).toEqual([]);
      } finally {
        fs.unmount();
      }
    },
    120_000,
  );
});

describe.skipIf(!asRoot)(`fail-open: a batch job on a full disk (${ROOT_ONLY})`, () => {
  it.each([
    ['mltrail/register', true],
    ['createTrail()', false],
  ])(
    '%s: every call returns, the loss is printed once with counts and shutdown() reports how many records were lost',
    async (_, register) => {
      const fs = tmpfs(1024);
      try {
        const app = startApp({ dir: fs.dir, failClosed: false, register });
        expect(await app.read()).toEqual({ ready: true });
        allOk(await app.send<CallsReply>('calls 5'), 5);
        fs.fill();
        allOk(await app.send<CallsReply>('calls 30'), 30);
        const { report } = await app.send<ShutdownReply>('shutdown');
        app.end();
        // The app chose exit code 3 for "records were lost"; mltrail did not crash it or decide for it.
        expect(await app.exited).toBe(3);
        noCrash(app.stderr);
        expect(report.lost).toBeGreaterThan(0);
        expect(report.error).toMatch(/^ENOSPC/);
        expect(app.stderr.match(/write failed \(ENOSPC/g)).toHaveLength(1);
        expect(app.stderr).toContain(
          `mltrail: audit journal ${fs.dir}: closed with ${report.lost} audit record(s) lost (0 dropped while writes failed, ${report.lost} still unwritten at close)`,
        );
        // Accounting: the records on disk plus the lost ones are every record the trail made: the first
        // deployment, 5 per round, and the final checkpoint.
        fs.free();
        const { records } = journal(fs.dir);
        expect(records.length + report.lost).toBe(1 + 5 * 35 + 1);
      } finally {
        fs.unmount();
      }
    },
    120_000,
  );
});

describe('a file size limit (ulimit -f) while the app runs', () => {
  it('fail-closed: calls fail where the app catches them once the segment cannot grow; async calls that resolved are on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-fsize-closed-'));
    const app = startApp({ dir, failClosed: true, register: true, fileLimitKiB: 96 });
    expect(await app.read()).toEqual({ ready: true });
    const r = await app.send<CallsReply>('calls 200');
    for (const kind of ['decide', 'feedback', 'deploy', 'syncPredict', 'asyncPredict'] as const) {
      expect(r[kind].refused, kind).toBeGreaterThan(0);
      expect(r[kind].other, kind).toEqual([]);
    }
    const { report } = await app.send<ShutdownReply>('shutdown');
    app.end();
    expect(report.lost).toBeGreaterThan(0);
    expect(report.error).toMatch(/^EFBIG/);
    expect(await app.exited).toBe(3);
    noCrash(app.stderr);
    const { bodies } = journal(dir);
    const predictions = new Set(bodies.map((b) => b['ml.prediction.id']));
    for (const id of r.asyncOkIds) expect(predictions.has(id), id).toBe(true);
  }, 120_000);

  it('fail-open: the batch job prints the loss and shutdown() counts it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-fsize-open-'));
    const app = startApp({ dir, failClosed: false, register: false, fileLimitKiB: 64 });
    expect(await app.read()).toEqual({ ready: true });
    allOk(await app.send<CallsReply>('calls 150'), 150);
    const { report } = await app.send<ShutdownReply>('shutdown');
    app.end();
    expect(await app.exited).toBe(3);
    noCrash(app.stderr);
    expect(report.lost).toBeGreaterThan(0);
    expect(app.stderr.match(/write failed \(EFBIG/g)).toHaveLength(1);
    expect(app.stderr).toContain(`closed with ${report.lost} audit record(s) lost`);
    const { records } = journal(dir);
    expect(records.length + report.lost).toBe(1 + 5 * 150 + 1);
  }, 120_000);

  it('fail-open, a job that ends without shutdown(): the exit itself says how many records are not on disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-fsize-exit-'));
    const app = startApp({ dir, failClosed: false, register: false, fileLimitKiB: 64 });
    expect(await app.read()).toEqual({ ready: true });
    allOk(await app.send<CallsReply>('calls 150'), 150);
    app.end();
    // A failing journal does not keep the process alive; it ends on its own with the app's exit code.
    expect(await app.exited).toBe(0);
    noCrash(app.stderr);
    const m =
      /the process is exiting with (\d+) audit record\(s\) not on disk \(0 dropped while writes failed, (\d+) not yet written; trail\.shutdown\(\) was not awaited\); write error: EFBIG/.exec(
        app.stderr,
      );
    expect(m).not.toBeNull();
    const { records } = journal(dir);
    // Every record made: the first deployment and 5 per round (no final checkpoint without shutdown).
    expect(records.length + Number(m![1])).toBe(1 + 5 * 150);
  }, 120_000);
});
