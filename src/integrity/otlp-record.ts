import {
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_HASH,
  ATTR_MLTRAIL_PREV_HASH,
  ATTR_MLTRAIL_RECORD_VERSION,
  ATTR_MLTRAIL_SEQ,
  LOOKUP_ATTRIBUTES,
} from '../semconv/index.js';
import {
  type AuditRecord,
  bodyDigest,
  checkRecord,
  fromBody,
  type RecordAttrs,
  RecordFormatError,
  type RecordLocation,
} from './record.js';

/** An OTLP/JSON AnyValue. */
interface AnyValue {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
}

/** An OTLP/JSON LogRecord (as in ExportLogsServiceRequest, or the collector's file exporter). */
export interface OtlpLogRecord {
  timeUnixNano?: string;
  severityText?: string;
  eventName?: string;
  body?: AnyValue;
  traceId?: string;
  spanId?: string;
  attributes?: { key: string; value: AnyValue }[];
}

const CHAIN_KEYS = new Set([
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_SEQ,
  ATTR_MLTRAIL_PREV_HASH,
  ATTR_MLTRAIL_HASH,
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_RECORD_VERSION,
  'event.name',
]);

function plain(v: AnyValue | undefined): string | number | boolean | string[] | undefined {
  if (v === undefined) return undefined;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map((x) => String(plain(x)));
  return undefined;
}

/**
 * Turns an OTLP log record shipped by mltrail (see docs/internals.md, "OTLP mapping") back into an audit
 * record. Returns undefined for log records that are not mltrail audit records (no chain fields).
 *
 * Format 2 (`mltrail.record.version` 2): the body is the evidence, and event, time, severity and trace ids
 * are read from it; the OTLP fields beside it are transport only. The lookup attributes are kept so
 * `verify` checks them against the body (Loki filters on them).
 */
export function parseOtlpLogRecord(lr: OtlpLogRecord, where?: RecordLocation): AuditRecord | undefined {
  const attrs = new Map<string, ReturnType<typeof plain>>();
  for (const a of lr.attributes ?? []) attrs.set(a.key, plain(a.value));
  if (!attrs.has(ATTR_MLTRAIL_CHAIN_ID)) return undefined;
  const lookup: RecordAttrs = {};
  // Only registry lookup keys are compared with the body: collectors add their own attributes (redaction
  // summaries) and may shape others.
  for (const [k, v] of attrs)
    if (!CHAIN_KEYS.has(k) && LOOKUP_ATTRIBUTES.has(k) && v !== undefined) lookup[k] = v;
  const version = attrs.get(ATTR_MLTRAIL_RECORD_VERSION) ?? 1;
  const body = lr.body?.stringValue ?? '';
  if (version === 2) return fromOtlpBody(attrs, lookup, body, where);
  const ns = lr.timeUnixNano !== undefined ? BigInt(lr.timeUnixNano) : 0n;
  const record = {
    chain: attrs.get(ATTR_MLTRAIL_CHAIN_ID),
    seq: attrs.get(ATTR_MLTRAIL_SEQ),
    ts: new Date(Number(ns / 1_000_000n)).toISOString(),
    event: lr.eventName || attrs.get('event.name'),
    sev: lr.severityText ?? '',
    ...(lr.traceId ? { trace_id: lr.traceId } : {}),
    ...(lr.spanId ? { span_id: lr.spanId } : {}),
    attrs: lookup,
    body,
    digest: attrs.get(ATTR_MLTRAIL_BODY_DIGEST),
    prev: attrs.get(ATTR_MLTRAIL_PREV_HASH),
    hash: attrs.get(ATTR_MLTRAIL_HASH),
  };
  return checkRecord(record, where);
}

/**
 * A format 2 record from its chain fields and body (OTLP attributes or Loki structured metadata). The
 * digest is the body's own; an erased record (no body) keeps the digest it was sent with.
 */
export function recordFromBody(
  chain: unknown,
  seq: unknown,
  prev: unknown,
  hash: unknown,
  body: string,
  digest: unknown,
  lookup: RecordAttrs,
  where?: RecordLocation,
): AuditRecord {
  const r = checkRecord(
    {
      v: 2,
      chain,
      seq,
      ts: '',
      event: '',
      sev: '',
      attrs: {},
      body,
      digest: body !== '' ? bodyDigest(body) : digest,
      prev,
      hash,
    },
    where,
  );
  if (body !== '') {
    let o: unknown;
    try {
      o = JSON.parse(body);
    } catch (err) {
      throw new RecordFormatError(`the body is not JSON (${(err as Error).message})`, where);
    }
    if (o === null || typeof o !== 'object' || Array.isArray(o))
      throw new RecordFormatError('the body must be a JSON object', where);
    fromBody(r, o as Record<string, unknown>, where);
    // What came with the record, to be checked against the body. A source that carries no lookup
    // attributes (Loki keeps them as renamed structured metadata) keeps the ones derived from the body.
    if (Object.keys(lookup).length > 0) r.attrs = lookup;
  }
  return r;
}

function fromOtlpBody(
  attrs: Map<string, ReturnType<typeof plain>>,
  lookup: RecordAttrs,
  body: string,
  where: RecordLocation | undefined,
): AuditRecord {
  return recordFromBody(
    attrs.get(ATTR_MLTRAIL_CHAIN_ID),
    attrs.get(ATTR_MLTRAIL_SEQ),
    attrs.get(ATTR_MLTRAIL_PREV_HASH),
    attrs.get(ATTR_MLTRAIL_HASH),
    body,
    attrs.get(ATTR_MLTRAIL_BODY_DIGEST),
    lookup,
    where,
  );
}
