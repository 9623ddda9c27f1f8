import type { SpanContext } from '@opentelemetry/api';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createRedactor, type Redactor } from '../../src/privacy/index.js';
import {
  ATTR_ML_DATASET_ID,
  ATTR_ML_DATASET_ROW_COUNT,
  ATTR_ML_DECISION_ATTRIBUTIONS,
  ATTR_ML_DECISION_AUTOMATED,
  ATTR_ML_DECISION_ID,
  ATTR_ML_DECISION_OUTCOME,
  ATTR_ML_DECISION_REASON,
  ATTR_ML_DECISION_THRESHOLD,
  ATTR_ML_MODEL_DIGEST,
  ATTR_ML_MODEL_FORMAT,
  ATTR_ML_PREDICTION_ID,
  ATTR_ML_PREDICTION_INPUT_NAMES,
  ATTR_ML_PREDICTION_LATENCY_MS,
  ATTR_ML_PREDICTION_OUTPUT_SCORE,
  ATTR_ML_PREDICTION_REGISTERED,
  ATTR_ML_PREDICTION_SUBJECT_ID,
  EVENT_ML_DATASET_REGISTERED,
  EVENT_ML_DECISION,
  EVENT_ML_PREDICTION,
} from '../../src/semconv/index.js';
import { AuditEmitter, type AuditEventInput, type AuditSink } from '../../src/trail/audit-emitter.js';
import { ID_SAMPLES, PII_SAMPLES } from '../privacy/samples.js';

// The emitter writes a flat record's body in one pass (members checked, redaction asked whether it keeps
// every member, bytes written in RFC 8785 order). That must never change a byte: for random records —
// personal data in keys and values, JSON held in strings, non-finite numbers, nested objects, arrays,
// unicode and lone surrogates — what reaches the sink equals what the stages (JSON-safe copy, validation,
// redaction, canonical JSON) give for the same record.

const KEY = 'one-pass-body-key-0123456789abcdef';
const SEED = 20261207;
const NOW = Date.UTC(2026, 11, 7, 20, 0, 0, 123);

function collector(): { sink: AuditSink; inputs: AuditEventInput[] } {
  const inputs: AuditEventInput[] = [];
  return {
    inputs,
    sink: {
      append(input) {
        inputs.push(input);
        return {
          record: { chain: 'c', seq: inputs.length, hash: '', prev: '', digest: '' },
          durable: Promise.resolve(),
        };
      },
      flush: async () => {},
      close: async () => undefined,
    },
  };
}

const PII = Object.values(PII_SAMPLES).flatMap((samples) => samples.map(([text]) => text));

const text = fc.oneof(
  fc.constantFrom(...PII, ...ID_SAMPLES, 'standard', 'onnx', 'probability of rain 0.22 < 0.50', ''),
  fc.string({ maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('\ud800', 'a\udc00b', 'ü\u0301', '١٢٣٤٥٦٧٨٩٠١٢', 'ｊａｎｅ＠ｅｘａｍｐｌｅ．ｃｏｍ'),
  fc.constantFrom(...PII).map((p) => JSON.stringify({ note: p, n: 1 })),
  fc.constantFrom(...PII).map((p) => JSON.stringify([p, 'x'])),
  fc.dictionary(fc.constantFrom('a', 'b', 'password', 'temp_max'), fc.double()).map((o) => JSON.stringify(o)),
);

const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: text },
  { weight: 3, arbitrary: fc.double() },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 4111111111111111, 1e21) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 2, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.array(text, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ maxLength: 6 }), text, { maxKeys: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(null, 10n, new Date(NOW), new Float32Array([1, Number.NaN])) },
);

/** Member names: the events' own, names a rule matches, and names holding personal data or unicode. */
const key = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      ATTR_ML_PREDICTION_ID,
      ATTR_ML_PREDICTION_LATENCY_MS,
      ATTR_ML_PREDICTION_OUTPUT_SCORE,
      ATTR_ML_PREDICTION_REGISTERED,
      ATTR_ML_PREDICTION_INPUT_NAMES,
      ATTR_ML_PREDICTION_SUBJECT_ID,
      ATTR_ML_MODEL_DIGEST,
      ATTR_ML_MODEL_FORMAT,
      ATTR_ML_DECISION_ID,
      ATTR_ML_DECISION_OUTCOME,
      ATTR_ML_DECISION_REASON,
      ATTR_ML_DECISION_THRESHOLD,
      ATTR_ML_DECISION_ATTRIBUTIONS,
      ATTR_ML_DECISION_AUTOMATED,
      ATTR_ML_DATASET_ID,
      ATTR_ML_DATASET_ROW_COUNT,
    ),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      'password',
      'api_key',
      'note',
      '10',
      '2',
      '__proto__',
      'é',
      'z\u0301',
      '\ud83d',
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom(...PII) },
  { weight: 1, arbitrary: fc.string({ maxLength: 8 }) },
);

/** Fields as the stage API passes them: mostly valid members of the event, some of anything. */
function fields(event: string): fc.Arbitrary<Record<string, unknown>> {
  const valid: Record<string, fc.Arbitrary<unknown>> = event === EVENT_ML_PREDICTION
    ? {
        [ATTR_ML_PREDICTION_ID]: fc.constantFrom(...ID_SAMPLES.slice(0, 3)),
        [ATTR_ML_PREDICTION_LATENCY_MS]: fc.double({ noNaN: true, noDefaultInfinity: true }),
        [ATTR_ML_PREDICTION_OUTPUT_SCORE]: fc.double({ min: 0, max: 1, noNaN: true }),
        [ATTR_ML_PREDICTION_REGISTERED]: fc.boolean(),
        [ATTR_ML_MODEL_FORMAT]: fc.constantFrom('onnx', 'tfjs'),
        [ATTR_ML_MODEL_DIGEST]: fc.constant(ID_SAMPLES[3]),
        [ATTR_ML_PREDICTION_INPUT_NAMES]: fc.array(fc.constantFrom('temp_max', 'wind', 'x'), {
          maxLength: 3,
        }),
      }
    : {
        [ATTR_ML_DECISION_ID]: fc.constantFrom(...ID_SAMPLES.slice(0, 3)),
        [ATTR_ML_PREDICTION_ID]: fc.constantFrom(...ID_SAMPLES.slice(0, 3)),
        [ATTR_ML_DECISION_OUTCOME]: fc.constantFrom('standard', 'review'),
        [ATTR_ML_DECISION_REASON]: fc.constantFrom('probability of rain 0.22 < 0.50', 'score ≥ 0.9'),
        [ATTR_ML_DECISION_THRESHOLD]: fc.double({ min: 0, max: 1, noNaN: true }),
        [ATTR_ML_DECISION_ATTRIBUTIONS]: fc
          .dictionary(
            fc.constantFrom('temp_max', 'wind'),
            fc.double({ noNaN: true, noDefaultInfinity: true }),
          )
          .map((o) => JSON.stringify(o)),
        [ATTR_ML_DECISION_AUTOMATED]: fc.boolean(),
      };
  return fc
    .tuple(fc.record(valid, { requiredKeys: [] }), fc.dictionary(key, value, { maxKeys: 4 }), fc.boolean())
    .map(([good, extra, withExtra]) => (withExtra ? { ...good, ...extra } : good));
}

const record = fc
  .constantFrom(EVENT_ML_PREDICTION, EVENT_ML_DECISION, EVENT_ML_DATASET_REGISTERED, 'ml.not_an_event')
  .chain((event) =>
    fc.record({
      event: fc.constant(event),
      sev: fc.constantFrom('INFO' as const, 'WARN' as const),
      fields: fields(event),
      traced: fc.boolean(),
    }),
  );

const SPAN: SpanContext = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: 1,
};

type Policy =
  | 'default rules'
  | 'rules that change members'
  | 'no redactor'
  | 'a redactor without the check'
  | 'a redactor with the check, not member-wise'
  | 'a small node limit';

function redactorFor(policy: Policy): Redactor | undefined {
  switch (policy) {
    case 'no redactor':
      return undefined;
    case 'default rules':
      return createRedactor({ key: KEY });
    case 'rules that change members':
      return createRedactor({
        key: KEY,
        rules: [
          { path: ATTR_ML_DECISION_REASON, action: 'hash' },
          { path: 'note', action: 'remove' },
          { path: ATTR_ML_MODEL_FORMAT, action: 'allow' },
          { path: ATTR_ML_PREDICTION_INPUT_NAMES, action: 'mask' },
        ],
      });
    case 'a redactor without the check': {
      const r = createRedactor({ key: KEY });
      return { redact: (v) => r.redact(v), redactString: (s) => r.redactString(s), keyId: r.keyId };
    }
    case 'a redactor with the check, not member-wise': {
      const r = createRedactor({ key: KEY });
      return {
        redact: (v) => r.redact(v),
        redactString: (s) => r.redactString(s),
        keepsMembers: (b, k) => r.keepsMembers?.(b, k) ?? false,
        keyId: r.keyId,
      };
    }
    case 'a small node limit':
      // Records of 10 to 16 members: some fit, some are cut, so the members the emitter skips must count.
      return createRedactor({ key: KEY, maxNodes: 12 });
  }
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('one-pass audit body', () => {
  for (const policy of [
    'default rules',
    'rules that change members',
    'no redactor',
    'a redactor without the check',
  ] as const) {
    it(`writes exactly the bytes, lookup attributes and body the stages write (${policy})`, () => {
      vi.spyOn(Date, 'now').mockReturnValue(NOW);
      const common = { 'service.name': 'svc-é', 'deployment.environment.name': 'test' };
      const onePass = collector();
      const staged = collector();
      const fastRedactor = redactorFor(policy);
      const redactCalls = fastRedactor !== undefined ? vi.spyOn(fastRedactor, 'redact') : undefined;
      const fast = new AuditEmitter({ sink: onePass.sink, redactor: fastRedactor, strict: false, common });
      const slow = new AuditEmitter({
        sink: staged.sink,
        redactor: redactorFor(policy),
        strict: false,
        common,
        onePass: false,
      });
      let records = 0;
      fc.assert(
        fc.property(record, ({ event, sev, fields, traced }) => {
          const a = fast.emit(event, sev, fields, traced ? SPAN : undefined);
          const b = slow.emit(event, sev, fields, traced ? SPAN : undefined);
          expect(onePass.inputs.at(-1)).toEqual(staged.inputs.at(-1));
          expect(a.body).toEqual(b.body);
          records++;
        }),
        { seed: SEED, numRuns: 600 },
      );
      // The property covers both paths: records the one pass wrote and records it left to the stages.
      if (redactCalls !== undefined && policy !== 'a redactor without the check') {
        expect(redactCalls.mock.calls.length).toBeGreaterThan(0);
        expect(redactCalls.mock.calls.length).toBeLessThan(records);
      }
    });
  }

  it('writes a prediction and a decision of the stage API in one pass', () => {
    vi.spyOn(Date, 'now').mockReturnValue(NOW);
    const redactor = createRedactor({ key: KEY });
    const redact = vi.spyOn(redactor, 'redact');
    const { sink, inputs } = collector();
    const emitter = new AuditEmitter({ sink, redactor, strict: true, common: { 'service.name': 'svc' } });
    emitter.emit(
      EVENT_ML_DECISION,
      'INFO',
      {
        [ATTR_ML_DECISION_ID]: ID_SAMPLES[0],
        [ATTR_ML_PREDICTION_ID]: ID_SAMPLES[2],
        [ATTR_ML_DECISION_OUTCOME]: 'standard',
        [ATTR_ML_DECISION_REASON]: 'probability of rain 0.22 < 0.50',
        [ATTR_ML_DECISION_THRESHOLD]: 0.5,
        [ATTR_ML_DECISION_ATTRIBUTIONS]: '{"temp_max":-0.031,"wind":0.227}',
        [ATTR_ML_DECISION_AUTOMATED]: true,
      },
      SPAN,
    );
    expect(redact).not.toHaveBeenCalled();
    expect(inputs[0]?.body).toBe(
      '{"event.name":"ml.decision","ml.decision.attributions":"{\\"temp_max\\":-0.031,\\"wind\\":0.227}",' +
        `"ml.decision.automated":true,"ml.decision.id":"${ID_SAMPLES[0]}","ml.decision.outcome":"standard",` +
        `"ml.decision.reason":"probability of rain 0.22 < 0.50","ml.decision.threshold":0.5,"ml.prediction.id":"${ID_SAMPLES[2]}",` +
        '"service.name":"svc","severity_text":"INFO","span_id":"b7ad6b7169203331","timestamp":"2026-12-07T20:00:00.123Z",' +
        '"trace_id":"0af7651916cd43dd8448eb211c80319c"}',
    );
  });
  // Records of one shape mostly repeat their members (service, model, severity, outcome), and the one pass
  // skips checks and escaping of a member that holds what the shape was last written with. Sequences of
  // records that change a few members at a time — to other valid values, to personal data, to invalid or
  // nested values, to arrays — must still give the stages' bytes record by record.
  for (const policy of [
    'default rules',
    'rules that change members',
    'no redactor',
    'a redactor with the check, not member-wise',
    'a small node limit',
  ] as const) {
    it(`writes the stages' bytes for records that repeat most members (${policy})`, () => {
      vi.spyOn(Date, 'now').mockReturnValue(NOW);
      const common = { 'service.name': 'svc', 'deployment.environment.name': 'test' };
      const start = fc.constantFrom(EVENT_ML_PREDICTION, EVENT_ML_DECISION).chain((event) =>
        fc.record({
          event: fc.constant(event),
          base: fields(event),
          // Frozen arrays, as the onnxruntime instrumentation hands out, are remembered by identity.
          freeze: fc.boolean(),
          steps: fc.array(
            fc.tuple(
              fc.array(fc.tuple(fc.nat(20), fc.oneof({ weight: 3, arbitrary: text }, value)), {
                maxLength: 3,
              }),
              fc.boolean(),
            ),
            { minLength: 2, maxLength: 12 },
          ),
        }),
      );
      fc.assert(
        fc.property(start, ({ event, base, freeze, steps }) => {
          const onePass = collector();
          const staged = collector();
          const fast = new AuditEmitter({
            sink: onePass.sink,
            redactor: redactorFor(policy),
            strict: false,
            common,
          });
          const slow = new AuditEmitter({
            sink: staged.sink,
            redactor: redactorFor(policy),
            strict: false,
            common,
            onePass: false,
          });
          let current: Record<string, unknown> = { ...base };
          if (freeze)
            for (const k of Object.keys(current))
              if (Array.isArray(current[k])) current[k] = Object.freeze([...(current[k] as unknown[])]);
          for (const [changes, traced] of steps) {
            const names = Object.keys(current);
            const next: Record<string, unknown> = { ...current };
            // Same member names, new values (an undefined value drops the member: another shape).
            for (const [at, v] of changes) if (names.length > 0) next[names[at % names.length]] = v;
            for (const f of [current, next]) {
              fast.emit(event, 'INFO', f, traced ? SPAN : undefined);
              slow.emit(event, 'INFO', f, traced ? SPAN : undefined);
              expect(onePass.inputs.at(-1)).toEqual(staged.inputs.at(-1));
            }
            current = next;
          }
        }),
        { seed: SEED, numRuns: 250 },
      );
    });
  }
  it('counts the members it skips towards the redactor node limit', () => {
    vi.spyOn(Date, 'now').mockReturnValue(NOW);
    const run = (onePass: boolean) => {
      const { sink, inputs } = collector();
      const emitter = new AuditEmitter({
        sink,
        redactor: createRedactor({ key: KEY, maxNodes: 14 }),
        strict: false,
        common: { 'service.name': 'svc' },
        onePass,
      });
      const base = {
        [ATTR_ML_PREDICTION_ID]: ID_SAMPLES[0],
        [ATTR_ML_PREDICTION_LATENCY_MS]: 1.5,
        [ATTR_ML_PREDICTION_OUTPUT_SCORE]: 0.25,
        [ATTR_ML_MODEL_FORMAT]: 'onnx',
        [ATTR_ML_MODEL_DIGEST]: ID_SAMPLES[3],
        [ATTR_ML_PREDICTION_INPUT_NAMES]: ['a'],
      };
      // 10 members and one array element: 12 nodes with the root, within the limit.
      emitter.emit(EVENT_ML_PREDICTION, 'INFO', base);
      // The same members but a longer array: past the limit, the stages cut the body.
      emitter.emit(EVENT_ML_PREDICTION, 'INFO', {
        ...base,
        [ATTR_ML_PREDICTION_INPUT_NAMES]: ['a', 'b', 'c', 'd'],
      });
      return inputs;
    };
    const fast = run(true);
    expect(fast).toEqual(run(false));
    expect(fast[1]?.body).toContain('[Truncated]');
  });
});
