import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ChainVerifier, parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';
import {
  archivedLogRecords,
  collectorAvailable,
  collectorSkipReason,
  startTestCollector,
} from './harness.js';

/** A hang guard for the demo (its ship bound, 300 s, plus its run), not a timed assertion. */
const DEMO_BOUND_MS = 360_000;

describe.skipIf(!collectorAvailable())(
  `the demo with OTEL_EXPORTER_OTLP_ENDPOINT set (${collectorSkipReason})`,
  () => {
    it(
      'ships the same run to the collector: every journal record arrives and the archive verifies',
      async () => {
        const collectorStart = Date.now();
        const collector = await startTestCollector();
        const collectorMs = Date.now() - collectorStart;
        try {
          const dir = join(mkdtempSync(join(tmpdir(), 'mltrail-demo-otlp-')), 'journal');
          const env = {
            ...process.env,
            OTEL_EXPORTER_OTLP_ENDPOINT: collector.httpEndpoint,
            OTEL_EXPORTER_OTLP_HEADERS: `Authorization=Bearer%20${collector.token}`,
          };
          // The demo gives up shipping after --ship-timeout (30 s by default) and keeps what it could not
          // deliver in the journal; with every test file running at once that bound was once reached here, and
          // the records it left behind failed the check below. A long bound is a guard against a hang, not a
          // timed assertion; what the demo said is in the failure message.
          // The demo's own run (datasets, training, deployment, predictions) also slows down with every test
          // file running at once: in one clean-clone CI run this test passed the suite's 60 s default. The
          // test's bound is above the demo's, and the demo is stopped before it, so a failure always says what
          // the demo printed and how long each step took.
          const started = Date.now();
          const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) => {
            execFile(
              process.execPath,
              ['dist/cli/main.js', 'demo', '--journal', dir, '--ship-timeout', '300'],
              { env, timeout: DEMO_BOUND_MS },
              (err, _stdout, stderr) => resolve({ code: err === null ? 0 : 1, stderr }),
            );
          });
          const context = `collector started in ${collectorMs} ms; the demo took ${Date.now() - started} ms and printed:\n${stderr}`;
          expect(code, context).toBe(0);
          expect(stderr, context).not.toMatch(/could not ship/);
          const journal = [...new JournalReader(dir).lines()].map((l) => parseRecordLine(l.text));
          const keys = (recs: { attributes: Record<string, unknown> }[]) =>
            new Set(recs.map((r) => `${r.attributes['mltrail.chain.id']}:${r.attributes['mltrail.seq']}`));
          for (let i = 0; i < 100; i++) {
            if (keys(archivedLogRecords(collector.archive)).size >= journal.length) break;
            await new Promise((r) => setTimeout(r, 100));
          }
          const archived = keys(archivedLogRecords(collector.archive));
          for (const r of journal)
            expect(archived.has(`${r.chain}:${r.seq}`), `${r.chain}:${r.seq}; ${context}`).toBe(true);
          const v = new ChainVerifier();
          readIntoVerifier(collector.archive, v);
          expect(v.finish().ok).toBe(true);
        } finally {
          await collector.stop();
        }
      },
      DEMO_BOUND_MS + 60_000,
    );
  },
);
