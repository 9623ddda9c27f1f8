import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';

/**
 * Root ignores permission bits, so when the tests run as root the host runs without the capabilities that
 * let it (setpriv, util-linux): it keeps its uid and can read the checkout wherever it is, but a directory
 * made read-only refuses it like anyone else. Without setpriv, the host runs as nobody instead, which needs
 * the checkout to be readable by others.
 */
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

function walk(dir: string): { dirs: string[]; files: string[] } {
  const out = { dirs: [dir], files: [] as string[] };
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    // A checkpoint's temporary file may be renamed into place while the host keeps writing: skip it.
    const st = statSync(p, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if (st.isDirectory()) {
      const sub = walk(p);
      out.dirs.push(...sub.dirs);
      out.files.push(...sub.files);
    } else out.files.push(p);
  }
  return out;
}

/** The whole journal tree read-only (directories r-x, files r--), or writable again (0700 / 0600). */
function setWritable(dir: string, writable: boolean): void {
  const { dirs, files } = walk(dir);
  for (const d of dirs) chmodSync(d, writable ? 0o700 : 0o500);
  for (const f of files)
    try {
      chmodSync(f, writable ? 0o600 : 0o400);
    } catch (err) {
      // Renamed into place between the walk and the chmod (as above).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
}

interface Reply {
  answered?: number;
  ids?: string[];
  flush?: string;
  reported: string[];
  counters: { written: number; syncs: number; writeErrors: number; dropped: number };
}

/** The host process and a way to send it one command and read its one-line answer. */
function startHost(dir: string, maxBufferedLines: number) {
  const host = [join('test', 'fixtures', 'readonly-host.mjs'), dir, String(maxBufferedLines)];
  const dropCaps = asRoot && SETPRIV !== undefined;
  if (asRoot && !dropCaps) chownSync(dir, NOBODY, NOBODY);
  const child = dropCaps
    ? spawn(
        SETPRIV,
        ['--bounding-set=-dac_override,-dac_read_search,-fowner', '--', process.execPath, ...host],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      )
    : spawn(process.execPath, host, {
        stdio: ['pipe', 'pipe', 'pipe'],
        ...(asRoot ? { uid: NOBODY, gid: NOBODY } : {}),
      });
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const replies = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<number | null>((r) => child.once('exit', r));
  return {
    get stderr() {
      return stderr;
    },
    exited,
    /** Ends the host's input: after "close" it must then exit on its own. */
    end() {
      child.stdin.end();
    },
    async send(cmd: string): Promise<Reply> {
      child.stdin.write(`${cmd}\n`);
      const next = await replies.next();
      if (next.done) throw new Error(`the host exited during "${cmd}": ${stderr}`);
      return JSON.parse(next.value);
    },
  };
}

function readJournal(dir: string) {
  const records = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
  const predictions = new Set(
    records.filter((r) => r.event === 'ml.prediction').map((r) => JSON.parse(r.body)['ml.prediction.id']),
  );
  const v = new ChainVerifier();
  const s = readIntoVerifier(dir, v);
  for (const f of s.checkpointFiles) v.addCheckpoint(readFileSync(f, 'utf8'), f);
  return { records, predictions, report: v.finish() };
}

/** How many seqs the verifier reports missing ("seq a..b missing before seq c"). */
function missingSeqs(problems: { kind: string; message: string }[]): number {
  return problems
    .filter((p) => p.kind === 'missing')
    .reduce((n, p) => {
      const m = /^seq (\d+)(?:\.\.(\d+))? missing/.exec(p.message)!;
      return n + Number(m[2] ?? m[1]) - Number(m[1]) + 1;
    }, 0);
}

describe('a journal directory made read-only while the host serves predictions', () => {
  it('the host keeps answering, every failure is reported, nothing acknowledged is lost; on recovery all 600 predictions are there and the gap record says no loss', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-readonly-'));
    const host = startHost(dir, 100_000);
    try {
      const before = await host.send('predict 200');
      expect(before).toEqual(
        expect.objectContaining({
          answered: 200,
          flush: 'ok',
          counters: expect.objectContaining({ writeErrors: 0 }),
        }),
      );

      setWritable(dir, false);
      const during = await host.send('predict 300');
      // Every prediction still returned its value; the failed commit is reported, not thrown into the host.
      expect(during.answered).toBe(300);
      expect(during.ids).toHaveLength(300);
      expect(during.flush).toMatch(/^rejected: mltrail: journal write failed.*EACCES/);
      expect(during.counters.writeErrors).toBeGreaterThan(0);
      expect(during.counters.dropped).toBe(0);
      expect(during.reported.join('\n')).toMatch(/journal write failed \(EACCES/);

      setWritable(dir, true);
      expect((await host.send('recover')).flush).toBe('ok');
      const after = await host.send('predict 100');
      expect(after).toEqual(expect.objectContaining({ answered: 100, flush: 'ok' }));
      const closed = await host.send('close');
      expect(closed.counters.dropped).toBe(0);
      host.end();
      expect(await host.exited).toBe(0);
      expect(host.stderr).not.toMatch(/\n\s+at /); // no stack trace

      const { records, predictions, report } = readJournal(dir);
      // Sent vs stored: every prediction of every phase, by id, and a gap-free chain.
      for (const id of [...before.ids!, ...during.ids!, ...after.ids!])
        expect(predictions.has(id), id).toBe(true);
      expect(predictions.size).toBe(600);
      const seqs = records.map((r) => r.seq).sort((a, b) => a - b);
      expect(seqs).toEqual(seqs.map((_, i) => i));
      const gaps = records.filter((r) => r.event === 'mltrail.journal.gap').map((r) => JSON.parse(r.body));
      expect(gaps).toEqual([
        expect.objectContaining({
          'mltrail.gap.lost_count': 0,
          'mltrail.gap.error': expect.stringMatching(/^EACCES/),
        }),
      ]);
      expect(report.problems).toEqual([]);
      expect(report.chains.map((c) => c.problems)).toEqual([[]]);
    } finally {
      setWritable(dir, true);
    }
  }, 120_000);

  it('past the memory bound the overflow is dropped and counted: the gap record and verify both name exactly that many missing seqs, and only records never acknowledged are among them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-readonly-drop-'));
    const host = startHost(dir, 50);
    try {
      const before = await host.send('predict 200');
      expect(before.flush).toBe('ok');
      setWritable(dir, false);
      const during = await host.send('predict 300');
      expect(during.answered).toBe(300);
      expect(during.flush).toMatch(/^rejected: mltrail: journal write failed.*EACCES/);
      expect(during.counters.dropped).toBeGreaterThan(0);
      expect(during.reported.join('\n')).toMatch(/journal write failed \(EACCES/);
      setWritable(dir, true);
      expect((await host.send('recover')).flush).toBe('ok');
      const after = await host.send('predict 100');
      expect(after.flush).toBe('ok');
      const closed = await host.send('close');
      host.end();
      expect(await host.exited).toBe(0);
      const dropped = closed.counters.dropped;

      const { records, predictions, report } = readJournal(dir);
      for (const id of [...before.ids!, ...after.ids!]) expect(predictions.has(id), id).toBe(true);
      const duringStored = during.ids!.filter((id) => predictions.has(id)).length;
      expect(duringStored).toBeLessThan(300);
      const gaps = records.filter((r) => r.event === 'mltrail.journal.gap').map((r) => JSON.parse(r.body));
      expect(gaps).toHaveLength(1);
      expect(gaps[0]['mltrail.gap.lost_count']).toBe(dropped);
      // Stored + dropped = every seq the chain handed out; verify reports exactly the dropped ones.
      const maxSeq = Math.max(...records.map((r) => r.seq));
      expect(new Set(records.map((r) => r.seq)).size + dropped).toBe(maxSeq + 1);
      const problems = report.chains.flatMap((c) => c.problems);
      expect(missingSeqs(problems)).toBe(dropped);
      // The missing seqs all come after the last record acknowledged before the directory became read-only.
      const lastAcked = Math.max(
        ...records
          .filter(
            (r) =>
              r.event === 'ml.prediction' && before.ids!.includes(JSON.parse(r.body)['ml.prediction.id']),
          )
          .map((r) => r.seq),
      );
      for (const p of problems.filter((p) => p.kind === 'missing'))
        expect(Number(/^seq (\d+)/.exec(p.message)![1])).toBeGreaterThan(lastAcked);
    } finally {
      setWritable(dir, true);
    }
  }, 120_000);
});
