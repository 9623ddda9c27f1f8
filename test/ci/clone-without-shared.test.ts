import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { requireSharedDataVariable } from '../shared-data.js';

// A clone from a public host has no ../shared/testdata beside it. This runs every test file that uses
// the conformance data the way such a clone does (data path pointed at an empty directory, CI=true as
// every public CI service sets) and asserts those suites are skipped with the reason, not failed; and
// that with the project's own variable set, as .ci/run sets it, the same missing data is a failure.

const root = fileURLToPath(new URL('../..', import.meta.url));

function testFilesUsingSharedData(dir = join(root, 'test')): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...testFilesUsingSharedData(p));
    else if (name.endsWith('.test.ts') && /from '(\.\.\/)+shared-data\.js'/.test(readFileSync(p, 'utf8')))
      out.push(relative(root, p));
  }
  return out.sort();
}

interface VitestJson {
  success: boolean;
  numFailedTests: number;
  numPendingTests: number;
  testResults: {
    name: string;
    status: string;
    message: string;
    assertionResults: { fullName: string; status: string; failureMessages: string[] }[];
  }[];
}

function vitestWithoutSharedData(files: string[], extraEnv: Record<string, string>): VitestJson {
  const empty = mkdtempSync(join(tmpdir(), 'mltrail-no-shared-'));
  const out = join(empty, 'report.json');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CI: 'true',
    MLTRAIL_SHARED_TESTDATA: join(empty, 'testdata'),
    MLTRAIL_SKIP_BUILD: '1', // the outer run's global setup already built dist/
    ...extraEnv,
  };
  if (!(requireSharedDataVariable in extraEnv)) delete env[requireSharedDataVariable];
  delete env.VITEST; // the child is its own run, not a worker of this one
  delete env.VITEST_WORKER_ID;
  delete env.VITEST_POOL_ID;
  delete env.NODE_OPTIONS;
  spawnSync(
    process.execPath,
    [
      join(root, 'node_modules/vitest/vitest.mjs'),
      'run',
      ...files,
      // Only the shared-data suites run: loading every file still catches data read at collection time
      // (the failure a clone used to hit), without running the rest of those files a second time.
      '--testNamePattern=shared/testdata',
      '--reporter=json',
      `--outputFile=${out}`,
    ],
    { cwd: root, env, encoding: 'utf8', timeout: 300_000 },
  );
  return JSON.parse(readFileSync(out, 'utf8')) as VitestJson;
}

describe('the suite as a clone without ../shared sees it', () => {
  const files = testFilesUsingSharedData();

  it('finds the conformance tests', () => {
    expect(files).toEqual(
      expect.arrayContaining(['test/integrity/conformance.test.ts', 'test/semconv/registry.test.ts']),
    );
  });

  it('with CI=true and the data absent, every conformance suite is skipped with the reason and nothing fails', () => {
    const report = vitestWithoutSharedData(files, {});
    const failures = report.testResults.flatMap((f) => [
      ...(f.status === 'failed' && f.message ? [`${relative(root, f.name)}: ${f.message}`] : []),
      ...f.assertionResults
        .filter((a) => a.status === 'failed')
        .map((a) => `${relative(root, f.name)} > ${a.fullName}: ${a.failureMessages.join('\n')}`),
    ]);
    expect(failures).toEqual([]);
    expect(report.success).toBe(true);
    const skipped = report.testResults.flatMap((f) =>
      f.assertionResults
        .filter((a) => a.status === 'skipped' || a.status === 'pending')
        .map((a) => `${relative(root, f.name)} > ${a.fullName}`),
    );
    for (const suite of [
      'test/integrity/conformance.test.ts > RFC 6962 test vectors',
      'test/integrity/conformance.test.ts > C2SP signed note vector',
      "test/semconv/registry.test.ts > model/ validates against Weaver's semconv JSON schema",
    ]) {
      expect(skipped, suite).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^${escapeRegExp(suite)} skipped: conformance data \\.\\./shared/testdata is absent.*is missing$`,
          ),
        ),
      );
    }
  });

  it(`with ${requireSharedDataVariable}=1 (as .ci/run sets) the missing data fails the conformance tests, saying what is missing`, () => {
    const report = vitestWithoutSharedData(['test/integrity/conformance.test.ts'], {
      [requireSharedDataVariable]: '1',
    });
    expect(report.success).toBe(false);
    const messages = report.testResults.flatMap((f) =>
      f.assertionResults.filter((a) => a.status === 'failed').flatMap((a) => a.failureMessages),
    );
    expect(messages).toEqual([
      expect.stringContaining(`conformance data ../shared/testdata/rfc6962 is missing (looked in`),
      expect.stringContaining(`conformance data ../shared/testdata/c2sp is missing`),
    ]);
    expect(messages[0]).toContain(`${requireSharedDataVariable}=1 requires it`);
  });
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
