import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChainVerifier,
  ChainWriter,
  canonicalize,
  generateSigner,
  type RecordVersion,
  serializeRecord,
} from '../../src/integrity/index.js';
import { readIntoVerifier } from '../../src/sources/record-sources.js';

// The attacks on a journal line's fields (issue 13): someone who can write the journal edits what a line
// says outside its evidence — the event name, the time, the severity, the trace ids — or adds a field
// ("approved_by":"CFO"). In format 2 there is nothing outside the hash but the chain fields; in format 1
// every copy is checked against the body. Each attack gets its exact verdict and exit code.

const { signer } = generateSigner('line-fields');
const TRACE = '0af7651916cd43dd8448eb211c80319c';
const SPAN = 'b7ad6b7169203331';

/** A chain of decisions in the given format, one checkpoint at the end, as journal lines. */
function decisions(version: RecordVersion, n = 6): string[] {
  const w = new ChainWriter({ signer, checkpointEvery: 0, version });
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const ts = new Date(Date.UTC(2026, 11, 7, 9, 0, i)).toISOString();
    const body = canonicalize({
      'event.name': 'ml.decision',
      timestamp: ts,
      ...(version === 2 ? { severity_text: 'INFO' } : {}),
      trace_id: TRACE,
      span_id: SPAN,
      'ml.decision.id': `d-${i}`,
      'ml.decision.outcome': 'decline',
      'ml.prediction.id': `p-${i}`,
    });
    const attrs = { 'ml.decision.outcome': 'decline' };
    for (const r of w.append({
      event: 'ml.decision',
      sev: 'INFO',
      ts,
      traceId: TRACE,
      spanId: SPAN,
      attrs,
      body,
    }))
      out.push(serializeRecord(r));
  }
  out.push(serializeRecord(w.checkpoint()));
  return out;
}

function journalDir(lines: string[]): { dir: string; segment: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-line-fields-'));
  mkdirSync(join(dir, 'chains', 'c'), { recursive: true });
  const segment = join(dir, 'chains', 'c', '000001.ndjson');
  writeFileSync(segment, `${lines.join('\n')}\n`);
  return { dir, segment };
}

const cli = (args: string[]) =>
  spawnSync(process.execPath, [join(import.meta.dirname, '../../dist/cli/main.js'), ...args], {
    encoding: 'utf8',
  });

/** `mltrail verify --json` on the lines with line 3 (seq 2) edited: exit code and problems (kind, location). */
function verifyEdited(lines: string[], edit: (line: string) => string) {
  const edited = [...lines];
  edited[2] = edit(edited[2]);
  expect(edited[2]).not.toBe(lines[2]);
  const { dir, segment } = journalDir(edited);
  const r = cli(['verify', dir, '--json']);
  const report = JSON.parse(r.stdout) as {
    ok: boolean;
    problems: { kind: string; location: string }[];
    chains: { problems: { kind: string; location: string }[] }[];
  };
  const problems = [...report.problems, ...report.chains.flatMap((c) => c.problems)]
    .filter((p) => p.location === `${segment}:3`)
    .map((p) => p.kind);
  return { status: r.status, ok: report.ok, problems: [...new Set(problems)].sort() };
}

describe('format 2: nothing outside the hash but the chain fields', () => {
  const lines = decisions(2);

  it('the intact journal verifies (exit 0)', () => {
    const { dir } = journalDir(lines);
    expect(cli(['verify', dir]).status).toBe(0);
  });

  it.each([
    [
      'event.name → ml.note',
      (l: string) => l.replace('"event.name":"ml.decision"', '"event.name":"ml.note"'),
    ],
    [
      'timestamp moved',
      (l: string) => l.replace('"timestamp":"2026-12-07T09:00:02', '"timestamp":"2026-12-07T10:00:02'),
    ],
    ['severity_text → ERROR', (l: string) => l.replace('"severity_text":"INFO"', '"severity_text":"ERROR"')],
    ['trace_id changed', (l: string) => l.replace(TRACE, `1${TRACE.slice(1)}`)],
    ['span_id changed', (l: string) => l.replace(SPAN, `1${SPAN.slice(1)}`)],
    [
      '"approved_by":"CFO" inside the body',
      (l: string) => l.replace('"body":{', '"body":{"approved_by":"CFO",'),
    ],
  ])('%s: modified (record hash), exit 1', (_name, edit) => {
    expect(verifyEdited(lines, edit)).toEqual({ status: 1, ok: false, problems: ['modified'] });
  });

  it('"approved_by":"CFO" as a field of the line: malformed, exit 1', () => {
    const edit = (l: string) => l.replace(',"body":', ',"approved_by":"CFO","body":');
    expect(verifyEdited(lines, edit)).toEqual({ status: 1, ok: false, problems: ['malformed'] });
  });

  it('"approved_by":"CFO" after the body: it is hashed as part of the body, so modified or malformed, exit 1', () => {
    const edit = (l: string) => `${l.slice(0, -1)},"approved_by":"CFO"}`;
    const r = verifyEdited(lines, edit);
    expect(r.status).toBe(1);
    expect(r.problems).toEqual(['malformed']);
  });

  it('event, ts, sev or trace ids written as line fields (the format 1 names): malformed, exit 1', () => {
    for (const field of [
      '"event":"ml.note",',
      '"ts":"2020-01-01T00:00:00.000Z",',
      '"sev":"ERROR",',
      `"trace_id":"${TRACE}",`,
    ])
      expect(verifyEdited(lines, (l) => l.replace('"body":', `${field}"body":`))).toEqual({
        status: 1,
        ok: false,
        problems: ['malformed'],
      });
  });

  it('property: any edit of any byte of a line (replace, insert, delete) is never reported ok', () => {
    const text = Buffer.from(`${lines.join('\n')}\n`);
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-line-bytes-'));
    mkdirSync(join(dir, 'chains', 'c'), { recursive: true });
    const segment = join(dir, 'chains', 'c', '000001.ndjson');
    fc.assert(
      fc.property(
        fc.nat(text.length - 2),
        fc.integer({ min: 0, max: 255 }),
        fc.constantFrom('replace', 'insert', 'delete'),
        (at, byte, op) => {
          // The newline ending a line is structure, not a line's byte: a line's bytes are edited.
          if (text[at] === 0x0a && op !== 'insert') return;
          if (op === 'replace' && text[at] === byte) return;
          const edited =
            op === 'replace'
              ? Buffer.concat([text.subarray(0, at), Buffer.from([byte]), text.subarray(at + 1)])
              : op === 'insert'
                ? Buffer.concat([text.subarray(0, at), Buffer.from([byte]), text.subarray(at)])
                : Buffer.concat([text.subarray(0, at), text.subarray(at + 1)]);
          // An inserted lone newline or space splits or pads nothing a reader takes as content only when
          // it leaves every line as it was; anything else must be reported.
          writeFileSync(segment, edited);
          const v = new ChainVerifier();
          readIntoVerifier(dir, v);
          expect(v.finish().ok, `${op} ${byte} at ${at}`).toBe(false);
        },
      ),
      { numRuns: 400, seed: 20261207 },
    );
  });
});

describe('format 1: copies outside the hash are checked against the body', () => {
  const lines = decisions(1);

  it('the intact format 1 journal verifies (exit 0)', () => {
    const { dir } = journalDir(lines);
    expect(cli(['verify', dir]).status).toBe(0);
  });

  it.each([
    ['event → ml.note', (l: string) => l.replace('"event":"ml.decision"', '"event":"ml.note"')],
    ['ts moved', (l: string) => l.replace('"ts":"2026-12-07T09:00:02', '"ts":"2026-12-07T10:00:02')],
    ['sev not a severity', (l: string) => l.replace('"sev":"INFO"', '"sev":"APPROVED"')],
    [
      'trace_id changed',
      (l: string) => l.replace(`"trace_id":"${TRACE}"`, `"trace_id":"1${TRACE.slice(1)}"`),
    ],
    ['span_id changed', (l: string) => l.replace(`"span_id":"${SPAN}"`, `"span_id":"1${SPAN.slice(1)}"`)],
  ])('%s: field-mismatch, exit 1', (_name, edit) => {
    expect(verifyEdited(lines, edit)).toEqual({ status: 1, ok: false, problems: ['field-mismatch'] });
  });

  it('attrs edited: attrs-mismatch, exit 1', () => {
    const edit = (l: string) =>
      l.replace('"attrs":{"ml.decision.outcome":"decline"}', '"attrs":{"ml.decision.outcome":"approve"}');
    expect(verifyEdited(lines, edit)).toEqual({ status: 1, ok: false, problems: ['attrs-mismatch'] });
  });

  it('"approved_by":"CFO" added, fields reordered or re-spaced: malformed, exit 1', () => {
    for (const edit of [
      (l: string) => l.replace(',"body":', ',"approved_by":"CFO","body":'),
      (l: string) => l.replace(/^\{"chain":("[^"]*"),"seq":(\d+),/, '{"seq":$2,"chain":$1,'),
      (l: string) => l.replace('"event":', '"event" :'),
    ])
      expect(verifyEdited(lines, edit)).toEqual({ status: 1, ok: false, problems: ['malformed'] });
  });

  it('an optional copy removed (span_id) while the body has it: field-mismatch, exit 1', () => {
    const edit = (l: string) => l.replace(`,"span_id":"${SPAN}"`, '');
    expect(verifyEdited(lines, edit)).toEqual({ status: 1, ok: false, problems: ['field-mismatch'] });
  });

  it('sev changed to another valid severity is not detected in format 1 (its body has none): documented', () => {
    const edit = (l: string) => l.replace('"sev":"INFO"', '"sev":"ERROR"');
    expect(verifyEdited(lines, edit)).toEqual({ status: 0, ok: true, problems: [] });
  });

  it('a chain never mixes formats: a format 2 line in a format 1 chain is mixed-versions', () => {
    const v2 = decisions(2);
    const mixed = [
      ...lines.slice(0, 3),
      v2[3].replace(/"chain":"[^"]*"/, `"chain":"${JSON.parse(lines[0]).chain}"`),
    ];
    const { dir, segment } = journalDir(mixed);
    const r = JSON.parse(cli(['verify', dir, '--json']).stdout);
    const kinds = r.chains.flatMap((c: { problems: { kind: string; location: string }[] }) =>
      c.problems.filter((p) => p.location === `${segment}:4`).map((p) => p.kind),
    );
    expect(kinds).toContain('mixed-versions');
  });
});
