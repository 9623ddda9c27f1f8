/**
 * Reads what the index builder needs from a format 2 journal line's bytes, without decoding the line or
 * parsing its body into objects: the chain and seq of the line's fixed head (checked as the record parser
 * checks it), whether the body is one JSON object, and the top-level values of a few chosen keys.
 *
 * It answers only the plain case, and says so: {@link LineFields.read} returns false for anything else (a
 * format 1 or erased line, a head that does not match, a body that is not valid JSON or that this scanner
 * does not take, a chosen key whose value has an escape or a non-ASCII byte, a key with an escape, nesting
 * deeper than {@link MAX_DEPTH}), and the caller then decodes the line and parses it as before. So true must
 * mean exactly what the decoded line's parse would say; false never has to. Every check here is sound for
 * the decoded text: UTF-8 decoding (invalid bytes become U+FFFD) never turns a byte into an ASCII character
 * nor an ASCII byte into anything else, so a JSON structure character is the same in the bytes and in the
 * text, and a string's non-ASCII bytes decode to characters a JSON string may hold.
 */

/** What a chosen key's last occurrence at the body's top level holds. */
export const FieldValue = {
  /** Not in the body. */
  Absent: 0,
  /** A string of ASCII characters without escapes: its bytes are its value. */
  String: 1,
  /** An array whose elements are all such strings. */
  Strings: 2,
  /** A number, `true`, `false`, `null` or an object: not a string, not an array. */
  Other: 3,
} as const;

/** Containers open at once inside a body value; deeper bodies are left to JSON.parse. */
const MAX_DEPTH = 64;
const OPEN_OBJECT = 1;
const OPEN_ARRAY = 2;
/** Size of the key lookup table (a power of two, well above the number of keys). */
const SLOTS = 256;

const HEAD_START = Buffer.from('{"v":2,"chain":"', 'latin1');
const AFTER_CHAIN = Buffer.from('","seq":', 'latin1');
const AFTER_SEQ = Buffer.from(',"prev":"', 'latin1');
const AFTER_PREV = Buffer.from('","hash":"', 'latin1');
const AFTER_HASH = Buffer.from('","body":', 'latin1');
/** What follows each of the two hashes (prev, hash). */
const HASHES_THEN = [AFTER_PREV, AFTER_HASH];
const EVENT_NAME = 'event.name';

/** Per byte: 1 unless it is a lowercase hex digit. */
const NOT_LOWER_HEX = new Uint8Array(256).fill(1);
for (const c of Buffer.from('0123456789abcdef', 'latin1')) NOT_LOWER_HEX[c] = 0;

function isHexAnyCase(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46);
}

/** What a byte is inside a JSON string: plain ASCII, or one of the bytes a string scan stops at. */
const IN_STRING = new Uint8Array(256);
const QUOTE = 1;
const BACKSLASH = 2;
const CONTROL = 3;
const NON_ASCII = 4;
IN_STRING.fill(CONTROL, 0, 0x20);
IN_STRING.fill(NON_ASCII, 0x80, 0x100);
IN_STRING[0x22] = QUOTE;
IN_STRING[0x5c] = BACKSLASH;

function isWhitespace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;
}

/** A key's hash as the scanner computes it while reading the key's bytes. */
function hashStep(h: number, c: number): number {
  return Math.imul(h ^ c, 0x01000193);
}

/**
 * A reader of format 2 lines for a fixed set of body keys. One instance is reused for every line (its
 * fields describe the last line read); nothing is allocated per line.
 */
export class LineFields {
  /** The chosen keys; `event.name` is always read (index 0). */
  readonly keys: readonly string[];
  /** Where the chain id is in the line (ASCII, checked as the record parser checks it). */
  chainStart = 0;
  chainEnd = 0;
  seq = 0;
  /** Where the seq's digits are (as the number prints: no leading zero, at most 15 digits). */
  seqStart = 0;
  seqEnd = 0;
  /** Per key (by index in {@link keys}): what the body holds and, for a string, where its bytes are. */
  readonly value: Uint8Array;
  readonly start: Uint32Array;
  readonly end: Uint32Array;
  /** For {@link FieldValue.Strings}: where its elements' bounds are in {@link elements} (pairs), and how many. */
  readonly elementsAt: Uint32Array;
  readonly elementCount: Uint32Array;
  elements = new Uint32Array(64);
  #elementsUsed = 0;
  readonly #keyBytes: Buffer[];
  readonly #slots = new Int16Array(SLOTS).fill(-1);
  /** Set by {@link #string}: whether the string just read was plain (ASCII, no escape). */
  #plain = false;
  readonly #stack = new Uint8Array(MAX_DEPTH);

  constructor(keys: readonly string[]) {
    this.keys = [EVENT_NAME, ...keys.filter((k) => k !== EVENT_NAME)];
    const n = this.keys.length;
    this.value = new Uint8Array(n);
    this.start = new Uint32Array(n);
    this.end = new Uint32Array(n);
    this.elementsAt = new Uint32Array(n);
    this.elementCount = new Uint32Array(n);
    this.#keyBytes = this.keys.map((k) => Buffer.from(k, 'latin1'));
    for (const [i, k] of this.#keyBytes.entries()) {
      if (!/^[\x20-\x7e]+$/.test(this.keys[i]) || this.keys[i].includes('"') || this.keys[i].includes('\\'))
        throw new Error(`body key ${JSON.stringify(this.keys[i])} is not plain ASCII`);
      let h = 0x811c9dc5;
      for (const c of k) h = hashStep(h, c);
      let s = (h >>> 0) & (SLOTS - 1);
      while (this.#slots[s] >= 0) s = (s + 1) & (SLOTS - 1);
      this.#slots[s] = i;
    }
  }

  /**
   * Reads the line `b[start, end)` (without its newline). True when it is a format 2 line with a body, its
   * head as the record parser requires (the chain id in ASCII, the seq of at most 15 digits), the body one
   * JSON object whose `event.name` is a plain string, and every chosen key absent, a plain string, an array
   * of plain strings or another type; the fields then describe it. False when the caller must parse the line.
   */
  read(b: Uint8Array, start: number, end: number): boolean {
    let i = start;
    if (!startsWith(b, i, end, HEAD_START)) return false;
    i += HEAD_START.length;
    this.chainStart = i;
    for (; i < end; i++) {
      const c = b[i];
      if (c === 0x22) break;
      if (c < 0x20 || c === 0x5c || c >= 0x80) return false;
    }
    if (i === this.chainStart || i >= end) return false;
    this.chainEnd = i;
    if (!startsWith(b, i, end, AFTER_CHAIN)) return false;
    i += AFTER_CHAIN.length;
    const digits = i;
    this.seqStart = i;
    let seq = 0;
    for (; i < end && b[i] >= 0x30 && b[i] <= 0x39; i++) seq = seq * 10 + (b[i] - 0x30);
    const n = i - digits;
    if (n === 0 || n > 15 || (n > 1 && b[digits] === 0x30)) return false;
    this.seq = seq;
    this.seqEnd = i;
    if (!startsWith(b, i, end, AFTER_SEQ)) return false;
    i += AFTER_SEQ.length;
    for (const after of HASHES_THEN) {
      if (i + 64 > end) return false;
      let bad = 0;
      for (let k = 0; k < 64; k++) bad |= NOT_LOWER_HEX[b[i + k]];
      if (bad !== 0) return false;
      i += 64;
      if (!startsWith(b, i, end, after)) return false;
      i += after.length;
    }
    // The body is everything between `"body":` and the line's closing brace.
    if (end - 1 < i || b[end - 1] !== 0x7d) return false;
    return this.#body(b, i, end - 1);
  }

  /** The plain string value of key `k` (its bytes are ASCII). */
  string(b: Buffer, k: number): string {
    return b.toString('latin1', this.start[k], this.end[k]);
  }

  /** The elements of key `k`'s array of plain strings. */
  strings(b: Buffer, k: number): string[] {
    const out: string[] = [];
    const at = this.elementsAt[k];
    for (let e = 0; e < this.elementCount[k]; e++)
      out.push(b.toString('latin1', this.elements[at + 2 * e], this.elements[at + 2 * e + 1]));
    return out;
  }

  /** Whether key `k`'s plain string value has the same bytes as `other` (ASCII). */
  stringEquals(b: Uint8Array, k: number, other: Uint8Array): boolean {
    const s = this.start[k];
    const n = this.end[k] - s;
    if (n !== other.length) return false;
    for (let j = 0; j < n; j++) if (b[s + j] !== other[j]) return false;
    return true;
  }

  /** The body `b[i, end)`: one JSON object, surrounded by JSON whitespace only. */
  #body(b: Uint8Array, i: number, end: number): boolean {
    this.value.fill(FieldValue.Absent);
    this.#elementsUsed = 0;
    i = skipWhitespace(b, i, end);
    if (i >= end || b[i] !== 0x7b) return false;
    i = skipWhitespace(b, i + 1, end);
    if (i < end && b[i] === 0x7d) return false; // {}: no event name
    for (;;) {
      if (i >= end || b[i] !== 0x22) return false;
      // The key: hashed as read, looked up among the chosen keys.
      const ks = ++i;
      let h = 0x811c9dc5;
      for (; i < end; i++) {
        const c = b[i];
        const what = IN_STRING[c];
        if (what === QUOTE) break;
        // An escaped key might spell a chosen one: left to the parser.
        if (what === BACKSLASH || what === CONTROL) return false;
        h = hashStep(h, c);
      }
      if (i >= end) return false;
      const k = this.#lookup(b, ks, i, h);
      i = skipWhitespace(b, i + 1, end);
      if (i >= end || b[i] !== 0x3a) return false;
      i = skipWhitespace(b, i + 1, end);
      if (i >= end) return false;
      if (k < 0) i = this.#value(b, i, end);
      else if (b[i] === 0x22) {
        const vs = i + 1;
        i = this.#string(b, vs, end);
        if (i < 0 || !this.#plain) return false;
        this.value[k] = FieldValue.String;
        this.start[k] = vs;
        this.end[k] = i - 1;
      } else if (b[i] === 0x5b) {
        i = this.#strings(b, i + 1, end, k);
        if (i < 0) return false;
        this.value[k] = FieldValue.Strings;
      } else {
        i = this.#value(b, i, end);
        this.value[k] = FieldValue.Other;
      }
      if (i < 0) return false;
      i = skipWhitespace(b, i, end);
      if (i >= end) return false;
      if (b[i] === 0x2c) {
        i = skipWhitespace(b, i + 1, end);
        continue;
      }
      if (b[i] !== 0x7d) return false;
      i = skipWhitespace(b, i + 1, end);
      return i === end && this.value[0] === FieldValue.String;
    }
  }

  /** The index of the chosen key whose bytes are `b[s, e)` (hash `h`), or -1. */
  #lookup(b: Uint8Array, s: number, e: number, h: number): number {
    for (let slot = (h >>> 0) & (SLOTS - 1); ; slot = (slot + 1) & (SLOTS - 1)) {
      const k = this.#slots[slot];
      if (k < 0) return -1;
      const key = this.#keyBytes[k];
      if (key.length !== e - s) continue;
      let j = 0;
      while (j < key.length && key[j] === b[s + j]) j++;
      if (j === key.length) return k;
    }
  }

  /**
   * The elements of an array of plain strings (`i` after its `[`), recorded for key `k`; returns the index
   * after the `]`, or -1 when it is anything else.
   */
  #strings(b: Uint8Array, i: number, end: number, k: number): number {
    this.elementsAt[k] = this.#elementsUsed;
    let count = 0;
    i = skipWhitespace(b, i, end);
    if (i < end && b[i] === 0x5d) {
      this.elementCount[k] = 0;
      return i + 1;
    }
    for (;;) {
      if (i >= end || b[i] !== 0x22) return -1;
      const vs = i + 1;
      i = this.#string(b, vs, end);
      if (i < 0 || !this.#plain) return -1;
      if (this.#elementsUsed + 2 > this.elements.length) {
        const bigger = new Uint32Array(this.elements.length * 2);
        bigger.set(this.elements);
        this.elements = bigger;
      }
      this.elements[this.#elementsUsed++] = vs;
      this.elements[this.#elementsUsed++] = i - 1;
      count++;
      i = skipWhitespace(b, i, end);
      if (i >= end) return -1;
      if (b[i] === 0x5d) {
        this.elementCount[k] = count;
        return i + 1;
      }
      if (b[i] !== 0x2c) return -1;
      i = skipWhitespace(b, i + 1, end);
    }
  }

  /**
   * A JSON string's rest (`i` after its opening quote): returns the index after the closing quote, or -1
   * when it is not a valid JSON string; sets {@link #plain}.
   */
  #string(b: Uint8Array, i: number, end: number): number {
    let plain = true;
    while (i < end) {
      const c = IN_STRING[b[i++]];
      if (c === 0) continue;
      if (c === QUOTE) {
        this.#plain = plain;
        return i;
      }
      if (c === BACKSLASH) {
        plain = false;
        if (i >= end) return -1;
        const e = b[i++];
        if (e === 0x75) {
          if (i + 4 > end) return -1;
          if (
            !isHexAnyCase(b[i]) ||
            !isHexAnyCase(b[i + 1]) ||
            !isHexAnyCase(b[i + 2]) ||
            !isHexAnyCase(b[i + 3])
          )
            return -1;
          i += 4;
        } else if (
          e !== 0x22 &&
          e !== 0x5c &&
          e !== 0x2f &&
          e !== 0x62 &&
          e !== 0x66 &&
          e !== 0x6e &&
          e !== 0x72 &&
          e !== 0x74
        )
          return -1;
      } else if (c === CONTROL) return -1;
      else plain = false;
    }
    return -1;
  }

  /** Any JSON value starting at `i` (not whitespace): the index after it, or -1. Iterative, bounded depth. */
  #value(b: Uint8Array, i: number, end: number): number {
    const stack = this.#stack;
    let depth = 0;
    for (;;) {
      // One value at i.
      if (i >= end) return -1;
      const c = b[i];
      if (c === 0x22) {
        i = this.#string(b, i + 1, end);
        if (i < 0) return -1;
      } else if (c === 0x7b || c === 0x5b) {
        i = skipWhitespace(b, i + 1, end);
        if (i >= end) return -1;
        if (b[i] === (c === 0x7b ? 0x7d : 0x5d)) i++;
        else {
          if (depth === MAX_DEPTH) return -1;
          stack[depth++] = c === 0x7b ? OPEN_OBJECT : OPEN_ARRAY;
          if (c === 0x7b) {
            i = this.#memberKey(b, i, end);
            if (i < 0) return -1;
          }
          continue;
        }
      } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
        i = skipNumber(b, i, end);
        if (i < 0) return -1;
      } else if (c === 0x74) {
        if (!startsWith(b, i, end, TRUE)) return -1;
        i += 4;
      } else if (c === 0x66) {
        if (!startsWith(b, i, end, FALSE)) return -1;
        i += 5;
      } else if (c === 0x6e) {
        if (!startsWith(b, i, end, NULL)) return -1;
        i += 4;
      } else return -1;
      // The value is complete: close what it completes, or go on to the next member or element.
      for (;;) {
        if (depth === 0) return i;
        i = skipWhitespace(b, i, end);
        if (i >= end) return -1;
        const open = stack[depth - 1];
        const d = b[i];
        if (d === 0x2c) {
          i = skipWhitespace(b, i + 1, end);
          if (open === OPEN_OBJECT) {
            i = this.#memberKey(b, i, end);
            if (i < 0) return -1;
          }
          break;
        }
        if (d !== (open === OPEN_OBJECT ? 0x7d : 0x5d)) return -1;
        i++;
        depth--;
      }
    }
  }

  /** A member's key and colon at `i`: returns the index of its value (after whitespace), or -1. */
  #memberKey(b: Uint8Array, i: number, end: number): number {
    if (i >= end || b[i] !== 0x22) return -1;
    i = this.#string(b, i + 1, end);
    if (i < 0) return -1;
    i = skipWhitespace(b, i, end);
    if (i >= end || b[i] !== 0x3a) return -1;
    return skipWhitespace(b, i + 1, end);
  }
}

const TRUE = Buffer.from('true', 'latin1');
const FALSE = Buffer.from('false', 'latin1');
const NULL = Buffer.from('null', 'latin1');

/** Whether `a[as, ae)` and `b[bs, be)` hold the same bytes (a loop: cheaper than a native call for ids). */
export function sameBytes(
  a: Uint8Array,
  as: number,
  ae: number,
  b: Uint8Array,
  bs: number,
  be: number,
): boolean {
  if (ae - as !== be - bs) return false;
  for (let k = 0; k < ae - as; k++) if (a[as + k] !== b[bs + k]) return false;
  return true;
}

function startsWith(b: Uint8Array, i: number, end: number, what: Uint8Array): boolean {
  if (i + what.length > end) return false;
  for (let k = 0; k < what.length; k++) if (b[i + k] !== what[k]) return false;
  return true;
}

function skipWhitespace(b: Uint8Array, i: number, end: number): number {
  while (i < end && isWhitespace(b[i])) i++;
  return i;
}

/** A JSON number at `i`: the index after it, or -1 (the caller checks what follows). */
function skipNumber(b: Uint8Array, i: number, end: number): number {
  if (b[i] === 0x2d) i++;
  if (i >= end) return -1;
  if (b[i] === 0x30) i++;
  else if (b[i] >= 0x31 && b[i] <= 0x39) while (i < end && b[i] >= 0x30 && b[i] <= 0x39) i++;
  else return -1;
  if (i < end && b[i] === 0x2e) {
    const s = ++i;
    while (i < end && b[i] >= 0x30 && b[i] <= 0x39) i++;
    if (i === s) return -1;
  }
  if (i < end && (b[i] === 0x65 || b[i] === 0x45)) {
    i++;
    if (i < end && (b[i] === 0x2b || b[i] === 0x2d)) i++;
    const s = i;
    while (i < end && b[i] >= 0x30 && b[i] <= 0x39) i++;
    if (i === s) return -1;
  }
  return i;
}
