import { mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditLog, JournalReader } from '../../src/journal/index.js';
import { AuditWriteError, createTrail, type ModelVersion, type Trail } from '../../src/trail/index.js';

/**
 * The journal fails under a running trail: its chain directory is swapped for a file (every commit opens
 * a new segment, so the next one fails with ENOTDIR/EEXIST) and put back. The full-disk versions of these
 * tests (tmpfs, ulimit -f, mltrail/register) are in test/reliability/full-disk.test.ts.
 */
let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);
beforeEach(() => {
  unhandled = [];
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

async function setup(failClosed: boolean, maxBufferedLines?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-failclosed-'));
  const warnings: string[] = [];
  const log = new AuditLog({
    dir,
    groupCommitMs: 1,
    segmentBytes: 100,
    maxBufferedLines,
    failClosed,
    warn: (m) => warnings.push(m),
  });
  const trail = await createTrail({ serviceName: 'svc', sink: log, failClosed, redactor: false });
  trail.decide({ predictionId: 'p-0', outcome: 'approve' });
  await trail.flush();
  const cdir = join(dir, 'chains', readdirSync(join(dir, 'chains'))[0]);
  return {
    dir,
    log,
    trail,
    warnings,
    break() {
      renameSync(cdir, `${cdir}.moved`);
      writeFileSync(cdir, 'not a directory');
    },
    repair() {
      rmSync(cdir);
      renameSync(`${cdir}.moved`, cdir);
    },
    /** Waits until a commit has failed (or recovered), driven by real writes. */
    async until(failing: boolean) {
      for (let i = 0; i < 400 && (log.failure() !== undefined) !== failing; i++)
        await new Promise((r) => setTimeout(r, 10));
      expect(log.failure() !== undefined).toBe(failing);
    },
  };
}

const every = (trail: Trail, model: ModelVersion) => ({
  decide: () => trail.decide({ predictionId: 'p', outcome: 'decline' }),
  feedback: () => trail.feedback({ predictionId: 'p', groundTruth: 'approve', correct: false }),
  deploy: () => trail.deploy({ environment: 'prod', model }),
  retrain: () => trail.retrain({ reason: 'drift', trigger: 'drift' }),
  recordDrift: () => trail.recordDrift({ feature: 'x', score: 1 }),
});

describe('fail-closed trail while the journal fails', () => {
  it('every synchronous stage throws AuditWriteError into the caller, async stages reject with it, nothing is unhandled; after recovery calls work and nothing is lost', async () => {
    const t = await setup(true);
    const model = await t.trail.register({ name: 'm', version: '1', data: 'w' });
    t.break();
    // A synchronous call cannot wait for the disk: this one returns, its commit fails a moment later.
    expect(t.trail.decide({ predictionId: 'p-1', outcome: 'approve' }).id).toMatch(/^[0-9a-f-]{36}$/);
    await t.until(true);

    for (const [name, call] of Object.entries(every(t.trail, model))) {
      let thrown: unknown;
      try {
        call();
      } catch (err) {
        thrown = err;
      }
      expect(thrown, name).toBeInstanceOf(AuditWriteError);
      expect((thrown as AuditWriteError).message).toMatch(
        new RegExp(
          `^mltrail: ml\\.[a-z.]+ not recorded: the audit journal ${t.dir} is failing \\((ENOTDIR|EEXIST)`,
        ),
      );
      expect((thrown as AuditWriteError).dir).toBe(t.dir);
    }
    let ran = 0;
    const syncPredict = t.trail.predict({ model }, (x: number) => {
      ran++;
      return x + 1;
    });
    expect(() => syncPredict(1)).toThrow(AuditWriteError);
    // The wrapped function's own error wins over the refusal: the caller sees what really failed.
    const failing = t.trail.predict({ model }, () => {
      throw new RangeError('bad input');
    });
    expect(() => failing()).toThrow(RangeError);
    // Reported from inside instrumentations: never thrown (the prediction it accompanies fails instead).
    expect(() => t.trail.reportUnregisteredModel({ digest: `sha256:${'ab'.repeat(32)}` })).not.toThrow();
    const asyncPredict = t.trail.predict({ model }, async (x: number) => x + 1);
    await expect(asyncPredict(1)).rejects.toBeInstanceOf(AuditWriteError);
    await expect(t.trail.dataset({ name: 'd', data: 'rows' })).rejects.toBeInstanceOf(AuditWriteError);
    await expect(t.trail.register({ name: 'm', version: '2', data: 'w2' })).rejects.toBeInstanceOf(
      AuditWriteError,
    );
    await expect(t.trail.flush()).rejects.toThrow(/journal write failed/);
    expect(ran).toBe(1);

    t.repair();
    await t.until(false);
    expect(syncPredict(2)).toBe(3);
    expect(t.trail.decide({ predictionId: 'p-2', outcome: 'approve' }).id).toBeDefined();
    await expect(asyncPredict(3)).resolves.toBe(4);
    const report = await t.trail.shutdown();
    expect(report).toEqual({ lost: 0, error: expect.stringMatching(/^(ENOTDIR|EEXIST)/), dir: t.dir });
    // After shutdown the journal is closed: a fail-closed call fails instead of losing its record.
    expect(() => t.trail.decide({ predictionId: 'p-3', outcome: 'approve' })).toThrow(/is failing \(closed/);

    expect(t.warnings).toEqual([
      expect.stringMatching(
        new RegExp(
          `^mltrail: audit journal ${t.dir}: write failed \\((ENOTDIR|EEXIST)[^)]*\\); \\d+ record\\(s\\) held in memory and retried; fail-closed: audited calls fail until a write succeeds$`,
        ),
      ),
      expect.stringMatching(
        /: writes recovered after \d+ failed attempt\(s\) \([^)]*\); 0 record\(s\) lost, recorded as mltrail\.journal\.gap seq \d+$/,
      ),
    ]);
    // The call made before the failure was known was written on recovery: the chain has no hole.
    const seqs = [...new JournalReader(t.dir).lines()].map((l) => JSON.parse(l.text).seq as number);
    expect(seqs).toEqual(seqs.map((_, i) => i));
    await new Promise((r) => setTimeout(r, 20));
    expect(unhandled).toEqual([]);
  }, 30_000);
});

describe('fail-open trail while the journal fails', () => {
  it('every call returns; drops are warned once; shutdown() resolves to the number lost, matching what is missing on disk', async () => {
    const t = await setup(false, 10);
    const model = await t.trail.register({ name: 'm', version: '1', data: 'w' });
    t.break();
    t.trail.decide({ predictionId: 'p-1', outcome: 'approve' });
    await t.until(true);
    for (let i = 0; i < 30; i++) for (const call of Object.values(every(t.trail, model))) call();
    const report = await t.trail.shutdown();
    expect(report.lost).toBe(t.log.size - [...new JournalReader(t.dir).lines()].length);
    expect(report.lost).toBe(t.log.loss.dropped + t.log.loss.unwritten);
    expect(t.log.loss.dropped).toBeGreaterThan(0);
    // Made after shutdown: lost too, counted, said once.
    t.trail.decide({ predictionId: 'p-2', outcome: 'approve' });
    t.trail.decide({ predictionId: 'p-3', outcome: 'approve' });
    expect(t.log.loss.afterClose).toBe(2);
    expect(t.warnings).toEqual([
      expect.stringMatching(/: write failed \(.*; past 10 held records new ones are dropped and counted$/),
      expect.stringMatching(/: still failing \(.*: 10 records held, new records are now dropped/),
      `mltrail: audit journal ${t.dir}: closed with ${report.lost} audit record(s) lost (${t.log.loss.dropped} dropped while writes failed, ${t.log.loss.unwritten} still unwritten at close); write error: ${report.error}`,
      `mltrail: audit journal ${t.dir}: a record was made after the journal was closed; it and any later ones are lost (counted)`,
    ]);
    t.repair();
    await new Promise((r) => setTimeout(r, 20));
    expect(unhandled).toEqual([]);
  }, 30_000);
});
