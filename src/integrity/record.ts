import { hash } from 'node:crypto';
// The lookup module alone: the semconv index brings in zod.
import { LOOKUP_ATTRIBUTES } from '../semconv/lookup.js';

/** Attribute values a record may repeat from its body for lookups (Loki structured metadata). */
export type RecordAttrs = Record<string, string | number | boolean | string[]>;

/**
 * The journal line format of a record: 2 is the closed line with the body embedded as raw JSON (written
 * since format 2 exists); 1 is the older line with the body as an escaped string and copies of body keys
 * beside it (still read and verified). See docs/integrity.md, "Record format".
 */
export type RecordVersion = 1 | 2;

/** The format this package writes. */
export const RECORD_VERSION: RecordVersion = 2;

/** Severity of a record, `severity_text` in its body. */
export const SEVERITIES: readonly string[] = ['DEBUG', 'INFO', 'WARN', 'ERROR'];

/**
 * One audit record: a journal line, a Loki line plus metadata, or an OTLP log record, normalised. In
 * format 2 only `chain`, `seq`, `prev`, `hash` and `body` are stored; `event`, `ts`, `sev`, the trace ids
 * and `attrs` are read from the body (so they are covered by the hash), and `digest` is computed from it.
 */
export interface AuditRecord {
  /** The line format the record was read from or is written in. */
  v: RecordVersion;
  /** Hash chain id (UUIDv7), one per emitting process. */
  chain: string;
  /** 0-based, gap-free position in the chain. */
  seq: number;
  /** ISO 8601 time the record was written (the body's `timestamp`; empty when erased in format 2). */
  ts: string;
  /** The event name (the body's `event.name`; empty when erased in format 2). */
  event: string;
  /** The body's `severity_text` (format 1: a line field the hash does not cover). */
  sev: string;
  trace_id?: string;
  span_id?: string;
  /** Lookup keys of the body (format 1: copies in the line, checked against the body by `verify`). */
  attrs: RecordAttrs;
  /** Canonical JSON of the event: the evidence. Empty when erased. */
  body: string;
  /** `sha256:<hex>` of the body bytes; what the hash commits to. */
  digest: string;
  /** Hash of the previous record (64 zeros for seq 0). */
  prev: string;
  /** This record's hash: the RFC 6962 leaf hash of its encoding (see {@link recordLeafData}). */
  hash: string;
  /** Set when the body was erased: the `<chain>:<seq>` of the `mltrail.erasure` record that did it. */
  erased_by?: string;
}

/** The hash of "no previous record". */
export const ZERO_HASH = '0'.repeat(64);

/** sha256 of a body: `sha256:<hex>`. */
export function bodyDigest(body: string): string {
  return `sha256:${hash('sha256', body)}`;
}

/**
 * The bytes a record hash commits to. Every field is fixed-format (UUID, decimal, hex) and
 * newline-terminated, so no two different tuples share an encoding; the first line names the format, so a
 * record of one format can never pass as one of the other:
 *
 * ```
 * mltrail-record-v2\n<chain>\n<seq decimal>\n<prev hex>\n<body sha256 hex>\n
 * ```
 */
export function recordLeafData(
  chain: string,
  seq: number,
  prev: string,
  digest: string,
  v: RecordVersion = RECORD_VERSION,
): string {
  return `mltrail-record-v${v}\n${chain}\n${seq}\n${prev}\n${digest.startsWith('sha256:') ? digest.slice(7) : digest}\n`;
}

/** The record hash: SHA-256(0x00 || leaf data), i.e. the RFC 6962 leaf hash, hex. */
export function recordHash(
  chain: string,
  seq: number,
  prev: string,
  digest: string,
  v: RecordVersion = RECORD_VERSION,
): string {
  // The leaf data is ASCII, so prefixing U+0000 to the string hashes exactly 0x00 || leaf data.
  return hash('sha256', `\u0000${recordLeafData(chain, seq, prev, digest, v)}`);
}

/**
 * Serialises a record as one journal line (no trailing newline). Format 2:
 *
 * ```
 * {"v":2,"chain":"<uuid>","seq":<n>,"prev":"<hex>","hash":"<hex>","body":<canonical JSON>}
 * {"v":2,"chain":"<uuid>","seq":<n>,"prev":"<hex>","hash":"<hex>","digest":"sha256:<hex>","erased_by":"<chain>:<seq>"}
 * ```
 *
 * A line is valid only when it is exactly this serialisation of the fields it holds.
 */
export function serializeRecord(r: AuditRecord): string {
  if (r.v === 1) return serializeV1(r);
  const head = `{"v":2,"chain":${JSON.stringify(r.chain)},"seq":${r.seq},"prev":"${r.prev}","hash":"${r.hash}",`;
  if (r.erased_by !== undefined)
    return `${head}"digest":"${r.digest}","erased_by":${JSON.stringify(r.erased_by)}}`;
  return `${head}"body":${r.body}}`;
}

/** Format 1: `JSON.stringify` of the fields in their documented order. */
function serializeV1(r: AuditRecord): string {
  const o: Record<string, unknown> = { chain: r.chain, seq: r.seq, ts: r.ts, event: r.event, sev: r.sev };
  if (r.trace_id !== undefined) o.trace_id = r.trace_id;
  if (r.span_id !== undefined) o.span_id = r.span_id;
  o.attrs = r.attrs;
  o.body = r.body;
  o.digest = r.digest;
  o.prev = r.prev;
  o.hash = r.hash;
  if (r.erased_by !== undefined) o.erased_by = r.erased_by;
  return JSON.stringify(o);
}

const V1_EVENT_KEY = '"event":"';
const V2_EVENT_KEY = '"event.name":"';

/**
 * The event name of a journal line of either format without parsing it, for readers that skip most lines:
 * a pre-filter only (the line is not checked). '' for an erased format 2 line (its event went with the
 * body); undefined when it cannot tell cheaply, and the caller parses the line.
 */
export function lineEventName(line: string): string | undefined {
  if (line.startsWith('{"v":')) {
    const at = line.indexOf(V2_EVENT_KEY);
    if (at < 0) return line.includes('"erased_by":') ? '' : undefined;
    const start = at + V2_EVENT_KEY.length;
    const end = line.indexOf('"', start);
    // Inside a JSON string a quote is escaped, so this key can only be a key; a body with it twice (a nested
    // object holding one) is left to the parser.
    if (end < 0 || line.indexOf(V2_EVENT_KEY, end) >= 0) return undefined;
    return line.slice(start, end);
  }
  // Format 1: the top-level key comes before the body, whose quotes are escaped.
  const at = line.indexOf(V1_EVENT_KEY);
  if (at < 0) return undefined;
  const start = at + V1_EVENT_KEY.length;
  const end = line.indexOf('"', start);
  return end < 0 ? undefined : line.slice(start, end);
}

/** Where a record came from, for problem reports. */
export interface RecordLocation {
  file: string;
  line: number;
}

/** A line that is not a valid audit record; the message names the file, line and field. */
export class RecordFormatError extends Error {
  readonly location: RecordLocation | undefined;
  constructor(message: string, location?: RecordLocation) {
    super(location !== undefined ? `${location.file}:${location.line}: ${message}` : message);
    this.name = 'RecordFormatError';
    this.location = location;
  }
}

/**
 * Parses and checks one journal line of either format. Throws {@link RecordFormatError} (naming the field)
 * for anything that is not exactly a serialised record: an extra, missing, reordered or re-spaced field,
 * and in format 1 a copy of a body key (event, ts, trace ids) that disagrees with the body.
 */
export function parseRecordLine(line: string, where?: RecordLocation): AuditRecord {
  if (line.startsWith('{"v":')) return parseV2Line(line, where);
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (err) {
    throw new RecordFormatError(`not JSON (${(err as Error).message})`, where);
  }
  if (o !== null && typeof o === 'object' && 'v' in o)
    throw new RecordFormatError('field "v" must come first, as {"v":2,...}', where);
  const r = checkRecord(o, where);
  closedV1(line, r, where);
  return r;
}

/** The fixed part of a format 2 line, field by field, each with what it must look like. */
const V2_FIELDS: [RegExp, string][] = [
  [/\{"v":2,/y, 'a format 2 line starts with {"v":2, (format 1 lines have no "v")'],
  [/"chain":"[^"\\\u0000-\u001f]+",/y, 'field "chain" (the second) must be a plain string'],
  [/"seq":(?:0|[1-9][0-9]{0,15}),/y, 'field "seq" (the third) must be a non-negative integer'],
  [/"prev":"[0-9a-f]{64}",/y, 'field "prev" (the fourth) must be 64 lower-case hex digits'],
  [/"hash":"[0-9a-f]{64}",/y, 'field "hash" (the fifth) must be 64 lower-case hex digits'],
];
const V2_HEAD =
  /^\{"v":2,"chain":"([^"\\\u0000-\u001f]+)","seq":(0|[1-9][0-9]{0,15}),"prev":"([0-9a-f]{64})","hash":"([0-9a-f]{64})",/;
const V2_ERASED = /"digest":"(sha256:[0-9a-f]{64})","erased_by":"([^"\\\u0000-\u001f]+)"\} *$/y;

function parseV2Line(line: string, where: RecordLocation | undefined): AuditRecord {
  const head = V2_HEAD.exec(line);
  if (head === null) {
    if (!line.startsWith('{"v":2,')) {
      const v = /^\{"v":([^,}]*)/.exec(line)?.[1];
      throw new RecordFormatError(
        `unsupported record format "v":${v} (this version reads 1 and 2; a newer mltrail may read it)`,
        where,
      );
    }
    let at = 0;
    for (const [re, message] of V2_FIELDS) {
      re.lastIndex = at;
      if (!re.test(line)) throw new RecordFormatError(message, where);
      at = re.lastIndex;
    }
    throw new RecordFormatError('not a format 2 line', where);
  }
  const at = head[0].length;
  const r: AuditRecord = {
    v: 2,
    chain: head[1],
    seq: Number(head[2]),
    ts: '',
    event: '',
    sev: '',
    attrs: {},
    body: '',
    digest: '',
    prev: head[3],
    hash: head[4],
  };
  if (line.startsWith('"body":', at)) {
    if (!line.endsWith('}'))
      throw new RecordFormatError('a format 2 line ends with its body and one closing brace', where);
    r.body = line.slice(at + 7, -1);
    r.digest = bodyDigest(r.body);
    fromBody(r, parseBody(r.body, where), where);
    return r;
  }
  V2_ERASED.lastIndex = at;
  const erased = V2_ERASED.exec(line);
  if (erased === null) {
    const key = /^"([^"]*)"/.exec(line.slice(at))?.[1];
    throw new RecordFormatError(
      key === 'body' || key === 'digest'
        ? `field "${key}" is not as format 2 writes it`
        : `unexpected field ${key !== undefined ? `"${key}"` : `at byte ${at}`}: after "hash" a format 2 line holds "body" (or, erased, "digest" and "erased_by") and nothing else`,
      where,
    );
  }
  r.digest = erased[1];
  r.erased_by = erased[2];
  return r;
}

/** The body of a format 2 line as an object: exactly one JSON object must sit between "body": and the end. */
function parseBody(body: string, where: RecordLocation | undefined): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(body);
  } catch (err) {
    throw new RecordFormatError(
      `the body is not one JSON object followed by the closing brace (${(err as Error).message}); anything added after the body makes this error`,
      where,
    );
  }
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new RecordFormatError('the body must be a JSON object', where);
  return o as Record<string, unknown>;
}

/** Fills what format 2 derives from the body: event, ts, sev, trace ids and the lookup attributes. */
export function fromBody(r: AuditRecord, b: Record<string, unknown>, where?: RecordLocation): void {
  const event = b['event.name'];
  if (typeof event !== 'string') throw new RecordFormatError('the body has no "event.name" string', where);
  r.event = event;
  r.ts = typeof b.timestamp === 'string' ? b.timestamp : '';
  r.sev = typeof b.severity_text === 'string' ? b.severity_text : '';
  if (typeof b.trace_id === 'string') r.trace_id = b.trace_id;
  if (typeof b.span_id === 'string') r.span_id = b.span_id;
  r.attrs = lookupAttributes(b);
}

/** The lookup keys of a body (those the registry marks for Loki structured metadata), as attribute values. */
export function lookupAttributes(body: Record<string, unknown>): RecordAttrs {
  const attrs: RecordAttrs = {};
  for (const k of Object.keys(body)) {
    if (!LOOKUP_ATTRIBUTES.has(k) || k === 'event.name') continue;
    const v = body[k];
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attrs[k] = v;
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) attrs[k] = v as string[];
  }
  return attrs;
}

const V1_KEYS = new Set([
  // Set by checkRecord(), never in the line (parseRecordLine() rejects a format 1 line with "v").
  'v',
  'chain',
  'seq',
  'ts',
  'event',
  'sev',
  'trace_id',
  'span_id',
  'attrs',
  'body',
  'digest',
  'prev',
  'hash',
  'erased_by',
]);

/**
 * A format 1 line is closed too: it must be exactly what the writer produced for its fields (only the
 * known fields, in their order, no spaces), and only an erased line may be padded with trailing spaces
 * (erase overwrites the line in place). Its copies of body keys are checked against the body by `verify`.
 */
function closedV1(line: string, r: AuditRecord, where: RecordLocation | undefined): void {
  for (const k of Object.keys(r))
    if (!V1_KEYS.has(k)) throw new RecordFormatError(`unexpected field "${k}" in a format 1 line`, where);
  const text = r.erased_by !== undefined ? line.trimEnd() : line;
  if (serializeV1(r) !== text)
    throw new RecordFormatError(
      'the line is not exactly as format 1 writes it (fields reordered, missing, re-spaced or re-encoded)',
      where,
    );
}

/** Type-checks a record object from any source (format 1 field names). */
export function checkRecord(o: unknown, where?: RecordLocation): AuditRecord {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new RecordFormatError('not a JSON object', where);
  const r = o as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof r[k] !== 'string') throw new RecordFormatError(`field "${k}" must be a string`, where);
    return r[k] as string;
  };
  if (r.v === undefined) r.v = 1;
  else if (r.v !== 1 && r.v !== 2) throw new RecordFormatError('field "v" must be 1 or 2', where);
  str('chain');
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 0)
    throw new RecordFormatError('field "seq" must be a non-negative integer', where);
  str('ts');
  str('event');
  str('sev');
  str('body');
  // Shape checks only (length and prefix): a wrong character cannot match a recomputed hash anyway, and
  // this runs for every record `verify` reads.
  const digest = str('digest');
  if (digest.length !== 71 || !digest.startsWith('sha256:')) {
    throw new RecordFormatError('field "digest" must be sha256:<64 hex>', where);
  }
  if (str('prev').length !== 64) throw new RecordFormatError('field "prev" must be 64 hex digits', where);
  if (str('hash').length !== 64) throw new RecordFormatError('field "hash" must be 64 hex digits', where);
  if (r.attrs === undefined) r.attrs = {};
  if (r.attrs === null || typeof r.attrs !== 'object' || Array.isArray(r.attrs)) {
    throw new RecordFormatError('field "attrs" must be an object', where);
  }
  for (const k of ['trace_id', 'span_id', 'erased_by']) {
    if (r[k] !== undefined && typeof r[k] !== 'string')
      throw new RecordFormatError(`field "${k}" must be a string`, where);
  }
  return r as unknown as AuditRecord;
}
