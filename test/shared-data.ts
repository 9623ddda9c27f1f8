import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';

/**
 * Conformance data from public specs (RFC 6962 vectors, the C2SP note vector, Weaver's and OpenLineage's
 * schemas) lives in ../shared/testdata beside the clone; it is never copied into the repo. A clone from a
 * public host does not have it, so the tests that need it skip there, with the reason, whatever `CI` says.
 * `.ci/run` sets MLTRAIL_REQUIRE_SHARED_TESTDATA=1, and then missing data fails those tests instead.
 *
 * MLTRAIL_SHARED_TESTDATA moves the directory; the clone-without-shared check points it at an empty one.
 */
export const sharedTestdata = withSlash(
  process.env.MLTRAIL_SHARED_TESTDATA ?? fileURLToPath(new URL('../../shared/testdata/', import.meta.url)),
);

/** The variable `.ci/run` sets so that missing conformance data is a failure, not a skip. */
export const requireSharedDataVariable = 'MLTRAIL_REQUIRE_SHARED_TESTDATA';

export const sharedSkipReason =
  'conformance data ../shared/testdata is absent (only present beside the workplace clone)';

/** Whether `../shared/testdata/<sub>` exists. Never throws: requiring the data is `describeWithSharedData`'s job. */
export function sharedDataAvailable(sub: string): boolean {
  return existsSync(sharedTestdata + sub);
}

function sharedDataRequired(): boolean {
  return process.env[requireSharedDataVariable] === '1';
}

/**
 * `describe(name, body)` when `../shared/testdata/<sub>` exists. Otherwise `body` is never called (it
 * reads the data at collection time), and the suite is one test that is skipped with the reason, or,
 * when MLTRAIL_REQUIRE_SHARED_TESTDATA=1, fails saying what is missing.
 *
 * @example
 * describeWithSharedData('c2sp', 'C2SP signed note vector', () => {
 *   const vector = JSON.parse(readFileSync(join(sharedTestdata, 'c2sp/signed-note-vector.json'), 'utf8'));
 *   it('verifies', () => { ... });
 * });
 */
export function describeWithSharedData(sub: string, name: string, body: () => void): void {
  if (sharedDataAvailable(sub)) {
    describe(name, body);
    return;
  }
  const missing = `../shared/testdata/${sub} is missing`;
  if (sharedDataRequired()) {
    describe(name, () => {
      it(`needs ${missing}`, () => {
        throw new Error(
          `conformance data ${missing} (looked in ${sharedTestdata}), and ${requireSharedDataVariable}=1 requires it`,
        );
      });
    });
    return;
  }
  describe(name, () => {
    it.skip(`skipped: ${sharedSkipReason}; ${missing}`, () => {});
  });
}

function withSlash(dir: string): string {
  return dir.endsWith('/') ? dir : `${dir}/`;
}
