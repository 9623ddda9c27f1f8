// `npm run bench`: runs every benchmark (each a separate process, each measuring its own baseline in the
// same run), prints a table of ratios and writes bench/results.json as { machine, date, results }.
// `node bench/run.mjs --only=server,predict` runs those benchmarks alone and replaces their rows in the
// existing results.json, keeping the others; `updated` then says which rows come from which later run.
// `--rows=<name>,…` with --only replaces only the rows named.
import './node-check.mjs';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { docWithTable } from './table.mjs';

const quick = process.argv.includes('--quick');
const only = process.argv
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',')
  .map((b) => (b.endsWith('.mjs') ? b : `${b}.mjs`));
const all = [
  ['predict.mjs', quick ? ['5000'] : ['20000']],
  ['record-pipeline.mjs', quick ? ['5000'] : ['20000']],
  ['journal.mjs', quick ? ['20000', '64'] : ['100000', '64']],
  ['verify.mjs', quick ? ['100000'] : ['1000000']],
  ['verify-formats.mjs', quick ? ['100000'] : ['1000000']],
  ['lineage.mjs', quick ? ['100000'] : ['1000000']],
  ['scale.mjs', quick ? ['100000'] : ['1000000']],
  ['drift.mjs', []],
  ['redaction.mjs', []],
  ['instrumentation.mjs', []],
  ['server.mjs', quick ? ['3'] : ['8']],
];
const benches = only === undefined ? all : all.filter(([file]) => only.includes(file));
// A name in --only that is no benchmark (a typo) would run nothing and still record an empty run.
const unknown = (only ?? []).filter((file) => !all.some(([known]) => known === file));
if (unknown.length > 0) {
  console.error(
    `bench: --only names ${unknown.map((f) => f.replace(/\.mjs$/, '')).join(', ')}, which is no benchmark (there are ${all.map(([f]) => f.replace(/\.mjs$/, '')).join(', ')}); results.json is unchanged`,
  );
  process.exit(2);
}
// --rows=a,b (with --only): keep only these rows of what the benchmarks print, so a benchmark that also
// prints a row measured another way before (scale.mjs's verify-incremental on its own 1M journal, where the
// row in results.json is on a 10M one) leaves that row as it was.
const onlyRows = process.argv
  .find((a) => a.startsWith('--rows='))
  ?.slice('--rows='.length)
  .split(',');
if (onlyRows !== undefined && only === undefined) {
  console.error('bench: --rows needs --only (a full run writes every row)');
  process.exit(2);
}
// The machine may be shared: its load average before and after the run goes into results.json.
const loadBefore = loadavg().map((x) => Number(x.toFixed(2)));
const results = [];
for (const [file, args] of benches) {
  process.stderr.write(`bench: ${file} ${args.join(' ')}\n`);
  try {
    const out = execFileSync(process.execPath, [`bench/${file}`, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
      maxBuffer: 64 << 20,
    });
    for (const line of out.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        const row = JSON.parse(line);
        if (onlyRows === undefined || onlyRows.includes(row.name)) results.push(row);
      } catch {
        // not a result line
      }
    }
  } catch (err) {
    process.stderr.write(`bench: ${file} failed: ${err.message}\n`);
  }
}
// A row named in --rows that no benchmark printed (a typo, or a benchmark that failed) would leave the old
// row in place as if refreshed: say so and write nothing.
const missing = (onlyRows ?? []).filter((name) => !results.some((r) => r.name === name));
if (missing.length > 0) {
  console.error(
    `bench: --rows named ${missing.join(', ')}, which no benchmark of --only printed; results.json is unchanged`,
  );
  process.exit(2);
}
const machine = {
  cpus: cpus().length,
  model: cpus()[0]?.model,
  memoryGiB: Math.round(totalmem() / 2 ** 30),
  node: process.version,
  platform: process.platform,
  loadAverageBefore: loadBefore,
  loadAverageAfter: loadavg().map((x) => Number(x.toFixed(2))),
};
const date = new Date().toISOString();
if (only === undefined) {
  writeFileSync('bench/results.json', `${JSON.stringify({ machine, date, results }, null, 2)}\n`);
} else {
  const earlier = JSON.parse(readFileSync('bench/results.json', 'utf8'));
  const fresh = new Set(results.map((r) => r.name));
  const merged = earlier.results.map((r) => results.find((n) => n.name === r.name) ?? r);
  for (const r of results) if (!earlier.results.some((e) => e.name === r.name)) merged.push(r);
  const updated = [
    ...(earlier.updated ?? []),
    { date, benches: benches.map(([file]) => file), rows: [...fresh], machine },
  ];
  writeFileSync(
    'bench/results.json',
    `${JSON.stringify({ ...earlier, results: merged, updated }, null, 2)}\n`,
  );
}
// The table in docs/performance.md is generated from results.json (one source for every figure the docs quote).
try {
  const doc = readFileSync('docs/performance.md', 'utf8');
  writeFileSync(
    'docs/performance.md',
    docWithTable(doc, JSON.parse(readFileSync('bench/results.json', 'utf8'))),
  );
  process.stderr.write('bench: docs/performance.md table regenerated from bench/results.json\n');
} catch (err) {
  process.stderr.write(`bench: docs/performance.md not regenerated: ${err.message}\n`);
}
// Rows without a single value (the drift monitor's two paths) show their figures instead.
const figures = (r) =>
  Object.entries(r)
    .filter(([k, v]) => typeof v === 'number' && k !== 'baseline' && k !== 'ratio')
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
const rows = results.map((r) => [
  r.name,
  r.value !== undefined ? String(r.value) : figures(r),
  String(r.baseline ?? ''),
  String(r.ratio ?? ''),
  r.unit,
]);
const widths = [0, 1, 2, 3, 4].map((i) =>
  Math.max(...[['name', 'value', 'baseline', 'ratio', 'unit'], ...rows].map((row) => row[i].length)),
);
for (const row of [['name', 'value', 'baseline', 'ratio', 'unit'], ...rows])
  console.log(row.map((c, i) => c.padEnd(widths[i])).join('  '));
// Rows with a goal (issue 16): the ones short of it, with the gap. `goal_metric` names the figure the goal
// is on (default: the ratio, else the value); `goal_is_maximum` marks a ceiling rather than a floor.
const short = [];
for (const r of results) {
  if (r.goal === undefined) continue;
  const metric = r.goal_metric ?? (r.ratio !== undefined ? 'ratio' : 'value');
  const got = r[metric];
  if (typeof got !== 'number') continue;
  const missed = r.goal_is_maximum === true ? got > r.goal : got < r.goal;
  if (missed)
    short.push(
      `  ${r.name}: ${metric} ${got}, goal ${r.goal_is_maximum === true ? '<=' : '>='} ${r.goal} (gap ${Number(Math.abs(got - r.goal).toPrecision(3))})`,
    );
}
if (short.length > 0) console.log(`\nshort of their goal:\n${short.join('\n')}`);
console.log('\nwritten to bench/results.json');
