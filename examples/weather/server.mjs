// A rain-cover quoting service: an insurer prices rain cover for outdoor events from tomorrow's forecast.
// Plain node:http + onnxruntime-node, started with
//   node --import mltrail/register examples/weather/server.mjs
// so every inference is audited with no mltrail code in the model path. The handler uses the trail only for
// what instrumentation cannot know: the business decision taken on the prediction, and drift monitoring.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { getTrail } from 'mltrail';
import { DriftMonitor, loadProfile } from 'mltrail/drift';
import * as ort from 'onnxruntime-node';

const FEATURES = ['temp_max', 'temp_min', 'temp_range', 'wind'];
let current = await load(
  process.env.MODEL_PATH,
  process.env.PROFILE_PATH,
  process.env.MODEL_VERSION,
  process.env.DEPLOYMENT_ID,
);

async function load(modelPath, profilePath, version, deploymentId) {
  const session = await ort.InferenceSession.create(modelPath);
  // Standardisation and coefficients travel with the model, for exact linear attributions (the reasons).
  const meta = JSON.parse(readFileSync(`${modelPath}.meta.json`, 'utf8'));
  const trail = getTrail();
  const monitor =
    trail === undefined
      ? undefined
      : new DriftMonitor({
          reference: await loadProfile(profilePath),
          model: { name: process.env.MODEL_NAME, version },
          deploymentId,
          window: { size: Number(process.env.DRIFT_WINDOW ?? 60) },
          sink: trail,
        });
  return { session, meta, monitor };
}

function attributions(meta, x) {
  return Object.fromEntries(
    FEATURES.map((f, j) => [
      f,
      Math.round(((meta.coef[j] * (x[j] - meta.mean[j])) / meta.std[j]) * 1e4) / 1e4,
    ]),
  );
}

/** The quote for a probability of rain, with the reason an underwriter can read. */
function quote(p) {
  if (p >= 0.8)
    return { outcome: 'decline', reason: `probability of rain ${p.toFixed(2)} >= 0.80`, threshold: 0.8 };
  if (p >= 0.5)
    return {
      outcome: 'surcharge',
      reason: `probability of rain ${p.toFixed(2)} in [0.50, 0.80)`,
      threshold: 0.5,
    };
  return { outcome: 'standard', reason: `probability of rain ${p.toFixed(2)} < 0.50`, threshold: 0.5 };
}

async function readJson(req) {
  let text = '';
  for await (const chunk of req) text += chunk;
  return JSON.parse(text);
}

const server = createServer(async (req, res) => {
  try {
    if (req.method === 'POST' && req.url === '/quote') {
      const { customer, features } = await readJson(req);
      const x = FEATURES.map((f) => Number(features[f]));
      const out = await current.session.run({
        features: new ort.Tensor('float32', Float32Array.from(x), [1, FEATURES.length]),
      });
      const p = Number(out.probability.data[0]);
      current.monitor?.observe(features);
      const q = quote(p);
      const trail = getTrail();
      const [predictionId] = trail?.currentPredictionIds() ?? [];
      if (trail !== undefined && predictionId !== undefined) {
        trail.decide({
          predictionId,
          outcome: q.outcome,
          reason: q.reason,
          threshold: q.threshold,
          attributions: attributions(current.meta, x),
          automated: q.outcome !== 'decline',
          reviewer: q.outcome === 'decline' ? 'underwriter-7' : undefined,
        });
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ customer, pRain: p, ...q }));
      return;
    }
    if (req.method === 'POST' && req.url === '/reload') {
      const { modelPath, profilePath, modelVersion, deploymentId } = await readJson(req);
      getTrail()?.loadRegistry(process.env.MLTRAIL_DIR);
      current = await load(modelPath, profilePath, modelVersion, deploymentId);
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'POST' && req.url === '/flush') {
      await getTrail()?.flush();
      res.writeHead(204).end();
      return;
    }
    res.writeHead(404).end();
  } catch (err) {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: String(err?.message ?? err) }));
  }
});

server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ listening: server.address().port })}\n`);
});
process.once('SIGTERM', () => server.close());
