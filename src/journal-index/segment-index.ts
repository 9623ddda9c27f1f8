import { isUtf8 } from 'node:buffer';
import { hash } from 'node:crypto';
import { closeSync, fstatSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { RELATIONS } from '../lineage/record-lineage.js';
import type { EvidenceDir } from '../sources/evidence-files.js';

/**
 * The on-disk index of one journal segment (see docs/internals.md, "Journal index"). Derived data: it only
 * says where to look. Every record it points to is read back and re-interpreted by the reader, so a wrong
 * entry can at worst make a lookup miss — and a miss is prevented by the checks here: the header and the
 * block table carry SHA-256 checksums, each block carries its own, and the header names the segment prefix
 * it covers by length and by the hash of its last record, so a truncated, rewritten or swapped segment and
 * a truncated or altered index are both detected and the index is ignored.
 */

/** What an index entry says about the record it points to. */
export enum EntryKind {
  /** The record defines the node with this id. */
  Node = 1,
  /** The record has an edge into this id (whose node it does not define); `other` is the edge's source. */
  In = 2,
  /** The record has an edge out of this id (whose node it does not define); `other` is the edge's target. */
  Out = 3,
  /** The key is a content digest naming the id in `other`. */
  Alias = 4,
  /** The key is the record's `<chain>:<seq>`. */
  Record = 5,
  /**
   * An Out entry of the relation that fans out (`served`: a deployment's or model's predictions),
   * kept apart so that looking up what else comes out of a deployment never reads its millions of
   * predictions; `other` is the prediction. An index with fan-out tables keeps these in its filter and key
   * times only (the rows are in the tables, {@link FanOutTable}): a file lookup of them finds none.
   */
  Served = 6,
}

/** One entry found for a key: where the record is and what it says about the key. */
export interface IndexEntry {
  kind: EntryKind;
  /** The edge's relation (In, Out), else undefined. */
  relation: string | undefined;
  /** Byte offset of the record's line in the segment, and its length (without the newline). */
  offset: number;
  length: number;
  /** The other end of an edge, or the id a digest names; '' otherwise. */
  other: string;
}

/** A key with what to store for it, as the builder collects them. */
export interface KeyedEntry extends IndexEntry {
  key: string;
}

/** What the header of an index file says (a JSON object, checksummed). */
export interface SegmentIndexHeader {
  format: typeof FORMAT;
  version: typeof VERSION;
  /** The segment's file name (not its path: a journal directory can be moved). */
  segment: string;
  chain: string;
  /** Length of the segment prefix indexed: whole lines only. A segment that grew has an unindexed tail. */
  bytes: number;
  /** SHA-256 (hex) of the last line of the prefix (without its newline); empty for an empty prefix. */
  lastLineSha256: string;
  /** Lines indexed, records among them, lines that are not records (skipped). */
  lines: number;
  records: number;
  malformed: number;
  entries: number;
  blocks: number;
  /** Total size of the index file. */
  fileBytes: number;
  /** SHA-256 (hex) of the block table. */
  blockTableSha256: string;
  /**
   * Blocks of the (key, kind) filter after the entries: 64 bytes each, 56 of bits and an 8-byte checksum.
   * A lookup reads one of them and skips the segment when it says the pair is absent.
   */
  filterBlocks: number;
  /**
   * Per entry kind, the millisecond ranges of the UUIDv7 keys it holds (at most
   * {@link MAX_KEY_RANGES}, every key inside one) and whether it holds any other key. A lookup of a UUIDv7 id
   * skips the segment when no range holds the id's time, without reading anything; other keys skip it when
   * `other` is false.
   */
  keyTimes: Partial<Record<EntryKind, KeyTimes>>;
  /** How many edge entries (In, Out, Served) the index holds per relation. */
  relationEntries: Partial<Record<string, number>>;
  /**
   * The fan-out tables (see {@link FanOutTable}), between the block table and the entry blocks; absent when
   * the segment holds a record of another chain than the one it lies in (its segment is then read instead).
   */
  fanOut?: FanOutHeader;
}

/** Where a segment index's fan-out tables are and how to check them. */
export interface FanOutHeader {
  /** Bytes of the JSON list of servers (deployment or model ids) that served rows refer to by position. */
  serverBytes: number;
  served: number;
  follows: number;
  /** Bytes of the string pool (ids that are not lowercase UUIDs). */
  poolBytes: number;
  /** SHA-256 (hex) of the whole section. */
  sha256: string;
}

/** A prediction a deployment or model served, as its record says (one row of {@link FanOutTable}). */
export interface ServedRow {
  server: string;
  prediction: string;
  offset: number;
  length: number;
  seq: number;
}

/** A decision or feedback that follows a prediction, as its record says (one row of {@link FanOutTable}). */
export interface FollowRow {
  prediction: string;
  relation: string;
  /** The decision's or feedback's id. */
  id: string;
  offset: number;
  length: number;
  seq: number;
}

/** The UUIDv7 key times of one entry kind in a segment index (see {@link SegmentIndexHeader.keyTimes}). */
export interface KeyTimes {
  /** [first, last] Unix milliseconds, ascending, disjoint. */
  ranges: [number, number][];
  /** Whether keys that are not UUIDv7 occur. */
  other: boolean;
}

const FORMAT = 'mltrail-segment-index';
/**
 * 2 added the (key, kind) filter; 3 the key time ranges and relation counts in the header and the Served
 * entry kind; 4 the fan-out tables. An index of an older version is not read (its segment is scanned) and
 * is rebuilt by `mltrail index`.
 */
const VERSION = 4;
/** Time ranges kept per entry kind: the nearest ranges are merged until this many are left. */
const MAX_KEY_RANGES = 8;

/** The value of a hexadecimal digit (either case), or -1. */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x57 : -1;
}

/**
 * The millisecond a UUIDv7 encodes (its first 48 bits), or undefined for any other string: a UUID of hex
 * digits in either case with version 7 and variant 8-b.
 */
export function uuidV7Time(id: string): number | undefined {
  if (id.length !== 36 || id.charCodeAt(14) !== 0x37) return undefined;
  let time = 0;
  for (let i = 0; i < 36; i++) {
    const c = id.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 0x2d) return undefined;
      continue;
    }
    const v = hexValue(c);
    if (v < 0 || (i === 19 && v >> 2 !== 2)) return undefined;
    if (i < 13) time = time * 16 + v;
  }
  return time;
}

/** Sorted distinct times as at most `max` ranges, split at the `max - 1` largest gaps. */
function timeRanges(times: Float64Array, max: number): [number, number][] {
  const all = times.sort();
  if (all.length === 0) return [];
  // The largest gaps (ties: the earlier), kept sorted by size, descending.
  const top: { gap: number; at: number }[] = [];
  for (let i = 1; i < all.length; i++) {
    const gap = all[i] - all[i - 1];
    if (gap === 0 || (top.length === max - 1 && gap <= top[top.length - 1].gap)) continue;
    let k = top.length;
    while (k > 0 && top[k - 1].gap < gap) k--;
    top.splice(k, 0, { gap, at: i });
    if (top.length > max - 1) top.pop();
  }
  const cuts = top.map((t) => t.at).sort((a, b) => a - b);
  const ranges: [number, number][] = [];
  let start = 0;
  for (const c of cuts) {
    ranges.push([all[start], all[c - 1]]);
    start = c;
  }
  ranges.push([all[start], all[all.length - 1]]);
  return ranges;
}

/** False when the header's key times rule out any entry for (`key`, `kind`); true when it may have one. */
function mayHoldByTime(h: SegmentIndexHeader, key: string, kind: EntryKind): boolean {
  const k = h.keyTimes[kind];
  if (k === undefined) return false;
  const t = uuidV7Time(key);
  if (t === undefined) return k.other;
  for (const [a, b] of k.ranges) if (t >= a && t <= b) return true;
  return false;
}
const MAGIC = Buffer.from('MLTIDX1\n', 'latin1');
/** Filter block: 448 bits, then the first 8 bytes of SHA-256 over the block's number and bits. */
const FILTER_BLOCK = 64;
const FILTER_BITS = 448;
const FILTER_PROBES = 6;
/** Bits per distinct (key, kind) pair: with 6 probes in a 448-bit block, about 1% false positives. */
const FILTER_BITS_PER_PAIR = 12;
/** A block is closed once it holds this many bytes. */
const BLOCK_TARGET = 32 * 1024;
/**
 * Block table row: first entry's key hash (8) and kind (1), last entry's key hash (8) and kind (1), offset
 * (4), length (4), checksum (8).
 */
const ROW = 34;
/** Fixed part of an entry: key hash (8), kind (1), relation (1), offset (4), length (4), other length (2). */
const ENTRY_FIXED = 20;
const NO_RELATION = 0xff;
const ALL_KINDS = [
  EntryKind.Node,
  EntryKind.In,
  EntryKind.Out,
  EntryKind.Alias,
  EntryKind.Record,
  EntryKind.Served,
];
const RELATION_CODES = new Map<string, number>(RELATIONS.map((r, i) => [r, i]));

/**
 * A 64-bit hash of a key (two 32-bit FNV-1a variants over its UTF-16 code units) as [high, low]. Entries
 * are sorted by it; a collision can only make a lookup fetch a record that the reader then finds does not
 * name the key.
 */
export function keyHash(key: string): [number, number] {
  const hi = hashKey(key);
  return [hi, hashedLow];
}

/** The low half of the last {@link hashKey}. */
let hashedLow = 0;

/** {@link keyHash} without an array: returns the high half, leaves the low half in {@link hashedLow}. */
function hashKey(key: string): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ key.length;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h2 = Math.imul(h2 ^ (h2 >>> 16), 0xc2b2ae35);
  h2 ^= h2 >>> 16;
  hashedLow = h2 >>> 0;
  return h1 >>> 0;
}

/** Entries are ordered by key hash, then kind: the order of a (key, kind) pair. */
function compareKey(
  aHi: number,
  aLo: number,
  aKind: number,
  bHi: number,
  bLo: number,
  bKind: number,
): number {
  return aHi !== bHi ? (aHi < bHi ? -1 : 1) : aLo !== bLo ? (aLo < bLo ? -1 : 1) : aKind - bKind;
}

/**
 * The filter block of a (key, kind) pair and its bit positions: a blocked Bloom filter, so one lookup
 * reads one 64-byte block whatever the segment's size.
 */
function filterProbe(hi: number, lo: number, kind: number, blocks: number): number {
  const a = (hi ^ Math.imul(kind, 0x9e3779b1)) >>> 0;
  let b = (lo ^ Math.imul(kind + 1, 0x85ebca77)) >>> 0;
  for (let j = 0; j < FILTER_PROBES; j++) {
    b = Math.imul(b ^ (b >>> 15), 0x2c1b3c6d);
    b = (b ^ (b >>> 12)) >>> 0;
    PROBE_BITS[j] = b % FILTER_BITS;
  }
  return a % blocks;
}

/** The bit positions of the last {@link filterProbe}. */
const PROBE_BITS = new Uint16Array(FILTER_PROBES);

function filterChecksum(block: number, bits: Uint8Array): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32BE(block, 0);
  return Buffer.from(hash('sha256', Buffer.concat([n, bits]), 'binary').slice(0, 8), 'latin1');
}

/** The first 8 bytes of SHA-256, as a checksum of a block. */
function checksum(data: Uint8Array): Buffer {
  return Buffer.from(hash('sha256', data, 'binary').slice(0, 8), 'latin1');
}

/** The first 8 bytes of SHA-256 of `data`, written at `out[at]`. */
function putChecksum(data: Uint8Array, out: Buffer, at: number): void {
  hash('sha256', data, 'buffer').copy(out, at, 0, 8);
}

/**
 * The entries of one segment's index as the builder collects them: each already in its stored form (the
 * 20 fixed bytes and the other end's UTF-8, as {@link encodeSegmentIndex} packs them into blocks) in one
 * buffer, not as objects, with the key times, relation counts and served keys the header needs gathered as
 * they come.
 */
export class IndexEntryTable {
  count = 0;
  /** Where entry i's bytes start in {@link bytes}. */
  at = new Uint32Array(4096);
  bytes = Buffer.allocUnsafe(1 << 20);
  used = 0;
  /** Per kind: the UUIDv7 times of its keys, how many, and whether another key occurred. */
  readonly times = new Map<EntryKind, { times: Float64Array; count: number; other: boolean }>();
  /** Edge entries per relation, in the order relations first occur. */
  readonly relationEntries: Record<string, number> = {};
  /** The distinct keys of {@link EntryKind.Served} entries. */
  readonly servedKeys = new Set<string>();

  /** Adds an entry: `key` of `kind`, for the record whose line is at `offset` (`length` bytes). */
  add(
    key: string,
    kind: EntryKind,
    relation: string | undefined,
    other: string,
    offset: number,
    length: number,
  ): void {
    const hi = hashKey(key);
    // At most 3 bytes of UTF-8 per UTF-16 code unit.
    const at = this.#put(hi, hashedLow, kind, relation, offset, length, other.length * 3);
    const b = this.bytes;
    let n = 0;
    if (other !== '') {
      // ASCII (every id mltrail makes) byte by byte; anything else through the encoder.
      for (; n < other.length; n++) {
        const c = other.charCodeAt(n);
        if (c >= 0x80) break;
        b[at + ENTRY_FIXED + n] = c;
      }
      if (n < other.length) n = b.write(other, at + ENTRY_FIXED, 'utf8');
    }
    this.#end(at, n);
    this.#time(kind, uuidV7Time(key));
    if (kind === EntryKind.Served) this.servedKeys.add(key);
  }

  /**
   * {@link add} for a key and other end that are ASCII bytes of `src`: `[keyStart, keyEnd)`, then, if
   * `sep` is not -1, that byte and `[key2Start, key2End)` (a record's `<chain>:<seq>`); the other end
   * `[otherStart, otherEnd)`. A Served entry's key is also given as `servedKey`.
   */
  addAscii(
    src: Uint8Array,
    keyStart: number,
    keyEnd: number,
    sep: number,
    key2Start: number,
    key2End: number,
    kind: EntryKind,
    relation: string | undefined,
    otherStart: number,
    otherEnd: number,
    offset: number,
    length: number,
  ): void {
    const hi = hashAscii(src, keyStart, keyEnd, sep, key2Start, key2End);
    const n = otherEnd - otherStart;
    const at = this.#put(hi, hashedLow, kind, relation, offset, length, n);
    const b = this.bytes;
    for (let k = 0; k < n; k++) b[at + ENTRY_FIXED + k] = src[otherStart + k];
    this.#end(at, n);
    this.#time(kind, sep === -1 ? uuidV7TimeAscii(src, keyStart, keyEnd) : undefined);
  }

  /**
   * {@link addAscii} for a key whose hash and time were worked out before ({@link knownKey}): a key many
   * records name (the deployment that served them).
   */
  addKnown(
    key: KnownKey,
    kind: EntryKind,
    relation: string | undefined,
    src: Uint8Array,
    otherStart: number,
    otherEnd: number,
    offset: number,
    length: number,
  ): void {
    const n = otherEnd - otherStart;
    const at = this.#put(key.hi, key.lo, kind, relation, offset, length, n);
    const b = this.bytes;
    for (let k = 0; k < n; k++) b[at + ENTRY_FIXED + k] = src[otherStart + k];
    this.#end(at, n);
    this.#time(kind, key.time);
    if (kind === EntryKind.Served) this.servedKeys.add(key.key);
  }

  /** Writes an entry's fixed part (its other end's length left for {@link #end}); returns where it is. */
  #put(
    hi: number,
    lo: number,
    kind: EntryKind,
    relation: string | undefined,
    offset: number,
    length: number,
    otherRoom: number,
  ): number {
    const i = this.count++;
    if (i === this.at.length) {
      const bigger = new Uint32Array(this.at.length * 2);
      bigger.set(this.at);
      this.at = bigger;
    }
    const room = ENTRY_FIXED + otherRoom;
    if (this.used + room > this.bytes.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.bytes.length * 2, this.used + room));
      this.bytes.copy(bigger, 0, 0, this.used);
      this.bytes = bigger;
    }
    const b = this.bytes;
    const at = this.used;
    this.at[i] = at;
    b[at] = hi >>> 24;
    b[at + 1] = hi >>> 16;
    b[at + 2] = hi >>> 8;
    b[at + 3] = hi;
    b[at + 4] = lo >>> 24;
    b[at + 5] = lo >>> 16;
    b[at + 6] = lo >>> 8;
    b[at + 7] = lo;
    b[at + 8] = kind;
    if (relation === undefined) b[at + 9] = NO_RELATION;
    else {
      b[at + 9] = RELATION_CODES.get(relation) ?? NO_RELATION;
      this.relationEntries[relation] = (this.relationEntries[relation] ?? 0) + 1;
    }
    b[at + 10] = offset >>> 24;
    b[at + 11] = offset >>> 16;
    b[at + 12] = offset >>> 8;
    b[at + 13] = offset;
    b[at + 14] = length >>> 24;
    b[at + 15] = length >>> 16;
    b[at + 16] = length >>> 8;
    b[at + 17] = length;
    return at;
  }

  /** Sets the length of the other end written after the entry at `at`. */
  #end(at: number, n: number): void {
    if (n > 0xffff) throw new RangeError(`an index entry's other end is ${n} bytes (at most 65535 fit)`);
    this.bytes[at + 18] = n >>> 8;
    this.bytes[at + 19] = n;
    this.used = at + ENTRY_FIXED + n;
  }

  /** Notes the UUIDv7 time of an entry's key (undefined: the key is not a UUIDv7). */
  #time(kind: EntryKind, t: number | undefined): void {
    let k = this.times.get(kind);
    if (k === undefined) {
      k = { times: new Float64Array(1024), count: 0, other: false };
      this.times.set(kind, k);
    }
    if (t === undefined) k.other = true;
    // The ranges depend on the distinct times only: a repeat of the last one (the deployment that served
    // the predictions before) is not kept.
    else if (k.count === 0 || k.times[k.count - 1] !== t) {
      if (k.count === k.times.length) {
        const bigger = new Float64Array(k.times.length * 2);
        bigger.set(k.times);
        k.times = bigger;
      }
      k.times[k.count++] = t;
    }
  }
}

/** A key with its hash and UUIDv7 time, worked out once for many entries. */
export interface KnownKey {
  key: string;
  hi: number;
  lo: number;
  time: number | undefined;
}

/** `key` with its hash and UUIDv7 time. */
export function knownKey(key: string): KnownKey {
  const hi = hashKey(key);
  return { key, hi, lo: hashedLow, time: uuidV7Time(key) };
}

/**
 * {@link hashKey} of a key whose UTF-16 code units are the ASCII bytes `src[s, e)`, then (if `sep` is not
 * -1) the byte `sep` and `src[s2, e2)`.
 */
function hashAscii(src: Uint8Array, s: number, e: number, sep: number, s2: number, e2: number): number {
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193 ^ (sep === -1 ? e - s : e - s + 1 + e2 - s2);
  for (let i = s; i < e; i++) {
    const c = src[i];
    h1 = Math.imul(h1 ^ c, 0x01000193);
    h2 = Math.imul(h2 ^ c, 0x5bd1e995);
    h2 ^= h2 >>> 15;
  }
  if (sep !== -1) {
    h1 = Math.imul(h1 ^ sep, 0x01000193);
    h2 = Math.imul(h2 ^ sep, 0x5bd1e995);
    h2 ^= h2 >>> 15;
    for (let i = s2; i < e2; i++) {
      const c = src[i];
      h1 = Math.imul(h1 ^ c, 0x01000193);
      h2 = Math.imul(h2 ^ c, 0x5bd1e995);
      h2 ^= h2 >>> 15;
    }
  }
  h1 ^= h1 >>> 16;
  h1 = Math.imul(h1, 0x85ebca6b);
  h1 ^= h1 >>> 13;
  h2 = Math.imul(h2 ^ (h2 >>> 16), 0xc2b2ae35);
  h2 ^= h2 >>> 16;
  hashedLow = h2 >>> 0;
  return h1 >>> 0;
}

/** Per byte: its value as a hex digit of either case, or 16. */
const ANY_HEX = new Uint8Array(256).fill(16);
for (let i = 0; i < 16; i++) {
  ANY_HEX['0123456789abcdef'.charCodeAt(i)] = i;
  ANY_HEX['0123456789ABCDEF'.charCodeAt(i)] = i;
}

/** {@link uuidV7Time} of the ASCII bytes `src[s, e)`. */
function uuidV7TimeAscii(src: Uint8Array, s: number, e: number): number | undefined {
  if (
    e - s !== 36 ||
    src[s + 14] !== 0x37 ||
    src[s + 8] !== 0x2d ||
    src[s + 13] !== 0x2d ||
    src[s + 18] !== 0x2d ||
    src[s + 23] !== 0x2d ||
    ANY_HEX[src[s + 19]] >> 2 !== 2
  )
    return undefined;
  let bad = 0;
  let time = 0;
  for (let i = 0; i < 13; i++) {
    if (i === 8) continue;
    const v = ANY_HEX[src[s + i]];
    bad |= v;
    time = time * 16 + v;
  }
  for (let i = 14; i < 36; i++) if (i !== 18 && i !== 23) bad |= ANY_HEX[src[s + i]];
  return bad & 16 ? undefined : time;
}

function u32(b: Buffer, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/** Entries of a bucket below this many are sorted by one number (the rest of the hash's high half, and their place). */
const SORT_POSITIONS = 2 ** 21;

/**
 * The entries of `t` that go into blocks (all, or all but the Served ones), in stored order: by (key hash,
 * kind, offset), and as added when equal in all of these (the order a stable sort of that comparison
 * gives). Returned as the entries' bytes copied into `staged`, bucket by bucket (the key hash's first
 * byte), and `order`, their places in `staged` in stored order. Within a bucket (a few tens of KB, in
 * cache) one native sort of numbers (the rest of the high half of the key hash, and the place in the
 * bucket) does almost all of it; runs of equal high halves (a key's several entries) are put in order with
 * the full comparison.
 */
function sortedEntries(
  t: IndexEntryTable,
  withoutServed: boolean,
): { staged: Buffer; order: Uint32Array; bytes: number } {
  const src = t.bytes;
  const counts = new Uint32Array(257);
  const sizes = new Float64Array(257);
  let n = 0;
  for (let i = 0; i < t.count; i++) {
    const a = t.at[i];
    if (withoutServed && src[a + 8] === EntryKind.Served) continue;
    n++;
    counts[src[a] + 1]++;
    sizes[src[a] + 1] += ENTRY_FIXED + ((src[a + 18] << 8) | src[a + 19]);
  }
  for (let d = 1; d < 257; d++) {
    counts[d] += counts[d - 1];
    sizes[d] += sizes[d - 1];
  }
  const bytes = sizes[256];
  const staged = Buffer.allocUnsafe(bytes);
  const placed = new Uint32Array(n);
  const nextEntry = counts.slice(0, 256);
  const nextByte = sizes.slice(0, 256);
  for (let i = 0; i < t.count; i++) {
    const a = t.at[i];
    if (withoutServed && src[a + 8] === EntryKind.Served) continue;
    const d = src[a];
    const size = ENTRY_FIXED + ((src[a + 18] << 8) | src[a + 19]);
    const to = nextByte[d];
    for (let k = 0; k < size; k++) staged[to + k] = src[a + k];
    placed[nextEntry[d]++] = to;
    nextByte[d] = to + size;
  }
  const order = new Uint32Array(n);
  let keys = new Float64Array(256);
  for (let d = 0; d < 256; d++) {
    const from = counts[d];
    const m = counts[d + 1] - from;
    if (m === 0) continue;
    const bucket = placed.subarray(from, from + m);
    const local = order.subarray(from, from + m);
    const compare = (x: number, y: number) => {
      const a = bucket[x];
      const c = bucket[y];
      return (
        u32(staged, a) - u32(staged, c) ||
        u32(staged, a + 4) - u32(staged, c + 4) ||
        staged[a + 8] - staged[c + 8] ||
        u32(staged, a + 10) - u32(staged, c + 10) ||
        x - y
      );
    };
    if (m >= SORT_POSITIONS) {
      for (let j = 0; j < m; j++) local[j] = j;
      local.sort(compare);
    } else {
      if (keys.length < m) keys = new Float64Array(Math.max(m, keys.length * 2));
      const k = keys.subarray(0, m);
      for (let j = 0; j < m; j++) k[j] = (u32(staged, bucket[j]) & 0xffffff) * SORT_POSITIONS + j;
      k.sort();
      for (let j = 0; j < m; j++) local[j] = k[j] % SORT_POSITIONS;
      for (let s = 0; s < m; ) {
        const hi = Math.floor(k[s] / SORT_POSITIONS);
        let e = s + 1;
        while (e < m && Math.floor(k[e] / SORT_POSITIONS) === hi) e++;
        if (e - s > 1) local.subarray(s, e).sort(compare);
        s = e;
      }
    }
    for (let j = 0; j < m; j++) local[j] = bucket[local[j]];
  }
  return { staged, order, bytes };
}

/**
 * Writes the bytes of an index file for the given entries: entries sorted by key hash, packed into
 * checksummed blocks, a block table, and a header that names the segment prefix. Returns the file's bytes.
 */
export function encodeSegmentIndex(
  table: IndexEntryTable,
  header: Omit<
    SegmentIndexHeader,
    | 'format'
    | 'version'
    | 'entries'
    | 'blocks'
    | 'fileBytes'
    | 'blockTableSha256'
    | 'filterBlocks'
    | 'keyTimes'
    | 'relationEntries'
    | 'fanOut'
  >,
  fanOut?: FanOutRows,
): Buffer {
  const fanOutSection = fanOut?.encode();
  const keyTimes: Partial<Record<EntryKind, KeyTimes>> = {};
  for (const [kind, k] of [...table.times].sort((a, b) => a[0] - b[0]))
    keyTimes[kind] = { ranges: timeRanges(k.times.subarray(0, k.count), MAX_KEY_RANGES), other: k.other };
  // With fan-out tables, the served predictions are rows there: the Served entries (one per prediction,
  // the largest part of a busy segment's entries) stay in the filter and the key times only, which is
  // what "may this segment hold a prediction served by X" needs.
  const servedKeys = fanOut === undefined ? undefined : table.servedKeys;
  const { staged: src, order, bytes: bodyBytes } = sortedEntries(table, servedKeys !== undefined);
  const n = order.length;
  const body = Buffer.allocUnsafe(bodyBytes);
  let rows = Buffer.allocUnsafe(ROW * 64);
  let blocks = 0;
  let blockStart = 0;
  let at = 0;
  let first = -1;
  let last = -1;
  const closeBlock = () => {
    if (first < 0) return;
    if ((blocks + 1) * ROW > rows.length) {
      const bigger = Buffer.allocUnsafe(rows.length * 2);
      rows.copy(bigger, 0, 0, blocks * ROW);
      rows = bigger;
    }
    const r = blocks * ROW;
    body.copy(rows, r, first, first + 9);
    body.copy(rows, r + 9, last, last + 9);
    rows.writeUInt32BE(blockStart, r + 18);
    rows.writeUInt32BE(at - blockStart, r + 22);
    putChecksum(body.subarray(blockStart, at), rows, r + 26);
    blocks++;
    blockStart = at;
    first = -1;
  };
  // The filter holds each distinct (key, kind) pair once (entries are sorted, so repeats are adjacent).
  let pairs = servedKeys?.size ?? 0;
  for (let j = 0; j < n; j++) {
    const e = order[j];
    const size = ENTRY_FIXED + ((src[e + 18] << 8) | src[e + 19]);
    if (at > blockStart && at - blockStart + size > BLOCK_TARGET) closeBlock();
    for (let k = 0; k < size; k++) body[at + k] = src[e + k];
    let same = last >= 0;
    for (let k = 0; k < 9 && same; k++) same = body[last + k] === body[at + k];
    if (!same) pairs++;
    if (first < 0) first = at;
    last = at;
    at += size;
  }
  closeBlock();
  const blockTable = rows.subarray(0, blocks * ROW);
  const filterBlocks = Math.max(1, Math.ceil((pairs * FILTER_BITS_PER_PAIR) / FILTER_BITS));
  const filter = Buffer.alloc(filterBlocks * FILTER_BLOCK);
  const probe = (h: number, l: number, k: EntryKind) => {
    const base = filterProbe(h, l, k, filterBlocks) * FILTER_BLOCK;
    for (let p = 0; p < FILTER_PROBES; p++) {
      const bit = PROBE_BITS[p];
      filter[base + (bit >>> 3)] |= 1 << (bit & 7);
    }
  };
  for (let e = 0; e < body.length; e += ENTRY_FIXED + ((body[e + 18] << 8) | body[e + 19]))
    probe(u32(body, e), u32(body, e + 4), body[e + 8]);
  for (const key of servedKeys ?? []) probe(hashKey(key), hashedLow, EntryKind.Served);
  const numbered = Buffer.allocUnsafe(4 + FILTER_BITS / 8);
  for (let i = 0; i < filterBlocks; i++) {
    const base = i * FILTER_BLOCK;
    numbered.writeUInt32BE(i, 0);
    filter.copy(numbered, 4, base, base + FILTER_BITS / 8);
    putChecksum(numbered, filter, base + FILTER_BITS / 8);
  }
  // The header's length depends on fileBytes, which depends on the header's length: settle it in two rounds.
  let fileBytes = 0;
  let headerJson = Buffer.alloc(0);
  const blockTableSha256 = hash('sha256', blockTable);
  for (let round = 0; round < 3; round++) {
    const h: SegmentIndexHeader = {
      format: FORMAT,
      version: VERSION,
      ...header,
      entries: n,
      blocks,
      fileBytes,
      blockTableSha256,
      filterBlocks,
      keyTimes,
      relationEntries: table.relationEntries,
      ...(fanOutSection !== undefined ? { fanOut: fanOutSection.header } : {}),
    };
    headerJson = Buffer.from(JSON.stringify(h), 'utf8');
    const total =
      MAGIC.length +
      4 +
      headerJson.length +
      32 +
      blockTable.length +
      (fanOutSection?.bytes.length ?? 0) +
      body.length +
      filter.length;
    if (total === fileBytes) break;
    fileBytes = total;
  }
  const len = Buffer.alloc(4);
  len.writeUInt32BE(headerJson.length, 0);
  const headerSum = hash('sha256', headerJson, 'buffer');
  const fan = fanOutSection?.bytes ?? Buffer.alloc(0);
  return Buffer.concat([MAGIC, len, headerJson, headerSum, blockTable, fan, body, filter]);
}

/**
 * Served row: offset (4), length (4), seq (8, float), server's position in the list (4), flags (1), 3 unused,
 * prediction id (16). Follow row: offset (4), length (4), seq (8), relation (1), flags (1), 2 unused,
 * prediction id (16), decision's or feedback's id (16). An id slot holds a lowercase UUID as its 16 bytes,
 * or (flag set) the offset (4) and length (4) of the id in the string pool.
 */
const SERVED_ROW = 40;
const FOLLOW_ROW = 52;

/**
 * Writes `id` into the 16-byte slot at `rows[at]` when it is a lowercase UUID and returns true; else
 * leaves the slot and returns false.
 */
function putLowerUuid(id: string, rows: Buffer, at: number): boolean {
  if (id.length !== 36) return false;
  for (let i = 0, b = at; i < 36; ) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (id.charCodeAt(i) !== 0x2d) return notUuid(rows, at);
      i++;
      continue;
    }
    const h = lowerHex(id.charCodeAt(i));
    const l = lowerHex(id.charCodeAt(i + 1));
    if (h < 0 || l < 0) return notUuid(rows, at);
    rows[b++] = (h << 4) | l;
    i += 2;
  }
  return true;
}

/** {@link putLowerUuid} of the ASCII bytes `src[s, e)`. */
function putLowerUuidAscii(src: Uint8Array, s: number, e: number, rows: Buffer, at: number): boolean {
  if (e - s !== 36) return false;
  for (let i = 0, b = at; i < 36; ) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (src[s + i] !== 0x2d) return notUuid(rows, at);
      i++;
      continue;
    }
    const h = lowerHex(src[s + i]);
    const l = lowerHex(src[s + i + 1]);
    if (h < 0 || l < 0) return notUuid(rows, at);
    rows[b++] = (h << 4) | l;
    i += 2;
  }
  return true;
}

/** Clears a slot a UUID was being written into (the slot of a pooled id holds only its place): false. */
function notUuid(rows: Buffer, at: number): false {
  rows.fill(0, at, at + 16);
  return false;
}

function lowerHex(c: number): number {
  return c >= 0x30 && c <= 0x39 ? c - 0x30 : c >= 0x61 && c <= 0x66 ? c - 0x57 : -1;
}

/**
 * The fan-out rows of one segment as the builder finds them, in record order, written into their final
 * row layout as they come (see {@link encodeFanOut} for the section).
 */
export class FanOutRows {
  readonly #servers = new Map<string, number>();
  #served: Buffer = Buffer.alloc(SERVED_ROW * 1024);
  #servedCount = 0;
  #follows: Buffer = Buffer.alloc(FOLLOW_ROW * 256);
  #followCount = 0;
  /** Ids that are not lowercase UUIDs, of the served rows and of the follow rows (the pool is both). */
  readonly #servedPool: Buffer[] = [];
  #servedPoolBytes = 0;
  readonly #followPool: Buffer[] = [];
  #followPoolBytes = 0;

  /** A prediction `server` (a deployment or model) served. */
  served(server: string, prediction: string, offset: number, length: number, seq: number): void {
    const at = this.#servedRow(server, offset, length, seq);
    if (!putLowerUuid(prediction, this.#served, at + 24))
      this.#poolServed(Buffer.from(prediction, 'utf8'), at);
  }

  /** A decision or feedback (`id`) that follows `prediction`. */
  follows(
    prediction: string,
    relation: string,
    id: string,
    offset: number,
    length: number,
    seq: number,
  ): void {
    const at = this.#followRow(relation, offset, length, seq);
    const rows = this.#follows;
    let flags = 0;
    if (!putLowerUuid(prediction, rows, at + 20)) {
      this.#poolFollow(Buffer.from(prediction, 'utf8'), at + 20);
      flags |= 1;
    }
    if (!putLowerUuid(id, rows, at + 36)) {
      this.#poolFollow(Buffer.from(id, 'utf8'), at + 36);
      flags |= 2;
    }
    rows[at + 17] = flags;
  }

  #servedRow(server: string, offset: number, length: number, seq: number): number {
    if ((this.#servedCount + 1) * SERVED_ROW > this.#served.length) this.#served = grownRows(this.#served);
    const rows = this.#served;
    const at = this.#servedCount++ * SERVED_ROW;
    let s = this.#servers.get(server);
    if (s === undefined) {
      s = this.#servers.size;
      this.#servers.set(server, s);
    }
    rows.writeUInt32BE(offset, at);
    rows.writeUInt32BE(length, at + 4);
    rows.writeDoubleBE(seq, at + 8);
    rows.writeUInt32BE(s, at + 16);
    return at;
  }

  #poolServed(id: Buffer, at: number): void {
    const rows = this.#served;
    rows.writeUInt32BE(this.#servedPoolBytes, at + 24);
    rows.writeUInt32BE(id.length, at + 28);
    this.#servedPool.push(id);
    this.#servedPoolBytes += id.length;
    rows[at + 20] = 1;
  }

  #followRow(relation: string, offset: number, length: number, seq: number): number {
    if ((this.#followCount + 1) * FOLLOW_ROW > this.#follows.length) this.#follows = grownRows(this.#follows);
    const rows = this.#follows;
    const at = this.#followCount++ * FOLLOW_ROW;
    rows.writeUInt32BE(offset, at);
    rows.writeUInt32BE(length, at + 4);
    rows.writeDoubleBE(seq, at + 8);
    rows[at + 16] = RELATION_CODES.get(relation) ?? NO_RELATION;
    return at;
  }

  /** Puts an id in the follow rows' part of the pool (offsets relative to it until encode() knows where it starts). */
  #poolFollow(id: Buffer, slot: number): void {
    const rows = this.#follows;
    rows.writeUInt32BE(this.#followPoolBytes, slot);
    rows.writeUInt32BE(id.length, slot + 4);
    this.#followPool.push(id);
    this.#followPoolBytes += id.length;
  }

  /** {@link served} with the prediction id given as the ASCII bytes `src[s, e)`. */
  servedAscii(
    server: string,
    src: Uint8Array,
    s: number,
    e: number,
    offset: number,
    length: number,
    seq: number,
  ): void {
    const at = this.#servedRow(server, offset, length, seq);
    if (!putLowerUuidAscii(src, s, e, this.#served, at + 24))
      this.#poolServed(Buffer.from(src.subarray(s, e)), at);
  }

  /** {@link follows} with both ids given as ASCII bytes of `src`. */
  followsAscii(
    src: Uint8Array,
    ps: number,
    pe: number,
    relation: string,
    is: number,
    ie: number,
    offset: number,
    length: number,
    seq: number,
  ): void {
    const at = this.#followRow(relation, offset, length, seq);
    const rows = this.#follows;
    let flags = 0;
    if (!putLowerUuidAscii(src, ps, pe, rows, at + 20)) {
      this.#poolFollow(Buffer.from(src.subarray(ps, pe)), at + 20);
      flags |= 1;
    }
    if (!putLowerUuidAscii(src, is, ie, rows, at + 36)) {
      this.#poolFollow(Buffer.from(src.subarray(is, ie)), at + 36);
      flags |= 2;
    }
    rows[at + 17] = flags;
  }

  /** The fan-out section: the servers' list, the served rows and the follow rows in record order, the pool. */
  encode(): { bytes: Buffer; header: FanOutHeader } {
    const serverJson = Buffer.from(JSON.stringify([...this.#servers.keys()]), 'utf8');
    const follows = this.#follows.subarray(0, this.#followCount * FOLLOW_ROW);
    for (let at = 0; at < follows.length; at += FOLLOW_ROW) {
      const flags = follows[at + 17];
      if (flags & 1) follows.writeUInt32BE(follows.readUInt32BE(at + 20) + this.#servedPoolBytes, at + 20);
      if (flags & 2) follows.writeUInt32BE(follows.readUInt32BE(at + 36) + this.#servedPoolBytes, at + 36);
    }
    const bytes = Buffer.concat([
      serverJson,
      this.#served.subarray(0, this.#servedCount * SERVED_ROW),
      follows,
      ...this.#servedPool,
      ...this.#followPool,
    ]);
    return {
      bytes,
      header: {
        serverBytes: serverJson.length,
        served: this.#servedCount,
        follows: this.#followCount,
        poolBytes: this.#servedPoolBytes + this.#followPoolBytes,
        sha256: hash('sha256', bytes),
      },
    };
  }
}

/** Twice the rows, the new part zeroed (unused bytes of a row are 0). */
function grownRows(rows: Buffer): Buffer {
  const bigger = Buffer.alloc(rows.length * 2);
  rows.copy(bigger);
  return bigger;
}

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
/** 256 two-digit lowercase hex strings, to spell ids out of their bytes. */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** Writes the UUID whose 16 bytes are at `from` in `src` as JSON (quoted, lowercase) into `out` at `at`; returns the end. */
export function writeUuidJson(src: Buffer, from: number, out: Buffer, at: number): number {
  out[at++] = 0x22;
  for (let k = 0; k < 16; k++) {
    if (k === 4 || k === 6 || k === 8 || k === 10) out[at++] = 0x2d;
    const b = src[from + k];
    out[at++] = HEX_DIGITS[b >>> 4];
    out[at++] = HEX_DIGITS[b & 15];
  }
  out[at++] = 0x22;
  return at;
}

/**
 * A segment's fan-out tables, read whole and checked: every prediction a deployment or model served, and
 * every decision and feedback that names a prediction, each with its record's place, in record order. What
 * an impact answer streams comes from here without reading the records (see docs/internals.md).
 */
export class FanOutTable {
  readonly servers: readonly string[];
  readonly served: number;
  readonly follows: number;
  readonly #rows: Buffer;
  readonly #pool: Buffer;

  /**
   * The tables in `bytes` (the section `h` describes, its checksum checked). Throws {@link StaleIndexError}
   * when they cannot be what the index builder wrote (see {@link impossibleRows}): such tables are damaged
   * like ones whose checksum fails.
   */
  constructor(bytes: Buffer, h: FanOutHeader, file: string) {
    let servers: unknown;
    try {
      servers = JSON.parse(bytes.toString('utf8', 0, h.serverBytes));
    } catch {
      servers = undefined;
    }
    if (!Array.isArray(servers) || servers.some((x) => typeof x !== 'string'))
      throw new StaleIndexError(file, 'fan-out server list is not a list of ids');
    if (new Set(servers).size !== servers.length)
      throw new StaleIndexError(file, 'fan-out server list names a server twice');
    this.servers = servers as string[];
    this.served = h.served;
    this.follows = h.follows;
    const rowsEnd = h.serverBytes + h.served * SERVED_ROW + h.follows * FOLLOW_ROW;
    this.#rows = bytes.subarray(h.serverBytes, rowsEnd);
    this.#pool = bytes.subarray(rowsEnd);
    const why = isUtf8(this.#pool)
      ? impossibleRows(this.#rows, this.#pool, h.served, h.follows, servers.length)
      : 'the string pool is not UTF-8';
    if (why !== undefined) throw new StaleIndexError(file, `fan-out tables: ${why}`);
  }

  /** The id in the slot at `at` of the rows (`pooled`: in the string pool). */
  id(at: number, pooled: boolean): string {
    const r = this.#rows;
    if (pooled) {
      const start = r.readUInt32BE(at);
      return this.#pool.toString('utf8', start, start + r.readUInt32BE(at + 4));
    }
    const h = HEX;
    return (
      h[r[at]] +
      h[r[at + 1]] +
      h[r[at + 2]] +
      h[r[at + 3]] +
      '-' +
      h[r[at + 4]] +
      h[r[at + 5]] +
      '-' +
      h[r[at + 6]] +
      h[r[at + 7]] +
      '-' +
      h[r[at + 8]] +
      h[r[at + 9]] +
      '-' +
      h[r[at + 10]] +
      h[r[at + 11]] +
      h[r[at + 12]] +
      h[r[at + 13]] +
      h[r[at + 14]] +
      h[r[at + 15]]
    );
  }

  /** The served rows' servers, by position in {@link servers}: one number per row, for filtering. */
  servedServer(i: number): number {
    return this.#rows.readUInt32BE(i * SERVED_ROW + 16);
  }

  /** Served row `i`'s prediction id. */
  servedPrediction(i: number): string {
    const at = i * SERVED_ROW;
    return this.id(at + 24, (this.#rows[at + 20] & 1) !== 0);
  }

  /**
   * The last 32 bits of served row `i`'s prediction id when it is a UUID (stored as its bytes; random bits
   * in a UUIDv7), else undefined.
   */
  servedTail(i: number): number | undefined {
    const at = i * SERVED_ROW;
    return (this.#rows[at + 20] & 1) !== 0 ? undefined : this.#rows.readUInt32BE(at + 36);
  }

  /**
   * Writes served row `i`'s prediction id as JSON (quoted) into `out` at `at` and returns where it ends; for
   * a UUID stored as its bytes, the hex digits are written straight from them (no string is made).
   */
  writeServedId(i: number, out: Buffer, at: number): number {
    const r = this.#rows;
    const slot = i * SERVED_ROW + 24;
    if ((r[slot - 4] & 1) !== 0) return at + out.write(JSON.stringify(this.servedPrediction(i)), at, 'utf8');
    return writeUuidJson(r, slot, out, at);
  }

  /** Copies served row `i`'s prediction id's 16 bytes into `out` at `at`; only for a UUID (see {@link servedTail}). */
  copyServedUuid(i: number, out: Buffer, at: number): void {
    const r = this.#rows;
    const slot = i * SERVED_ROW + 24;
    for (let k = 0; k < 16; k++) out[at + k] = r[slot + k];
  }

  /** Served row `i`'s record: its seq in the chain. */
  servedSeq(i: number): number {
    return this.#rows.readDoubleBE(i * SERVED_ROW + 8);
  }

  /** Follow row `i` (a decision or feedback naming a prediction), in record order after the served rows. */
  follow(i: number): FollowRow {
    const r = this.#rows;
    const at = this.served * SERVED_ROW + i * FOLLOW_ROW;
    const flags = r[at + 17];
    return {
      prediction: this.id(at + 20, (flags & 1) !== 0),
      relation: RELATIONS[r[at + 16]] ?? '',
      id: this.id(at + 36, (flags & 2) !== 0),
      offset: r.readUInt32BE(at),
      length: r.readUInt32BE(at + 4),
      seq: r.readDoubleBE(at + 8),
    };
  }
}

/** The relation codes a follow row can hold: what follows a prediction (the builder writes no other). */
const DECIDED_CODE = RELATION_CODES.get('decided')!;
const GROUND_TRUTH_CODE = RELATION_CODES.get('ground truth')!;

/**
 * Why fan-out rows cannot be what the index builder wrote, or undefined: the reader would otherwise map
 * such a row silently to something (an id past the pool to "", a server past the list to no server, a seq
 * that is no integer to "NaN"). Checked once per table before any row is used, a few comparisons per row:
 * a table found impossible is set aside whole and its segment read instead (rows already written out
 * could not be taken back). The builder writes rows in record order (seqs never decrease, and are
 * integers), servers in the order rows first name them (so each row names at most one more than those
 * before it, and every server is named), a follow row's relation one that follows a prediction, flags only
 * for the id slots a row has, and pool references inside the pool that begin and end on whole characters.
 * A row's line place (offset, length) is not checked: no reader of the tables uses it.
 */
function impossibleRows(
  rows: Buffer,
  pool: Buffer,
  served: number,
  follows: number,
  servers: number,
): string | undefined {
  // Through a DataView: its reads compile to a load and a byte swap, where Buffer's readUInt32BE and
  // readDoubleBE cost several times as much.
  const v = new DataView(rows.buffer, rows.byteOffset, rows.byteLength);
  let seq = 0;
  let named = 0;
  for (let i = 0, at = 0; i < served; i++, at += SERVED_ROW) {
    const s = v.getFloat64(at + 8);
    const server = v.getUint32(at + 16);
    const flags = rows[at + 20];
    if (!(s >= seq && Number.isSafeInteger(s))) return `served row ${i}'s seq ${s} is out of record order`;
    if (server > named || server >= servers)
      return `served row ${i} names server ${server}, ${server >= servers ? `the list has ${servers}` : 'before a row names the one before it'}`;
    if (flags > 1) return `served row ${i} has flags ${flags}`;
    if (flags === 1 && !inPool(v, at + 24, pool)) return `served row ${i}'s id is not in the string pool`;
    if (server === named) named++;
    seq = s;
  }
  if (named !== servers) return `the server list has ${servers} servers, the rows name ${named}`;
  seq = 0;
  for (let i = 0, at = served * SERVED_ROW; i < follows; i++, at += FOLLOW_ROW) {
    const s = v.getFloat64(at + 8);
    const code = rows[at + 16];
    const flags = rows[at + 17];
    if (!(s >= seq && Number.isSafeInteger(s))) return `follow row ${i}'s seq ${s} is out of record order`;
    if (code !== DECIDED_CODE && code !== GROUND_TRUTH_CODE)
      return `follow row ${i} has relation code ${code}`;
    if (flags > 3) return `follow row ${i} has flags ${flags}`;
    if (((flags & 1) !== 0 && !inPool(v, at + 20, pool)) || ((flags & 2) !== 0 && !inPool(v, at + 36, pool)))
      return `follow row ${i}'s id is not in the string pool`;
    seq = s;
  }
  return undefined;
}

/** Whether the pool reference (offset, length) at `at` of `rows` lies in `pool` on whole UTF-8 characters. */
function inPool(rows: DataView, at: number, pool: Buffer): boolean {
  const start = rows.getUint32(at);
  const end = start + rows.getUint32(at + 4);
  // A UTF-8 continuation byte (10xxxxxx) is inside a character.
  return (
    end <= pool.length &&
    (start === end || (pool[start] & 0xc0) !== 0x80) &&
    (end === pool.length || (pool[end] & 0xc0) !== 0x80)
  );
}

/** Why an index file cannot be used. */
export class StaleIndexError extends Error {
  constructor(file: string, reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'StaleIndexError';
  }
}

/**
 * An index file opened for lookups: the header is read and checked on opening; the block table when a
 * lookup first needs it (a lookup the filter answers never reads it); each lookup reads the one filter
 * block of its (key, kind) pair, then the entry blocks whose key range holds the key, checking every
 * checksum.
 */
export class SegmentIndexFile {
  readonly file: string;
  readonly header: SegmentIndexHeader;
  readonly #fd: number;
  #tableBytes: Buffer | undefined;
  readonly #tableAt: number;
  readonly #fanOutAt: number;
  readonly #bodyAt: number;
  readonly #filterAt: number;
  readonly #filterBlock = Buffer.allocUnsafe(FILTER_BLOCK);

  private constructor(file: string, fd: number, header: SegmentIndexHeader, tableAt: number) {
    this.file = file;
    this.#fd = fd;
    this.header = header;
    this.#tableAt = tableAt;
    this.#fanOutAt = tableAt + header.blocks * ROW;
    this.#bodyAt = this.#fanOutAt + fanOutBytes(header);
    this.#filterAt = header.fileBytes - header.filterBlocks * FILTER_BLOCK;
  }

  /** The block table, read and checked against the header on first use. */
  get #table(): Buffer {
    if (this.#tableBytes !== undefined) return this.#tableBytes;
    const table = Buffer.allocUnsafe(this.header.blocks * ROW);
    const n = readSync(this.#fd, table, 0, table.length, this.#tableAt);
    if (n !== table.length || hash('sha256', table) !== this.header.blockTableSha256)
      throw new StaleIndexError(this.file, 'block table checksum does not match');
    this.#tableBytes = table;
    return table;
  }

  /**
   * The segment's fan-out tables, read whole and checked against the header's checksum (throws
   * {@link StaleIndexError} if they do not match); undefined when the index has none.
   */
  fanOut(): FanOutTable | undefined {
    const h = this.header.fanOut;
    if (h === undefined) return undefined;
    const bytes = Buffer.allocUnsafe(fanOutBytes(this.header));
    const n = readSync(this.#fd, bytes, 0, bytes.length, this.#fanOutAt);
    if (n !== bytes.length || hash('sha256', bytes) !== h.sha256)
      throw new StaleIndexError(this.file, 'fan-out tables checksum does not match');
    // The sections tile the file: counts that make the tables reach into the entry blocks (or leave a gap
    // before them) cannot be what the builder wrote, whatever the checksum says.
    const t = this.#table;
    let body = 0;
    for (let r = 0; r < this.header.blocks; r++) {
      if (t.readUInt32BE(r * ROW + 18) !== body) body = Number.NaN;
      body += t.readUInt32BE(r * ROW + 22);
    }
    if (this.#bodyAt + body !== this.#filterAt)
      throw new StaleIndexError(this.file, 'fan-out tables do not end where the entry blocks begin');
    return new FanOutTable(bytes, h, this.file);
  }

  /** False when the header says no edge entry has one of `relations`; true when one does. */
  mayHoldRelation(relations: readonly string[]): boolean {
    const counts = this.header.relationEntries;
    return relations.some((r) => (counts[r] ?? 0) > 0);
  }

  /**
   * False when the segment certainly has no entry for (`key`, `kind`): from the header's key times when
   * they rule it out (no read), else one 64-byte filter read. True means it may (about 1% of absent pairs
   * pass). A filter block whose checksum fails throws {@link StaleIndexError}.
   */
  mayHold(key: string, kind: EntryKind): boolean {
    if (!mayHoldByTime(this.header, key, kind)) return false;
    const [hi, lo] = keyHash(key);
    const blocks = this.header.filterBlocks;
    const block = filterProbe(hi, lo, kind, blocks);
    const buf = this.#filterBlock;
    const n = readSync(this.#fd, buf, 0, FILTER_BLOCK, this.#filterAt + block * FILTER_BLOCK);
    const bits = buf.subarray(0, FILTER_BITS / 8);
    if (n !== FILTER_BLOCK || !filterChecksum(block, bits).equals(buf.subarray(FILTER_BITS / 8)))
      throw new StaleIndexError(this.file, `filter block ${block} checksum does not match`);
    for (const bit of PROBE_BITS) if ((bits[bit >>> 3] & (1 << (bit & 7))) === 0) return false;
    return true;
  }

  /**
   * Opens and checks an index file of the journal `files` (under its rules: a FIFO, device or link out of
   * the journal is not opened); throws {@link StaleIndexError} for anything wrong with it.
   */
  static open(files: Pick<EvidenceDir, 'open'>, file: string): SegmentIndexFile {
    let fd: number;
    try {
      fd = files.open(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new StaleIndexError(file, `cannot be opened (${code ?? (err as Error).message})`);
    }
    try {
      const size = fstatSync(fd).size;
      // The header is a few hundred bytes: one small read opens an index whatever its size.
      const head = Buffer.allocUnsafe(Math.min(size, 4096));
      const n = readSync(fd, head, 0, head.length, 0);
      if (n < MAGIC.length + 4 || !head.subarray(0, MAGIC.length).equals(MAGIC))
        throw new StaleIndexError(file, 'is not an mltrail segment index');
      const len = head.readUInt32BE(MAGIC.length);
      const headerAt = MAGIC.length + 4;
      const headerBytes = readAt(fd, headerAt, len + 32, head, n);
      if (headerBytes.length < len + 32) throw new StaleIndexError(file, 'is truncated in its header');
      const json = headerBytes.subarray(0, len);
      if (hash('sha256', json, 'binary') !== headerBytes.subarray(len, len + 32).toString('latin1'))
        throw new StaleIndexError(file, 'header checksum does not match');
      const header = JSON.parse(json.toString('utf8')) as SegmentIndexHeader;
      if (header.format !== FORMAT || header.version !== VERSION)
        throw new StaleIndexError(file, `unsupported index format ${header.format} ${header.version}`);
      if (size !== header.fileBytes)
        throw new StaleIndexError(
          file,
          `is ${size} bytes, its header says ${header.fileBytes} (truncated or appended to)`,
        );
      const tableAt = headerAt + len + 32;
      const filterBytes = header.filterBlocks * FILTER_BLOCK;
      if (
        !Number.isSafeInteger(header.filterBlocks) ||
        header.filterBlocks < 1 ||
        !validFanOut(header.fanOut) ||
        tableAt + header.blocks * ROW + fanOutBytes(header) + filterBytes > size
      )
        throw new StaleIndexError(file, 'header describes sections larger than the file');
      return new SegmentIndexFile(file, fd, header, tableAt);
    } catch (err) {
      closeSync(fd);
      if (err instanceof StaleIndexError) throw err;
      throw new StaleIndexError(file, `cannot be read (${(err as Error).message})`);
    }
  }

  close(): void {
    closeSync(this.#fd);
  }

  /** Every entry for `key` of the given kinds (default: all), in (kind, offset) order. */
  lookup(key: string, kinds: readonly EntryKind[] = ALL_KINDS): IndexEntry[] {
    const out: IndexEntry[] = [];
    for (const kind of [...kinds].sort()) for (const e of this.entries(key, kind)) out.push(e);
    return out;
  }

  /** The entries for `key` of one kind, in offset order (record order), block by block. */
  *entries(key: string, kind: EntryKind): Generator<IndexEntry> {
    if (!this.mayHold(key, kind)) return;
    const [hi, lo] = keyHash(key);
    const t = this.#table;
    const rows = this.header.blocks;
    // The first block whose last entry is at or after (key, kind): its entries may continue in later blocks.
    let a = 0;
    let b = rows;
    while (a < b) {
      const m = (a + b) >>> 1;
      const r = m * ROW;
      if (compareKey(t.readUInt32BE(r + 9), t.readUInt32BE(r + 13), t[r + 17], hi, lo, kind) < 0) a = m + 1;
      else b = m;
    }
    for (let i = a; i < rows; i++) {
      const r = i * ROW;
      if (compareKey(t.readUInt32BE(r), t.readUInt32BE(r + 4), t[r + 8], hi, lo, kind) > 0) return;
      const found: IndexEntry[] = [];
      this.#scanBlock(i, (bhi, blo, entry) => {
        const c = compareKey(bhi, blo, entry.kind, hi, lo, kind);
        if (c === 0) found.push(entry);
        return c <= 0;
      });
      yield* found;
    }
  }

  /** Every entry of the whole index with one of the given relations, block by block (for joins). */
  *entriesWithRelation(relations: readonly string[]): Generator<IndexEntry & { hi: number; lo: number }> {
    const codes = new Set(relations.map((r) => RELATION_CODES.get(r)));
    for (let i = 0; i < this.header.blocks; i++) {
      const found: (IndexEntry & { hi: number; lo: number })[] = [];
      this.#scanBlock(i, (hi, lo, entry, code) => {
        if (codes.has(code)) found.push({ ...entry, hi, lo });
        return true;
      });
      yield* found;
    }
  }

  /**
   * Reads the block table, every block and every filter block, checking each checksum (throws
   * {@link StaleIndexError} at the first that fails).
   */
  checkBlocks(): void {
    for (let i = 0; i < this.header.blocks; i++) this.#scanBlock(i, () => false);
    this.fanOut();
    const filter = Buffer.allocUnsafe(this.header.filterBlocks * FILTER_BLOCK);
    const n = readSync(this.#fd, filter, 0, filter.length, this.#filterAt);
    if (n !== filter.length) throw new StaleIndexError(this.file, 'filter is truncated');
    for (let i = 0; i < this.header.filterBlocks; i++) {
      const base = i * FILTER_BLOCK;
      const bits = filter.subarray(base, base + FILTER_BITS / 8);
      if (!filterChecksum(i, bits).equals(filter.subarray(base + FILTER_BITS / 8, base + FILTER_BLOCK)))
        throw new StaleIndexError(this.file, `filter block ${i} checksum does not match`);
    }
  }

  /** Reads block `i`, checks it, and calls `visit` for each entry until it returns false. */
  #scanBlock(
    i: number,
    visit: (hi: number, lo: number, entry: IndexEntry, relationCode: number) => boolean,
  ): void {
    const r = i * ROW;
    const offset = this.#table.readUInt32BE(r + 18);
    const length = this.#table.readUInt32BE(r + 22);
    const block = Buffer.allocUnsafe(length);
    const n = readSync(this.#fd, block, 0, length, this.#bodyAt + offset);
    if (n !== length || !checksum(block).equals(this.#table.subarray(r + 26, r + 34)))
      throw new StaleIndexError(this.file, `block ${i} checksum does not match`);
    for (let at = 0; at < length; ) {
      const otherLength = block.readUInt16BE(at + 18);
      const code = block[at + 9];
      const entry: IndexEntry = {
        kind: block[at + 8] as EntryKind,
        relation: code === NO_RELATION ? undefined : RELATIONS[code],
        offset: block.readUInt32BE(at + 10),
        length: block.readUInt32BE(at + 14),
        other:
          otherLength === 0 ? '' : block.toString('utf8', at + ENTRY_FIXED, at + ENTRY_FIXED + otherLength),
      };
      if (!visit(block.readUInt32BE(at), block.readUInt32BE(at + 4), entry, code)) return;
      at += ENTRY_FIXED + otherLength;
    }
  }
}

/** Bytes of the fan-out section an index header describes (0 without one). */
function fanOutBytes(h: SegmentIndexHeader): number {
  const f = h.fanOut;
  return f === undefined ? 0 : f.serverBytes + f.served * SERVED_ROW + f.follows * FOLLOW_ROW + f.poolBytes;
}

function validFanOut(f: FanOutHeader | undefined): boolean {
  if (f === undefined) return true;
  const counts = [f.serverBytes, f.served, f.follows, f.poolBytes];
  return counts.every((c) => Number.isSafeInteger(c) && c >= 0) && typeof f.sha256 === 'string';
}

/** `length` bytes at `position`, from `head` (the first `n` bytes of the file) when it holds them. */
function readAt(fd: number, position: number, length: number, head: Buffer, n: number): Buffer {
  if (position + length <= n) return head.subarray(position, position + length);
  const buf = Buffer.allocUnsafe(length);
  const got = readSync(fd, buf, 0, length, position);
  return buf.subarray(0, got);
}

/**
 * Checks that an index describes this segment as it is: same chain and file name, a segment at least as
 * long as the indexed prefix, and the prefix's last line still the one indexed (a segment rewritten, cut
 * back or replaced changes it).
 */
export function checkCovers(file: SegmentIndexFile, fd: number, chain: string, path: string): void {
  const h = file.header;
  const fail = (reason: string) => {
    throw new StaleIndexError(file.file, reason);
  };
  if (h.chain !== chain || h.segment !== basename(path))
    fail(`indexes ${h.chain}/${h.segment}, not this segment`);
  const size = fstatSync(fd).size;
  if (size < h.bytes) fail(`covers ${h.bytes} bytes but the segment has ${size} (it was cut back)`);
  if (h.bytes === 0) return;
  const last = lastLineBefore(fd, h.bytes);
  if (last === undefined || hash('sha256', last) !== h.lastLineSha256)
    fail(`the segment's line ending at byte ${h.bytes} is not the one indexed (the segment was rewritten)`);
}

/** The bytes of the line that ends (with its newline) at byte `end`, or undefined if `end` is not a line end. */
function lastLineBefore(fd: number, end: number): Buffer | undefined {
  let window = 4096;
  for (;;) {
    const start = Math.max(0, end - window);
    const buf = Buffer.allocUnsafe(end - start);
    const n = readSync(fd, buf, 0, buf.length, start);
    if (n !== buf.length || buf[buf.length - 1] !== 10) return undefined;
    const nl = buf.lastIndexOf(10, buf.length - 2);
    if (nl >= 0) return buf.subarray(nl + 1, buf.length - 1);
    if (start === 0) return buf.subarray(0, buf.length - 1);
    window *= 4;
  }
}

/**
/** Whether the segment holds a complete line (one ending in a newline) after byte `from` (a torn tail does not). */
function completeLineAfter(fd: number, from: number): boolean {
  const buf = Buffer.allocUnsafe(64 * 1024);
  for (let at = from; ; at += buf.length) {
    const n = readSync(fd, buf, 0, buf.length, at);
    if (n === 0) return false;
    if (buf.subarray(0, n).includes(10)) return true;
  }
}

/**
 * Whether the index file of a segment is current and covers the whole segment as it is now (every block
 * checked): undefined if so, else why not (missing, damaged, stale, or grown past the indexed prefix).
 */
export function indexStaleness(
  files: EvidenceDir,
  indexPath: string,
  segmentPath: string,
  chain: string,
): string | undefined {
  let file: SegmentIndexFile;
  try {
    file = SegmentIndexFile.open(files, indexPath);
  } catch (err) {
    return (err as Error).message;
  }
  const fd = files.open(segmentPath);
  try {
    checkCovers(file, fd, chain, segmentPath);
    file.checkBlocks();
    return completeLineAfter(fd, file.header.bytes)
      ? `${segmentPath} has grown past the ${file.header.bytes} bytes indexed`
      : undefined;
  } catch (err) {
    return (err as Error).message;
  } finally {
    file.close();
    closeSync(fd);
  }
}
