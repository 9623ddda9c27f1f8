// Benchmark (not a test): the rain-cover ONNX server (examples/weather/server.mjs) under a loopback load
// generator (autocannon, 16 connections), with and without `node --import mltrail/register`: same model,
// same request body, each server warmed up before it is measured, rounds alternating without/with (so
// both sides see the same neighbours on a shared machine), medians over the rounds. Loads are counted in
// requests (about `seconds` at the warm-up's rate), so no request is cut off when a load stops and the
// journal, read back after each audited run, must hold exactly one ml.prediction and one ml.decision record
// per 2xx response.
//   npm run build && node bench/server.mjs [seconds per run, default 8] [rounds, default 3]
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { buildProfile, saveProfile } from '../dist/drift/index.js';
import { buildLinearClassifierOnnx } from '../dist/onnx/index.js';
import { EVENT_ML_DECISION, EVENT_ML_PREDICTION } from '../dist/semconv/index.js';

const SECONDS = Number(process.argv[2] ?? 8);
const ROUNDS = Number(process.argv[3] ?? 3);
const WARMUP_REQUESTS = 3000;
const CONNECTIONS = 16;

const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-server-'));
const model = join(dir, 'model.onnx');
writeFileSync(
  model,
  buildLinearClassifierOnnx({
    weights: [0.1, 0.05, -0.3, 0.2],
    bias: -0.2,
    inputName: 'features',
    outputName: 'probability',
  }),
);
writeFileSync(
  `${model}.meta.json`,
  JSON.stringify({ coef: [0.1, 0.05, -0.3, 0.2], mean: [15, 7, 8, 3], std: [7, 5, 4, 1.5] }),
);
const profilePath = join(dir, 'profile.json');
await saveProfile(
  buildProfile(
    Array.from({ length: 200 }, (_, i) => ({
      temp_max: 10 + (i % 20),
      temp_min: 5 + (i % 7),
      temp_range: 5 + (i % 5),
      wind: 2 + (i % 4),
    })),
  ),
  profilePath,
);
const body = JSON.stringify({
  customer: 'customer-1@example.com',
  features: { temp_max: 12.8, temp_min: 5, temp_range: 7.8, wind: 4.7 },
});

/** CPU time (user + system, ms) the process has used so far; undefined where /proc is not available. */
function cpuMs(pid) {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return undefined;
  const fields = readFileSync(stat, 'utf8').split(') ')[1].split(' ');
  // utime and stime, in clock ticks of 10 ms (USER_HZ = 100 on Linux).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** ml.prediction / ml.decision records in a journal directory (every chain, every segment). */
function countRecords(journal) {
  const counts = { predictions: 0, decisions: 0 };
  const chains = join(journal, 'chains');
  if (!existsSync(chains)) return counts;
  for (const chain of readdirSync(chains)) {
    for (const segment of readdirSync(join(chains, chain)).sort()) {
      for (const line of readFileSync(join(chains, chain, segment), 'utf8').split('\n')) {
        if (line === '') continue;
        const { event } = JSON.parse(line);
        if (event === EVENT_ML_PREDICTION) counts.predictions++;
        else if (event === EVENT_ML_DECISION) counts.decisions++;
      }
    }
  }
  return counts;
}

/** Requests per second over a whole load (autocannon's own average is per whole second of the run). */
function throughput(result) {
  return result.requests.total / ((result.finish - result.start) / 1000);
}

async function measure(withRegister, round) {
  const journal = join(dir, `journal-${withRegister ? 'with' : 'without'}-${round}`);
  const args = withRegister
    ? ['--import', 'mltrail/register', 'examples/weather/server.mjs']
    : ['examples/weather/server.mjs'];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      MLTRAIL_DIR: journal,
      MODEL_PATH: model,
      PROFILE_PATH: profilePath,
      MODEL_NAME: 'bench',
      MODEL_VERSION: '1',
      PORT: '0',
      ...(withRegister ? {} : { MLTRAIL_DISABLED: 'true' }),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise((ok) =>
    createInterface({ input: child.stdout }).on('line', (l) => {
      try {
        ok(JSON.parse(l).listening);
      } catch {}
    }),
  );
  const load = (amount) =>
    autocannon({
      url: `http://127.0.0.1:${port}/quote`,
      method: 'POST',
      body,
      connections: CONNECTIONS,
      amount,
    });
  const warm = await load(WARMUP_REQUESTS);
  const cpuBefore = cpuMs(child.pid);
  const r = await load(Math.max(1000, Math.round(throughput(warm) * SECONDS)));
  const cpuAfter = cpuMs(child.pid);
  // SIGTERM: mltrail/register flushes and closes the journal before the process ends.
  child.kill('SIGTERM');
  await new Promise((ok) => child.once('exit', ok));
  const ok2xx = warm['2xx'] + r['2xx'];
  return {
    rps: throughput(r),
    p99: r.latency.p99,
    errors: warm.errors + warm.non2xx + r.errors + r.non2xx,
    cpuUsPerRequest:
      cpuBefore === undefined || cpuAfter === undefined || r.requests.total === 0
        ? undefined
        : ((cpuAfter - cpuBefore) * 1000) / r.requests.total,
    ok2xx,
    records: withRegister ? countRecords(journal) : undefined,
  };
}

const median = (xs) => {
  const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const runs = { without: [], with: [] };
for (let round = 0; round < ROUNDS; round++) {
  runs.without.push(await measure(false, round));
  runs.with.push(await measure(true, round));
  const w = runs.with.at(-1);
  const b = runs.without.at(-1);
  const journalOk = w.records.predictions === w.ok2xx && w.records.decisions === w.ok2xx;
  if (!journalOk) process.exitCode = 1;
  process.stderr.write(
    `server: round ${round + 1}/${ROUNDS}: without ${Math.round(b.rps)} req/s (p99 ${b.p99} ms), ` +
      `with ${Math.round(w.rps)} req/s (p99 ${w.p99} ms); journal: ${w.records.predictions} predictions, ` +
      `${w.records.decisions} decisions for ${w.ok2xx} 2xx responses ${journalOk ? '(all recorded)' : '(MISMATCH)'}\n`,
  );
}
const side = (rs) => ({
  rps: median(rs.map((r) => r.rps)),
  p99: median(rs.map((r) => r.p99)),
  cpu: median(rs.map((r) => r.cpuUsPerRequest)),
});
const withReg = side(runs.with);
const without = side(runs.without);
const round1 = (x) => (x === undefined ? undefined : Math.round(x));
console.log(
  JSON.stringify({
    name: 'server-with-vs-without',
    unit: 'requests/s',
    value: Math.round(withReg.rps),
    baseline: Math.round(without.rps),
    ratio: Number((withReg.rps / without.rps).toFixed(3)),
    p99_ms_with: withReg.p99,
    p99_ms_without: without.p99,
    cpu_us_per_request_with: round1(withReg.cpu),
    cpu_us_per_request_without: round1(without.cpu),
    rounds: ROUNDS,
    seconds_per_run: SECONDS,
    errors: [...runs.with, ...runs.without].reduce((n, r) => n + r.errors, 0),
    responses_2xx_with: runs.with.reduce((n, r) => n + r.ok2xx, 0),
    predictions_journaled: runs.with.reduce((n, r) => n + r.records.predictions, 0),
    decisions_journaled: runs.with.reduce((n, r) => n + r.records.decisions, 0),
  }),
);
rmSync(dir, { recursive: true, force: true });
