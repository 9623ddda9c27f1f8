import {
  type Attributes,
  type Counter,
  diag,
  type Logger,
  ROOT_CONTEXT,
  SeverityNumber,
  type SpanContext,
  trace,
} from '@opentelemetry/api';
import { canonicalize } from '../integrity/index.js';
import {
  ATTR_DEPLOYMENT_ENVIRONMENT_NAME,
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_HASH,
  ATTR_MLTRAIL_PREV_HASH,
  ATTR_MLTRAIL_RECORD_VERSION,
  ATTR_MLTRAIL_SEQ,
  ATTR_MLTRAIL_VALIDATION_ERRORS,
  ATTR_SERVICE_NAME,
  acceptsEventBody,
  acceptsMember,
  EVENT_SCHEMAS,
  type EventShape,
  eventShape,
  LOOKUP_ATTRIBUTES,
  schemaForEvent,
} from '../semconv/index.js';
import { AuditWriteError, type EventIssue, TrailValidationError } from './errors.js';
import { MAX_STRING_CHARS, toJsonSafe } from './json-safe.js';

/** Severity of an audit record. */
export type AuditSeverity = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/** What the emitter hands to the audit sink: one record before chaining. */
export interface AuditEventInput {
  event: string;
  sev: AuditSeverity;
  ts: string;
  traceId?: string;
  spanId?: string;
  attrs: Record<string, string | number | boolean | string[]>;
  body: string;
}

/** The chained record the sink returns (see docs/internals.md). */
export interface ChainedRecord {
  chain: string;
  seq: number;
  hash: string;
  prev: string;
  digest: string;
  /** The record format version (docs/internals.md); format 2 when a sink leaves it out. */
  v?: number;
}

/** What a sink could not write, as its `close()` reports it (the journal's `AuditLog` does). */
export interface SinkLoss {
  /** Records that will never be in the sink. */
  lost: number;
  /** The first write error of the last failure, if any. */
  error?: string | undefined;
  /** Where the sink writes (the journal directory). */
  dir?: string;
}

/** A sink's write failure in progress. */
export interface SinkFailure {
  /** What failed, e.g. `ENOSPC: no space left on device, write`, or `closed`. */
  error: string;
  /** Where the sink writes (the journal directory). */
  dir?: string;
}

/** Where audit records go: the journal's AuditLog in production, anything with this shape in tests. */
export interface AuditSink {
  append(input: AuditEventInput): { record: ChainedRecord; durable: Promise<void> };
  flush(): Promise<void>;
  /** Closes the sink; may resolve to what it lost (a {@link SinkLoss}, as the journal's AuditLog does). */
  close(): Promise<unknown>;
  /**
   * The write failure in progress (a write failed and none has succeeded since, or the sink is closed),
   * or undefined. Fail-closed trails refuse audited calls while it is set; a sink without it never refuses.
   */
  failure?(): SinkFailure | undefined;
}

/** Anything with the privacy room's redactor shape. */
export interface BodyRedactor {
  redact(value: unknown): { value: unknown };
  /**
   * True only when `redact(body)` would keep the members `keys` of a flat body as they are. `alsoKept`
   * counts members outside `keys` the caller knows are kept strings, numbers or booleans (they still count
   * towards the redactor's node limit); only a {@link BodyRedactor.memberwise} redactor is given any.
   */
  keepsMembers?(body: Record<string, unknown>, keys: readonly string[], alsoKept?: number): boolean;
  /**
   * True when `keepsMembers`' answer for a member depends on nothing but its name and value (no state,
   * no clock): the emitter then asks only about members whose value differs from the last record of the
   * same shape. The privacy room's redactor is.
   */
  readonly memberwise?: boolean;
}

/** The result of emitting one audit event. */
export interface EmittedRecord {
  /** The chained record, or undefined when the sink failed (reported via diag and counters). */
  record: ChainedRecord | undefined;
  /** The body as written (after validation notes and redaction). */
  body: Record<string, unknown>;
  /** Resolves when durable; rejects only when the sink could not write (fail-closed callers await it). */
  durable: Promise<void>;
}

/** A record shape's member names, as enumerated and in RFC 8785 order (`names`: each as `"name":`). */
interface MemberOrder {
  keys: string[];
  sorted: string[];
  names: string[];
  /** Whether each sorted member is a lookup attribute (repeated in the record's attributes). */
  lookup: boolean[];
  /** The validator's checks of this shape (sorted order), or undefined when no record of it is accepted. */
  shape: EventShape | undefined;
  /**
   * Per sorted member, the last string, number or boolean a record of this shape was written with in one
   * pass (validated, kept by a member-wise redactor), and its JSON: a member that repeats it (the service,
   * the model, the severity, a decision outcome) is neither checked nor escaped again.
   */
  last: unknown[];
  lastJson: string[];
  /** Scratch: positions (and their JSON) whose value differs from `last` in the record being written. */
  changed: number[];
  changedJson: string[];
  changedKeys: string[];
  /** Scratch: the body's pieces, `{` first (see #flatBody). */
  parts: string[];
}

/** No value of a record: `last` before the first record of a shape. */
const NONE = Symbol('none');

const SEVERITY_NUMBER: Record<AuditSeverity, SeverityNumber> = {
  DEBUG: SeverityNumber.DEBUG,
  INFO: SeverityNumber.INFO,
  WARN: SeverityNumber.WARN,
  ERROR: SeverityNumber.ERROR,
};

/**
 * Turns an event (a flat map of semconv keys) into an audit record: JSON-safe copy → zod validation
 * (violations attached, or thrown in strict mode) → redaction → canonical JSON → the sink. Also mirrors the
 * record to an OTel logger when one is configured. Never throws except for strict-mode validation errors.
 */
export class AuditEmitter {
  readonly #sink: AuditSink;
  readonly #redactor: BodyRedactor | undefined;
  readonly #logger: Logger | undefined;
  readonly #strict: boolean;
  readonly #common: Record<string, string>;
  readonly #validationFailures: Counter | undefined;
  readonly #onePass: boolean;
  #guarded: Promise<void> | undefined;
  /** The member order of the latest record shape of each event (see #memberOrder). */
  readonly #orders = new Map<string, MemberOrder>();
  #isoMs = Number.NaN;
  #iso = '';

  constructor(opts: {
    sink: AuditSink;
    redactor?: BodyRedactor;
    logger?: Logger;
    strict: boolean;
    common: Record<string, string>;
    validationFailures?: Counter;
    /** Write flat records in one pass (default true); false runs every record through the stages. */
    onePass?: boolean;
  }) {
    this.#sink = opts.sink;
    this.#redactor = opts.redactor;
    this.#logger = opts.logger;
    this.#strict = opts.strict;
    this.#common = opts.common;
    this.#validationFailures = opts.validationFailures;
    this.#onePass = opts.onePass ?? true;
  }

  /** Emits one audit event. `fields` are semconv keys; undefined values are omitted. */
  emit(
    event: string,
    sev: AuditSeverity,
    fields: Record<string, unknown>,
    span?: SpanContext,
    at?: number,
  ): EmittedRecord {
    // `at`: when the event happened (ms since the epoch), for a record made after the fact (the trail's
    // queued predictions); now otherwise.
    const now = at ?? Date.now();
    // Many records share a millisecond: format its ISO form once.
    if (now !== this.#isoMs) {
      this.#isoMs = now;
      this.#iso = new Date(now).toISOString();
    }
    // The body holds everything the record says: format 2 stores nothing outside it but the chain fields.
    const raw: Record<string, unknown> = {
      'event.name': event,
      timestamp: this.#iso,
      severity_text: sev,
      ...this.#common,
    };
    if (span !== undefined && span.traceId !== '00000000000000000000000000000000') {
      raw.trace_id = span.traceId;
      raw.span_id = span.spanId;
    }
    for (const k of Object.keys(fields)) {
      const v = fields[k];
      if (v !== undefined) raw[k] = v;
    }
    let body: Record<string, unknown> = raw;
    let attrs: Record<string, string | number | boolean | string[]> = {};
    let text = this.#onePass ? this.#flatBody(event, raw, attrs) : undefined;
    if (text === undefined) ({ body, text, attrs } = this.#stagedBody(event, raw));

    let record: ChainedRecord | undefined;
    let durable: Promise<void>;
    try {
      const appended = this.#sink.append({
        event,
        sev,
        ts: raw.timestamp as string,
        traceId: raw.trace_id as string | undefined,
        spanId: raw.span_id as string | undefined,
        attrs,
        body: text,
      });
      record = appended.record;
      durable = appended.durable;
    } catch (err) {
      diag.error(`mltrail: could not append ${event} to the journal`, err);
      durable = Promise.reject(
        new AuditWriteError(`mltrail: ${event} could not be journaled`, { cause: err }),
      );
    }
    // The caller decides whether to await; an unobserved rejection must not crash the host. Records
    // committed together share one promise (the journal's group commit): guard each promise once.
    if (durable !== this.#guarded) {
      this.#guarded = durable;
      durable.catch(() => undefined);
    }

    if (this.#logger !== undefined) {
      try {
        const logAttrs: Attributes = { ...attrs, 'event.name': event };
        if (record !== undefined) {
          logAttrs[ATTR_MLTRAIL_CHAIN_ID] = record.chain;
          logAttrs[ATTR_MLTRAIL_SEQ] = record.seq;
          logAttrs[ATTR_MLTRAIL_PREV_HASH] = record.prev;
          logAttrs[ATTR_MLTRAIL_HASH] = record.hash;
          logAttrs[ATTR_MLTRAIL_BODY_DIGEST] = record.digest;
          // The reader picks the record-hash domain by this: without it a v2 record reads as v1 and fails.
          logAttrs[ATTR_MLTRAIL_RECORD_VERSION] = record.v ?? 2;
        }
        this.#logger.emit({
          eventName: event,
          timestamp: now,
          severityNumber: SEVERITY_NUMBER[sev],
          severityText: sev,
          body: text,
          attributes: logAttrs,
          ...(span !== undefined ? { context: trace.setSpanContext(ROOT_CONTEXT, span) } : {}),
        });
      } catch (err) {
        diag.error('mltrail: could not emit the audit log record', err);
      }
    }
    return { record, body, durable };
  }

  /**
   * The canonical body of a flat record in one pass, or undefined when the record needs the stages: every
   * member a string within the length limit, a finite number, a boolean or an array of such strings (what
   * the stage API writes for a prediction or a decision), the fast validator accepting it and the redactor
   * keeping every member as it is. Then the JSON-safe copy, the redacted copy and the canonical JSON's
   * sorting are all the record itself, so the body is written straight from its members in RFC 8785 order;
   * `test/trail/one-pass-body.test.ts` checks the bytes equal the stages' for random records. The lookup
   * attributes go into `attrs`.
   */
  #flatBody(
    event: string,
    raw: Record<string, unknown>,
    attrs: Record<string, string | number | boolean | string[]>,
  ): string | undefined {
    const order = this.#memberOrder(event, raw);
    const { sorted, names, lookup, shape, last, lastJson, changed, changedJson, changedKeys } = order;
    if (shape === undefined || raw['event.name'] !== event) return undefined;
    const redactor = this.#redactor;
    if (redactor !== undefined && redactor.keepsMembers === undefined) return undefined;
    // A member-wise redactor's answer for a member depends on its name and value alone, so a member that
    // repeats what this shape was last written with needs no check; any other redactor sees every member.
    const memo = redactor === undefined || redactor.memberwise === true;
    changed.length = 0;
    changedJson.length = 0;
    changedKeys.length = 0;
    // Written member by member while the members are checked (a record that fails a check is rare and
    // its text is dropped): a finite number's shortest round-trip form is String(v), several times cheaper
    // than JSON.stringify of it; strings and string arrays are escaped by JSON.stringify, as RFC 8785 asks.
    // The pieces are joined once at the end: one flat string, instead of a rope of two cons strings per
    // member that hashing the body then flattens (copies) again.
    const parts = order.parts;
    parts.length = 1;
    for (let i = 0; i < sorted.length; i++) {
      const v = raw[sorted[i]];
      let json: string;
      if (memo && v === last[i]) json = lastJson[i];
      else {
        if (typeof v === 'string') {
          if (v.length > MAX_STRING_CHARS) return undefined;
          json = JSON.stringify(v);
        } else if (typeof v === 'number') {
          if (!Number.isFinite(v)) return undefined;
          json = String(v);
        } else if (typeof v === 'boolean') json = v ? 'true' : 'false';
        else if (isFlatStringArray(v)) json = JSON.stringify(v);
        else return undefined;
        if (!acceptsMember(shape, i, v)) return undefined;
        changed.push(i);
        changedJson.push(json);
        changedKeys.push(sorted[i]);
      }
      parts.push(names[i], json);
      if (lookup[i]) attrs[sorted[i]] = Array.isArray(v) ? v.slice() : (v as string | number | boolean);
    }
    if (redactor?.keepsMembers !== undefined) {
      try {
        const kept = memo
          ? changedKeys.length === 0 ||
            redactor.keepsMembers(raw, changedKeys, sorted.length - changedKeys.length)
          : redactor.keepsMembers(raw, sorted);
        if (!kept) return undefined;
      } catch {
        // The stages run the redactor again and handle its failure.
        return undefined;
      }
    }
    // Arrays are checked again (an array equal to the last one is another object, and an array can change
    // in place), except a frozen one: the same frozen array is the same value (the onnxruntime
    // instrumentation hands the same frozen tensor names, shapes and dtypes to every run of a session).
    for (let j = 0; j < changed.length; j++) {
      const i = changed[j];
      const v = raw[sorted[i]];
      if (typeof v !== 'object' || Object.isFrozen(v)) {
        last[i] = v;
        lastJson[i] = changedJson[j];
      }
    }
    parts.push('}');
    return parts.join('');
  }

  /**
   * The record's member names in RFC 8785 order, each written as `"name":` (with a leading comma after
   * the first): records of one event mostly have the same members in the same order, so the sort and the
   * escaping are done once per shape and reused while the shape repeats.
   */
  #memberOrder(event: string, raw: Record<string, unknown>): MemberOrder {
    const keys = Object.keys(raw);
    const known = this.#orders.get(event);
    if (known !== undefined && sameStrings(known.keys, keys)) return known;
    // Array#sort without a comparator orders by UTF-16 code units, RFC 8785's order.
    const sorted = [...keys].sort();
    const order: MemberOrder = {
      keys,
      sorted,
      names: sorted.map((k, i) => `${i === 0 ? '' : ','}${JSON.stringify(k)}:`),
      lookup: sorted.map((k) => LOOKUP_ATTRIBUTES.has(k)),
      shape: eventShape(event, sorted),
      last: sorted.map(() => NONE),
      lastJson: sorted.map(() => ''),
      changed: [],
      changedJson: [],
      changedKeys: [],
      parts: ['{'],
    };
    if (this.#orders.size >= 64) this.#orders.clear();
    this.#orders.set(event, order);
    return order;
  }

  /**
   * The body in stages, for any record: JSON-safe copy → validation (violations attached, or thrown in
   * strict mode) → redaction → canonical JSON, and the lookup attributes taken from the result.
   */
  #stagedBody(
    event: string,
    raw: Record<string, unknown>,
  ): {
    body: Record<string, unknown>;
    text: string;
    attrs: Record<string, string | number | boolean | string[]>;
  } {
    const issues: EventIssue[] = [];
    const safe = toJsonSafe(raw, [], issues) as Record<string, unknown>;

    // The allocation-free check accepts almost every real record; zod runs only to name what is wrong.
    const schema = acceptsEventBody(event, safe) ? undefined : schemaForEvent(event);
    if (schema !== undefined) {
      const parsed = schema.safeParse(safe);
      if (!parsed.success) {
        for (const i of parsed.error.issues) {
          issues.push({
            code: i.code,
            path: i.path.map((p) => (typeof p === 'symbol' ? String(p) : p)),
            message: i.message,
          });
        }
      }
    } else if (!Object.hasOwn(EVENT_SCHEMAS, event)) {
      issues.push({ code: 'unknown_event', path: ['event.name'], message: `no schema for event "${event}"` });
    }
    if (issues.length > 0) {
      if (this.#strict) throw new TrailValidationError(event, issues);
      this.#validationFailures?.add(1, { 'event.name': event });
      diag.warn(`mltrail: ${new TrailValidationError(event, issues).message.slice('mltrail: '.length)}`);
      safe[ATTR_MLTRAIL_VALIDATION_ERRORS] = JSON.stringify(issues);
    }

    let body = safe;
    if (this.#redactor !== undefined) {
      try {
        body = this.#redactor.redact(safe).value as Record<string, unknown>;
      } catch (err) {
        diag.error('mltrail: redaction failed; the record is written with every string masked', err);
        body = maskAllStrings(safe) as Record<string, unknown>;
      }
    }

    let text: string;
    try {
      text = canonicalize(body);
    } catch (err) {
      // toJsonSafe leaves nothing canonicalize rejects; if it ever does, keep the evidence as a string.
      diag.error('mltrail: canonical JSON failed', err);
      text = canonicalize({
        'event.name': event,
        timestamp: raw.timestamp,
        [ATTR_MLTRAIL_VALIDATION_ERRORS]: String(err),
      });
    }

    const attrs: Record<string, string | number | boolean | string[]> = {};
    for (const k of Object.keys(body)) {
      if (!LOOKUP_ATTRIBUTES.has(k)) continue;
      const v = body[k];
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attrs[k] = v;
      else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) attrs[k] = v as string[];
    }
    return { body, text, attrs };
  }

  flush(): Promise<void> {
    return this.#sink.flush();
  }

  /** Closes the sink; resolves to what it lost, when it says. */
  async close(): Promise<SinkLoss | undefined> {
    const result = await this.#sink.close();
    const loss = result as Partial<SinkLoss> | undefined;
    return typeof loss?.lost === 'number' ? (loss as SinkLoss) : undefined;
  }

  /** The sink's write failure in progress, if it reports one (never throws). */
  failure(): SinkFailure | undefined {
    try {
      return this.#sink.failure?.();
    } catch (err) {
      diag.error('mltrail: the audit sink could not report its state', err);
      return undefined;
    }
  }
}

/** Common keys every record carries. */
export function commonFields(opts: {
  serviceName: string;
  environment: string;
  extra?: Record<string, string | undefined>;
}): Record<string, string> {
  const out: Record<string, string> = {
    [ATTR_SERVICE_NAME]: opts.serviceName,
    [ATTR_DEPLOYMENT_ENVIRONMENT_NAME]: opts.environment,
  };
  for (const [k, v] of Object.entries(opts.extra ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A plain, dense array of strings within the length limit. */
function isFlatStringArray(v: unknown): v is string[] {
  if (!Array.isArray(v) || Object.getPrototypeOf(v) !== Array.prototype) return false;
  for (let i = 0; i < v.length; i++) {
    const x: unknown = v[i];
    if (typeof x !== 'string' || x.length > MAX_STRING_CHARS) return false;
  }
  return true;
}

function maskAllStrings(v: unknown): unknown {
  if (typeof v === 'string') return '[REDACTED]';
  if (Array.isArray(v)) return v.map(maskAllStrings);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, k === 'event.name' || k === 'timestamp' ? x : maskAllStrings(x)]),
    );
  }
  return v;
}
