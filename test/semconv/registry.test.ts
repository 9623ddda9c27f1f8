import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generate, loadRegistry } from '../../scripts/semconv-gen.mjs';
import {
  ATTRIBUTE_TYPES,
  EVENT_NAMES,
  METRIC_INSTRUMENTS,
  SPAN_NAMES,
  schemaForEvent,
} from '../../src/semconv/index.js';
import { describeWithSharedData, sharedTestdata } from '../shared-data.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function filesUnder(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, ext));
    else if (name.endsWith(ext)) out.push(p);
  }
  return out.sort();
}

const registryFiles = filesUnder(join(root, 'model'), '.yaml').filter((f) => !f.endsWith('manifest.yaml'));

describeWithSharedData(
  'weaver/semconv.schema.json',
  "model/ validates against Weaver's semconv JSON schema",
  () => {
    const schema = JSON.parse(readFileSync(join(sharedTestdata, 'weaver/semconv.schema.json'), 'utf8'));
    const validate = new Ajv2020({ strict: false, allErrors: true }).compile(schema);
    for (const file of registryFiles) {
      it(relative(root, file), () => {
        const ok = validate(parse(readFileSync(file, 'utf8')));
        expect(validate.errors ?? [], relative(root, file)).toEqual([]);
        expect(ok).toBe(true);
      });
    }
  },
);

describe('generated semconv module', () => {
  it('is not stale: regenerating from model/ gives the committed files byte for byte', () => {
    const files = generate(root) as Record<string, string>;
    expect(Object.keys(files).sort()).toEqual([
      'docs/semconv.md',
      'src/semconv/attributes.ts',
      'src/semconv/events.ts',
      'src/semconv/fast-check.ts',
      'src/semconv/index.ts',
      'src/semconv/lookup.ts',
      'src/semconv/metrics.ts',
      'src/semconv/schemas.ts',
      'src/semconv/spans.ts',
    ]);
    for (const [path, content] of Object.entries(files)) {
      expect(readFileSync(join(root, path), 'utf8'), `${path} is stale: run "npm run semconv"`).toBe(content);
    }
  });

  it('has a manifest and a schema for every event', () => {
    const manifest = parse(readFileSync(join(root, 'model/manifest.yaml'), 'utf8'));
    expect(manifest).toEqual({
      name: 'mltrail',
      description: expect.stringMatching(/\S/),
      semconv_version: expect.stringMatching(/^v\d+\.\d+\.\d+$/),
      schema_base_url: expect.stringMatching(/^https:\/\/.+\/$/),
    });
    expect(EVENT_NAMES.length).toBeGreaterThanOrEqual(17);
    for (const e of EVENT_NAMES) expect(schemaForEvent(e), e).toBeDefined();
    expect(schemaForEvent('no.such.event')).toBeUndefined();
  });

  it('no "ml.*" or "mltrail.*" key literal in src/ outside the generated module', () => {
    // The TypeScript parser finds exactly the string and template literals (comments and regexes are
    // not literals), so the rule is: no literal starts with a namespace prefix, and no literal embeds a
    // quoted registry name (a redaction path '["ml.prediction.subject_id"]', a JSON snippet). Prose that
    // mentions an event in a help text is not a key and is allowed.
    const names = [
      ...Object.keys(ATTRIBUTE_TYPES),
      ...EVENT_NAMES,
      ...Object.keys(METRIC_INSTRUMENTS),
      ...Object.values(SPAN_NAMES),
    ].filter((n) => n.startsWith('ml.') || n.startsWith('mltrail.'));
    const escaped = names.sort((a, b) => b.length - a.length).map((n) => n.replaceAll('.', '\\.'));
    const embedded = new RegExp(`["'\`](${escaped.join('|')})["'\`]`);
    const offenders: string[] = [];
    for (const file of filesUnder(join(root, 'src'), '.ts')) {
      if (relative(join(root, 'src'), file).startsWith(`semconv${sep}`)) continue;
      const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (
          ts.isStringLiteral(node) ||
          ts.isNoSubstitutionTemplateLiteral(node) ||
          ts.isTemplateHead(node) ||
          ts.isTemplateMiddle(node) ||
          ts.isTemplateTail(node)
        ) {
          const text = node.text;
          const prefixed =
            ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node) || ts.isTemplateHead(node)
              ? /^(ml|mltrail)\./.test(text)
              : false;
          if (prefixed || embedded.test(text)) {
            const { line } = source.getLineAndCharacterOfPosition(node.getStart(source));
            offenders.push(`${relative(root, file)}:${line + 1}: ${node.getText(source)}`);
          }
        }
        ts.forEachChild(node, visit);
      };
      visit(source);
    }
    expect(offenders, 'use the constants from src/semconv/ instead of these literals').toEqual([]);
  });
});

describe('event body schemas', () => {
  const valid = {
    'event.name': 'ml.decision',
    timestamp: '2026-11-28T07:00:00.000Z',
    trace_id: '0af7651916cd43dd8448eb211c80319c',
    span_id: 'b7ad6b7169203331',
    'service.name': 'svc',
    'ml.decision.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
    'ml.prediction.id': '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b91',
    'ml.decision.outcome': 'approved',
    'ml.decision.attributions': '{"income":0.6}',
  };
  const schema = schemaForEvent('ml.decision')!;
  const issues = (body: unknown) => {
    const r = schema.safeParse(body);
    return r.success ? [] : r.error.issues.map((i) => ({ path: i.path.join('.'), code: i.code }));
  };

  it('accepts a valid body', () => {
    expect(issues(valid)).toEqual([]);
  });
  it('names the path of a wrong type', () => {
    expect(issues({ ...valid, 'ml.decision.outcome': 42 })).toEqual([
      { path: 'ml.decision.outcome', code: 'invalid_type' },
    ]);
  });
  it('names a missing required id', () => {
    const { 'ml.prediction.id': _, ...rest } = valid;
    expect(issues(rest)).toEqual([{ path: 'ml.prediction.id', code: 'invalid_type' }]);
  });
  it('rejects unknown keys, huge strings, non-JSON attributions and bad trace ids', () => {
    expect(issues({ ...valid, 'ml.decision.colour': 'red' })).toEqual([
      { path: '', code: 'unrecognized_keys' },
    ]);
    expect(issues({ ...valid, 'ml.decision.reason': 'x'.repeat(9000) })).toEqual([
      { path: 'ml.decision.reason', code: 'too_big' },
    ]);
    expect(issues({ ...valid, 'ml.decision.attributions': '{not json' })).toEqual([
      { path: 'ml.decision.attributions', code: 'custom' },
    ]);
    expect(issues({ ...valid, trace_id: 'XYZ' })).toEqual([{ path: 'trace_id', code: 'invalid_format' }]);
  });
});

describe('loadRegistry refuses an inconsistent registry, naming the group and the key', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** A copy of model/ in a temp dir, with one file rewritten. */
  function brokenRegistry(file: string, edit: (text: string) => string): string {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-semconv-'));
    dirs.push(dir);
    cpSync(join(root, 'model'), join(dir, 'model'), { recursive: true });
    const path = join(dir, 'model', file);
    const before = readFileSync(path, 'utf8');
    const after = edit(before);
    expect(after, 'the edit must change the file').not.toBe(before);
    writeFileSync(path, after);
    return dir;
  }

  it('the committed registry loads', () => {
    expect(() => loadRegistry(root)).not.toThrow();
  });

  it.each([
    [
      'an unknown reference',
      'events.yaml',
      (t: string) => t.replace('{ ref: ml.feedback.source }', '{ ref: ml.feedback.sauce }'),
      'event.ml.feedback: references unknown attribute ml.feedback.sauce',
    ],
    [
      'a reference listed twice',
      'events.yaml',
      (t: string) =>
        t.replace(
          '{ ref: ml.feedback.source }',
          '{ ref: ml.feedback.source }\n      - { ref: ml.feedback.source }',
        ),
      'event.ml.feedback: references ml.feedback.source twice',
    ],
    [
      'an attribute defined twice',
      'registry/ml-inference.yaml',
      (t: string) => t.replace('id: ml.feedback.source,', 'id: ml.feedback.correct,'),
      'attribute ml.feedback.correct is defined twice',
    ],
    [
      'an unknown requirement level',
      'events.yaml',
      (t: string) =>
        t.replace(
          '{ ref: ml.feedback.id, requirement_level: required }',
          '{ ref: ml.feedback.id, requirement_level: mandatory }',
        ),
      'event.ml.feedback: ml.feedback.id has an unknown requirement_level "mandatory"',
    ],
    [
      'a stage without a span',
      'spans.yaml',
      (t: string) => t.replace('stage: drift,', 'stage: drifting,'),
      'stage drift has no span group in model/spans.yaml',
    ],
    [
      'a span that misses an attribute of its event',
      'events.yaml',
      (t: string) =>
        t.replace(
          '{ ref: ml.feedback.source }',
          '{ ref: ml.feedback.source }\n      - { ref: ml.model.name }',
        ),
      'span.ml.feedback: ml.feedback has ml.model.name but the span does not declare it',
    ],
    [
      'a span that declares an attribute its event lacks',
      'spans.yaml',
      (t: string) =>
        t.replace(
          '      - { ref: ml.feedback.source }',
          '      - { ref: ml.feedback.source }\n      - { ref: ml.model.name }',
        ),
      'span.ml.feedback: declares ml.model.name, which ml.feedback does not have',
    ],
  ])('%s', (_what, file, edit, message) => {
    expect(() => loadRegistry(brokenRegistry(file, edit))).toThrow(message);
  });
});
