import { closeSync, existsSync, mkdirSync, readSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { EMPTY_ROOT, nodeHash, rootOf } from '../integrity/merkle.js';
import { parseRecordLine } from '../integrity/record.js';
import { ATTR_MLTRAIL_CHECKPOINT_NOTE } from '../semconv/attributes.js';
import { EVENT_MLTRAIL_CHECKPOINT } from '../semconv/events.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { forEachSegmentLine } from './segment-lines.js';

/**
 * A chain's RFC 6962 Merkle tree stored as C2SP tlog-tiles (https://c2sp.org/tlog-tiles) beside the
 * journal: `<journal>/tiles/<chain>/tile/<L>/<N>[.p/<W>]` and `checkpoint` (the newest signed checkpoint the
 * tiles cover), so standard transparency-log tooling can read it. Derived data like the index: written from
 * the records' own hashes, trusted by nobody — a reader checks what it takes from the tiles against a
 * signed root it already trusts, so stale or altered tiles can make a check fail, never pass.
 */

/** Tile height: a tile holds up to 2^8 hashes of one level. */
const HEIGHT = 8;
const WIDTH = 1 << HEIGHT;
/** Our bookkeeping beside the tiles (the tiled size); not part of the C2SP layout. */
const STATE = 'mltrail-tiles.json';

/** The directory of a chain's tiles. */
export function tilesDir(dir: string, chain: string): string {
  return join(dir, 'tiles', chain);
}

/**
 * The C2SP path of a tile: level, then the index as 3-digit groups, all but the last prefixed with "x",
 * then `.p/<width>` for a partial tile.
 */
export function tilePath(level: number, index: number, width = WIDTH): string {
  let n = String(index % 1000).padStart(3, '0');
  for (let rest = Math.floor(index / 1000); rest > 0; rest = Math.floor(rest / 1000))
    n = `x${String(rest % 1000).padStart(3, '0')}/${n}`;
  return `tile/${level}/${n}${width < WIDTH ? `.p/${width}` : ''}`;
}

/**
 * Reads hashes from a chain's tiles. Every node it returns is as stored: the caller checks what it builds
 * from them against a trusted root.
 */
export class TileReader {
  readonly root: string;
  /** How many leaves the tiles cover (0 when there are none). */
  readonly size: number;
  readonly #cache = new Map<string, Buffer>();
  /** Tiles are read under the readers' file rules, like every file of the journal. */
  readonly #files: EvidenceDir;

  constructor(dir: string, chain: string) {
    this.root = tilesDir(dir, chain);
    this.#files = new EvidenceDir(dir);
    this.size = readState(this.#files, this.root)?.size ?? 0;
  }

  /** The stored hash at tile level `level` (tree height 8·level), position `index`. */
  hashAt(level: number, index: number): Buffer {
    const n = Math.floor(index / WIDTH);
    const pos = index % WIDTH;
    const tile = this.#tile(level, n, pos + 1);
    return tile.subarray(pos * 32, pos * 32 + 32);
  }

  /** The root of the perfect subtree of height `height` whose leaves start at `index · 2^height`. */
  node(height: number, index: number): Buffer {
    const level = Math.floor(height / HEIGHT);
    const r = height % HEIGHT;
    if (r === 0) return this.hashAt(level, index);
    const parts: Buffer[] = [];
    for (let j = 0; j < 2 ** r; j++) parts.push(this.hashAt(level, index * 2 ** r + j));
    return rootOf(parts);
  }

  /** RFC 6962 MTH of leaves [lo, hi), which must lie within the tiled size. */
  mth(lo: number, hi: number): Buffer {
    if (hi > this.size) throw new RangeError(`leaves up to ${hi} asked of tiles covering ${this.size}`);
    return mthBy(lo, hi, (height, index) => this.node(height, index));
  }

  /** A tile with at least `width` hashes: the full tile, else a partial one wide enough. */
  #tile(level: number, n: number, width: number): Buffer {
    const key = `${level}/${n}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined && cached.length >= width * 32) return cached;
    const full = join(this.root, tilePath(level, n));
    let data: Buffer | undefined;
    if (existsSync(full)) data = this.#files.read(full);
    else {
      const partials = join(this.root, `${tilePath(level, n)}.p`);
      const widths = existsSync(partials)
        ? this.#files
            .entries(partials)
            .map((e) => Number(basename(e.path)))
            .filter((w) => Number.isInteger(w) && w >= width && w < WIDTH)
            .sort((a, b) => a - b)
        : [];
      if (widths.length > 0) data = this.#files.read(join(partials, String(widths[0])));
    }
    if (data === undefined || data.length < width * 32 || data.length % 32 !== 0)
      throw new TileError(`${join(this.root, tilePath(level, n))}: missing or short tile`);
    this.#cache.set(key, data);
    return data;
  }
}

/** A tile that is missing or malformed. */
export class TileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TileError';
  }
}

/**
 * RFC 6962 MTH of leaves [lo, hi) from perfect subtree roots: `node(height, index)` is the root of the
 * aligned subtree of 2^height leaves starting at index · 2^height.
 */
export function mthBy(lo: number, hi: number, node: (height: number, index: number) => Buffer): Buffer {
  const n = hi - lo;
  if (n === 0) return EMPTY_ROOT;
  if ((n & (n - 1)) === 0 && lo % n === 0) return node(Math.log2(n), lo / n);
  const k = largestPowerOfTwoBelow(n);
  return nodeHash(mthBy(lo, lo + k, node), mthBy(lo + k, hi, node));
}

/** RFC 6962 consistency proof from size `m` to size `n`, with subtree hashes from `mth(lo, hi)`. */
export function consistencyProofBy(m: number, n: number, mth: (lo: number, hi: number) => Buffer): Buffer[] {
  if (m < 0 || m > n) throw new RangeError(`old size ${m} is outside 0..${n}`);
  if (m === 0 || m === n) return [];
  const sub = (m: number, lo: number, hi: number, complete: boolean): Buffer[] => {
    const size = hi - lo;
    if (m === size) return complete ? [] : [mth(lo, hi)];
    const k = largestPowerOfTwoBelow(size);
    if (m <= k) return [...sub(m, lo, lo + k, complete), mth(lo + k, hi)];
    return [...sub(m - k, lo + k, hi, false), mth(lo, lo + k)];
  };
  return sub(m, 0, n, true);
}

/** RFC 6962 audit path of leaf `index` in the tree of size `n`, with subtree hashes from `mth(lo, hi)`. */
export function inclusionProofBy(
  index: number,
  n: number,
  mth: (lo: number, hi: number) => Buffer,
): Buffer[] {
  const path = (i: number, lo: number, hi: number): Buffer[] => {
    const size = hi - lo;
    if (size <= 1) return [];
    const k = largestPowerOfTwoBelow(size);
    if (i < k) return [...path(i, lo, lo + k), mth(lo + k, hi)];
    return [...path(i - k, lo + k, hi), mth(lo, lo + k)];
  };
  return path(index, 0, n);
}

/**
 * The compact range of the first `size` leaves: the roots of the perfect subtrees a tree of that size is
 * made of, largest first, with their heights (what a {@link MerkleFolder} is seeded with).
 */
export function compactRange(
  size: number,
  mth: (lo: number, hi: number) => Buffer,
): { root: Buffer; height: number }[] {
  const out: { root: Buffer; height: number }[] = [];
  let start = 0;
  for (let h = 52; h >= 0; h--) {
    const len = 2 ** h;
    if (Math.floor(size / len) % 2 === 1) {
      out.push({ root: mth(start, start + len), height: h });
      start += len;
    }
  }
  return out;
}

/** What {@link writeTiles} did. */
export interface TilesBuild {
  chain: string;
  /** Leaves covered before and after. */
  from: number;
  size: number;
  /** The tree size of the checkpoint written to `checkpoint`, if any. */
  checkpoint: number | undefined;
}

const HEAD_START = Buffer.from('{"v":2,"chain":"', 'latin1');
const AFTER_CHAIN = Buffer.from('","seq":', 'latin1');
const AFTER_SEQ = Buffer.from(',"prev":"', 'latin1');
const AFTER_PREV = Buffer.from('","hash":"', 'latin1');
const CHECKPOINT_EVENT = Buffer.from(`"event.name":"${EVENT_MLTRAIL_CHECKPOINT}"`, 'utf8');
/** Per byte: its value as a lowercase hex digit, or 16. */
const LOWER_HEX = new Uint8Array(256).fill(16);
for (const [i, c] of Buffer.from('0123456789abcdef', 'latin1').entries()) LOWER_HEX[c] = i;

function startsWith(b: Uint8Array, i: number, end: number, what: Uint8Array): boolean {
  if (i + what.length > end) return false;
  for (let k = 0; k < what.length; k++) if (b[i + k] !== what[k]) return false;
  return true;
}

/**
 * The seq and record hash of a format 2 line, read from its bytes: the line must begin
 * `{"v":2,"chain":"<no quote or backslash>","seq":<0 or digits without a leading 0>,"prev":"<64 lowercase
 * hex>","hash":"<64 lowercase hex>"` (what the record parser's first check takes; the rest of the line is
 * not read). A line that does not is parsed.
 */
class TileLineHead {
  seq = 0;
  #hashAt = 0;
  /** Where in the current read buffer the next mention of the checkpoint event is (see mentionsCheckpoint). */
  #mentionAt = -1;
  #mentionBase = -1;
  #mentionIn: Buffer | undefined;

  read(b: Buffer, start: number, end: number): boolean {
    let i = start;
    if (!startsWith(b, i, end, HEAD_START)) return false;
    i += HEAD_START.length;
    while (i < end && b[i] !== 0x22 && b[i] !== 0x5c) i++;
    if (!startsWith(b, i, end, AFTER_CHAIN)) return false;
    i += AFTER_CHAIN.length;
    const digits = i;
    let seq = 0;
    for (; i < end && b[i] >= 0x30 && b[i] <= 0x39; i++) seq = seq * 10 + (b[i] - 0x30);
    const n = i - digits;
    if (n === 0 || (n > 1 && b[digits] === 0x30)) return false;
    // Beyond 15 digits the sum above may round differently from the number the digits spell.
    this.seq = n > 15 ? Number(b.toString('latin1', digits, i)) : seq;
    if (!startsWith(b, i, end, AFTER_SEQ)) return false;
    i += AFTER_SEQ.length;
    if (i + 64 > end) return false;
    for (let k = 0; k < 64; k++) if (LOWER_HEX[b[i + k]] === 16) return false;
    i += 64;
    if (!startsWith(b, i, end, AFTER_PREV)) return false;
    i += AFTER_PREV.length;
    if (i + 65 > end || b[i + 64] !== 0x22) return false;
    for (let k = 0; k < 64; k++) if (LOWER_HEX[b[i + k]] === 16) return false;
    this.#hashAt = i;
    return true;
  }

  /** The record hash of the line last read, as its 32 bytes. */
  hash(b: Buffer): Buffer {
    const leaf = Buffer.allocUnsafe(32);
    for (let k = 0, i = this.#hashAt; k < 32; k++, i += 2)
      leaf[k] = (LOWER_HEX[b[i]] << 4) | LOWER_HEX[b[i + 1]];
    return leaf;
  }

  /**
   * Whether the line `b[start, end)` (at `offset` in its file) holds the checkpoint event's name anywhere
   * (as the text would: the name is ASCII). One search per read buffer finds the next mention; lines before
   * it are answered without searching (a new buffer, or the same one refilled, has another base offset).
   */
  mentionsCheckpoint(b: Buffer, start: number, end: number, offset: number): boolean {
    const base = offset - start;
    if (
      b !== this.#mentionIn ||
      base !== this.#mentionBase ||
      (this.#mentionAt >= 0 && this.#mentionAt < start)
    ) {
      this.#mentionIn = b;
      this.#mentionBase = base;
      this.#mentionAt = b.indexOf(CHECKPOINT_EVENT, start);
    }
    return this.#mentionAt >= 0 && this.#mentionAt + CHECKPOINT_EVENT.length <= end;
  }
}

/**
 * Brings a chain's tiles up to date with its segments: from the size already tiled, appends the record
 * hash of every following record in seq order, stopping at the first gap (a tile only holds what is
 * certainly the chain's prefix). Full tiles are written once; the rightmost tile of each level is written as
 * a partial tile of its current width. `checkpoint` receives the newest checkpoint note covered. Reads the
 * segments, never writes them.
 */
export function writeTiles(
  dir: string,
  chain: string,
  segments: readonly string[],
  opts: { force?: boolean } = {},
): TilesBuild {
  const root = tilesDir(dir, chain);
  const files = new EvidenceDir(dir);
  const state = opts.force ? undefined : readState(files, root);
  let size = state?.size ?? 0;
  const from = size;
  // The rightmost, incomplete tile of each level, as hashes (each level up holds roots of 256 below).
  const pending: Buffer[][] = [];
  if (size > 0) {
    try {
      const reader = new TileReader(dir, chain);
      for (let level = 0, count = size; count > 0; level++, count = Math.floor(count / WIDTH)) {
        const w = count % WIDTH;
        const hashes: Buffer[] = [];
        for (let i = count - w; i < count; i++) hashes.push(Buffer.from(reader.hashAt(level, i)));
        pending[level] = hashes;
      }
    } catch {
      // Tiles damaged or partly gone: start again from the first record.
      return writeTiles(dir, chain, segments, { force: true });
    }
  }
  let checkpoint: { size: number; note: string } | undefined;
  const writeTile = (level: number, index: number, hashes: Buffer[]) => {
    writeAtomically(join(root, tilePath(level, index, hashes.length)), Buffer.concat(hashes));
  };
  const append = (leaf: Buffer) => {
    let hash = leaf;
    for (let level = 0; ; level++) {
      const row = (pending[level] ??= []);
      row.push(hash);
      if (row.length < WIDTH) break;
      // With this leaf, floor((size + 1) / 256^(level + 1)) tiles of this level are full: this is the last.
      writeTile(level, Math.floor((size + 1) / WIDTH ** (level + 1)) - 1, row);
      hash = rootOf(row);
      pending[level] = [];
    }
    size++;
  };
  const head = new TileLineHead();
  for (const path of startingSegments(files, segments, size)) {
    let gap = false;
    forEachSegmentLine(files, path, (b, start, end, offset) => {
      let seq: number;
      let leaf: Buffer;
      if (head.read(b, start, end)) {
        seq = head.seq;
        leaf = head.hash(b);
      } else {
        try {
          const r = parseRecordLine(b.toString('utf8', start, end));
          seq = r.seq;
          leaf = Buffer.from(r.hash, 'hex');
        } catch {
          return;
        }
      }
      if (seq < size) return;
      if (seq > size) {
        gap = true;
        return false;
      }
      if (head.mentionsCheckpoint(b, start, end, offset)) {
        try {
          const body = parseRecordLine(b.toString('utf8', start, end)).body;
          const note = (JSON.parse(body) as Record<string, unknown>)[ATTR_MLTRAIL_CHECKPOINT_NOTE];
          if (typeof note === 'string') checkpoint = { size: seq, note };
        } catch {
          // Not a checkpoint we can use; verify reports it.
        }
      }
      append(leaf);
    });
    if (gap) return finish();
  }
  return finish();

  function finish(): TilesBuild {
    let count = size;
    for (let level = 0; count > 0; level++, count = Math.floor(count / WIDTH)) {
      const row = pending[level] ?? [];
      if (row.length > 0) writeTile(level, Math.floor(count / WIDTH), row);
    }
    if (checkpoint !== undefined) {
      // A tlog-tiles client reads the tree at the checkpoint's size: the partial tiles of that size too.
      if (checkpoint.size < size) {
        const reader = new TileReader(dir, chain);
        let c = checkpoint.size;
        for (let level = 0; c > 0; level++, c = Math.floor(c / WIDTH)) {
          const w = c % WIDTH;
          const index = Math.floor(c / WIDTH);
          const file = join(root, tilePath(level, index, w));
          if (w === 0 || existsSync(file)) continue;
          const hashes: Buffer[] = [];
          for (let i = 0; i < w; i++) hashes.push(reader.hashAt(level, index * WIDTH + i));
          writeTile(level, index, hashes);
        }
      }
      writeAtomically(join(root, 'checkpoint'), Buffer.from(checkpoint.note));
    }
    mkdirSync(root, { recursive: true, mode: 0o700 });
    writeAtomically(join(root, STATE), Buffer.from(`${JSON.stringify({ size })}\n`));
    return { chain, from, size, checkpoint: checkpoint?.size };
  }
}

/** The segments from the last one whose first record's seq is at or before `seq`. */
export function startingSegments(
  files: EvidenceDir,
  segments: readonly string[],
  seq: number,
): readonly string[] {
  if (seq === 0) return segments;
  let start = 0;
  for (let i = 0; i < segments.length; i++) {
    const first = firstSeq(files, segments[i]);
    if (first !== undefined && first <= seq) start = i;
    if (first !== undefined && first > seq) break;
  }
  return segments.slice(start);
}

function firstSeq(files: EvidenceDir, segment: string): number | undefined {
  const fd = files.open(segment);
  try {
    const buf = Buffer.allocUnsafe(512);
    const n = readSync(fd, buf, 0, buf.length, 0);
    const m = /"seq":(\d+)/.exec(buf.toString('utf8', 0, n));
    return m === null ? undefined : Number(m[1]);
  } finally {
    closeSync(fd);
  }
}

function readState(files: EvidenceDir, root: string): { size: number } | undefined {
  try {
    const s = JSON.parse(files.read(join(root, STATE)).toString('utf8')) as { size?: unknown };
    return Number.isSafeInteger(s.size) && (s.size as number) >= 0 ? { size: s.size as number } : undefined;
  } catch {
    return undefined;
  }
}

function writeAtomically(file: string, data: Buffer): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, data, { mode: 0o600 });
  } catch (err) {
    // The tile's directory is made when the first tile in it is written (not checked for every tile).
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(tmp, data, { mode: 0o600 });
  }
  renameSync(tmp, file);
}

function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}
