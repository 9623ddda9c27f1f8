import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildLinearClassifierOnnx } from '../../src/onnx/index.js';
import * as sc from '../../src/semconv/index.js';
import { readJournal } from '../trail/harness.js';

/**
 * docs/instrumentation.md's manual instrumentation (`new OnnxRuntimeInstrumentation();
 * onnx.manuallyInstrument(ort)`) in an app that imported the library first, started under
 * `mltrail/register` in both module systems. Under the ESM loader hook the base class patches the
 * already-imported module from inside the constructor, before the subclass exists; that used to throw
 * `TypeError: Receiver must be an instance of class OnnxRuntimeInstrumentation` into the app.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let modelPath: string;

beforeAll(() => {
  modelPath = join(mkdtempSync(join(tmpdir(), 'mltrail-manual-model-')), 'linear.onnx');
  writeFileSync(modelPath, buildLinearClassifierOnnx({ weights: [0.8, -1.2, 0.05], bias: -0.3 }));
});

/** The event name and body of each journal line, whatever the line format. */
function events(dir: string): { event: unknown; body: Record<string, unknown> }[] {
  return readJournal(dir).map((l) => {
    const body = (typeof l.body === 'string' ? JSON.parse(l.body) : l.body) as Record<string, unknown>;
    return { event: l.event ?? body[sc.ATTR_EVENT_NAME], body };
  });
}

describe.each([
  ['ESM', '--import', 'manual-instrumentation.mjs'],
  ['CommonJS', '--require', 'manual-instrumentation.cjs'],
])('manual instrumentation after the import, under %s mltrail/register', (_kind, flag, fixture) => {
  it('runs, and each prediction (onnxruntime and tfjs) is journaled exactly once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-manual-'));
    const r = spawnSync(process.execPath, [flag, 'mltrail/register', join(ROOT, 'test/fixtures', fixture)], {
      cwd: ROOT,
      env: { ...process.env, MODEL_PATH: modelPath, MLTRAIL_DIR: dir },
      encoding: 'utf8',
    });
    expect(r.stderr).not.toContain('Receiver must be an instance');
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 0, stdout: 'scored true 1\n' });
    const predictions = events(dir).filter((e) => e.event === sc.EVENT_ML_PREDICTION);
    expect(predictions.map((p) => p.body[sc.ATTR_ML_MODEL_FORMAT])).toEqual(['onnx', 'tfjs-layers']);
  });
});
