// Benchmark (not a test): the rain-cover ONNX server (examples/weather/server.mjs) under a loopback load
// generator (autocannon), with and without `node --import mltrail/register`, same model, same requests.
//   npm run build && node bench/server.mjs [seconds]
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import autocannon from 'autocannon';
import { buildProfile, saveProfile } from '../dist/drift/index.js';
import { buildLinearClassifierOnnx } from '../dist/onnx/index.js';

const SECONDS = Number(process.argv[2] ?? 8);
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

async function measure(withRegister) {
  const args = withRegister
    ? ['--import', 'mltrail/register', 'examples/weather/server.mjs']
    : ['examples/weather/server.mjs'];
  const child = spawn(process.execPath, args, {
    env: {
      ...process.env,
      MLTRAIL_DIR: join(dir, `journal-${withRegister}`),
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
  const r = await autocannon({
    url: `http://127.0.0.1:${port}/quote`,
    method: 'POST',
    body,
    connections: 16,
    duration: SECONDS,
  });
  child.kill('SIGTERM');
  await new Promise((ok) => child.once('exit', ok));
  return { rps: r.requests.average, p99: r.latency.p99, errors: r.errors + r.non2xx };
}

const without = await measure(false);
const withReg = await measure(true);
console.log(
  JSON.stringify({
    name: 'server-with-vs-without',
    unit: 'requests/s',
    value: Math.round(withReg.rps),
    baseline: Math.round(without.rps),
    ratio: Number((withReg.rps / without.rps).toFixed(3)),
    p99_ms_with: withReg.p99,
    p99_ms_without: without.p99,
    errors: withReg.errors + without.errors,
  }),
);
rmSync(dir, { recursive: true, force: true });
