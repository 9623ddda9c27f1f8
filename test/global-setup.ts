import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * Builds dist/ once before the suite: end-to-end tests start real child processes
 * (`node --import mltrail/register`, the `mltrail` CLI) that load the compiled package.
 * Type errors do not stop the build (tsc still emits); `npx tsc --noEmit` is the type gate.
 */
export default function setup(): void {
  if (process.env.MLTRAIL_SKIP_BUILD === '1') return;
  const root = fileURLToPath(new URL('..', import.meta.url));
  const r = spawnSync(
    process.execPath,
    [`${root}node_modules/typescript/bin/tsc`, '-p', 'tsconfig.build.json'],
    {
      cwd: root,
      encoding: 'utf8',
    },
  );
  if (r.status !== 0)
    process.stderr.write(`global-setup: tsc reported errors (dist/ still emitted):\n${r.stdout}`);
}
