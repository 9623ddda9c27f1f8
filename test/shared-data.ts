import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Conformance data from public specs lives in ../shared/testdata beside the clone; it is never copied
 * into the repo. Outside the workplace it is absent and the conformance tests skip, except under CI
 * where missing data is a failure.
 */
export const sharedTestdata = fileURLToPath(new URL('../../shared/testdata/', import.meta.url));

export function sharedDataAvailable(sub: string): boolean {
  const present = existsSync(sharedTestdata + sub);
  if (!present && process.env.CI === 'true') {
    throw new Error(`conformance data ../shared/testdata/${sub} is missing, and CI=true requires it`);
  }
  return present;
}

export const sharedSkipReason =
  'conformance data ../shared/testdata is absent (only present in the workplace)';
