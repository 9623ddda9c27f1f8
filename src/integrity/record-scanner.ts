import { hash } from 'node:crypto';
// The events module alone: a worker thread loads this file, and the semconv index brings in zod.
import { EVENT_MLTRAIL_CHECKPOINT, EVENT_MLTRAIL_ERASURE } from '../semconv/events.js';

const ascii = (s: string) => Buffer.from(s, 'latin1');

const HEAD = ascii('{"v":2,"chain":"');
const SEQ_KEY = ascii('","seq":');
const PREV_KEY = ascii(',"prev":"');
const HASH_KEY = ascii('","hash":"');
const BODY_KEY = ascii('","body":{');
const LEAF_PREFIX = ascii('\u0000mltrail-record-v2\n');
// Bodies the verifier reads as JSON (checkpoints, erasures), and bodies with \u escapes (which could spell
// those event names another way), take the strict path: one in thousands of records.
const CHECKPOINT_EVENT = Buffer.from(`"${EVENT_MLTRAIL_CHECKPOINT}"`);
const ERASURE_EVENT = Buffer.from(`"${EVENT_MLTRAIL_ERASURE}"`);
const UNICODE_ESCAPE = ascii('\\u');

/** Lower-case hex digits as character codes. */
const HEX = ascii('0123456789abcdef');

enum Ch {
  Quote = 0x22,
  Backslash = 0x5c,
  Brace = 0x7d,
  Space = 0x20,
}

/**
 * Reads one format 2 journal line exactly as `serializeRecord()` writes it straight from its UTF-8 bytes,
 * without building a JS string or object:
 *
 * ```
 * {"v":2,"chain":"<chain>","seq":<n>,"prev":"<64 hex>","hash":"<64 hex>","body":{...}}
 * ```
 *
 * Every byte before the body is matched literally or as a field of a fixed form; the body is everything
 * from `{` up to the line's last byte, which must be `}`. Its digest is computed over exactly those bytes
 * and the record-hash leaf data is laid out from the line's chain, seq and prev and that digest, so any
 * change to the line — in a field, in the body, or a field added after the body (which then belongs to the
 * body's bytes) — changes the record hash. Lines it does not take (format 1, erased lines, checkpoint and
 * erasure records, bodies with `\u` escapes, anything irregular) make {@link scan} return false, and the
 * caller takes the strict parser, whose error messages and checks stay the reference. The two 64-character
 * hash fields are only delimited by {@link scan}; their digits are proven by the comparisons that follow
 * ({@link check} for the hash, the verifier's link check for prev). The caller guarantees valid UTF-8.
 */
export class RecordLineScanner {
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
  #seqStart = 0;
  #seqDigits = 0;
  /** Offsets (into the line's buffer) of the 64 hex digits of prev and hash, and of the body. */
  prevHex = 0;
  hashHex = 0;
  bodyStart = 0;
  bodyEnd = 0;

  /** The record hash (bytes 0..31) and the body's SHA-256 (32..63) of the last {@link check}ed line. */
  readonly sums = new Uint8Array(64);

  /**
   * Scans `buf[start, end)` (one line without its newline) and checks what needs no other record: the
   * record hash matches the chain fields and the body's digest. False: use the strict parser instead (the
   * line may still be a record with problems to report).
   */
  check(buf: Buffer, start: number, end: number): boolean {
    if (!this.scan(buf, start, end)) return false;
    // Binary-string digests: far cheaper than Buffer results, which allocate a backing store per call.
    const digest = hash('sha256', buf.subarray(this.bodyStart, this.bodyEnd), 'binary');
    this.#leafData(buf, digest);
    const recordHash = hash('sha256', this.leaf.subarray(0, this.leafLength), 'binary');
    if (!hexEqualsStore(recordHash, buf, this.hashHex, this.sums, 0)) return false;
    for (let i = 0; i < 32; i++) this.sums[32 + i] = digest.charCodeAt(i);
    return true;
  }

  /** Scans `buf[start, end)` (one line without its newline). False: use the strict parser instead. */
  scan(buf: Buffer, start: number, end: number): boolean {
    let p = literal(buf, start, end, HEAD);
    if (p < 0) return false;
    this.chainStart = p;
    p = plainString(buf, p, end);
    if (p < 0 || p === this.chainStart) return false;
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
    this.#seqStart = seqStart;
    this.#seqDigits = digits;
    p = literal(buf, p, end, PREV_KEY);
    if (p < 0) return false;
    this.prevHex = p;
    p = hex64(buf, p, end);
    if (p < 0) return false;
    p = literal(buf, p, end, HASH_KEY);
    if (p < 0) return false;
    this.hashHex = p;
    p = hex64(buf, p, end);
    if (p < 0) return false;
    p = literal(buf, p, end, BODY_KEY);
    if (p < 0 || buf[end - 1] !== Ch.Brace || end - 1 <= p) return false;
    this.bodyStart = p - 1;
    this.bodyEnd = end - 1;
    const body = buf.subarray(this.bodyStart, this.bodyEnd);
    if (
      body.indexOf(CHECKPOINT_EVENT) >= 0 ||
      body.indexOf(ERASURE_EVENT) >= 0 ||
      body.indexOf(UNICODE_ESCAPE) >= 0
    )
      return false;
    return true;
  }

  /** `0x00 || "mltrail-record-v2\n" chain "\n" seq "\n" prev "\n" digest-hex "\n"`, from the line's bytes. */
  #leafData(buf: Buffer, digest: string): void {
    const chainStart = this.chainStart;
    const chainEnd = this.chainEnd;
    const need = LEAF_PREFIX.length + (chainEnd - chainStart) + this.#seqDigits + 64 + 64 + 4;
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
    for (let i = this.#seqStart, e = this.#seqStart + this.#seqDigits; i < e; i++) leaf[o++] = buf[i];
    leaf[o++] = 0x0a;
    for (let i = 0, p = this.prevHex; i < 64; i += 4) to.setUint32(o + i, from.getUint32(p + i));
    o += 64;
    leaf[o++] = 0x0a;
    for (let i = 0; i < 32; i++) {
      const b = digest.charCodeAt(i);
      leaf[o++] = HEX[b >> 4];
      leaf[o++] = HEX[b & 15];
    }
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
 * compared with hex digits afterwards (hash with the computed value, prev with the previous record's
 * hash), and any other character fails that comparison, which sends the line to the strict parser.
 */
function hex64(buf: Buffer, p: number, end: number): number {
  return p + 64 < end && buf[p + 64] === Ch.Quote ? p + 64 : -1;
}
