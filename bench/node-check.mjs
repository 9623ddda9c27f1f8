// Imported first by every benchmark: the figures are for the Node the project pins (OTel JS 3.x needs
// >= 22.15, and Node 24 is what results.json records). The system's node may be older, and a benchmark run
// on it measures another runtime (on Node 20, for one, AsyncLocalStorage is built on async hooks and the
// OTel context costs more per request), so it refuses instead of printing figures that look comparable.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 15)) {
  const script = process.argv[1]?.split(/[\\/]/).slice(-2).join('/') ?? 'bench/run.mjs';
  console.error(
    `bench: Node ${process.version} is older than the 22.15 the project needs; run "npm run bench", or "npx node ${script}" for this one benchmark`,
  );
  process.exit(2);
}
