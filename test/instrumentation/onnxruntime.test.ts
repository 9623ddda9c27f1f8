import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, SpanStatusCode, trace } from '@opentelemetry/api';
import ort from 'onnxruntime-node';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { OnnxRuntimeInstrumentation } from '../../src/instrumentation/onnxruntime/index.js';
import { canonicalize } from '../../src/integrity/index.js';
import { buildLinearClassifierOnnx, readOnnxModelInfo } from '../../src/onnx/index.js';
import { HEX16, HEX32, ISO, type TrailHarness, trailHarness, UUID_V7 } from '../trail/harness.js';

const common = {
  'service.name': 'test-service',
  'deployment.environment.name': 'test',
  'ml.pipeline.name': 'unit',
};
const WEIGHTS = [0.8, -1.2, 0.05];
const BIAS = -0.3;

let modelPath: string;
let modelDigest: string;
let h: TrailHarness | undefined;
let instrumentation: OnnxRuntimeInstrumentation | undefined;

beforeAll(() => {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-onnx-'));
  modelPath = join(dir, 'linear.onnx');
  writeFileSync(
    modelPath,
    buildLinearClassifierOnnx({ weights: WEIGHTS, bias: BIAS, classes: ['no', 'yes'] }),
  );
  modelDigest = `sha256:${createHash('sha256').update(readFileSync(modelPath)).digest('hex')}`;
});

afterEach(async () => {
  instrumentation?.disable();
  instrumentation = undefined;
  await h?.trail.shutdown();
  h = undefined;
});

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** Audit records mirrored to the in-memory log exporter, parsed. */
function audit(harness: TrailHarness) {
  return harness.logs.getFinishedLogRecords().map((r) => ({
    eventName: r.eventName,
    severityText: r.severityText,
    body: JSON.parse(r.body as string) as Record<string, unknown>,
  }));
}

/** The spans of predictions (the unregistered-model warning has a span of its own). */
function predictSpans(harness: TrailHarness) {
  return harness.spans.getFinishedSpans().filter((s) => s.attributes['ml.prediction.id'] !== undefined);
}

async function instrumented(options: Parameters<typeof trailHarness>[0] = {}) {
  h = await trailHarness({ strict: true, ...options });
  instrumentation = new OnnxRuntimeInstrumentation({ trail: h.trail });
  instrumentation.setTracerProvider(h.tracerProvider);
  instrumentation.manuallyInstrument(ort);
  return h;
}

describe('buildLinearClassifierOnnx', () => {
  it('builds a model onnxruntime runs: sigmoid(x·w + b) per row', async () => {
    const session = await ort.InferenceSession.create(readFileSync(modelPath));
    expect(session.inputNames).toEqual(['features']);
    expect(session.outputNames).toEqual(['probability']);
    const x = [1, 2, 3, -1, 0, 4];
    const { probability } = await session.run({ features: new ort.Tensor('float32', x, [2, 3]) });
    expect(probability.dims).toEqual([2, 1]);
    const expected = [0, 1].map((r) =>
      sigmoid(x[r * 3] * 0.8 + x[r * 3 + 1] * -1.2 + x[r * 3 + 2] * 0.05 + BIAS),
    );
    const got = [...(probability.data as Float32Array)];
    for (const [i, v] of got.entries()) expect(v).toBeCloseTo(expected[i], 6);
  });

  it('builds a softmax model for several classes and reads its header', async () => {
    const bytes = buildLinearClassifierOnnx({
      weights: [
        [1, 0, 0],
        [0, 1, 0],
      ],
      bias: [0, 0, 0],
      inputName: 'x',
      outputName: 'p',
      producerName: 'demo',
    });
    expect(readOnnxModelInfo(bytes)).toEqual({ irVersion: 8, producerName: 'demo', opsets: ['ai.onnx:13'] });
    const session = await ort.InferenceSession.create(bytes);
    const { p } = await session.run({ x: new ort.Tensor('float32', [2, 0], [1, 2]) });
    const e = [Math.exp(2), 1, 1];
    const sum = e[0] + e[1] + e[2];
    expect([...(p.data as Float32Array)].map((v) => v.toFixed(5))).toEqual(
      e.map((v) => (v / sum).toFixed(5)),
    );
  });

  it('rejects inconsistent shapes with a specific message', () => {
    expect(() => buildLinearClassifierOnnx({ weights: [1, 2], bias: [0, 1] })).toThrow(
      'buildLinearClassifierOnnx: bias has 2 value(s) but the weights have 1 column(s)',
    );
    expect(() => buildLinearClassifierOnnx({ weights: [[1, 2], [3]], bias: [0, 0] })).toThrow(
      'buildLinearClassifierOnnx: weights row 1 has 1 column(s); expected 2',
    );
    expect(() => buildLinearClassifierOnnx({ weights: [1, Number.NaN], bias: 0 })).toThrow(
      'weights row 1 has NaN',
    );
  });
});

describe('OnnxRuntimeInstrumentation (real onnxruntime-node)', () => {
  it('an unregistered model: prediction span and record whole, one ml.model.unregistered warning', async () => {
    const harness = await instrumented();
    const session = await ort.InferenceSession.create(modelPath);
    const features = new ort.Tensor('float32', [1, 2, 3], [1, 3]);
    const out1 = await session.run({ features });
    const out2 = await session.run({ features });
    const p = (out1.probability.data as Float32Array)[0];
    expect(p).toBeCloseTo(sigmoid(0.8 - 2.4 + 0.15 - 0.3), 6);
    expect((out2.probability.data as Float32Array)[0]).toBe(p);

    const spans = predictSpans(harness);
    expect(spans).toHaveLength(2);
    const inputDigest = `sha256:${createHash('sha256')
      .update(canonicalize({ features: { data: [1, 2, 3], dims: [1, 3], type: 'float32' } }))
      .digest('hex')}`;
    expect(spans[0].attributes).toEqual({
      'ml.stage.name': 'predict',
      'ml.prediction.id': expect.stringMatching(UUID_V7),
      'ml.model.digest': modelDigest,
      'ml.model.format': 'onnx',
      'ml.prediction.registered': false,
      'ml.prediction.input_names': ['features'],
      'ml.prediction.input_shapes': ['features:1x3'],
      'ml.prediction.output_names': ['probability'],
      'ml.prediction.output_dtypes': ['probability:float32'],
      'ml.prediction.batch_size': 1,
      'ml.prediction.input_digest': inputDigest,
      'ml.prediction.latency_ms': expect.any(Number),
      'ml.prediction.output_score': p,
    });

    const recs = audit(harness);
    expect(recs.map((r) => [r.eventName, r.severityText])).toEqual([
      ['ml.model.unregistered', 'WARN'],
      ['ml.prediction', 'INFO'],
      ['ml.prediction', 'INFO'],
    ]);
    expect(recs[0].body).toEqual({
      ...common,
      'event.name': 'ml.model.unregistered',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'WARN',
      'ml.model.digest': modelDigest,
      'ml.model.format': 'onnx',
      'ml.model.uri': modelPath,
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
    });
    const { 'ml.stage.name': _stage, ...spanFields } = spans[0].attributes;
    expect(recs[1].body).toEqual({
      ...common,
      ...spanFields,
      'event.name': 'ml.prediction',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: spans[0].spanContext().traceId,
      span_id: spans[0].spanContext().spanId,
    });
    expect(recs[2].body['ml.prediction.id']).not.toBe(recs[1].body['ml.prediction.id']);
    // The journal holds the same records, chained.
    await harness.trail.flush();
    expect(harness.journal().map((l) => l.event)).toEqual([
      'ml.model.unregistered',
      'ml.prediction',
      'ml.prediction',
    ]);
  });

  it('a registered and deployed model: the prediction names the version and the deployment', async () => {
    const harness = await instrumented();
    const model = await harness.trail.register({
      name: 'rain',
      version: '4',
      file: modelPath,
      format: 'onnx',
    });
    expect(model.digest).toBe(modelDigest);
    const dep = harness.trail.deploy({ model, environment: 'test' });
    const session = await ort.InferenceSession.create(readFileSync(modelPath));
    await session.run({ features: new ort.Tensor('float32', [0, 0, 0, 1, 1, 1], [2, 3]) });

    const span = predictSpans(harness)[0];
    expect(span.links.map((l) => l.context.spanId)).toEqual([dep.spanContext!.spanId]);
    const pred = audit(harness).find((r) => r.eventName === 'ml.prediction')!;
    expect(pred.body).toEqual({
      ...common,
      'event.name': 'ml.prediction',
      timestamp: expect.stringMatching(ISO),
      severity_text: 'INFO',
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.prediction.id': expect.stringMatching(UUID_V7),
      'ml.model.name': 'rain',
      'ml.model.version': '4',
      'ml.model.digest': modelDigest,
      'ml.model.format': 'onnx',
      'ml.deployment.id': dep.id,
      'ml.prediction.registered': true,
      'ml.prediction.input_names': ['features'],
      'ml.prediction.input_shapes': ['features:2x3'],
      'ml.prediction.output_names': ['probability'],
      'ml.prediction.output_dtypes': ['probability:float32'],
      'ml.prediction.batch_size': 2,
      'ml.prediction.input_digest': expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      'ml.prediction.latency_ms': expect.any(Number),
    });
    expect(audit(harness).some((r) => r.eventName === 'ml.model.unregistered')).toBe(false);
  });

  it('runs of one session follow the registry, the feeds and the capture policy from run to run', async () => {
    // The instrumentation prepares a session's fields once and reuses them while runs look alike: a
    // registration, another batch size or another policy between two runs must still show in the next one.
    const harness = await instrumented();
    const session = await ort.InferenceSession.create(modelPath);
    const one = new ort.Tensor('float32', [1, 2, 3], [1, 3]);
    const two = new ort.Tensor('float32', [1, 2, 3, 4, 5, 6], [2, 3]);
    await session.run({ features: one });
    await session.run({ features: one });
    const model = await harness.trail.register({
      name: 'rain',
      version: '5',
      file: modelPath,
      format: 'onnx',
    });
    await session.run({ features: one });
    await session.run({ features: two });
    instrumentation!.setConfig({ ...instrumentation!.getConfig(), capture: 'full' });
    await session.run({ features: two });
    await session.run({ features: one });

    const preds = audit(harness)
      .filter((r) => r.eventName === 'ml.prediction')
      .map((r) => r.body);
    const pick = (b: Record<string, unknown>) => ({
      version: b['ml.model.version'],
      registered: b['ml.prediction.registered'],
      shapes: b['ml.prediction.input_shapes'],
      batch: b['ml.prediction.batch_size'],
      outputs: b['ml.prediction.output_dtypes'],
      input: b['ml.prediction.input'],
    });
    const unregistered = { version: undefined, registered: false };
    const registered = { version: '5', registered: true };
    const outputs = ['probability:float32'];
    const x1 = { shapes: ['features:1x3'], batch: 1, outputs };
    const x2 = { shapes: ['features:2x3'], batch: 2, outputs };
    expect(preds.map(pick)).toEqual([
      { ...unregistered, ...x1, input: undefined },
      { ...unregistered, ...x1, input: undefined },
      { ...registered, ...x1, input: undefined },
      { ...registered, ...x2, input: undefined },
      {
        ...registered,
        ...x2,
        input: canonicalize({ features: { data: [1, 2, 3, 4, 5, 6], dims: [2, 3], type: 'float32' } }),
      },
      {
        ...registered,
        ...x1,
        input: canonicalize({ features: { data: [1, 2, 3], dims: [1, 3], type: 'float32' } }),
      },
    ]);
    expect(model.digest).toBe(modelDigest);
    expect(preds.every((b) => b['ml.model.digest'] === modelDigest)).toBe(true);
  });

  it('a failing run is recorded as ml.stage.failed and rethrows the original error object', async () => {
    // A recorder between onnxruntime and the instrumentation keeps the error object onnxruntime threw.
    const proto = (ort.InferenceSession as unknown as { prototype: object }).prototype as {
      run: (...a: unknown[]) => Promise<unknown>;
    };
    const realRun = proto.run;
    let thrown: unknown;
    proto.run = async function recorded(this: unknown, ...args: unknown[]) {
      try {
        return await Reflect.apply(realRun, this, args);
      } catch (err) {
        thrown = err;
        throw err;
      }
    };
    try {
      const harness = await instrumented();
      const session = await ort.InferenceSession.create(modelPath);
      const caught = await session.run({ wrong_name: new ort.Tensor('float32', [1, 2, 3], [1, 3]) }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(thrown).toBeInstanceOf(Error);
      expect(caught).toBe(thrown);

      const span = predictSpans(harness)[0];
      expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: (thrown as Error).message });
      const failed = audit(harness).find((r) => r.eventName === 'ml.stage.failed')!;
      expect(failed.severityText).toBe('ERROR');
      expect(failed.body).toEqual({
        ...common,
        'event.name': 'ml.stage.failed',
        timestamp: expect.stringMatching(ISO),
        severity_text: 'ERROR',
        trace_id: span.spanContext().traceId,
        span_id: span.spanContext().spanId,
        'ml.stage.name': 'predict',
        'ml.prediction.id': expect.stringMatching(UUID_V7),
        'ml.prediction.latency_ms': expect.any(Number),
        'ml.model.digest': modelDigest,
        'error.type': 'Error',
        'exception.message': (thrown as Error).message,
      });
    } finally {
      instrumentation?.disable();
      proto.run = realRun;
    }
  });

  it('capture "full" records the input and output tensors; "digest" (default) records no values', async () => {
    const harness = await instrumented({ capture: 'full' });
    const session = await ort.InferenceSession.create(modelPath);
    const out = await session.run({ features: new ort.Tensor('float32', [0.5, 0.25, 2], [1, 3]) });
    const body = audit(harness).find((r) => r.eventName === 'ml.prediction')!.body;
    expect(JSON.parse(body['ml.prediction.input'] as string)).toEqual({
      features: { data: [0.5, 0.25, 2], dims: [1, 3], type: 'float32' },
    });
    expect(JSON.parse(body['ml.prediction.output'] as string)).toEqual({
      probability: { data: [...(out.probability.data as Float32Array)], dims: [1, 1], type: 'float32' },
    });
  });

  it('default mode: a run is recorded at the end of the turn, under the caller’s span, and its decision links to it', async () => {
    const harness = await instrumented({ strict: false });
    const session = await ort.InferenceSession.create(modelPath);
    const server = harness.tracerProvider.getTracer('app').startSpan('POST /quote');
    const features = new ort.Tensor('float32', [1, 2, 3], [1, 3]);
    const atReturn = await context.with(trace.setSpan(context.active(), server), () =>
      harness.trail.withPredictionScope(async () => {
        await session.run({ features });
        const [id] = harness.trail.currentPredictionIds();
        const made = audit(harness).filter((r) => r.eventName === 'ml.prediction').length;
        harness.trail.decide({ predictionId: id, outcome: 'quote' });
        return { id, made };
      }),
    );
    server.end();
    // The app reuses its input tensor before the records are made: the digest is of what was run.
    (features.data as Float32Array)[0] = 9;
    expect(atReturn.made).toBe(0);
    await harness.trail.flush();

    const recs = audit(harness);
    expect(recs.map((r) => r.eventName)).toEqual(['ml.model.unregistered', 'ml.prediction', 'ml.decision']);
    expect(recs[1].body['ml.prediction.id']).toBe(atReturn.id);
    expect(recs[1].body['ml.prediction.input_digest']).toBe(
      `sha256:${createHash('sha256')
        .update(canonicalize({ features: { data: [1, 2, 3], dims: [1, 3], type: 'float32' } }))
        .digest('hex')}`,
    );
    const [span] = predictSpans(harness).filter((s) => s.name === 'ml.predict');
    const decision = harness.spans.getFinishedSpans().find((s) => s.name === 'ml.decide');
    expect(span.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    expect(recs[1].body.span_id).toBe(span.spanContext().spanId);
    expect(decision?.parentSpanContext?.spanId).toBe(server.spanContext().spanId);
    expect(decision?.links.map((l) => l.context.spanId)).toEqual([span.spanContext().spanId]);
  });

  it('predictions inside a prediction scope are collected; disable() restores the original methods', async () => {
    const harness = await instrumented();
    const session = await ort.InferenceSession.create(modelPath);
    const ids = await harness.trail.withPredictionScope(async () => {
      await session.run({ features: new ort.Tensor('float32', [1, 1, 1], [1, 3]) });
      await session.run({ features: new ort.Tensor('float32', [2, 2, 2], [1, 3]) });
      return [...harness.trail.currentPredictionIds()];
    });
    const recorded = audit(harness)
      .filter((r) => r.eventName === 'ml.prediction')
      .map((r) => r.body['ml.prediction.id']);
    expect(ids).toEqual(recorded);
    instrumentation!.disable();
    await session.run({ features: new ort.Tensor('float32', [1, 1, 1], [1, 3]) });
    expect(audit(harness).filter((r) => r.eventName === 'ml.prediction')).toHaveLength(2);
  });
});
