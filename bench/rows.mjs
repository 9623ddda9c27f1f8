// What each row of bench/results.json compares, for the generated table in docs/performance.md
// (bench/table.mjs). `compares` is prose without measured figures (those come from the row, so a rerun can
// never leave a stale number in it); `value` / `baseline` render a row whose figures are not one number.
/** 1234567 → "1 234 567"; decimals are kept as the bench rounded them. */
export function num(n) {
  if (typeof n !== 'number' || !Number.isFinite(n)) return String(n);
  const [int, frac] = String(n).split('.');
  const grouped = int.replace(/\B(?=(\d{3})+(?!\d))/g, ' ');
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

const us = (x) => (x === undefined ? '?' : `${num(x)} µs`);
const ms = (x) => (x === undefined ? '?' : `${num(x)} ms`);

export const rows = {
  'predict-vs-otel': {
    value: (r) => `${num(r.value)} calls/s (${us(r.cpu_us_per_call)} CPU per call)`,
    baseline: (r) => `${num(r.baseline)} calls/s (${us(r.baseline_cpu_us_per_call)})`,
    compares:
      'an audited `trail.predict()` (span, audit record, redaction, hash chain, group-committed journal, flushed inside the timing; the journal’s one segment never seals during the run, so the index build, the `index-build-1m` row, is not in it) vs a bare OTel SDK span + log record with batch processors and no-op exporters; medians of interleaved runs. The goal is on CPU per call (`cpu_ratio` in results.json)',
  },
  'predict-vs-pino': {
    value: (r) => `${num(r.value)} calls/s (${us(r.cpu_us_per_call)} CPU per call)`,
    baseline: (r) => `${num(r.baseline)} calls/s (${us(r.baseline_cpu_us_per_call)})`,
    compares: 'the same audited call vs pino writing the record as one JSON line to a file',
  },
  'journal-append': {
    value: (r) => `${num(r.value)} records/s, p50 ${ms(r.p50_ms)}, p99 ${ms(r.p99_ms)} per caller`,
    compares:
      'concurrent callers each awaiting fdatasync-durable appends (group commit) vs unsynced `appendFileSync` per line',
  },
  'journal-append-pipelined': {
    compares:
      'appends without awaiting each record (the trail’s default), one flush at the end, vs the same baseline',
  },
  'journal-read': {
    value: (r) => `${num(r.value)} lines/s (${num(r.mb_per_s)} MB/s)`,
    compares: 'streaming a journal’s segments line by line, as every reader does, without parsing',
  },
  'journal-ship': {
    compares: 'mapping journal records to OTLP log records and posting them to a local OTLP/HTTP receiver',
  },
  'verify-vs-sha256': {
    value: (r) =>
      `${num(r.value)} records/s (${num(r.oneThread)} on one thread); ${num(r.records)} records of ~${r.bytesPerLine} B in ${r.seconds} s`,
    compares:
      '`mltrail verify` end to end (body digest, record hash, links, Merkle roots, signatures) vs one `crypto.hash(sha256)` per line over the same segments read the same way; runs alternating, medians. `oneThreadRatio` in results.json is the ratio on one thread',
  },
  'verify-vs-sha256-small': {
    value: (r) =>
      `${num(r.value)} records/s (${num(r.oneThread)} on one thread); ${num(r.records)} records of ~${r.bytesPerLine} B in ${r.seconds} s`,
    compares: 'the same on the smallest records the trail writes',
  },
  'verify-v2-vs-v1': {
    value: (r) =>
      `${num(r.value)} records/s on format 2 (~${r.bytesPerLineV2} B a line; ${num(r.records)} records in ${r.secondsV2} s)`,
    baseline: (r) =>
      `${num(r.baseline)} records/s on format 1 (~${r.bytesPerLineV1} B a line; ${r.secondsV1} s)`,
    compares:
      '`mltrail verify` end to end on the same prediction records written as a record format 2 journal vs as a format 1 journal (issue 13: format 2 must not be slower); both verified alternately in one run, medians of 3',
  },
  'lineage-scan-1m': {
    value: (r) =>
      `${r.value} s; impact query ${r.impactSeconds} s${r.records ? ` (${num(r.records)} records)` : ''}`,
    baseline: (r) => `${r.baseline} s`,
    compares:
      'a prediction’s upstream from a journal of about a million records by a full scan (`mltrail lineage --scan`, no index) vs only reading the lines; the impact query is every prediction downstream of the training data, from the whole graph',
  },
  'lineage-1m': {
    value: (r) =>
      `${num(r.value)} ms query in a fresh process${r.cold_ms !== undefined ? ` (${ms(r.cold_ms)} with the page cache dropped)` : ''}; whole command ${ms(r.command_ms)} (Node alone starts in ${ms(r.node_start_ms)})${r.records ? `; ${num(r.records)} records` : ''}`,
    baseline: (r) => `${ms(r.baseline)} (--scan)`,
    compares:
      'one prediction’s upstream through the journal index in a fresh `mltrail lineage` process (open the segment indexes, filter and block lookups, read the records on the way; medians over the newest and the oldest prediction) vs the same command with --scan, which reads every record. The goal (≤ 50 ms) is on the query; the whole command adds Node’s start-up',
  },
  'lineage-10m': {
    value: (r) =>
      `${num(r.value)} ms query in a fresh process${r.cold_ms !== undefined ? ` (${ms(r.cold_ms)} with the page cache dropped)` : ''}; whole command ${ms(r.command_ms)} (Node alone starts in ${ms(r.node_start_ms)})${r.records ? `; ${num(r.records)} records` : ''}`,
    baseline: (r) => `${ms(r.baseline)} (--scan)`,
    compares:
      'the same on a journal about ten times larger (the slope: each segment’s index header is read once; a lookup skips every segment whose key time ranges cannot hold a UUIDv7 id, and reads one 64-byte filter block in the others)',
  },
  'index-build-1m': {
    value: (r) => `${num(r.value)} s per million records (${num(r.seconds)} s for ${num(r.records)})`,
    compares:
      '`mltrail index --force`: every segment’s index and every chain’s Merkle tiles, rebuilt from the journal. The journal writer does the same per segment on a worker thread when it seals it, so the request path pays nothing',
  },
  'index-build-10m': {
    value: (r) => `${num(r.value)} s per million records (${num(r.seconds)} s for ${num(r.records)})`,
    compares: 'the same on the larger journal',
  },
  'impact-1m': {
    value: (r) => `${num(r.value)} s, peak RSS ${num(r.peak_rss_mb)} MB, ${num(r.predictions)} predictions`,
    baseline: (r) =>
      r.baseline === undefined ? '' : `${num(r.baseline)} s, peak RSS ${num(r.scan_peak_rss_mb)} MB (--scan)`,
    compares:
      'every prediction downstream of the training data through the index (`mltrail lineage <dataset> --downstream --json`: the pipeline by lookups, then the lean predictions — id, kind, record — copied out of the index’s fan-out tables, no record read), whole command, vs the same lean answer with --scan (every segment read, each prediction’s line parsed)',
  },
  'impact-10m': {
    value: (r) => `${num(r.value)} s, peak RSS ${num(r.peak_rss_mb)} MB, ${num(r.predictions)} predictions`,
    compares: 'the same on the larger journal (the memory goal, ≤ 200 MB, is at this size)',
  },
  'verify-incremental': {
    value: (r) => `${num(r.value)} s for ${num(r.new_records)} new records on a chain of ${num(r.records)}`,
    baseline: (r) => `${num(r.baseline)} s (full verify)`,
    compares:
      '`verify --since-checkpoint HELD --incremental` (tiles hash to the held root, RFC 6962 consistency proof, the new records verified in full) vs the full `mltrail verify` of the same journal, whole commands',
  },
  'drift-monitor-observe': {
    value: (r) => `${us(r.ks)} (KS path), ${us(r.wasserstein)} (Wasserstein path)`,
    baseline: (r) => us(r.baseline),
    compares: '`DriftMonitor.observe()` per prediction (4 features) vs copying the features',
  },
  'redaction-clean-prediction': {
    compares:
      'the built-in redaction policy on a typical prediction body (a captured input as JSON text, two values pseudonymised) vs `JSON.stringify`',
  },
  'redaction-prediction-with-pii': {
    compares: 'the same with an e-mail address, a phone number and a postal address planted in the input',
  },
  'redaction-trail-predict-body': {
    compares:
      'the body `trail.predict()` redacts (default redactor, digest capture: ids, digests, names, numbers) vs `JSON.stringify`',
  },
  'instrumented-session-run': {
    value: (r) => `${num(r.value)} µs/call (${us(r.cpu_us_per_call)} CPU)`,
    baseline: (r) => `${num(r.baseline)} µs/call (${us(r.baseline_cpu_us_per_call)} CPU)`,
    compares:
      'onnxruntime-node `session.run` of the demo’s 4-feature model, auto-instrumented (span + audited prediction) vs bare, runs alternating on one session; wall time per awaited call (the goal is ≤ 2 × bare + 10 µs)',
  },
  'server-with-vs-without': {
    value: (r) =>
      `${num(r.value)} requests/s (p99 ${ms(r.p99_ms_with)}, ${us(r.cpu_us_per_request_with)} CPU per request)`,
    baseline: (r) =>
      `${num(r.baseline)} requests/s (p99 ${ms(r.p99_ms_without)}, ${us(r.cpu_us_per_request_without)})`,
    compares: 'the demo’s ONNX server under `node --import mltrail/register` vs the same server bare',
  },
  'server-with-vs-otel': {
    value: (r) =>
      `${num(r.value)} requests/s (p50 ${ms(r.p50_ms_mltrail)}, p99 ${ms(r.p99_ms_mltrail)}, ${us(r.cpu_us_per_request_mltrail)} CPU per request)`,
    baseline: (r) =>
      `${num(r.baseline)} requests/s (p50 ${ms(r.p50_ms_otel)}, p99 ${ms(r.p99_ms_otel)}, ${us(r.cpu_us_per_request_otel)}); bare ${num(r.rps_bare)} requests/s, ${us(r.cpu_us_per_request_bare)}`,
    compares:
      'the demo’s ONNX server (`examples/weather/server.mjs`) audited (`node --import mltrail/register`) vs traced by plain OpenTelemetry (`bench/plain-otel-register.mjs`: NodeSDK, HTTP instrumentation, batch span processor); autocannon keep-alive connections in a closed loop so the server runs flat out, each side warmed up with 20 000 requests (V8 done compiling), the audited one on until its journal’s first segment has sealed and been indexed, and measured over at most 25 000 (so no journal segment seals in the window: the index build is the `index-build-1m` row; `segments_sealed_in_load` in results.json), rounds alternating bare / OTel / mltrail, medians; every 2xx response has its prediction and decision record in the journal (`predictions_journaled`, `decisions_journaled` in results.json)',
  },
  'server-audit-cpu-us': {
    value: (r) => `${num(r.value)} µs/request`,
    baseline: (r) => `${num(r.baseline)} µs (OTel side)`,
    compares:
      'mltrail’s CPU per request minus the OTel-traced server’s, per round, median: two audit records, a drift observation, the onnxruntime instrumentation and the HTTP glue',
  },
  'record-pipeline': {
    value: (r) =>
      `body ${us(r.body)}, sealing ${us(r.sealing)} per record; whole emit into a journal ${us(r['whole emit + journal'])}` +
      (r['emit body in one pass'] === undefined
        ? ''
        : `; the emitter’s body step ${us(r['emit body in one pass'])} in one pass (${us(r['emit body in stages'])} through the stages)`),
    baseline: () => '—',
    compares:
      'one audit record’s stages on the calling thread (the server’s prediction and decision bodies): JSON-safe copy, validation, redaction, canonical JSON (the body, as separate stages); the emitter’s whole body step as it writes flat records (one pass) and through those stages; body digest, record hash, Merkle leaf, journal line, encoding (sealing); each stage’s µs is in results.json',
  },
};
