// Sums V8 CPU profiles (`node --cpu-prof`, e.g. from `BENCH_CPU_PROF=<dir> node bench/server.mjs`) by
// component, so the cost of a request can be read per part of the system:
//   node bench/profile-summary.mjs [--markdown] [--share] [--detail=<bucket>] a.cpuprofile [b.cpuprofile ...]
// or the same with heap profiles (`BENCH_HEAP_PROF=<dir> node bench/server.mjs`, bench/heap-sampler.mjs):
// bytes allocated per request by component, charged by the same rules.
// One column per profile: µs of main-thread time per request when `<profile>.requests` holds the request
// count (bench/server.mjs writes it), else % of busy time. Idle time is left out; start-up (module loading)
// is shown apart and not counted per request.
//
// Each sample is charged to one component by its stack:
// - a frame of a component that does one job and never calls back into the app (journal, metrics, drift,
//   tensor capture, start-up) charges the whole sample to that job, wherever it sits on the stack, so the
//   canonical JSON and hashing done to digest an input count as tensor capture, and the OTel API calls the
//   trail's metrics make count as metrics;
// - otherwise the innermost frame that belongs to a component (mltrail's files, an OTel package, the app,
//   onnxruntime) decides: Node's own code and native functions (writev, hashing, JSON) count for whoever
//   called them, so the async-context work of the HTTP glue is the glue's;
// - samples with no such frame (the HTTP parser run from the socket, timers, microtask ticks) are Node's
//   own, split by module; (garbage collector) and (program) are V8's.
import { readFileSync } from 'node:fs';

/** [bucket, test on the frame's url, test on its function name (optional)]; the first match wins. */
const COMPONENTS = [
  ['start-up (module loading)', /node:internal\/modules\//, undefined, 'job'],
  [
    'journal (line, buffers, writes)',
    /\/journal\/(journal-writer|journal-worker|shipper)\.js$/,
    undefined,
    'job',
  ],
  ['metrics', /\/trail\/trail\.js$/, /countPrediction/, 'job'],
  ['metrics', /@opentelemetry\/sdk-metrics\//, undefined, 'job'],
  ['drift', /\/drift\//, undefined, 'job'],
  ['tensor capture and digests', /\/trail\/trail\.js$/, /captureInput|captureOutput/, 'job'],
  ['tensor capture and digests', /\/instrumentation\/tensor-view\.js$/, undefined, 'job'],
  [
    'tensor capture and digests',
    /\/instrumentation\/onnxruntime\/instrumentation\.js$/,
    /tensorsView|safeData|singleScore/,
    'job',
  ],
  ['HTTP glue (prediction header)', /\/instrumentation\/prediction-header\.js$/],
  [
    'onnxruntime instrumentation',
    /\/instrumentation\/(onnxruntime\/|model-binding\.js|module-instrumentation\.js)/,
  ],
  ['redaction', /\/privacy\//],
  ['validation', /\/semconv\/|\/node_modules\/zod\//],
  ['canonical JSON', /\/integrity\/canonical-json\.js$/],
  ['JSON-safe copy', /\/trail\/json-safe\.js$/],
  ['trail wrapper (predict/decide, spans, scope)', /\/integrity\/uuidv7\.js$/],
  ['journal (line, buffers, writes)', /\/integrity\/record\.js$/, /serializeRecord|serializeV1/],
  ['journal (line, buffers, writes)', /\/journal\/audit-log\.js$/],
  ['hashing and chain (digests, record hash, Merkle, checkpoints)', /\/integrity\/|\/trail\/digest\.js$/],
  ['audit record assembly (emitter)', /\/trail\/audit-emitter\.js$/],
  [
    'trail wrapper (predict/decide, spans, scope)',
    /\/trail\/|\/mltrail\/dist\/|\/dist\/(index|register)\.js$/,
  ],
  ['OTel HTTP instrumentation', /@opentelemetry\/instrumentation-http\//],
  ['OTel SDK (spans, context, API)', /@opentelemetry\//],
  ['onnxruntime (binding and native run)', /\/node_modules\/onnxruntime-(node|common)\//],
  ['app (handler, JSON, response)', /\/examples\//],
];

/** Node's own modules, for samples no component asked for. */
const NODE_PARTS = [
  [
    'Node: HTTP server, sockets, streams',
    /node:(_http|net|internal\/(streams|http|stream_base|js_stream)|stream|http)/,
  ],
  [
    'Node: async context, promises, ticks',
    /node:(async_hooks|internal\/(async_hooks|process\/task_queues|async_local_storage|promise))/,
  ],
  ['Node: timers', /node:(timers|internal\/timers)/],
  ['Node: fs', /node:(fs|internal\/fs)/],
];

/** The rule a frame falls under, if any. */
function ruleOf(frame) {
  const { url, functionName } = frame.callFrame;
  if (url === '') return undefined;
  for (const rule of COMPONENTS) {
    const [, path, name] = rule;
    if (path.test(url) && (name === undefined || name.test(functionName))) return rule;
  }
  return undefined;
}
const componentOf = (frame) => ruleOf(frame)?.[0];

function nodePartOf(frame) {
  const { url, functionName } = frame.callFrame;
  if (functionName === '(garbage collector)') return 'GC';
  if (functionName === '(program)') return 'V8 (program: compiled code not attributed)';
  if (functionName === '(idle)') return 'idle';
  if (functionName === '(root)') return 'V8 (program: compiled code not attributed)';
  for (const [bucket, path] of NODE_PARTS) if (path.test(url)) return bucket;
  return url === '' ? 'native (no caller known)' : 'Node: other';
}

/** µs of self time per bucket for one profile. */
export function summarise(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const bucketOf = new Map();
  const bucketFor = (id) => {
    let b = bucketOf.get(id);
    if (b !== undefined) return b;
    let innermost;
    let job;
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const rule = ruleOf(byId.get(at));
      if (rule === undefined) continue;
      // Keep walking: the outermost job wins.
      if (rule[3] === 'job') job = rule[0];
      else innermost ??= rule[0];
    }
    b = job ?? innermost ?? nodePartOf(byId.get(id));
    bucketOf.set(id, b);
    return b;
  };
  // Each sample counts for the profile's sampling interval (the median gap between samples): on a busy
  // machine the thread is sometimes descheduled between two samples, and the long gap that follows says
  // nothing about the code the next sample lands in.
  // A heap profile (converted by fromHeapProfile) weighs each node by the bytes it allocated.
  const { samples, timeDeltas, weights } = profile;
  const gaps = timeDeltas.filter((d) => d > 0).sort((a, b) => a - b);
  const median = gaps.length > 0 ? gaps[gaps.length >> 1] : 1000;
  const totals = new Map();
  const frames = new Map();
  for (let s = 0; s < samples.length; s++) {
    const id = samples[s];
    const interval = weights !== undefined ? weights[s] : median;
    const b = bucketFor(id);
    totals.set(b, (totals.get(b) ?? 0) + interval);
    if (detail !== undefined && b.startsWith(detail)) {
      // The sample's own frame and the innermost frame of mltrail's code (or any component) above it.
      const leaf = byId.get(id).callFrame;
      let owner;
      for (let at = id; at !== undefined && owner === undefined; at = parent.get(at)) {
        const f = byId.get(at).callFrame;
        if (componentOf(byId.get(at)) !== undefined) owner = f;
      }
      const key = `${leaf.functionName || '(anonymous)'} ${leaf.url.replace(/^.*\//, '')}:${leaf.lineNumber + 1}  <  ${owner === undefined ? '-' : `${owner.functionName || '(anonymous)'} ${owner.url.replace(/^.*\//, '')}:${owner.lineNumber + 1}`}`;
      frames.set(key, (frames.get(key) ?? 0) + interval);
    }
  }
  totals.frames = frames;
  return totals;
}

/**
 * A sampling heap profile (bench/heap-sampler.mjs: a tree of call frames with the bytes each allocated) in
 * the CPU profile's shape, each node one "sample" weighed by its bytes, so both are summed the same way.
 */
function fromHeapProfile(heap) {
  const nodes = [];
  const samples = [];
  const weights = [];
  const walk = (node) => {
    nodes.push({ id: node.id, callFrame: node.callFrame, children: node.children.map((c) => c.id) });
    if (node.selfSize > 0) {
      samples.push(node.id);
      weights.push(node.selfSize);
    }
    for (const c of node.children) walk(c);
  };
  walk(heap.head);
  return { nodes, samples, weights, timeDeltas: [], requests: heap.requests };
}

const args = process.argv.slice(2);
// --detail=<bucket prefix>: the frames the samples of that bucket land in, heaviest first.
const detail = args.find((a) => a.startsWith('--detail='))?.slice('--detail='.length);
const markdown = args.includes('--markdown');
const files = args.filter((a) => !a.startsWith('--'));
if (files.length === 0) {
  process.stderr.write(
    'usage: node bench/profile-summary.mjs [--markdown] a.cpuprofile [b.cpuprofile ...]\n',
  );
  process.exit(2);
}
const heap = files.every((f) => f.endsWith('.heapprofile'));
const columns = files.map((file) => {
  const raw = JSON.parse(readFileSync(file, 'utf8'));
  const profile = raw.head !== undefined ? fromHeapProfile(raw) : raw;
  const totals = summarise(profile);
  let requests = profile.requests;
  try {
    requests ??= Number(readFileSync(`${file}.requests`, 'utf8'));
  } catch {
    requests = undefined;
  }
  const startup = totals.get('start-up (module loading)') ?? 0;
  const idle = totals.get('idle') ?? 0;
  let busy = 0;
  for (const [b, us] of totals) if (b !== 'idle' && b !== 'start-up (module loading)') busy += us;
  return { file, totals, requests, busy, startup, idle };
});
const order = [
  ...new Set([...COMPONENTS.map((c) => c[0]), ...NODE_PARTS.map((p) => p[0])]),
  'Node: other',
  'native (no caller known)',
  'GC',
  'V8 (program: compiled code not attributed)',
].filter((b) => b !== 'start-up (module loading)');
// --share: % of busy time even where the request count is known (steadier than µs on a loaded machine,
// where descheduled time inflates every sample alike).
const share = args.includes('--share');
const cell = (col, us) =>
  !share && col.requests !== undefined && col.requests > 0
    ? (us / col.requests).toFixed(heap ? 0 : 1)
    : `${((100 * us) / col.busy).toFixed(1)}%`;
const names = columns.map((c) => c.file.replace(/^.*\//, '').replace(/\.(cpu|heap)profile$/, ''));
const rows = [];
for (const b of order) {
  if (!columns.some((c) => (c.totals.get(b) ?? 0) > 0)) continue;
  rows.push([b, ...columns.map((c) => cell(c, c.totals.get(b) ?? 0))]);
}
rows.push([
  heap ? 'allocated, per request' : 'busy main thread, per request',
  ...columns.map((c) => cell(c, c.busy)),
]);
rows.push(['requests', ...columns.map((c) => String(c.requests ?? '?'))]);
if (!heap) rows.push(['start-up, ms (not counted)', ...columns.map((c) => (c.startup / 1000).toFixed(0))]);
const unit =
  !share && columns.every((c) => c.requests !== undefined)
    ? heap
      ? 'bytes per request'
      : 'µs per request'
    : 'share of busy time';
if (detail !== undefined) {
  for (const c of columns) {
    console.log(
      `${c.file}: frames of "${detail}*" (own frame  <  innermost component frame), ${heap ? 'bytes' : 'µs'} per request`,
    );
    const top = [...c.totals.frames].sort((a, b) => b[1] - a[1]).slice(0, 40);
    for (const [k, us] of top) console.log(`  ${cell(c, us).padStart(7)}  ${k}`);
  }
  process.exit(0);
}
if (markdown) {
  console.log(`| component (${unit}) | ${names.join(' | ')} |`);
  console.log(`|---|${names.map(() => '---:').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
} else {
  const w0 = Math.max(...rows.map((r) => r[0].length), unit.length);
  const ws = names.map((n, i) => Math.max(n.length, ...rows.map((r) => r[i + 1].length)));
  console.log([unit.padEnd(w0), ...names.map((n, i) => n.padStart(ws[i]))].join('  '));
  for (const r of rows)
    console.log([r[0].padEnd(w0), ...r.slice(1).map((c, i) => c.padStart(ws[i]))].join('  '));
}
