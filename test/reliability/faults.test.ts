import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalize, parseRecordLine, RecordFormatError } from '../../src/integrity/index.js';
import { AuditLog } from '../../src/journal/index.js';
import { createTrail } from '../../src/trail/index.js';

async function journalOf(n: number): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-faults-'));
  const log = new AuditLog({ dir });
  for (let i = 0; i < n; i++) {
    const ts = new Date().toISOString();
    log.append({
      event: 'ml.feedback',
      sev: 'INFO',
      ts,
      attrs: {},
      body: canonicalize({ 'event.name': 'ml.feedback', timestamp: ts, 'ml.feedback.id': `f-${i}` }),
    });
  }
  await log.close();
  return dir;
}

describe('hostile input', () => {
  it('parseRecordLine: random strings and random JSON give a RecordFormatError or a record, never anything else', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ unit: 'binary' })), (line) => {
        try {
          parseRecordLine(line);
        } catch (err) {
          expect(err).toBeInstanceOf(RecordFormatError);
        }
      }),
      { numRuns: 500, seed: 20261128 },
    );
  });

  it('mltrail verify on files full of garbage lines, invalid UTF-8 and huge lines: exit 1 with located problems, no crash', async () => {
    const dir = await journalOf(20);
    const garbage = join(dir, 'garbage.ndjson');
    writeFileSync(
      garbage,
      Buffer.concat([
        Buffer.from('not json\n{"chain":1}\n'),
        Buffer.from([0xff, 0xfe, 0x80, 0x0a]),
        Buffer.from(`{"x":"${'a'.repeat(2_000_000)}"}\n`),
        Buffer.from(
          '{"chain":"c","seq":-1,"ts":"t","event":"e","sev":"s","attrs":{},"body":"","digest":"d","prev":"p","hash":"h"}\n',
        ),
      ]),
    );
    const r = spawnSync(process.execPath, ['dist/cli/main.js', 'verify', dir, '--json'], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    expect(r.status).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.problems.length).toBeGreaterThanOrEqual(5);
    for (const p of report.problems) expect(p.location).toMatch(/garbage\.ndjson:\d+$/);
    expect(report.chains[0].problems).toEqual([]);
  });

  it('the stage API never throws into the host on hostile values (default mode)', async () => {
    const trail = await createTrail({
      sink: new AuditLog({ dir: mkdtempSync(join(tmpdir(), 'mltrail-hostile-')) }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.anything({
          withBigInt: true,
          withMap: true,
          withSet: true,
          withTypedArray: true,
          withDate: true,
          withNullPrototype: true,
        }),
        async (v) => {
          const predict = trail.predict({ input: () => v, subject: () => v as string }, () => v);
          expect(() => predict()).not.toThrow();
          expect(() =>
            trail.decide({
              predictionId: v as string,
              outcome: v as string,
              attributions: v as Record<string, number>,
            }),
          ).not.toThrow();
          await expect(
            trail.dataset({ name: v as string, rows: Array.isArray(v) ? v : [v] }),
          ).resolves.toBeDefined();
        },
      ),
      { numRuns: 150, seed: 20261128 },
    );
    await trail.shutdown();
  });
});
