import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildProfile, DriftMonitor, type ReferenceProfile, saveProfile } from '../drift/index.js';
import { AuditLog } from '../journal/index.js';
import { createRedactor } from '../privacy/index.js';
import {
  createTrail,
  type DatasetVersion,
  type Deployment,
  type ModelVersion,
  type RetrainingTrigger,
  type Trail,
} from '../trail/index.js';
import {
  accuracy,
  attributions,
  type LogisticModel,
  predictProba,
  trainLogistic,
} from './logistic-regression.js';
import {
  between,
  type Example,
  FEATURE_NAMES,
  featuresOf,
  loadWeather,
  toExamples,
  type WeatherDay,
} from './weather-data.js';

/** What the demo did, for the summary and for tests. */
export interface DemoResult {
  dir: string;
  predictions: number;
  decisions: number;
  feedback: number;
  driftRecords: string[];
  samplePredictionId: string | undefined;
  models: { version: string; accuracy: number; digest: string | undefined }[];
}

/** Options of {@link runDemo}. */
export interface DemoOptions {
  /** Journal directory the demo writes. */
  dir: string;
  /** Progress lines (stderr by default). */
  log?: (line: string) => void;
}

/** Only for the demo; production sets MLTRAIL_PSEUDONYM_KEY from a secret store. */
const DEMO_PSEUDONYM_KEY = 'mltrail-demo-pseudonym-key-not-for-production';
const HYPERPARAMETERS = { learningRate: 0.5, epochs: 300, l2: 0.001 };
const SEED = 20121;
const ACCURACY_THRESHOLD = 0.7;

/**
 * The end-to-end demo: a rain-cover quoting model for outdoor events, trained on the Seattle weather data
 * set that ships with the `vega-datasets` npm package, evaluated against a threshold, registered, deployed,
 * and used to quote 2015 traffic with audited predictions, decisions (with reasons and attributions) and
 * ground-truth feedback. Every step is a span and a hash-chained audit record in the journal at `dir`.
 */
export async function runDemo(opts: DemoOptions): Promise<DemoResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dir = resolve(opts.dir);
  mkdirSync(join(dir, 'artifacts'), { recursive: true, mode: 0o700 });
  const trail = await createTrail({
    serviceName: 'rain-cover',
    environment: 'demo',
    pipeline: 'rain-cover',
    actor: 'ml-pipeline@rain-cover',
    sink: new AuditLog({ dir }),
    // Customers are pseudonymised (keyed HMAC): the same customer maps to the same token in every record.
    redactor: createRedactor({ key: process.env.MLTRAIL_PSEUDONYM_KEY ?? DEMO_PSEUDONYM_KEY }),
  });
  const result: DemoResult = {
    dir,
    predictions: 0,
    decisions: 0,
    feedback: 0,
    driftRecords: [],
    samplePredictionId: undefined,
    models: [],
  };
  try {
    // 1. Data: the raw file by the digest of its bytes, then selections with engineered features.
    const weather = loadWeather();
    log(`data     seattle-weather.csv: ${weather.days.length} days (npm package vega-datasets)`);
    const raw = await trail.dataset({
      name: 'seattle-weather',
      data: weather.bytes,
      rowCount: weather.days.length,
      source: 'npm:vega-datasets/data/seattle-weather.csv',
      format: 'csv',
      role: 'raw',
      schema: {
        date: 'date',
        precipitation: 'mm',
        temp_max: 'degC',
        temp_min: 'degC',
        wind: 'm/s',
        weather: 'category',
      },
    });
    const select = (name: string, role: 'train' | 'test', from: string, to: string) => {
      let output: DatasetVersion | undefined;
      const examples = trail.transform(
        {
          name: `select-${name}`,
          description: `days in [${from}, ${to}); features ${FEATURE_NAMES.join(', ')}; label: precipitation > 0`,
          inputs: [raw],
          output: { name: `weather-${name}`, role },
          onRecorded: (d) => {
            output = d;
          },
        },
        (days: readonly WeatherDay[]) => toExamples(between(days, from, to)),
      )(weather.days);
      return { examples, dataset: output! };
    };
    const train = select('train-2012-2013', 'train', '2012-01-01', '2014-01-01');
    const test = select('test-2014', 'test', '2014-01-01', '2015-01-01');
    log(`split    train ${train.examples.length} days (2012–2013), test ${test.examples.length} days (2014)`);

    // 2. Train, evaluate against the threshold, register with the artifact digest, deploy.
    const v1 = await trainEvaluateRegister(trail, dir, '1', train, test, log);
    result.models.push({ version: '1', accuracy: v1.accuracy, digest: v1.model.digest });
    const deployment = trail.deploy({
      model: v1.model,
      environment: 'demo',
      endpoint: 'in-process:quote',
      deployedBy: 'release-bot',
    });
    log(`deploy   rain-cover v1 (${v1.model.digest?.slice(0, 19)}…) to "demo"`);

    // 3. Serve 2015 traffic: every quote is an audited prediction, then a decision with its reasons; a drift
    //    monitor compares each 60-quote window with the profile of the data v1 was trained on.
    const monitor = (t: Trained, d: Deployment) =>
      new DriftMonitor({
        reference: t.profile,
        model: { name: 'rain-cover', version: t.model.version },
        deploymentId: d.id,
        window: { size: 60 },
        sink: trail,
      });
    let quote = quoteService(trail, deployment, v1.logistic, monitor(v1, deployment));
    const truth: [string, WeatherDay][] = [];
    const serve = (from: string, to: string) => {
      for (const [i, day] of between(weather.days, from, to).entries()) {
        const q = quote(`customer-${(i % 40) + 1}@example.com`, day);
        truth.push([q.predictionId, day]);
        result.samplePredictionId ??= q.predictionId;
        result.predictions++;
        result.decisions++;
        result.driftRecords.push(...q.driftRecords);
      }
    };
    serve('2015-01-01', '2015-09-01');
    log(
      `serve    ${result.predictions} quotes Jan–Aug 2015; drift monitor: ${result.driftRecords.length} drift record(s)`,
    );

    // 4. Drift fired: retrain on more recent data, linked to the drift records that caused it; deploy v2.
    if (result.driftRecords.length > 0) {
      const trigger = trail.retrain({
        reason: `input drift in 2015 traffic (${result.driftRecords.length} drift record(s))`,
        trigger: 'drift',
        triggerIds: result.driftRecords.slice(0, 50),
        previous: v1.model,
        actor: 'drift-monitor',
      });
      const train2 = select('train-2013-2014', 'train', '2013-01-01', '2015-01-01');
      const test2 = select('test-2015h1', 'test', '2015-01-01', '2015-07-01');
      const v2 = await trainEvaluateRegister(trail, dir, '2', train2, test2, log, trigger);
      result.models.push({ version: '2', accuracy: v2.accuracy, digest: v2.model.digest });
      const d2 = trail.deploy({
        model: v2.model,
        environment: 'demo',
        endpoint: 'in-process:quote',
        replaces: v1.model,
        deployedBy: 'release-bot',
      });
      log(
        `retrain  v2 deployed, retrained because of ${trigger.triggerIds.length} drift record(s) (${trigger.id})`,
      );
      quote = quoteService(trail, d2, v2.logistic, monitor(v2, d2));
      const before = result.predictions;
      serve('2015-09-01', '2016-01-01');
      log(`serve    ${result.predictions - before} quotes Sep–Dec 2015 on v2`);
    }

    // 5. Ground truth arrives later for a quarter of the quotes.
    for (const [k, [predictionId, day]] of truth.entries()) {
      if (k % 4 !== 0) continue;
      const wet = day.precipitation > 0;
      trail.feedback({ predictionId, groundTruth: wet ? 'wet' : 'dry', source: 'noaa-daily-summary' });
      result.feedback++;
    }
    log(`feedback ${result.feedback} ground-truth records joined by prediction id`);
    await trail.flush();
  } finally {
    await trail.shutdown();
  }
  return result;
}

interface Trained {
  model: ModelVersion;
  logistic: LogisticModel;
  accuracy: number;
  profile: ReferenceProfile;
}

async function trainEvaluateRegister(
  trail: Trail,
  dir: string,
  version: string,
  train: { examples: Example[]; dataset: DatasetVersion },
  test: { examples: Example[]; dataset: DatasetVersion },
  log: (l: string) => void,
  retraining?: RetrainingTrigger,
): Promise<Trained> {
  const artifact = join(dir, 'artifacts', `rain-cover-v${version}.json`);
  // The reference profile of exactly the training data: drift is measured against it.
  const profile = buildProfile(
    train.examples.map((e) => Object.fromEntries(FEATURE_NAMES.map((n, j) => [n, e.x[j]]))),
    { features: [...FEATURE_NAMES] },
  );
  await saveProfile(profile, join(dir, 'artifacts', `rain-cover-v${version}.profile.json`));
  let runId = '';
  const fit = trail.train(
    {
      model: 'rain-cover',
      inputs: [train.dataset],
      algorithm: 'logistic-regression',
      framework: 'mltrail-demo',
      frameworkVersion: '1.0.0',
      hyperparameters: HYPERPARAMETERS,
      seed: SEED,
      profileDigest: profile.digest,
      retraining,
      artifact: (r: { bytes: string }) => ({
        data: r.bytes,
        format: 'json',
        uri: `file:artifacts/rain-cover-v${version}.json`,
      }),
      onRecorded: (run) => {
        runId = run.id;
      },
    },
    (examples: Example[]) => {
      const logistic = trainLogistic(
        examples.map((e) => e.x),
        examples.map((e) => e.y),
        HYPERPARAMETERS,
      );
      return { logistic, bytes: JSON.stringify({ features: FEATURE_NAMES, ...logistic }) };
    },
  );
  const { logistic, bytes } = fit(train.examples);
  writeFileSync(artifact, bytes, { mode: 0o600 });
  const acc = trail.evaluate(
    { run: runId, dataset: test.dataset, metric: 'accuracy', threshold: ACCURACY_THRESHOLD },
    () =>
      accuracy(
        logistic,
        test.examples.map((e) => e.x),
        test.examples.map((e) => e.y),
      ),
  )();
  log(
    `train    v${version}: accuracy ${acc.toFixed(3)} on ${test.dataset.name} (threshold ${ACCURACY_THRESHOLD})`,
  );
  const model = await trail.register({
    name: 'rain-cover',
    version,
    run: runId,
    data: bytes,
    format: 'json',
    uri: `file:artifacts/rain-cover-v${version}.json`,
    approvedBy: 'model-risk@rain-cover',
  });
  return { model, logistic, accuracy: acc, profile };
}

/** Turns the probability of a wet day into a quote, with the reason an underwriter can read. */
function quoteFor(pWet: number): { outcome: string; reason: string; threshold: number } {
  if (pWet >= 0.8)
    return { outcome: 'decline', reason: `probability of rain ${pWet.toFixed(2)} >= 0.80`, threshold: 0.8 };
  if (pWet >= 0.5)
    return {
      outcome: 'surcharge',
      reason: `probability of rain ${pWet.toFixed(2)} in [0.50, 0.80)`,
      threshold: 0.5,
    };
  return { outcome: 'standard', reason: `probability of rain ${pWet.toFixed(2)} < 0.50`, threshold: 0.5 };
}

function quoteService(trail: Trail, deployment: Deployment, model: LogisticModel, monitor: DriftMonitor) {
  let lastId = '';
  const score = trail.predict<[number[], string], number>(
    {
      model: deployment,
      output: (p: number) => ({ label: p >= 0.5 ? 'wet' : 'dry', score: Math.round(p * 1e4) / 1e4 }),
      subject: (_x: number[], customer: string) => customer,
      input: (x: number[]) => Object.fromEntries(FEATURE_NAMES.map((n, j) => [n, x[j]])),
      onRecorded: (p) => {
        lastId = p.id;
      },
    },
    (x: number[], _customer: string) => predictProba(model, x),
  );
  return (customer: string, day: WeatherDay) => {
    const f = featuresOf(day);
    const x = FEATURE_NAMES.map((n) => f[n]);
    const p = score(x, customer);
    const window = monitor.observe(f as unknown as Record<string, number>);
    const q = quoteFor(p);
    trail.decide({
      predictionId: lastId,
      outcome: q.outcome,
      reason: q.reason,
      threshold: q.threshold,
      attributions: attributions(model, x, FEATURE_NAMES),
      automated: q.outcome !== 'decline',
      reviewer: q.outcome === 'decline' ? 'underwriter-7' : undefined,
    });
    return { predictionId: lastId, ...q, driftRecords: window?.recordIds ?? [] };
  };
}
