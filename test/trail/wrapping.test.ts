import { afterEach, describe, expect, it } from 'vitest';
import { TrailValidationError } from '../../src/trail/index.js';
import { type TrailHarness, trailHarness } from './harness.js';

let h: TrailHarness;
afterEach(async () => {
  await h?.trail.shutdown();
});

/** Calls `f` the way a host would and captures everything observable about the outcome. */
async function observe(f: (...a: unknown[]) => unknown, thisArg: unknown, ...args: unknown[]) {
  let returned: unknown;
  let thrown: unknown;
  let isPromise = false;
  try {
    returned = f.apply(thisArg, args);
    isPromise = returned instanceof Promise;
    if (isPromise) returned = await returned;
  } catch (e) {
    thrown = e;
    returned = undefined;
  }
  return { returned, thrown, isPromise };
}

describe('wrapped functions behave exactly as the originals', () => {
  const error = new RangeError('nope');
  const model = {
    factor: 3,
    syncScore(this: { factor: number }, x: number) {
      return { self: this, value: x * this.factor };
    },
    async asyncScore(this: { factor: number }, x: number) {
      await new Promise((r) => setImmediate(r));
      return { self: this, value: x * this.factor };
    },
    throwing(this: unknown) {
      throw error;
    },
    async rejecting(this: unknown) {
      throw error;
    },
  };

  for (const stage of ['predict', 'train', 'transform', 'evaluate'] as const) {
    it(`${stage}(): same return, same error object, same this, same sync/async`, async () => {
      h = await trailHarness();
      const wrap = <F extends (...a: never[]) => unknown>(fn: F): F => {
        const t = h.trail;
        switch (stage) {
          case 'predict':
            return t.predict({}, fn as never) as unknown as F;
          case 'train':
            return t.train({ model: 'm', inputs: [] }, fn as never) as unknown as F;
          case 'transform':
            return t.transform({ name: 't', inputs: [], output: { name: 'o' } }, fn as never) as unknown as F;
          case 'evaluate':
            return t.evaluate(
              {
                dataset: {
                  kind: 'dataset',
                  id: 'd',
                  name: 'd',
                  version: '1',
                  digest: undefined,
                  rowCount: undefined,
                  spanContext: undefined,
                },
                metric: 'acc',
              },
              fn as never,
            ) as unknown as F;
        }
      };
      for (const name of ['syncScore', 'asyncScore', 'throwing', 'rejecting'] as const) {
        const original = model[name] as (...a: unknown[]) => unknown;
        const plain = await observe(original, model, 2);
        const wrapped = await observe(wrap(original as never) as (...a: unknown[]) => unknown, model, 2);
        expect(wrapped.isPromise, name).toBe(plain.isPromise);
        expect(wrapped.thrown, name).toBe(plain.thrown);
        expect(wrapped.returned, name).toEqual(plain.returned);
        if (plain.returned !== undefined) {
          expect((wrapped.returned as { self: unknown }).self, name).toBe(model);
        }
      }
      // Records were written for every call, including the failing ones.
      await h.trail.flush();
      const events = h.logs.getFinishedLogRecords().map((r) => r.eventName);
      expect(events.filter((e) => e === 'ml.stage.failed')).toHaveLength(2);
      expect(events).toHaveLength(4);
    });
  }
});

describe('bad input', () => {
  it('default mode: records the event with the violation attached and never throws', async () => {
    h = await trailHarness();
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const trainModel = h.trail.train(
      {
        model: 'm',
        inputs: [],
        seed: 'seven' as unknown as number,
        hyperparameters: { cyclic, big: 10n as unknown as number, nan: Number.NaN },
      },
      () => 'ok',
    );
    expect(trainModel()).toBe('ok');
    expect(() =>
      h.trail.decide({ predictionId: 'x'.repeat(100_000), outcome: 42 as unknown as string }),
    ).not.toThrow();
    await expect(h.trail.dataset({ name: undefined as unknown as string })).resolves.toBeDefined();
    const recs = h.logs.getFinishedLogRecords().map((r) => JSON.parse(r.body as string));
    expect(recs).toHaveLength(3);
    const train = recs[0];
    expect(train['ml.training.seed']).toBe('seven');
    expect(JSON.parse(train['ml.training.hyperparameters'])).toEqual({
      big: '10',
      cyclic: { a: 1, self: '[Circular]' },
      nan: 'NaN',
    });
    const trainIssues = JSON.parse(train['mltrail.validation.errors']) as { path: string[] }[];
    expect(trainIssues.map((i) => i.path.join('.'))).toContain('ml.training.seed');
    const decide = recs[1];
    const decideIssues = JSON.parse(decide['mltrail.validation.errors']) as {
      path: string[];
      code: string;
    }[];
    expect(decideIssues.map((i) => i.path.join('.'))).toEqual(
      expect.arrayContaining(['ml.prediction.id', 'ml.decision.outcome']),
    );
    expect(decide['ml.prediction.id'].length).toBeLessThan(100_000);
    const dataset = recs[2];
    expect(JSON.parse(dataset['mltrail.validation.errors']).length).toBeGreaterThan(0);
  });

  it('strict mode: a typed error naming the event, the field path and what was expected', async () => {
    h = await trailHarness({ strict: true });
    let caught: unknown;
    try {
      h.trail.decide({ predictionId: 'p', outcome: 42 as unknown as string });
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(TrailValidationError);
    const err = caught as TrailValidationError;
    expect(err.event).toBe('ml.decision');
    expect(err.issues).toEqual([
      expect.objectContaining({ path: ['ml.decision.outcome'], code: 'invalid_type' }),
    ]);
    expect(err.message).toMatch(/^mltrail: invalid ml\.decision event: ml\.decision\.outcome: .*string/);
  });
});
