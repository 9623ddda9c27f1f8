// Benchmark figures have one source, bench/results.json: the table in docs/performance.md is generated from
// it (bench/table.mjs), and no other document quotes a measured figure (they link to the table), so a rerun
// cannot leave two documents disagreeing (issue 18, item 7).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ESM module of the bench, without types
import { docWithTable, renderTable } from '../../bench/table.mjs';

const root = join(import.meta.dirname, '..', '..');
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const results = JSON.parse(read('bench/results.json'));

// A time in µs, a throughput, or a ratio written with ×: what benchmarks report. Configuration values are not
// measurements; the few that read like one are listed with where they are.
const FIGURE =
  /\d[\d  .,]*(?:–\d[\d  .,]*)?\s?(?:µs|(?:calls|records|requests|lines|predictions)\/s|MB\/s)|\d(?:\.\d+)?×/g;
const CONFIG_VALUES = ['bucket boundaries from 10 µs to 60 s'];

describe('benchmark numbers in the docs', () => {
  it('docs/performance.md holds the table bench/results.json renders (run `node bench/table.mjs` after a bench)', () => {
    const doc = read('docs/performance.md');
    expect(docWithTable(doc, results)).toBe(doc);
  });

  it('every row of results.json says what it compares, so the table can be rendered', () => {
    expect(() => renderTable(results)).not.toThrow();
    for (const r of results.results) expect(renderTable(results)).toContain(`| \`${r.name}\` |`);
  });

  it('no document but performance.md quotes a measured figure', () => {
    const docs = ['README.md', ...readdirSync(join(root, 'docs')).map((f) => `docs/${f}`)].filter(
      (p) => p.endsWith('.md') && p !== 'docs/performance.md',
    );
    const quoted: string[] = [];
    for (const p of docs)
      for (const [i, line] of read(p).split('\n').entries())
        if (!CONFIG_VALUES.some((c) => line.includes(c)))
          for (const m of line.matchAll(FIGURE)) quoted.push(`${p}:${i + 1}: ${m[0]}`);
    expect(quoted, 'link to the table in docs/performance.md instead of quoting its figures').toEqual([]);
  });

  it('the check finds a quoted figure and a stale table', () => {
    expect('15–23 µs with an e-mail'.match(FIGURE)).not.toBeNull();
    expect('2 111 913 lines/s'.match(FIGURE)).not.toBeNull();
    expect('0.45× of the floor'.match(FIGURE)).not.toBeNull();
    expect('a default of 2 ms'.match(FIGURE)).toBeNull();
    const stale = structuredClone(results);
    stale.results[0].value += 1;
    const doc = read('docs/performance.md');
    expect(docWithTable(doc, stale)).not.toBe(doc);
  });
});
