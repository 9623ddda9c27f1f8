import * as tf from '@tensorflow/tfjs';
import { afterEach, describe, expect, it } from 'vitest';
import { TfjsInstrumentation, tfjsLayersModelDigest } from '../../src/instrumentation/tfjs/index.js';
import { HEX16, HEX32, ISO, type TrailHarness, trailHarness, UUID_V7 } from '../trail/harness.js';

const common = {
  'service.name': 'test-service',
  'deployment.environment.name': 'test',
  'ml.pipeline.name': 'unit',
};

let h: TrailHarness | undefined;
let instrumentation: TfjsInstrumentation | undefined;

afterEach(async () => {
  instrumentation?.disable();
  instrumentation = undefined;
  await h?.trail.shutdown();
  h = undefined;
});

/** A one-layer logistic model with fixed weights: sigmoid(x·w + b). */
function buildModel(): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.dense({ units: 1, inputShape: [3], activation: 'sigmoid' }));
  model.setWeights([tf.tensor2d([[0.8], [-1.2], [0.05]]), tf.tensor1d([-0.3])]);
  return model;
}

/** Saves a model to memory and loads it back through the in-memory IO handler, as an app would load one. */
async function roundTrip(model: tf.LayersModel): Promise<tf.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      saved = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return tf.loadLayersModel(tf.io.fromMemory(saved!));
}

async function instrumented() {
  await tf.setBackend('cpu');
  h = await trailHarness({ strict: true });
  instrumentation = new TfjsInstrumentation({ trail: h.trail });
  instrumentation.setTracerProvider(h.tracerProvider);
  instrumentation.manuallyInstrument(tf);
  return h;
}

function audit(harness: TrailHarness) {
  return harness.logs.getFinishedLogRecords().map((r) => ({
    eventName: r.eventName,
    body: JSON.parse(r.body as string) as Record<string, unknown>,
  }));
}

describe('TfjsInstrumentation (real @tensorflow/tfjs, CPU backend)', () => {
  it('a model loaded through an IO handler and registered: one record per predict, whole', async () => {
    const harness = await instrumented();
    const built = buildModel();
    const digest = tfjsLayersModelDigest(built);
    const loaded = await roundTrip(built);
    // The digest depends on architecture and weights only: the loaded copy has the same one.
    expect(tfjsLayersModelDigest(loaded)).toBe(digest);
    const version = await harness.trail.register({
      name: 'rain-tf',
      version: '1',
      digest,
      format: 'tfjs-layers',
    });
    const dep = harness.trail.deploy({ model: version, environment: 'test' });

    const out = loaded.predict(tf.tensor2d([[1, 2, 3]])) as tf.Tensor;
    const p = (out.dataSync() as Float32Array)[0];
    expect(p).toBeCloseTo(1 / (1 + Math.exp(-(0.8 - 2.4 + 0.15 - 0.3))), 5);

    const preds = audit(harness).filter((r) => r.eventName === 'ml.prediction');
    expect(preds).toHaveLength(1); // Sequential.predict → LayersModel.predict is one prediction
    const span = harness.spans
      .getFinishedSpans()
      .find((s) => s.attributes['ml.prediction.id'] !== undefined)!;
    expect(preds[0].body).toEqual({
      ...common,
      'event.name': 'ml.prediction',
      severity_text: 'INFO',
      timestamp: expect.stringMatching(ISO),
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.prediction.id': expect.stringMatching(UUID_V7),
      'ml.model.name': 'rain-tf',
      'ml.model.version': '1',
      'ml.model.digest': digest,
      'ml.model.format': 'tfjs-layers',
      'ml.deployment.id': dep.id,
      'ml.prediction.registered': true,
      // A Sequential names its tensors by its symbolic input and output (tfjs numbers repeated layer names).
      'ml.prediction.input_names': [loaded.inputs[0].name],
      'ml.prediction.input_shapes': [`${loaded.inputs[0].name}:1x3`],
      'ml.prediction.output_names': [loaded.outputs[0].name],
      'ml.prediction.output_dtypes': [`${loaded.outputs[0].name}:float32`],
      'ml.prediction.batch_size': 1,
      'ml.prediction.input_digest': expect.stringMatching(/^sha256:[0-9a-f]{64}$/),
      'ml.prediction.latency_ms': expect.any(Number),
      'ml.prediction.output_score': p,
    });
    const { 'ml.stage.name': stage, ...spanFields } = span.attributes;
    expect(stage).toBe('predict');
    expect(preds[0].body).toMatchObject(spanFields);
  });

  it('an unregistered model built in code: digest, one warning, failures rethrown unchanged', async () => {
    const harness = await instrumented();
    const model = buildModel();
    model.predict(tf.tensor2d([[0, 0, 0]]));
    let thrown: unknown;
    try {
      model.predict(tf.tensor2d([[1, 2]])); // wrong width
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(Error);
    const recs = audit(harness);
    expect(recs.map((r) => r.eventName)).toEqual([
      'ml.model.unregistered',
      'ml.prediction',
      'ml.stage.failed',
    ]);
    expect(recs[0].body['ml.model.digest']).toBe(tfjsLayersModelDigest(model));
    expect(recs[1].body['ml.prediction.registered']).toBe(false);
    expect(recs[2].body).toEqual({
      ...common,
      'event.name': 'ml.stage.failed',
      severity_text: 'ERROR',
      timestamp: expect.stringMatching(ISO),
      trace_id: expect.stringMatching(HEX32),
      span_id: expect.stringMatching(HEX16),
      'ml.stage.name': 'predict',
      'ml.prediction.id': expect.stringMatching(UUID_V7),
      'ml.prediction.latency_ms': expect.any(Number),
      'ml.model.digest': tfjsLayersModelDigest(model),
      'error.type': (thrown as Error).name,
      'exception.message': (thrown as Error).message,
    });
    instrumentation!.disable();
    model.predict(tf.tensor2d([[0, 0, 0]]));
    expect(audit(harness)).toHaveLength(3);
  });
});

/** A graph model (the TF.js graph format) computing sigmoid(x · w), loaded from memory. */
async function loadGraph(): Promise<tf.GraphModel> {
  const w = new Float32Array([0.8, -1.2, 0.05]);
  const modelTopology = {
    node: [
      {
        name: 'x',
        op: 'Placeholder',
        attr: {
          dtype: { type: 'DT_FLOAT' },
          shape: { shape: { dim: [{ size: '-1' }, { size: '3' }] } },
        },
      },
      {
        name: 'w',
        op: 'Const',
        attr: {
          dtype: { type: 'DT_FLOAT' },
          value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '3' }, { size: '1' }] } } },
        },
      },
      {
        name: 'logit',
        op: 'MatMul',
        input: ['x', 'w'],
        attr: { transpose_a: { b: false }, transpose_b: { b: false }, T: { type: 'DT_FLOAT' } },
      },
      { name: 'p', op: 'Sigmoid', input: ['logit'], attr: { T: { type: 'DT_FLOAT' } } },
    ],
    versions: { producer: 1 },
  };
  return tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology,
      weightSpecs: [{ name: 'w', shape: [3, 1], dtype: 'float32' }],
      weightData: w.buffer,
    }),
  );
}

describe('TfjsInstrumentation: GraphModel', () => {
  it('execute and executeAsync are predictions with the graph digest and node names', async () => {
    const harness = await instrumented();
    const graph = await loadGraph();
    const sync = graph.execute(tf.tensor2d([[1, 2, 3]])) as tf.Tensor;
    const async = (await graph.executeAsync(tf.tensor2d([[1, 2, 3]]))) as tf.Tensor;
    const p = (sync.dataSync() as Float32Array)[0];
    expect(p).toBeCloseTo(1 / (1 + Math.exp(-(0.8 - 2.4 + 0.15))), 5);
    expect((async.dataSync() as Float32Array)[0]).toBe(p);

    const recs = audit(harness);
    expect(recs.map((r) => r.eventName)).toEqual(['ml.model.unregistered', 'ml.prediction', 'ml.prediction']);
    for (const r of recs.slice(1)) {
      expect(r.body).toMatchObject({
        'ml.model.format': 'tfjs-graph',
        'ml.model.digest': recs[0].body['ml.model.digest'],
        'ml.prediction.registered': false,
        'ml.prediction.input_names': ['x'],
        'ml.prediction.input_shapes': ['x:1x3'],
        'ml.prediction.output_names': ['p'],
        'ml.prediction.output_dtypes': ['p:float32'],
        'ml.prediction.output_score': p,
      });
    }
    expect(recs[0].body['ml.model.digest']).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
