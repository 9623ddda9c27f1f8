// Imported first by every benchmark. It makes two checks.
// - The Node version. The figures are for the Node the project pins: OTel JS 3.x needs >= 22.15, and
//   results.json records Node 24. The system's node may be older, and a benchmark run on it measures
//   another runtime (on Node 20, for one, AsyncLocalStorage is built on async hooks and the OTel context
//   costs more per request). So it refuses instead of printing figures that look comparable.
// - The build. Benchmarks import `dist/`, and a `dist/` older than `src/` (a checkout or merge since the
//   last build) measures code that is no longer there, without a sign. `npm run bench` builds first; a
//   benchmark run on its own refuses instead.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const [major, minor] = process.versions.node.split('.').map(Number);
const script = process.argv[1]?.split(/[\\/]/).slice(-2).join('/') ?? 'bench/run.mjs';
if (major < 22 || (major === 22 && minor < 15)) {
  console.error(
    `bench: Node ${process.version} is older than the 22.15 the project needs; run "npm run bench", or "npx node ${script}" for this one benchmark`,
  );
  process.exit(2);
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The first source file whose compiled module is missing or older than it, or undefined. */
function staleSource(dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      const stale = staleSource(path);
      if (stale !== undefined) return stale;
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      const built = join(root, 'dist', relative(join(root, 'src'), path)).replace(/\.ts$/, '.js');
      let builtMs;
      try {
        builtMs = statSync(built).mtimeMs;
      } catch {
        return path;
      }
      if (statSync(path).mtimeMs > builtMs) return path;
    }
  }
  return undefined;
}
// bench/run.mjs builds nothing itself either: `npm run bench` runs the build before it.
const stale = staleSource(join(root, 'src'));
if (stale !== undefined) {
  console.error(
    `bench: ${relative(root, stale)} is newer than its build in dist/ (or has none); build first ("npx tsc -p tsconfig.build.json", which "npm run bench" runs), or the benchmark measures code that is no longer there`,
  );
  process.exit(2);
}
