import type { ChainVerifier } from '../integrity/chain-verifier.js';
import { recordFromBody } from '../integrity/otlp-record.js';
import { type AuditRecord, checkRecord } from '../integrity/record.js';
import {
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_HASH,
  ATTR_MLTRAIL_PREV_HASH,
  ATTR_MLTRAIL_RECORD_VERSION,
  ATTR_MLTRAIL_SEQ,
} from '../semconv/index.js';

/** Options for reading audit records back from Loki's query API. */
export interface LokiSourceOptions {
  /** Base URL of Loki (or of a Grafana datasource proxy), e.g. http://localhost:3100. */
  url: string;
  /** A LogQL stream selector, e.g. `{service_name="rain-cover-api"}`. */
  query: string;
  /** X-Scope-OrgID for multi-tenant Loki. */
  tenant?: string;
  /** Start of the range (default: 30 days ago). */
  start?: Date;
  end?: Date;
  /** Entries per request (default 5000). */
  pageSize?: number;
  headers?: Record<string, string>;
}

interface LokiStream {
  stream: Record<string, string>;
  values: [string, string, { structuredMetadata?: Record<string, string> }?][];
}

/**
 * Fetches every entry matching the query with `query_range` (forward, paginated) and feeds the records to
 * the verifier. The log line is the record body; the chain fields come from structured metadata.
 */
export async function readLokiIntoVerifier(
  opts: LokiSourceOptions,
  verifier: ChainVerifier,
): Promise<number> {
  return readLokiRecords(opts, {
    record: (r, where) => verifier.add(r, where, false),
    problem: (p) => verifier.addProblem(p),
  });
}

/** Where {@link readLokiRecords} delivers records (in timestamp order) and the entries it cannot read. */
export interface LokiRecordSink {
  record(r: AuditRecord, where: { file: string; line: number }): void;
  problem(p: { kind: 'malformed'; location: string; message: string }): void;
}

/**
 * Reads every audit record matching the query from Loki's `query_range` (forward, paginated) — the same
 * records `mltrail verify --loki` checks, for any reader of audit data (e.g. the lineage graph).
 */
export async function readLokiRecords(opts: LokiSourceOptions, sink: LokiRecordSink): Promise<number> {
  const pageSize = opts.pageSize ?? 5000;
  let start = BigInt((opts.start ?? new Date(Date.now() - 30 * 86_400_000)).getTime()) * 1_000_000n;
  const end = BigInt((opts.end ?? new Date()).getTime()) * 1_000_000n;
  let total = 0;
  let pages = 0;
  for (;;) {
    const url = new URL('/loki/api/v1/query_range', opts.url);
    url.searchParams.set('query', opts.query);
    url.searchParams.set('start', start.toString());
    url.searchParams.set('end', end.toString());
    url.searchParams.set('limit', String(pageSize));
    url.searchParams.set('direction', 'forward');
    const headers: Record<string, string> = {
      'X-Loki-Response-Encoding-Flags': 'categorize-labels',
      ...opts.headers,
    };
    if (opts.tenant !== undefined) headers['X-Scope-OrgID'] = opts.tenant;
    const res = await fetch(url, { headers });
    if (!res.ok)
      throw new Error(`Loki ${url.origin}: HTTP ${res.status} ${(await res.text()).slice(0, 300)}`);
    const entries: { ts: bigint; line: string; meta: Record<string, string> }[] = [];
    for (const s of lokiStreams(await res.text(), url.origin)) {
      for (const [ts, line, extra] of s.values)
        entries.push({ ts: BigInt(ts), line, meta: { ...s.stream, ...extra?.structuredMetadata } });
    }
    entries.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    if (pages++ > 0 && entries.length >= pageSize && entries[entries.length - 1].ts <= start)
      // A full page that does not move past its first timestamp would be read again forever.
      throw new Error(
        `Loki ${url.origin}: ${entries.length} entries share the timestamp ${start} ns, more than one page holds; raise the page size`,
      );
    for (const e of entries) {
      total++;
      const where = { file: `loki:${e.ts}`, line: total };
      try {
        sink.record(toRecord(e.ts, e.line, e.meta, where), where);
      } catch (err) {
        sink.problem({ kind: 'malformed', location: where.file, message: (err as Error).message });
      }
    }
    if (entries.length < pageSize) return total;
    // Next page starts after the last timestamp; entries sharing it are re-read and count as duplicates.
    start = entries[entries.length - 1].ts;
  }
}

/**
 * The streams of a `query_range` answer, checked for the shape the reader relies on: anything else (an
 * answer from something that is not Loki, or a broken one) is an error that says what was wrong, never an
 * empty result that would verify as intact.
 */
function lokiStreams(text: string, origin: string): LokiStream[] {
  let body: { status?: unknown; data?: { result?: unknown } } | null;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new Error(
      `Loki ${origin}: the answer is not JSON (${(err as Error).message}): ${text.slice(0, 100)}`,
    );
  }
  const result = body?.data?.result;
  if (body?.status !== 'success' || !Array.isArray(result))
    throw new Error(
      `Loki ${origin}: not a query_range answer (expected status "success" and a data.result array)`,
    );
  result.forEach((s: Partial<LokiStream> | null, i) => {
    if (typeof s !== 'object' || s === null || !Array.isArray(s.values))
      throw new Error(`Loki ${origin}: data.result[${i}].values is not an array`);
    if (s.stream !== undefined && (typeof s.stream !== 'object' || s.stream === null))
      throw new Error(`Loki ${origin}: data.result[${i}].stream is not an object`);
    s.values.forEach((v, j) => {
      if (
        !Array.isArray(v) ||
        typeof v[0] !== 'string' ||
        !/^\d{1,20}$/.test(v[0]) ||
        typeof v[1] !== 'string'
      )
        throw new Error(
          `Loki ${origin}: data.result[${i}].values[${j}] is not a [nanosecond timestamp, line] pair`,
        );
    });
  });
  return result as LokiStream[];
}

function toRecord(
  ts: bigint,
  line: string,
  meta: Record<string, string>,
  where: { file: string; line: number },
) {
  const get = (key: string) => meta[key.replaceAll('.', '_')];
  // Format 2: the line is the body, and everything but the chain fields is read from it.
  if (get(ATTR_MLTRAIL_RECORD_VERSION) === '2')
    return recordFromBody(
      get(ATTR_MLTRAIL_CHAIN_ID),
      Number(get(ATTR_MLTRAIL_SEQ)),
      get(ATTR_MLTRAIL_PREV_HASH),
      get(ATTR_MLTRAIL_HASH),
      line,
      get(ATTR_MLTRAIL_BODY_DIGEST),
      {},
      where,
    );
  return checkRecord(
    {
      chain: get(ATTR_MLTRAIL_CHAIN_ID),
      seq: Number(get(ATTR_MLTRAIL_SEQ)),
      ts: new Date(Number(ts / 1_000_000n)).toISOString(),
      event: meta.event_name ?? '',
      sev: meta.detected_level ?? meta.severity_text ?? '',
      attrs: {},
      body: line,
      digest: get(ATTR_MLTRAIL_BODY_DIGEST),
      prev: get(ATTR_MLTRAIL_PREV_HASH),
      hash: get(ATTR_MLTRAIL_HASH),
      ...(meta.trace_id ? { trace_id: meta.trace_id } : {}),
      ...(meta.span_id ? { span_id: meta.span_id } : {}),
    },
    where,
  );
}
