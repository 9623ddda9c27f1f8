import { hash } from 'node:crypto';
// The events module alone: a worker thread loads this file, and the semconv index brings in zod.
import { EVENT_MLTRAIL_CHECKPOINT, EVENT_MLTRAIL_ERASURE } from '../semconv/events.js';

const ascii = (s: string) => Buffer.from(s, 'latin1');

const CHAIN_OPEN = ascii('{"chain":"');
const SEQ_KEY = ascii('","seq":');
const TS_KEY = ascii(',"ts":"');
const EVENT_KEY = ascii('","event":"');
const SEV_KEY = ascii('","sev":"');
const TRACE_KEY = ascii('","trace_id":"');
const SPAN_KEY = ascii('","span_id":"');
const ATTRS_KEY = ascii('","attrs":{');
const BODY_KEY = ascii('},"body":"');
const DIGEST_KEY = ascii('","digest":"sha256:');
const PREV_KEY = ascii('","prev":"');
const HASH_KEY = ascii('","hash":"');
const LEAF_PREFIX = ascii('\u0000mltrail-record-v1\n');
const CHECKPOINT_EVENT = Buffer.from(EVENT_MLTRAIL_CHECKPOINT);
const ERASURE_EVENT = Buffer.from(EVENT_MLTRAIL_ERASURE);
const TRUE = ascii('true');
const FALSE = ascii('false');
const NULL = ascii('null');

/** Lower-case hex digits as character codes. */
const HEX = ascii('0123456789abcdef');

/** At most this many attrs are checked on the fast path; records with more take the strict parser. */
const MAX_ATTRS = 32;

enum Ch {
  Quote = 0x22,
  Backslash = 0x5c,
  Comma = 0x2c,
  Colon = 0x3a,
  Brace = 0x7d,
  Space = 0x20,
}

/**
 * Reads one journal line exactly as `serializeRecord()` writes it — the documented field order, no
 * whitespace, no escapes outside the body, no `erased_by` — straight from its UTF-8 bytes, without building
 * a JS string or object. It unescapes the body into a reusable buffer (its digest is over those bytes) and
 * lays out the record-hash leaf data next to it.
 *
 * A line it accepts is one `JSON.parse` reads as the same record: anything else (an escape it does not
 * handle, an unexpected field, a number in another form, checkpoint and erasure records whose bodies the
 * verifier reads) makes {@link scan} return false, and the caller takes the strict parser, whose error
 * messages and checks stay the reference. The three 64-character hash fields are only delimited by
 * {@link scan}; their digits are proven by the comparisons that follow ({@link check} for the digest and
 * hash, the verifier's link check for prev), so only `check()` plus that link check accept a line. The
 * caller guarantees the bytes are valid UTF-8.
 */
export class RecordLineScanner {
  /** The unescaped body: `body.subarray(0, bodyLength)`. */
  body: Buffer = Buffer.allocUnsafe(4096);
  bodyLength = 0;
  /** `0x00 || leaf data` of the record hash: `leaf.subarray(0, leafLength)`. */
  leaf: Buffer = Buffer.concat([LEAF_PREFIX], 512);
  #leafView = new DataView(this.leaf.buffer, this.leaf.byteOffset, this.leaf.length);
  /** The last line buffer seen, and a DataView on it. */
  #src: Buffer | undefined;
  #srcView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
  leafLength = 0;
  chainStart = 0;
  chainEnd = 0;
  seq = 0;
  /** Offsets (into the line's buffer) of the 64 hex digits of each field. */
  digestHex = 0;
  prevHex = 0;
  hashHex = 0;
  /** `"key":value` byte ranges of the attrs, as [start, end) pairs; `attrCount` of them. */
  readonly attrs = new Int32Array(MAX_ATTRS * 2);
  attrCount = 0;

  /** The record hash (bytes 0..31) and the body's SHA-256 (32..63) of the last {@link check}ed line. */
  readonly sums = new Uint8Array(64);

  /**
   * Scans `buf[start, end)` (one line without its newline) and checks what needs no other record: the
   * body matches its digest, every attr appears in the body, the record hash matches its chain fields.
   * False: use the strict parser instead (the line may still be a record with problems to report).
   */
  check(buf: Buffer, start: number, end: number): boolean {
    if (!this.scan(buf, start, end)) return false;
    const body = this.body.subarray(0, this.bodyLength);
    // Binary-string digests: far cheaper than Buffer results, which allocate a backing store per call.
    if (!hexEqualsStore(hash('sha256', body, 'binary'), buf, this.digestHex, this.sums, 32)) return false;
    for (let i = 0; i < this.attrCount; i++)
      if (body.indexOf(buf.subarray(this.attrs[2 * i], this.attrs[2 * i + 1])) < 0) return false;
    const recordHash = hash('sha256', this.leaf.subarray(0, this.leafLength), 'binary');
    return hexEqualsStore(recordHash, buf, this.hashHex, this.sums, 0);
  }

  /** Scans `buf[start, end)` (one line without its newline). False: use the strict parser instead. */
  scan(buf: Buffer, start: number, end: number): boolean {
    let p = literal(buf, start, end, CHAIN_OPEN);
    if (p < 0) return false;
    this.chainStart = p;
    p = plainString(buf, p, end);
    if (p < 0) return false;
    this.chainEnd = p;
    p = literal(buf, p, end, SEQ_KEY);
    if (p < 0) return false;
    const seqStart = p;
    let seq = 0;
    while (p < end && buf[p] >= 0x30 && buf[p] <= 0x39) seq = seq * 10 + (buf[p++] - 0x30);
    const digits = p - seqStart;
    // JSON has no leading zeros; 15 digits stay exact, so the digits are `${seq}` byte for byte.
    if (digits === 0 || digits > 15 || (buf[seqStart] === 0x30 && digits > 1)) return false;
    this.seq = seq;
    p = literal(buf, p, end, TS_KEY);
    if (p < 0) return false;
    p = plainString(buf, p, end);
    if (p < 0) return false;
    p = literal(buf, p, end, EVENT_KEY);
    if (p < 0) return false;
    const eventStart = p;
    p = plainString(buf, p, end);
    if (p < 0) return false;
    // The verifier reads these bodies as JSON: the strict path handles them (one in thousands of records).
    if (equalsAt(buf, eventStart, p, CHECKPOINT_EVENT) || equalsAt(buf, eventStart, p, ERASURE_EVENT))
      return false;
    p = literal(buf, p, end, SEV_KEY);
    if (p < 0) return false;
    p = plainString(buf, p, end);
    if (p < 0) return false;
    let q = literal(buf, p, end, TRACE_KEY);
    if (q >= 0) {
      p = plainString(buf, q, end);
      if (p < 0) return false;
    }
    q = literal(buf, p, end, SPAN_KEY);
    if (q >= 0) {
      p = plainString(buf, q, end);
      if (p < 0) return false;
    }
    p = literal(buf, p, end, ATTRS_KEY);
    if (p < 0) return false;
    p = this.#attrs(buf, p, end);
    if (p < 0) return false;
    p = literal(buf, p, end, BODY_KEY);
    if (p < 0) return false;
    p = this.#body(buf, p, end);
    if (p < 0) return false;
    p = literal(buf, p, end, DIGEST_KEY);
    if (p < 0) return false;
    this.digestHex = p;
    p = hex64(buf, p, end);
    if (p < 0) return false;
    p = literal(buf, p, end, PREV_KEY);
    if (p < 0) return false;
    this.prevHex = p;
    p = hex64(buf, p, end);
    if (p < 0) return false;
    p = literal(buf, p, end, HASH_KEY);
    if (p < 0) return false;
    this.hashHex = p;
    p = hex64(buf, p, end);
    if (p < 0 || p + 2 !== end || buf[p] !== Ch.Quote || buf[p + 1] !== Ch.Brace) return false;
    this.#leafData(buf, seqStart, digits);
    return true;
  }

  /** The attrs object's members, up to its closing brace (returned). Only plain members are accepted. */
  #attrs(buf: Buffer, p: number, end: number): number {
    let n = 0;
    if (buf[p] === Ch.Brace) {
      this.attrCount = 0;
      return p;
    }
    for (;;) {
      if (n === MAX_ATTRS || buf[p] !== Ch.Quote) return -1;
      const pairStart = p;
      p = plainString(buf, p + 1, end);
      if (p < 0 || buf[p + 1] !== Ch.Colon) return -1;
      p += 2;
      if (buf[p] === Ch.Quote) {
        p = plainString(buf, p + 1, end);
        if (p < 0) return -1;
        p++;
      } else if (equalsAt(buf, p, p + 4, TRUE) || equalsAt(buf, p, p + 4, NULL)) p += 4;
      else if (equalsAt(buf, p, p + 5, FALSE)) p += 5;
      else {
        // Numbers only in their shortest round-trip form, which is what the body holds (canonical JSON).
        const s = p;
        while (p < end && buf[p] !== Ch.Comma && buf[p] !== Ch.Brace) p++;
        const text = buf.toString('latin1', s, p);
        const v = Number(text);
        if (text === '' || !Number.isFinite(v) || String(v) !== text) return -1;
      }
      this.attrs[2 * n] = pairStart;
      this.attrs[2 * n + 1] = p;
      n++;
      if (buf[p] === Ch.Brace) break;
      if (buf[p] !== Ch.Comma) return -1;
      p++;
    }
    this.attrCount = n;
    return p;
  }

  /** Unescapes the body string into `body`; returns the offset of its closing quote. */
  #body(buf: Buffer, p: number, end: number): number {
    if (this.body.length < end - p) this.body = Buffer.allocUnsafe(2 * (end - p));
    const out = this.body;
    let o = 0;
    for (;;) {
      if (p >= end) return -1;
      let c = buf[p++];
      if (c === Ch.Quote) break;
      if (c < Ch.Space) return -1;
      if (c === Ch.Backslash) {
        c = buf[p++];
        switch (c) {
          case 0x22: // "
          case 0x5c: // \
          case 0x2f: // /
            break;
          case 0x62: // b
            c = 0x08;
            break;
          case 0x66: // f
            c = 0x0c;
            break;
          case 0x6e: // n
            c = 0x0a;
            break;
          case 0x72: // r
            c = 0x0d;
            break;
          case 0x74: // t
            c = 0x09;
            break;
          default:
            // \uXXXX (control characters, lone surrogates) or an invalid escape: the strict parser decides.
            return -1;
        }
      }
      out[o++] = c;
    }
    this.bodyLength = o;
    return p - 1;
  }

  /** `0x00 || "mltrail-record-v1\n" chain "\n" seq "\n" prev "\n" digest "\n"`, from the line's bytes. */
  #leafData(buf: Buffer, seqStart: number, digits: number): void {
    const chainStart = this.chainStart;
    const chainEnd = this.chainEnd;
    const need = LEAF_PREFIX.length + (chainEnd - chainStart) + digits + 64 + 64 + 4;
    if (this.leaf.length < need) {
      this.leaf = Buffer.allocUnsafe(2 * need);
      LEAF_PREFIX.copy(this.leaf, 0);
      this.#leafView = new DataView(this.leaf.buffer, this.leaf.byteOffset, this.leaf.length);
    }
    if (buf !== this.#src) {
      this.#src = buf;
      this.#srcView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    }
    // Four bytes at a time through DataViews: Buffer#copy costs more than these few dozen bytes, and a
    // byte loop twice as much as this.
    const from = this.#srcView;
    const to = this.#leafView;
    const leaf = this.leaf;
    let o = LEAF_PREFIX.length;
    let i = chainStart;
    for (; i + 4 <= chainEnd; i += 4, o += 4) to.setUint32(o, from.getUint32(i));
    for (; i < chainEnd; i++) leaf[o++] = buf[i];
    leaf[o++] = 0x0a;
    for (let i = seqStart, e = seqStart + digits; i < e; i++) leaf[o++] = buf[i];
    leaf[o++] = 0x0a;
    for (let i = 0, p = this.prevHex; i < 64; i += 4) to.setUint32(o + i, from.getUint32(p + i));
    o += 64;
    leaf[o++] = 0x0a;
    for (let i = 0, d = this.digestHex; i < 64; i += 4) to.setUint32(o + i, from.getUint32(d + i));
    o += 64;
    leaf[o++] = 0x0a;
    this.leafLength = o;
  }
}

/**
 * True when the 32-byte binary string `bytes`, written as lower-case hex, equals `buf[at, at + 64)`; the
 * bytes are written to `out[to, to + 32)` on the way.
 */
function hexEqualsStore(bytes: string, buf: Uint8Array, at: number, out: Uint8Array, to: number): boolean {
  for (let i = 0; i < 32; i++) {
    const b = bytes.charCodeAt(i);
    if (buf[at + 2 * i] !== HEX[b >> 4] || buf[at + 2 * i + 1] !== HEX[b & 15]) return false;
    out[to + i] = b;
  }
  return true;
}

/** True when `table[from, from + 32)`, written as lower-case hex, equals `buf[at, at + 64)`. */
export function tableHexEquals(table: Uint8Array, from: number, buf: Uint8Array, at: number): boolean {
  for (let i = 0; i < 32; i++) {
    const b = table[from + i];
    if (buf[at + 2 * i] !== HEX[b >> 4] || buf[at + 2 * i + 1] !== HEX[b & 15]) return false;
  }
  return true;
}

/** The offset after `lit` when `buf` holds it at `p`, else -1. */
function literal(buf: Buffer, p: number, end: number, lit: Buffer): number {
  const n = lit.length;
  if (p + n > end) return -1;
  for (let i = 0; i < n; i++) if (buf[p + i] !== lit[i]) return -1;
  return p + n;
}

function equalsAt(buf: Buffer, start: number, end: number, lit: Buffer): boolean {
  return end - start === lit.length && literal(buf, start, end, lit) === end;
}

/** The offset of the closing quote of a string without escapes or control characters, else -1. */
function plainString(buf: Buffer, p: number, end: number): number {
  for (; p < end; p++) {
    const c = buf[p];
    if (c === Ch.Quote) return p;
    if (c === Ch.Backslash || c < Ch.Space) return -1;
  }
  return -1;
}

/**
 * The offset after a 64-character field: only its closing quote is checked here. Its characters are
 * compared with hex digits afterwards (digest and hash with the computed values, prev with the previous
 * record's hash), and any other character fails that comparison, which sends the line to the strict parser.
 */
function hex64(buf: Buffer, p: number, end: number): number {
  return p + 64 < end && buf[p + 64] === Ch.Quote ? p + 64 : -1;
}
