import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { context, DiagLogLevel, diag, type SpanContext, trace } from '@opentelemetry/api';
import { hrTimeToMilliseconds } from '@opentelemetry/core';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import type { PredictSpec } from '../../src/trail/index.js';
import { OPAQUE_CALLEE } from '../../src/trail/wrap.js';
import { type TrailHarness, trailHarness } from './harness.js';

/**
 * Predictions of a callee that runs no JavaScript on the app's behalf (OPAQUE_CALLEE, set by the
 * onnxruntime instrumentation) are recorded at the end of the event-loop turn in the default mode: the
 * call's path does not make the span or the record. What must hold at the call, and what the queue must
 * never do (reorder, lose, duplicate, throw into the host), is checked here.
 */

type Tensor = { data: number[] };
type Feeds = { x: Tensor };

let h: TrailHarness | undefined;
afterEach(async () => {
  await h?.trail.shutdown();
  h = undefined;
});

/** A native-like inference call: resolves later, runs no app code. */
function infer(feeds: Feeds): Promise<{ y: Tensor }> {
  const sum = feeds.x.data.reduce((a, b) => a + b, 0);
  return new Promise((r) => setTimeout(() => r({ y: { data: [sum] } }), 1));
}

function opaqueSpec(over: Partial<PredictSpec<[Feeds], Promise<{ y: Tensor }>>> = {}) {
  return {
    input: (f: Feeds) => f.x.data,
    output: (r: { y: Tensor }) => ({ score: r.y.data[0] }),
    outputContent: (r: { y: Tensor }) => r.y.data,
    ...over,
    [OPAQUE_CALLEE]: true,
  } as PredictSpec<[Feeds], Promise<{ y: Tensor }>>;
}

const nextTurn = () => new Promise<void>((r) => setImmediate(r));
const events = (hh: TrailHarness) => hh.logs.getFinishedLogRecords().map((r) => r.eventName);
const bodies = (hh: TrailHarness) =>
  hh.logs.getFinishedLogRecords().map((r) => JSON.parse(r.body as string) as Record<string, unknown>);
const spanNamed = (hh: TrailHarness, name: string) =>
  hh.spans.getFinishedSpans().filter((s) => s.name === name);

/** One request's work, as the HTTP glue and a handler do it: a server span, a prediction, a decision. */
async function request(hh: TrailHarness, predict: (f: Feeds) => Promise<{ y: Tensor }>, feeds: Feeds) {
  const trail = hh.trail;
  const tracer = hh.tracerProvider.getTracer('app');
  const server = tracer.startSpan('POST /quote');
  return context.with(trace.setSpan(context.active(), server), () =>
    trail.withPredictionScope(async () => {
      const before = Date.now();
      const out = await predict(feeds);
      const after = Date.now();
      const [id] = trail.currentPredictionIds();
      const decision = trail.decide({ predictionId: id, outcome: 'approve', attributions: { x: 1 } });
      server.end();
      return { id, out, decision, server: server.spanContext(), before, after };
    }),
  );
}

describe('queued predictions (default mode, a callee that runs no JavaScript)', () => {
  it('are made at the end of the event-loop turn, under the call’s context, with the call’s times', async () => {
    h = await trailHarness({ strict: false, redactor: false });
    let activeInside: SpanContext | undefined;
    const predict = h.trail.predict(opaqueSpec(), (f: Feeds) => {
      activeInside = trace.getActiveSpan()?.spanContext();
      return infer(f);
    });
    const r = await request(h, predict, { x: { data: [1, 2] } });
    // At the call: the id exists and is in the scope (the glue's header), but no span or record yet.
    expect(r.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(events(h)).toEqual([]);
    expect(spanNamed(h, 'ml.predict')).toEqual([]);
    // Nothing inside the callee could see a span of its own: the caller's span was the active one.
    expect(activeInside?.spanId).toBe(r.server.spanId);

    await nextTurn();
    expect(events(h)).toEqual(['ml.prediction', 'ml.decision']);
    const [prediction] = spanNamed(h, 'ml.predict') as ReadableSpan[];
    const [decision] = spanNamed(h, 'ml.decide') as ReadableSpan[];
    // The inference span's parent is the server span, and the decision's too; the decision links to it.
    expect(prediction.parentSpanContext?.spanId).toBe(r.server.spanId);
    expect(prediction.spanContext().traceId).toBe(r.server.traceId);
    expect(decision.parentSpanContext?.spanId).toBe(r.server.spanId);
    expect(decision.links.map((l) => l.context.spanId)).toEqual([prediction.spanContext().spanId]);
    // The span covers the call (its start before the call returned, its end after the callee settled),
    // not the moment it was made; its duration is the recorded latency.
    const start = hrTimeToMilliseconds(prediction.startTime);
    const end = hrTimeToMilliseconds(prediction.endTime);
    expect(start).toBeGreaterThanOrEqual(r.before - 1);
    expect(end).toBeLessThanOrEqual(r.after + 1);
    const latency = prediction.attributes['ml.prediction.latency_ms'] as number;
    expect(end - start).toBeCloseTo(latency, 0);
    // The records name those spans and the call's time.
    const [pBody, dBody] = bodies(h);
    expect(pBody['ml.prediction.id']).toBe(r.id);
    expect(pBody.span_id).toBe(prediction.spanContext().spanId);
    expect(dBody.span_id).toBe(decision.spanContext().spanId);
    expect(dBody['ml.prediction.id']).toBe(r.id);
    expect(Date.parse(pBody.timestamp as string)).toBeLessThanOrEqual(r.after);
  });

  it('keep the chain in call order: queued records go before any record made later', async () => {
    h = await trailHarness({ strict: false, redactor: false });
    const predict = h.trail.predict(opaqueSpec(), infer);
    await h.trail.withPredictionScope(async () => {
      await predict({ x: { data: [1] } });
      const [id] = h?.trail.currentPredictionIds() ?? [];
      h?.trail.decide({ predictionId: id, outcome: 'a' });
      h?.trail.feedback({ predictionId: id, groundTruth: 'yes' });
      h?.trail.recordDrift({ feature: 'x', score: 0.5 });
      // deploy returns its span context: it is made at once, after what is queued.
      h?.trail.deploy({
        environment: 'test',
        model: {
          kind: 'model',
          name: 'm',
          version: '1',
          digest: undefined,
          runId: undefined,
          spanContext: undefined,
        },
      });
      await predict({ x: { data: [2] } });
    });
    await h.trail.flush();
    const journal = h.journal();
    expect(journal.map((r) => r.event)).toEqual([
      'ml.prediction',
      'ml.decision',
      'ml.feedback',
      'ml.drift.detected',
      'ml.deployment.completed',
      'ml.prediction',
    ]);
    expect(journal.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('read the inputs at the call and the result when it settles, not when the record is made', async () => {
    h = await trailHarness({ strict: false, redactor: false, capture: 'full' });
    const predict = h.trail.predict(opaqueSpec(), infer);
    const feeds = { x: { data: [1, 2, 3] } };
    const out = await predict(feeds);
    // The app reuses its tensors before the end of the turn.
    feeds.x.data[0] = 100;
    out.y.data[0] = -1;
    await nextTurn();
    const [body] = bodies(h);
    expect(body['ml.prediction.input']).toBe('[1,2,3]');
    expect(body['ml.prediction.output']).toBe('[6]');
    expect(body['ml.prediction.output_score']).toBe(6);
  });

  it('are drained by flush() and shutdown(): nothing is lost or written twice', async () => {
    h = await trailHarness({ strict: false, redactor: false });
    const predict = h.trail.predict(opaqueSpec(), infer);
    await predict({ x: { data: [1] } });
    await h.trail.flush();
    expect(h.journal()).toHaveLength(1);
    await predict({ x: { data: [2] } });
    h.trail.decide({ predictionId: 'p', outcome: 'a' });
    const report = await h.trail.shutdown();
    expect(report.lost).toBe(0);
    await nextTurn();
    const journal = h.journal().filter((r) => r.event !== 'mltrail.checkpoint');
    expect(journal.map((r) => r.seq)).toEqual([0, 1, 2]);
    expect(events(h)).toEqual(['ml.prediction', 'ml.prediction', 'ml.decision']);
  });

  it('are bounded: past 128 queued items the queue is written at once', async () => {
    h = await trailHarness({ strict: false, redactor: false });
    const predict = h.trail.predict(opaqueSpec(), (f: Feeds) => Promise.resolve({ y: f.x }));
    await Promise.all(Array.from({ length: 200 }, (_, i) => predict({ x: { data: [i] } })));
    // Still in the turn the calls settled in: at least one full batch is written already.
    expect(events(h).length).toBeGreaterThanOrEqual(128);
    expect(events(h).length).toBeLessThan(200);
    await nextTurn();
    const scores = bodies(h).map((b) => b['ml.prediction.output_score']);
    expect(scores).toEqual(Array.from({ length: 200 }, (_, i) => i));
  });

  it('never throw into the host: a failing span or record goes to diag and the rest is written', async () => {
    const errors: string[] = [];
    diag.setLogger(
      {
        error: (m: string) => errors.push(m),
        warn: () => undefined,
        info: () => undefined,
        debug: () => undefined,
        verbose: () => undefined,
      },
      { logLevel: DiagLogLevel.ERROR, suppressOverrideMessage: true },
    );
    try {
      h = await trailHarness({ strict: false, redactor: false });
      const provider = h.tracerProvider;
      const tracer = provider.getTracer('mltrail');
      const startSpan = tracer.startSpan.bind(tracer);
      let fail = true;
      // The first queued span cannot be started (a broken SDK); the one after it can.
      tracer.startSpan = ((...a: Parameters<typeof startSpan>) => {
        if (a[0] === 'ml.predict' && fail) {
          fail = false;
          throw new Error('no span today');
        }
        return startSpan(...a);
      }) as typeof tracer.startSpan;
      // Fields the record cannot be made with: the queued work throws past the trail's own guards.
      const bad = opaqueSpec();
      Object.defineProperty(bad, 'fields', {
        get() {
          throw new Error('bad fields');
        },
      });
      const predict = h.trail.predict(bad, infer);
      const ok = h.trail.predict(opaqueSpec(), infer);
      await predict({ x: { data: [1] } });
      await ok({ x: { data: [2] } });
      await nextTurn();
      expect(errors.some((e) => e.includes('could not start a span'))).toBe(true);
      expect(errors.some((e) => e.includes('recording the predict stage failed'))).toBe(true);
      // The second prediction is recorded whole, with its span.
      expect(bodies(h).map((b) => b['ml.prediction.output_score'])).toEqual([2]);
      expect(spanNamed(h, 'ml.predict').map((s) => s.attributes['ml.prediction.output_score'])).toEqual([2]);
    } finally {
      diag.disable();
    }
  });

  it('a failed call is recorded when it settles, after what was queued', async () => {
    h = await trailHarness({ strict: false, redactor: false });
    const ok = h.trail.predict(opaqueSpec(), infer);
    const failing = h.trail.predict(opaqueSpec(), () => Promise.reject(new Error('session gone')));
    await ok({ x: { data: [1] } });
    await expect(failing({ x: { data: [1] } })).rejects.toThrow('session gone');
    expect(events(h)).toEqual(['ml.prediction', 'ml.stage.failed']);
  });

  it.each([
    ['strict', { strict: true }],
    ['fail-closed', { strict: false, failClosed: true }],
  ])('%s mode records when the call settles, as before', async (_, options) => {
    h = await trailHarness({ redactor: false, ...options });
    const predict = h.trail.predict(opaqueSpec(), infer);
    await predict({ x: { data: [1] } });
    expect(events(h)).toEqual(['ml.prediction']);
  });
});

describe('queued predictions at process exit', () => {
  it('a process that exits without shutdown() hands queued records to the journal, which reports them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-queued-exit-'));
    const dist = (p: string) => pathToFileURL(resolve('dist', p)).href;
    const script = `
      import { createTrail } from ${JSON.stringify(dist('trail/index.js'))};
      import { AuditLog } from ${JSON.stringify(dist('journal/index.js'))};
      import { OPAQUE_CALLEE } from ${JSON.stringify(dist('trail/wrap.js'))};
      const trail = await createTrail({ sink: new AuditLog({ dir: ${JSON.stringify(dir)}, groupCommitMs: 60000 }) });
      const predict = trail.predict({ [OPAQUE_CALLEE]: true }, (x) => Promise.resolve(x));
      await predict([1, 2]);
      trail.decide({ predictionId: trail.currentPredictionIds()[0] ?? 'p', outcome: 'a' });
      process.exit(0);
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    // Without the exit hook the two queued records would vanish without a word.
    expect(r.stderr).toContain('the process is exiting with 2 audit record(s) not on disk');
  });
});
