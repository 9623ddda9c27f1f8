import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type AuditRecord,
  ChainVerifier,
  ChainWriter,
  canonicalize,
  generateSigner,
  parseRecordLine,
  RecordFormatError,
  type RecordVersion,
  serializeRecord,
  type VerifyReport,
} from '../../src/integrity/index.js';
import { EVENT_ML_PREDICTION } from '../../src/semconv/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';

// `mltrail verify` reads journal lines from their bytes and takes the strict parser only for lines that
// are not the clean next record of their chain. Whatever a segment holds, the report must be exactly the
// one the strict parser gives for every line: same problems, same order, same locations.

const { signer } = generateSigner('mltrail-test');
const root = mkdtempSync(join(tmpdir(), 'mltrail-verify-bytes-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Journal lines of `chains` interleaved chains, with checkpoints, a few bodies needing every escape. */
function lines(
  n: number,
  chains: number,
  chainIds: (string | undefined)[] = [],
  version: RecordVersion = 2,
): string[] {
  const writers = Array.from(
    { length: chains },
    (_, i) => new ChainWriter({ signer, checkpointEvery: 5, chainId: chainIds[i], version }),
  );
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const w = writers[i % chains];
    const ts = new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString();
    const note = ['plain', 'quote " and \\ backslash', 'tab\tnew\nline', 'é ü 雨 🌧', 'ctl \u0001', '/'][
      i % 6
    ];
    const body = canonicalize({
      'event.name': EVENT_ML_PREDICTION,
      timestamp: ts,
      'ml.prediction.id': `p-${i}`,
      'ml.prediction.latency_ms': 1.25 + i,
      note,
    });
    const attrs: Record<string, string | number | boolean> = { 'ml.prediction.id': `p-${i}` };
    for (const r of w.append({ event: EVENT_ML_PREDICTION, sev: 'INFO', ts, attrs, body }))
      out.push(serializeRecord(r));
  }
  for (const w of writers) out.push(serializeRecord(w.checkpoint()));
  return out;
}

function strictReport(text: string, file: string): VerifyReport {
  const v = new ChainVerifier();
  const parts = text.split('\n');
  parts.pop();
  parts.forEach((l, i) => {
    try {
      v.add(parseRecordLine(l, { file, line: i + 1 }), { file, line: i + 1 });
    } catch (err) {
      if (!(err instanceof RecordFormatError)) throw err;
      v.addProblem({ kind: 'malformed', location: `${file}:${i + 1}`, message: err.message });
    }
  });
  return v.finish();
}

let runs = 0;
function bytesReport(content: Buffer): { report: VerifyReport; file: string } {
  const dir = join(root, `j${runs++}`);
  const segDir = join(dir, 'chains', 'c');
  mkdirSync(segDir, { recursive: true });
  const file = join(segDir, '000001.ndjson');
  writeFileSync(file, content);
  const v = new ChainVerifier();
  readIntoVerifier(dir, v);
  return { report: v.finish(), file };
}

const edit = fc.oneof(
  fc.record({
    op: fc.constant('char' as const),
    line: fc.nat(),
    at: fc.nat(),
    ch: fc.constantFrom('0', 'f', 'A', '"', '\\', '}', ',', ' ', 'é', '\u0001', '1', 'x'),
  }),
  fc.record({
    op: fc.constantFrom('swap' as const, 'dup' as const, 'delete' as const),
    line: fc.nat(),
    at: fc.nat(),
  }),
  fc.record({
    op: fc.constantFrom('escape' as const, 'erase' as const, 'field' as const, 'after-body' as const),
    line: fc.nat(),
  }),
);

function apply(ls: string[], e: Record<string, unknown>): void {
  const i = (e.line as number) % ls.length;
  const j = ((e.at as number) ?? 0) % ls.length;
  switch (e.op) {
    case 'char': {
      const l = ls[i];
      const k = (e.at as number) % l.length;
      ls[i] = l.slice(0, k) + (e.ch as string) + l.slice(k + 1);
      break;
    }
    case 'swap':
      [ls[i], ls[j]] = [ls[j], ls[i]];
      break;
    case 'dup':
      ls.splice(j, 0, ls[i]);
      break;
    case 'delete':
      if (ls.length > 1) ls.splice(i, 1);
      break;
    case 'escape':
      // A key of the body written with a \u escape: JSON reads the same body, but its bytes changed.
      ls[i] = ls[i].replace('"event.name"', '"event\\u002ename"');
      break;
    case 'erase': {
      const r = tryParse(ls[i]);
      if (r === undefined) break;
      ls[i] = serializeRecord({ ...r, body: '', attrs: {}, erased_by: `${r.chain}:999` });
      break;
    }
    case 'field':
      // A field the format does not have, before the body.
      ls[i] = ls[i].replace(',"body":', ',"approved_by":"CFO","body":');
      break;
    case 'after-body':
      // A field after the body: it becomes part of the bytes read as the body.
      ls[i] = ls[i].endsWith('}}') ? `${ls[i].slice(0, -1)},"approved_by":"CFO"}` : ls[i];
      break;
  }
}

function tryParse(line: string): AuditRecord | undefined {
  try {
    return parseRecordLine(line);
  } catch {
    return undefined;
  }
}

describe('verify from bytes = verify with the strict parser', () => {
  it('intact journals of interleaved chains, with escapes and non-ASCII bodies', () => {
    for (const chains of [1, 3]) {
      const text = `${lines(40, chains).join('\n')}\n`;
      const { report, file } = bytesReport(Buffer.from(text));
      expect(report.ok).toBe(true);
      expect(report.chains).toHaveLength(chains);
      expect(report).toEqual(strictReport(text, file));
    }
  });

  it('chain ids of any length and alphabet read from bytes like the rest', () => {
    const text = `${lines(30, 3, ['c-1234567', 'é链-2026', 'x'.repeat(41)]).join('\n')}\n`;
    const { report, file } = bytesReport(Buffer.from(text));
    expect(report.ok).toBe(true);
    expect(report.chains.map((c) => c.records)).toEqual([13, 13, 13]);
    expect(report).toEqual(strictReport(text, file));
    // And they did take the byte path: all but each chain's first record, its checkpoints and the bodies
    // with a \u escape (a control character in the note).
    let fromBytes = 0;
    const v = new (class extends ChainVerifier {
      override addJournalLine(...a: Parameters<ChainVerifier['addJournalLine']>): boolean {
        const ok = super.addJournalLine(...a);
        if (ok) fromBytes++;
        return ok;
      }
    })();
    readIntoVerifier(join(file, '..', '..', '..'), v);
    expect(fromBytes).toBe(3 * (13 - 1 - 3) - 5);
  });

  it('any mix of edits, swaps, duplicates, deletions, escapes and erasures gives the same report', () => {
    const base = lines(30, 2);
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const ls = [...base];
        for (const e of edits) apply(ls, e as Record<string, unknown>);
        const text = `${ls.join('\n')}\n`;
        const { report, file } = bytesReport(Buffer.from(text));
        expect(report).toEqual(strictReport(text, file));
      }),
      { numRuns: 200, seed: 20261128 },
    );
  });

  it('format 1 journals (always read by the strict parser) give the same report under the same edits', () => {
    const base = lines(30, 2, [], 1);
    expect(bytesReport(Buffer.from(`${base.join('\n')}\n`)).report.ok).toBe(true);
    fc.assert(
      fc.property(fc.array(edit, { minLength: 1, maxLength: 4 }), (edits) => {
        const ls = [...base];
        for (const e of edits) apply(ls, e as Record<string, unknown>);
        const text = `${ls.join('\n')}\n`;
        const { report, file } = bytesReport(Buffer.from(text));
        expect(report).toEqual(strictReport(text, file));
      }),
      { numRuns: 50, seed: 20261207 },
    );
  });

  it('a segment with invalid UTF-8 is read as text, like the strict parser reads it', () => {
    const ls = lines(12, 1);
    const bytes = Buffer.from(`${ls.join('\n')}\n`);
    const at = bytes.indexOf('p-3');
    bytes[at] = 0xff;
    const { report, file } = bytesReport(bytes);
    expect(report.ok).toBe(false);
    expect(report).toEqual(strictReport(bytes.toString('utf8'), file));
  });

  it('a seq near 2^53 after a gap is reported as missing records, and verify finishes', () => {
    const ls = lines(12, 1);
    const last = parseRecordLine(ls[5]);
    ls.splice(6, 0, serializeRecord({ ...last, seq: Number.MAX_SAFE_INTEGER }));
    const text = `${ls.join('\n')}\n`;
    const { report, file } = bytesReport(Buffer.from(text));
    expect(report.chains[0].problems.map((p) => p.kind)).toContain('missing');
    expect(report.chains[0].lastSeq).toBe(Number.MAX_SAFE_INTEGER);
    expect(report).toEqual(strictReport(text, file));
  });

  it('with a second thread (the compiled package: a worker runs compiled code) the report is the same', async () => {
    // Loaded from dist/ (built by the global setup), whose LineChecker can start its worker.
    const dist = new URL('../../dist/integrity/', import.meta.url);
    const integrity = (await import(
      new URL('index.js', dist).href
    )) as typeof import('../../src/integrity/index.js');
    const sources = (await import(
      new URL('../sources/record-sources.js', dist).href
    )) as typeof import('../../src/sources/record-sources.js');
    // Counts the lines the worker checked (accepted without going through addJournalLine on this thread).
    class Counting extends integrity.ChainVerifier {
      fromWorker = 0;
      #inside = false;
      override addJournalLine(...a: Parameters<ChainVerifier['addJournalLine']>): boolean {
        this.#inside = true;
        try {
          return super.addJournalLine(...a);
        } finally {
          this.#inside = false;
        }
      }
      override acceptCheckedLine(...a: Parameters<ChainVerifier['acceptCheckedLine']>): boolean {
        if (!this.#inside) this.fromWorker++;
        return super.acceptCheckedLine(...a);
      }
    }
    // Interleaved chains (runs of one record) and one chain (long runs whose Merkle blocks the worker folds).
    const bases = [lines(60, 3), lines(120, 1)];
    fc.assert(
      fc.property(fc.array(edit, { minLength: 0, maxLength: 4 }), fc.nat(1), (edits, which) => {
        const ls = [...bases[which]];
        for (const e of edits) apply(ls, e as Record<string, unknown>);
        const text = `${ls.join('\n')}\n`;
        const dir = join(root, `w${runs++}`);
        mkdirSync(join(dir, 'chains', 'c'), { recursive: true });
        writeFileSync(join(dir, 'chains', 'c', '000001.ndjson'), text);
        const one = new integrity.ChainVerifier();
        sources.readIntoVerifier(dir, one, undefined, { parallel: false });
        const two = new Counting();
        // Small reads: many chunks, so the two threads hand results over many times.
        sources.readIntoVerifier(dir, two, undefined, { parallel: true, chunkBytes: 16384 });
        expect(two.finish()).toEqual(one.finish());
        expect(two.fromWorker).toBeGreaterThan(0);
      }),
      { numRuns: 40, seed: 20261128 },
    );
  });
});
