import { hash } from 'node:crypto';

/** Attribute values a record may repeat from its body for lookups (Loki structured metadata). */
export type RecordAttrs = Record<string, string | number | boolean | string[]>;

/** One audit record: a journal line, a Loki line plus metadata, or an OTLP log record, normalised. */
export interface AuditRecord {
  /** Hash chain id (UUIDv7), one per emitting process. */
  chain: string;
  /** 0-based, gap-free position in the chain. */
  seq: number;
  /** ISO 8601 time the record was written. */
  ts: string;
  /** The event name (`event.name`). */
  event: string;
  sev: string;
  trace_id?: string;
  span_id?: string;
  /** Lookup keys copied from the body; not covered by the hash, checked against the body by `verify`. */
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
 * newline-terminated, so no two different tuples share an encoding:
 *
 * ```
 * mltrail-record-v1\n<chain>\n<seq decimal>\n<prev hex>\n<body sha256 hex>\n
 * ```
 */
export function recordLeafData(chain: string, seq: number, prev: string, digest: string): string {
  return `mltrail-record-v1\n${chain}\n${seq}\n${prev}\n${digest.startsWith('sha256:') ? digest.slice(7) : digest}\n`;
}

/** The record hash: SHA-256(0x00 || leaf data), i.e. the RFC 6962 leaf hash, hex. */
export function recordHash(chain: string, seq: number, prev: string, digest: string): string {
  // The leaf data is ASCII, so prefixing U+0000 to the string hashes exactly 0x00 || leaf data.
  return hash('sha256', `\u0000${recordLeafData(chain, seq, prev, digest)}`);
}

/** Serialises a record as one journal line (no trailing newline), fields in the documented order. */
export function serializeRecord(r: AuditRecord): string {
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

/** Parses and type-checks one journal line. */
export function parseRecordLine(line: string, where?: RecordLocation): AuditRecord {
  let o: unknown;
  try {
    o = JSON.parse(line);
  } catch (err) {
    throw new RecordFormatError(`not JSON (${(err as Error).message})`, where);
  }
  return checkRecord(o, where);
}

/** Type-checks a record object from any source. */
export function checkRecord(o: unknown, where?: RecordLocation): AuditRecord {
  if (o === null || typeof o !== 'object' || Array.isArray(o))
    throw new RecordFormatError('not a JSON object', where);
  const r = o as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof r[k] !== 'string') throw new RecordFormatError(`field "${k}" must be a string`, where);
    return r[k] as string;
  };
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
