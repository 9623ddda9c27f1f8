import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { SpanContext } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NoopSpanProcessor,
  type SpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { buildProfile, type ReferenceProfile, saveProfile } from '../drift/index.js';
import { readRegisterOptions } from '../instrumentation/register-options.js';
import { GENERATED_KEY_FILE, parseRecordLine } from '../integrity/index.js';
import { AuditLog } from '../journal/index.js';
import { buildLinearClassifierOnnx } from '../onnx/index.js';
import { createRedactor, RedactingSpanProcessor } from '../privacy/index.js';
import {
  ATTR_DEPLOYMENT_ENVIRONMENT_NAME,
  ATTR_ML_DRIFT_ID,
  ATTR_SERVICE_NAME,
  EVENT_ML_DRIFT_DETECTED,
} from '../semconv/index.js';
import { JournalReader } from '../sources/journal-reader.js';
import {
  createTrail,
  type DatasetVersion,
  type Deployment,
  type ModelVersion,
  type RetrainingTrigger,
  remoteSpanContext,
  type Trail,
} from '../trail/index.js';
import { accuracy, type LogisticModel, rawWeights, trainLogistic } from './logistic-regression.js';
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
  const tracing = pipelineTracerProvider();
  const trail = await createTrail({
    tracerProvider: tracing,
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
      endpoint: 'http://localhost/quote',
      deployedBy: 'release-bot',
    });
    log(`deploy   rain-cover v1 (${v1.model.digest?.slice(0, 19)}…) to "demo"`);

    // 3. Serve it: onnxruntime-node behind a plain HTTP server started with `node --import mltrail/register`
    //    (no mltrail code in its model path). Replay 2015 traffic; the server's drift monitor compares each
    //    60-quote window with the profile of the data v1 was trained on.
    await trail.flush();
    const server = await startServer(dir, v1, deployment);
    const truth: [string, WeatherDay][] = [];
    try {
      const serve = async (from: string, to: string) => {
        for (const [i, day] of between(weather.days, from, to).entries()) {
          const predictionId = await server.quote(`customer-${(i % 40) + 1}@example.com`, day);
          truth.push([predictionId, day]);
          result.samplePredictionId ??= predictionId;
          result.predictions++;
          result.decisions++;
        }
      };
      await serve('2015-01-01', '2015-09-01');
      await server.flush();
      const drift = driftRecordsIn(dir);
      result.driftRecords = drift.map((d) => d.id);
      log(
        `serve    ${result.predictions} quotes Jan–Aug 2015 from the ONNX server; drift monitor: ${result.driftRecords.length} drift record(s)`,
      );

      // 4. Drift fired: retrain on more recent data, linked to the drift records that caused it; deploy v2.
      if (result.driftRecords.length > 0) {
        const trigger = trail.retrain({
          reason: `input drift in 2015 traffic (${result.driftRecords.length} drift record(s))`,
          trigger: 'drift',
          triggerIds: result.driftRecords.slice(0, 50),
          triggerSpanContexts: drift
            .slice(0, 50)
            .flatMap((d) => (d.spanContext === undefined ? [] : [d.spanContext])),
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
          endpoint: 'http://localhost/quote',
          replaces: v1.model,
          deployedBy: 'release-bot',
        });
        await trail.flush();
        await server.reload(v2, d2);
        log(
          `retrain  v2 deployed, retrained because of ${trigger.triggerIds.length} drift record(s) (${trigger.id})`,
        );
        const before = result.predictions;
        await serve('2015-09-01', '2016-01-01');
        log(`serve    ${result.predictions - before} quotes Sep–Dec 2015 on v2`);
      }
      await server.flush();
    } finally {
      await server.stop();
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
    await tracing.shutdown().catch((err: unknown) => log(`traces   could not be exported: ${String(err)}`));
  }
  return result;
}

/**
 * The pipeline's own tracer provider (service `rain-cover`): every stage is a span, and every record names
 * it (trace and span id), so the serving process links its predictions to the deployment, model, run and
 * datasets from the journal. Spans are exported (redacted first) when an OTLP endpoint is configured, the
 * same variables `mltrail/register` reads; otherwise they only give the records their ids.
 */
function pipelineTracerProvider(): TracerProvider {
  const options = readRegisterOptions();
  const spanProcessors: SpanProcessor[] = options.otlpTraces
    ? [
        new RedactingSpanProcessor({
          redactor: createRedactor(),
          next: new BatchSpanProcessor({ exporter: new OTLPTraceExporter() }),
        }),
      ]
    : [new NoopSpanProcessor()];
  return new TracerProvider({
    resource: defaultResource().merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: 'rain-cover',
        [ATTR_DEPLOYMENT_ENVIRONMENT_NAME]: 'demo',
      }),
    ),
    spanProcessors,
  });
}

interface Trained {
  model: ModelVersion;
  logistic: LogisticModel;
  accuracy: number;
  profile: ReferenceProfile;
  onnxPath: string;
  profilePath: string;
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
  const onnxPath = join(dir, 'artifacts', `rain-cover-v${version}.onnx`);
  const profilePath = join(dir, 'artifacts', `rain-cover-v${version}.profile.json`);
  // The reference profile of exactly the training data: drift is measured against it.
  const profile = buildProfile(
    train.examples.map((e) => Object.fromEntries(FEATURE_NAMES.map((n, j) => [n, e.x[j]]))),
    { features: [...FEATURE_NAMES] },
  );
  await saveProfile(profile, profilePath);
  let runId = '';
  const fitAndExport = trail.train(
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
      artifact: (r: { onnx: Uint8Array }) => ({
        data: r.onnx,
        format: 'onnx',
        uri: `file:artifacts/rain-cover-v${version}.onnx`,
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
      // Standardisation folded into the weights: the ONNX graph is Sigmoid(x·W + b) on raw features.
      const { weights, bias } = rawWeights(logistic);
      const onnx = buildLinearClassifierOnnx({
        weights,
        bias,
        inputName: 'features',
        outputName: 'probability',
        docString: `rain-cover v${version}`,
      });
      return { logistic, onnx };
    },
  );
  const { logistic, onnx } = fitAndExport(train.examples);
  writeFileSync(onnxPath, onnx, { mode: 0o600 });
  writeFileSync(`${onnxPath}.meta.json`, JSON.stringify({ features: FEATURE_NAMES, ...logistic }), {
    mode: 0o600,
  });
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
    `train    v${version}: accuracy ${acc.toFixed(3)} on ${test.dataset.name} (threshold ${ACCURACY_THRESHOLD}); exported to ONNX`,
  );
  const model = await trail.register({
    name: 'rain-cover',
    version,
    run: runId,
    data: onnx,
    format: 'onnx',
    uri: `file:artifacts/rain-cover-v${version}.onnx`,
    approvedBy: 'model-risk@rain-cover',
  });
  return { model, logistic, accuracy: acc, profile, onnxPath, profilePath };
}

interface DemoServer {
  quote(customer: string, day: WeatherDay): Promise<string>;
  reload(t: Trained, d: Deployment): Promise<void>;
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts examples/weather/server.mjs under `node --import mltrail/register`, writing to the same journal. */
async function startServer(dir: string, t: Trained, d: Deployment): Promise<DemoServer> {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'mltrail/register', join(root, 'examples', 'weather', 'server.mjs')],
    {
      cwd: root,
      env: {
        ...process.env,
        MLTRAIL_DIR: dir,
        MLTRAIL_PSEUDONYM_KEY: process.env.MLTRAIL_PSEUDONYM_KEY ?? DEMO_PSEUDONYM_KEY,
        // The pipeline's key (generated beside the journal unless one was given), handed over explicitly: the
        // demo warned about a generated key once already, the server need not say it again.
        MLTRAIL_SIGNING_KEY: process.env.MLTRAIL_SIGNING_KEY?.trim() || join(dir, GENERATED_KEY_FILE),
        OTEL_SERVICE_NAME: 'rain-cover-api',
        MLTRAIL_ENVIRONMENT: 'demo',
        MODEL_PATH: t.onnxPath,
        PROFILE_PATH: t.profilePath,
        MODEL_NAME: 'rain-cover',
        MODEL_VERSION: t.model.version,
        DEPLOYMENT_ID: d.id,
        DRIFT_WINDOW: '60',
        PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const port = await new Promise<number>((ok, fail) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { listening?: number };
        if (msg.listening !== undefined) ok(msg.listening);
      } catch {
        // not a control line
      }
    });
    child.once('exit', (code) =>
      fail(new Error(`the demo server exited with code ${code} before listening`)),
    );
  });
  const base = `http://127.0.0.1:${port}`;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`demo server ${path}: HTTP ${res.status} ${await res.text()}`);
    return res;
  };
  return {
    async quote(customer, day) {
      const res = await post('/quote', { customer, features: featuresOf(day) });
      await res.arrayBuffer();
      const id = res.headers.get('x-mltrail-prediction-id');
      if (id === null) throw new Error('the demo server did not return x-mltrail-prediction-id');
      return id;
    },
    async reload(next, dep) {
      await post('/reload', {
        modelPath: next.onnxPath,
        profilePath: next.profilePath,
        modelVersion: next.model.version,
        deploymentId: dep.id,
      });
    },
    async flush() {
      await post('/flush', {});
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The drift records the serving process wrote: their ids and the spans that recorded them. */
function driftRecordsIn(dir: string): { id: string; spanContext: SpanContext | undefined }[] {
  const found: { id: string; spanContext: SpanContext | undefined }[] = [];
  for (const l of new JournalReader(dir).lines()) {
    if (!l.text.includes(EVENT_ML_DRIFT_DETECTED)) continue;
    const r = parseRecordLine(l.text, l);
    if (r.event !== EVENT_ML_DRIFT_DETECTED || r.body === '') continue;
    const body = JSON.parse(r.body) as Record<string, unknown>;
    found.push({
      id: String(body[ATTR_ML_DRIFT_ID]),
      spanContext: remoteSpanContext(r.trace_id ?? body.trace_id, r.span_id ?? body.span_id),
    });
  }
  return found;
}
