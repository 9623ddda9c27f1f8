import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadRegistry, type RegistryAttribute } from '../../scripts/semconv-gen.mjs';
import {
  ATTR_ML_STAGE_NAME,
  ATTRIBUTE_TYPES,
  EVENT_ML_DRIFT_DETECTED,
  EVENT_ML_PREDICTION,
  EVENT_NAMES,
  type EventBody,
  INDEX_LABEL_ATTRIBUTES,
  JSON_ATTRIBUTES,
  LOOKUP_ATTRIBUTES,
  ML_NAMESPACE,
  ML_STAGE_NAME_VALUE_PREDICT,
  MLTRAIL_NAMESPACE,
  SPAN_NAMES,
  schemaForEvent,
} from '../../src/semconv/index.js';

// The specification these tests hold the generated schemas to is the registry itself: every event is
// exercised with bodies built from the registry's own examples, so a new event or attribute is covered
// without touching this file.
const registry = loadRegistry(fileURLToPath(new URL('../../', import.meta.url)));

const COMMON = {
  'service.name': 'rain-cover-api',
  'deployment.environment.name': 'prod',
  'ml.pipeline.name': 'rain-cover',
  'ml.run.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
  'ml.actor.id': 'release-bot',
  'ml.stage.name': 'train',
  'mltrail.validation.errors': '[]',
};

/** A value of the attribute's declared type: its first registry example, else a typed stand-in. */
function exampleOf(a: RegistryAttribute): unknown {
  if (typeof a.type === 'object') return a.type.members[0].value;
  if (a.examples !== undefined) return Array.isArray(a.examples) ? a.examples[0] : a.examples;
  if (a.type === 'boolean') return true;
  throw new Error(`${a.id}: no example in the registry`);
}

/** A value of the wrong JSON type for the attribute. */
function wrongTypeOf(a: RegistryAttribute): unknown {
  if (typeof a.type === 'object') return 'no-such-member';
  return { string: 42, int: 1.5, double: 'one', boolean: 'yes', 'string[]': 'not-an-array' }[a.type];
}

interface Issue {
  path: string;
  code: string;
  message: string;
}

function issues(event: string, body: unknown): Issue[] {
  const r = schemaForEvent(event)!.safeParse(body);
  return r.success
    ? []
    : r.error.issues.map((i) => ({ path: i.path.join('.'), code: i.code, message: i.message }));
}

const head = (event: string) => ({
  'event.name': event,
  timestamp: '2026-11-28T07:00:00.000Z',
  trace_id: '0af7651916cd43dd8448eb211c80319c',
  span_id: 'b7ad6b7169203331',
});

describe.each(registry.events.map((e) => [e.name!, e] as const))('schema of %s', (name, event) => {
  const refs = event.attributes ?? [];
  const attr = (key: string) => registry.attributeMap.get(key)!;
  const full: Record<string, unknown> = { ...head(name), ...COMMON };
  for (const r of refs) full[r.ref] = exampleOf(attr(r.ref));
  const required = refs.filter((r) => r.requirement_level === 'required').map((r) => r.ref);
  const minimal: Record<string, unknown> = { 'event.name': name, timestamp: '2026-11-28T07:00:00.000Z' };
  for (const k of required) minimal[k] = full[k];

  it('accepts a body with every attribute set to a registry example, plus the common keys', () => {
    expect(issues(name, full)).toEqual([]);
  });

  it('accepts a body with only the required attributes and no trace context', () => {
    expect(issues(name, minimal)).toEqual([]);
  });

  it.each(required.length > 0 ? required : ['(none)'])('names a missing required %s', (key) => {
    if (key === '(none)') return;
    const { [key]: _, ...body } = full;
    const got = issues(name, body);
    expect(got).toEqual([{ path: key, code: expect.any(String), message: 'required attribute is missing' }]);
    expect(['invalid_type', 'invalid_value']).toContain(got[0].code);
  });

  it.each(refs.map((r) => r.ref))('names %s when it has the wrong type', (key) => {
    const got = issues(name, { ...full, [key]: wrongTypeOf(attr(key)) });
    expect(got).toHaveLength(1);
    expect(got[0].path).toBe(key);
    expect(['invalid_type', 'invalid_value']).toContain(got[0].code);
    // Present but wrong is reported as such, never as missing.
    expect(got[0].message).not.toBe('required attribute is missing');
  });

  it('rejects a key the event does not list, naming it', () => {
    const r = schemaForEvent(name)!.safeParse({ ...full, 'ml.nonexistent.key': 'x' });
    expect(r.success).toBe(false);
    expect(r.error!.issues).toEqual([
      expect.objectContaining({ code: 'unrecognized_keys', keys: ['ml.nonexistent.key'], path: [] }),
    ]);
  });

  it('rejects another event name, a timestamp with an offset and upper-case trace ids', () => {
    const other = EVENT_NAMES.find((e) => e !== name)!;
    expect(issues(name, { ...full, 'event.name': other }).map((i) => [i.path, i.code])).toEqual([
      ['event.name', 'invalid_value'],
    ]);
    expect(issues(name, { ...full, timestamp: '2026-11-28T08:00:00.000+01:00' })).toEqual([
      { path: 'timestamp', code: 'invalid_format', message: 'expected an ISO 8601 UTC timestamp' },
    ]);
    expect(issues(name, { ...full, span_id: 'B7AD6B7169203331' })).toEqual([
      { path: 'span_id', code: 'invalid_format', message: 'expected 16 lower-case hex digits' },
    ]);
  });
});

describe('limits that apply to every event', () => {
  const body = {
    ...head(EVENT_ML_PREDICTION),
    'ml.prediction.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
    'ml.prediction.latency_ms': 1.27,
  };

  it('strings: 8192 characters pass, 8193 fail with a message that says so', () => {
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.output_label': 'x'.repeat(8192) })).toEqual(
      [],
    );
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.output_label': 'x'.repeat(8193) })).toEqual([
      { path: 'ml.prediction.output_label', code: 'too_big', message: 'longer than 8192 characters' },
    ]);
  });

  it('string arrays: at most 1024 items, each at most 8192 characters; the path names the item', () => {
    const names = Array.from({ length: 1024 }, (_, i) => `t${i}`);
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.input_names': names })).toEqual([]);
    expect(
      issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.input_names': [...names, 'one-more'] }),
    ).toEqual([{ path: 'ml.prediction.input_names', code: 'too_big', message: 'more than 1024 items' }]);
    expect(
      issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.input_names': ['ok', 'x'.repeat(8193)] }),
    ).toEqual([
      { path: 'ml.prediction.input_names.1', code: 'too_big', message: 'longer than 8192 characters' },
    ]);
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.input_names': ['ok', 7] })).toEqual([
      { path: 'ml.prediction.input_names.1', code: 'invalid_type', message: expect.any(String) },
    ]);
  });

  it('JSON attributes must parse and may be longer than plain strings, up to 65536 characters', () => {
    const big = JSON.stringify({ blob: 'x'.repeat(60000) });
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.input': big })).toEqual([]);
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.input': '{"income":' })).toEqual([
      { path: 'ml.prediction.input', code: 'custom', message: 'expected a JSON string' },
    ]);
    const huge = JSON.stringify({ blob: 'x'.repeat(65536) });
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.input': huge })).toEqual([
      { path: 'ml.prediction.input', code: 'too_big', message: 'longer than 65536 characters' },
    ]);
    for (const key of JSON_ATTRIBUTES) expect(ATTRIBUTE_TYPES[key], key).toBe('string');
  });

  it('digests are sha256:<64 lower-case hex>, window bounds ISO 8601 UTC timestamps', () => {
    const digest = `sha256:${'ab'.repeat(32)}`;
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.model.digest': digest })).toEqual([]);
    for (const bad of [
      `sha256:${'AB'.repeat(32)}`,
      'sha256:abc',
      `md5:${'ab'.repeat(16)}`,
      'ab'.repeat(32),
    ]) {
      expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.model.digest': bad })).toEqual([
        {
          path: 'ml.model.digest',
          code: 'invalid_format',
          message: 'expected sha256:<64 lower-case hex digits>',
        },
      ]);
    }
    const drift = {
      ...head(EVENT_ML_DRIFT_DETECTED),
      'ml.drift.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
      'ml.drift.window_start': '2026-11-28T07:00:00.000Z',
    };
    expect(issues(EVENT_ML_DRIFT_DETECTED, drift)).toEqual([]);
    expect(issues(EVENT_ML_DRIFT_DETECTED, { ...drift, 'ml.drift.window_start': 'yesterday' })).toEqual([
      {
        path: 'ml.drift.window_start',
        code: 'invalid_format',
        message: 'expected an ISO 8601 UTC timestamp',
      },
    ]);
  });

  it('double rejects NaN and Infinity; int rejects fractions and unsafe integers', () => {
    for (const v of [Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(
        issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.latency_ms': v }).map((i) => i.path),
      ).toEqual(['ml.prediction.latency_ms']);
    }
    for (const v of [2.5, 2 ** 53]) {
      expect(
        issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.batch_size': v }).map((i) => i.path),
      ).toEqual(['ml.prediction.batch_size']);
    }
    expect(issues(EVENT_ML_PREDICTION, { ...body, 'ml.prediction.batch_size': 2 ** 53 - 1 })).toEqual([]);
  });

  it('reports every violation of a body at once, each with its own path', () => {
    const { 'ml.prediction.id': _, ...rest } = body;
    expect(
      issues(EVENT_ML_PREDICTION, {
        ...rest,
        'ml.prediction.latency_ms': '1.27',
        'ml.prediction.registered': 'yes',
        'ml.stage.name': 'pray',
      })
        .map((i) => i.path)
        .sort(),
    ).toEqual(['ml.prediction.id', 'ml.prediction.latency_ms', 'ml.prediction.registered', 'ml.stage.name']);
  });

  it('rejects bodies that are not objects', () => {
    for (const v of [null, 'ml.prediction', [], 42]) {
      expect(issues(EVENT_ML_PREDICTION, v).map((i) => [i.path, i.code])).toEqual([['', 'invalid_type']]);
    }
  });
});

describe('where keys end up', () => {
  it('only service.name, deployment.environment.name and ml.pipeline.name may be Loki index labels', () => {
    expect([...INDEX_LABEL_ATTRIBUTES].sort()).toEqual([
      'deployment.environment.name',
      'ml.pipeline.name',
      'service.name',
    ]);
    for (const k of INDEX_LABEL_ATTRIBUTES) expect(LOOKUP_ATTRIBUTES.has(k), k).toBe(true);
  });

  it('no JSON document, captured content or free text is copied into attrs / structured metadata', () => {
    const optIn = new Set(
      registry.events.flatMap((e) =>
        (e.attributes ?? []).filter((r) => r.requirement_level === 'opt_in').map((r) => r.ref),
      ),
    );
    expect([...optIn].sort()).toEqual(['ml.prediction.input', 'ml.prediction.output']);
    for (const k of [...JSON_ATTRIBUTES, ...optIn]) expect(LOOKUP_ATTRIBUTES.has(k), k).toBe(false);
    for (const k of LOOKUP_ATTRIBUTES) {
      expect(ATTRIBUTE_TYPES[k], k).toBeDefined();
      expect(k, 'free text is not a lookup key').not.toMatch(/\.(reason|description|message|note|error)$/);
    }
  });
});

describe('typed constants', () => {
  it('every registry name outside the reused OTel keys is under ML_NAMESPACE or MLTRAIL_NAMESPACE', () => {
    const ours = [...Object.keys(ATTRIBUTE_TYPES), ...EVENT_NAMES].filter(
      (k) => !registry.attributeMap.get(k)?.group.endsWith('.reused'),
    );
    for (const k of ours) expect(k.startsWith(ML_NAMESPACE) || k.startsWith(MLTRAIL_NAMESPACE), k).toBe(true);
  });

  it('enum members and span names agree with the registry', () => {
    expect(ML_STAGE_NAME_VALUE_PREDICT).toBe('predict');
    expect(SPAN_NAMES[ML_STAGE_NAME_VALUE_PREDICT]).toBe('ml.predict');
    const stage = registry.attributeMap.get(ATTR_ML_STAGE_NAME)!.type as { members: { value: string }[] };
    expect(Object.keys(SPAN_NAMES).sort()).toEqual(stage.members.map((m) => m.value).sort());
  });

  it('EventBody<N> types a body the schema accepts', () => {
    const body: EventBody<'ml.prediction'> = {
      'event.name': 'ml.prediction',
      timestamp: '2026-11-28T07:00:00.000Z',
      'ml.prediction.id': 'p-1',
      'ml.prediction.latency_ms': 3,
    };
    expect(schemaForEvent(body['event.name'])!.parse(body)).toEqual(body);
  });
});
