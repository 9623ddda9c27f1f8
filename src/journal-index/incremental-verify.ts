import { ChainVerifier, type VerifyReport } from '../integrity/chain-verifier.js';
import { nodeHash, verifyConsistency, verifyInclusion } from '../integrity/merkle.js';
import { parseRecordLine, RecordFormatError } from '../integrity/record.js';
import { type Checkpoint, parseCheckpoint, parseNote } from '../integrity/signed-note.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { listSegments } from '../sources/journal-reader.js';
import {
  compactRange,
  consistencyProofBy,
  inclusionProofBy,
  mthBy,
  TileError,
  TileReader,
  tilesDir,
} from './merkle-tiles.js';
import { forEachLine, startOfNewRecords } from './segment-seek.js';

/** What `verify --since-checkpoint` established besides the report of the records it read. */
export interface IncrementalVerification {
  chain: string;
  /** The held checkpoint: its tree size (records 0..size-1 are not re-read) and where it came from. */
  held: { size: number; source: string };
  /** Whether the tree stored as tiles matches the held checkpoint's root (the old range's proof). */
  tilesMatch: boolean;
  /** Leaves the tiles cover. */
  tilesSize: number;
  /**
   * The RFC 6962 consistency proof from the held checkpoint to the newest checkpoint verified in the new
   * records (undefined when there is none newer).
   */
  consistency: { from: number; to: number; proofHashes: number; verified: boolean } | undefined;
  /** Records read: those from seq `held.size` on. */
  newRecords: number;
}

/** The held checkpoint cannot be used (malformed, or for no chain in this journal, or beyond the tiles). */
export class IncrementalVerifyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IncrementalVerifyError';
  }
}

/**
 * Incremental verification of one chain of a journal directory: the records before a checkpoint the
 * caller holds are not read. Instead the chain's tree as stored in tiles must hash to the held root (its
 * compact range, and the hash of the last old record by an inclusion proof), and the records since are
 * verified exactly as full verification does (same {@link ChainVerifier}, resumed from that tree), every
 * checkpoint among them against the tree grown from the held one. The newest of them is also checked by
 * an RFC 6962 consistency proof from the held checkpoint, built from the tiles and the new records.
 *
 * The held checkpoint is checked like any external checkpoint (its signature, under a pinned key when
 * `trustedKeys` are given). Tiles are derived data: wrong tiles make the answer "inconsistent", never
 * "verified".
 */
export function verifySinceCheckpoint(
  dir: string,
  held: { note: string; source: string },
  opts: { trustedKeys?: readonly string[] } = {},
): { report: VerifyReport; incremental: IncrementalVerification } {
  let cp: Checkpoint;
  try {
    cp = parseCheckpoint(parseNote(held.note).text);
  } catch (err) {
    throw new IncrementalVerifyError(`${held.source}: not a signed checkpoint (${(err as Error).message})`);
  }
  const chain = /^mltrail\/chain\/(.+)$/.exec(cp.origin)?.[1];
  const segments = listSegments(dir).find((c) => c.chain === chain)?.files;
  if (chain === undefined || segments === undefined || segments.length === 0)
    throw new IncrementalVerifyError(`${held.source}: its origin "${cp.origin}" names no chain of ${dir}`);
  const m = cp.size;
  const tiles = new TileReader(dir, chain);
  if (m > 0 && tiles.size < m)
    throw new IncrementalVerifyError(
      `the Merkle tiles of chain ${chain} (${tilesDir(dir, chain)}) cover ${tiles.size} records, fewer than the held checkpoint's ${m}: run "mltrail index" (it writes them), or verify without --since-checkpoint`,
    );
  const incremental: IncrementalVerification = {
    chain,
    held: { size: m, source: held.source },
    tilesMatch: false,
    tilesSize: tiles.size,
    consistency: undefined,
    newRecords: 0,
  };
  const oldMth = (lo: number, hi: number) => tiles.mth(lo, hi);
  let range: { root: Buffer; height: number }[] = [];
  let lastHash = '';
  try {
    range = compactRange(m, oldMth);
    const leaf = m > 0 ? Buffer.from(tiles.hashAt(0, m - 1)) : undefined;
    const folded = m > 0 ? foldRange(range) : undefined;
    incremental.tilesMatch =
      m === 0 ||
      (folded!.equals(cp.root) &&
        verifyInclusion(m - 1, m, leaf!, inclusionProofBy(m - 1, m, oldMth), cp.root));
    lastHash = leaf?.toString('hex') ?? '';
  } catch (err) {
    if (!(err instanceof TileError)) throw err;
  }
  if (!incremental.tilesMatch) {
    const report: VerifyReport = {
      ok: false,
      records: 0,
      chains: [],
      problems: [
        {
          kind: 'inconsistent-checkpoint',
          chain,
          location: held.source,
          message: `the chain's first ${m} records as stored in ${tilesDir(dir, chain)} do not hash to the held checkpoint's root: the history was rewritten after that checkpoint was taken, or the tiles are damaged or stale (run "mltrail index --force" and verify again; verify without --since-checkpoint re-reads every record)`,
        },
      ],
    };
    return { report, incremental };
  }

  const verifier = new ChainVerifier({
    trustedKeys: opts.trustedKeys,
    checkpoints: [held],
    resume: { chain, size: m, lastHash, range },
  });
  const newLeaves = new NewLeaves(m);
  let reached = false;
  const head = new LineHead(chain);
  const files = new EvidenceDir(dir);
  const start = startOfNewRecords(files, segments, m, lastHash);
  for (let i = start.segment; i < segments.length; i++) {
    const file = segments[i];
    const from = i === start.segment ? start : { offset: 0, line: 1 };
    const read = forEachLine(files, file, from.offset, from.line, (buf, s, e, lineNo, utf8) => {
      const v2 = head.read(buf, s, e);
      const seq = v2 ? head.seq : seqOf(buf.toString('utf8', s, Math.min(e, s + 512)));
      if (seq !== undefined && seq < m) {
        reached ||= seq === m - 1;
        return;
      }
      if (seq === undefined && !reached) return;
      reached = true;
      incremental.newRecords++;
      // Nearly every line is the next record of the chain and checks out: the verifier's byte path takes
      // it (as full verification does); anything else is parsed and reported precisely.
      if (utf8 && verifier.addJournalLine(buf, s, e, file, lineNo)) {
        if (v2 && head.ours && seq === m + newLeaves.length) newLeaves.pushHex(buf, head.hashAt);
        return;
      }
      try {
        const r = parseRecordLine(buf.toString('utf8', s, e), { file, line: lineNo });
        if (r.chain === chain && r.seq === m + newLeaves.length)
          newLeaves.pushHex(Buffer.from(r.hash, 'latin1'), 0);
        verifier.add(r, { file, line: lineNo });
      } catch (err) {
        if (!(err instanceof RecordFormatError)) throw err;
        verifier.addProblem({ kind: 'malformed', location: `${file}:${lineNo}`, message: err.message });
      }
    });
    if (read.size > read.end)
      verifier.addProblem({
        kind: 'torn-line',
        location: `${file}:${read.line}`,
        message: `${file} ends in a torn line (${read.size - read.end} bytes without a newline)`,
      });
  }
  const report = verifier.finish();
  const newest = report.chains
    .find((c) => c.chain === chain)
    ?.signatures.filter((s) => !s.external && s.size > m)
    .sort((a, b) => b.size - a.size)[0];
  if (newest !== undefined && newLeaves.length >= newest.size - m) {
    const n = newest.size;
    const mth = (lo: number, hi: number): Buffer =>
      hi <= m ? tiles.mth(lo, hi) : lo >= m ? mthBy(lo, hi, newLeaves.node) : split(lo, hi, mth);
    const proof = consistencyProofBy(m, n, mth);
    const root2 = parseCheckpoint(parseNote(newest.note).text).root;
    const verified = verifyConsistency(m, n, cp.root, root2, proof);
    incremental.consistency = { from: m, to: n, proofHashes: proof.length, verified };
    if (!verified) {
      report.ok = false;
      report.problems.push({
        kind: 'inconsistent-checkpoint',
        chain,
        location: held.source,
        message: `no RFC 6962 consistency proof from the held checkpoint (size ${m}) to checkpoint size ${n}: the log did not only grow`,
      });
    }
  }
  return { report, incremental };
}

/** The seq of a line from its first bytes (format 1 or 2), undefined when it names none. */
function seqOf(text: string): number | undefined {
  const m = /^\{"(?:v":2,"chain":"[^"\\]*","seq|chain":"[^"\\]*","seq)":(0|[1-9]\d*)[,}]/.exec(text);
  return m === null ? undefined : Number(m[1]);
}

/** Whether `buf` holds `bytes` at `at`. */
function bytesAt(buf: Uint8Array, at: number, bytes: Uint8Array): boolean {
  if (at + bytes.length > buf.length) return false;
  for (let i = 0; i < bytes.length; i++) if (buf[at + i] !== bytes[i]) return false;
  return true;
}

const V2_PREFIX = Buffer.from('{"v":2,"chain":"');
const SEQ_KEY = Buffer.from('","seq":');
const PREV_KEY = Buffer.from(',"prev":"');
const HASH_KEY = Buffer.from('","hash":"');

/**
 * The chain fields at the start of a format 2 line, read from its bytes (no string per line): its seq,
 * whether it names the chain being verified, and where its record hash's hex digits are. Only the
 * positions are read; the verifier checks the line itself.
 */
class LineHead {
  readonly #chain: Buffer;
  seq = 0;
  ours = false;
  hashAt = 0;

  constructor(chain: string) {
    this.#chain = Buffer.from(chain);
  }

  /** False when `buf[s, e)` does not start like a format 2 record line. */
  read(buf: Buffer, s: number, e: number): boolean {
    const chainAt = s + V2_PREFIX.length;
    if (e - s < 200 || !bytesAt(buf, s, V2_PREFIX)) return false;
    let q = chainAt;
    while (q < e && buf[q] !== 0x22 && buf[q] !== 0x5c) q++;
    if (q >= e || !bytesAt(buf, q, SEQ_KEY)) return false;
    let p = q + SEQ_KEY.length;
    const digits = p;
    let seq = 0;
    while (p < e && buf[p] >= 0x30 && buf[p] <= 0x39) seq = seq * 10 + (buf[p++] - 0x30);
    if (p === digits || p - digits > 15 || (buf[digits] === 0x30 && p - digits > 1)) return false;
    const hashKey = p + PREV_KEY.length + 64;
    if (hashKey + HASH_KEY.length + 64 > e || !bytesAt(buf, p, PREV_KEY) || !bytesAt(buf, hashKey, HASH_KEY))
      return false;
    this.seq = seq;
    this.ours = q - chainAt === this.#chain.length && bytesAt(buf, chainAt, this.#chain);
    this.hashAt = hashKey + HASH_KEY.length;
    return true;
  }
}

/** The value of each lowercase hex digit's byte, -1 for every other byte. */
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[0x61 + i] = 10 + i;

/**
 * The record hashes of the chain from seq `m` on, and the roots of the aligned perfect subtrees over them
 * (`node(height, index)` covers leaves [index·2^height, (index+1)·2^height), all at or after `m`), computed
 * level by level once, for the consistency proof's new side.
 */
class NewLeaves {
  readonly #m: number;
  #hashes = new Uint8Array(32 * 1024);
  length = 0;
  readonly #levels: { base: number; hashes: Uint8Array }[] = [];

  constructor(m: number) {
    this.#m = m;
  }

  /** Appends the leaf whose 64 lowercase hex digits start at `buf[at]`; a leaf that is not hex ends the list. */
  pushHex(buf: Uint8Array, at: number): void {
    if (at + 64 > buf.length) return;
    if (this.length * 32 === this.#hashes.length) {
      const bigger = new Uint8Array(this.#hashes.length * 2);
      bigger.set(this.#hashes);
      this.#hashes = bigger;
    }
    const to = this.length * 32;
    for (let i = 0; i < 32; i++) {
      const hi = HEX_VALUE[buf[at + 2 * i]];
      const lo = HEX_VALUE[buf[at + 2 * i + 1]];
      if (hi < 0 || lo < 0) return;
      this.#hashes[to + i] = (hi << 4) | lo;
    }
    this.length++;
  }

  readonly node = (height: number, index: number): Buffer => {
    const level = this.#level(height);
    const i = index - level.base;
    if (i < 0 || (i + 1) * 32 > level.hashes.length)
      throw new RangeError(`no subtree ${height}/${index} among the leaves from ${this.#m}`);
    return Buffer.from(level.hashes.subarray(i * 32, i * 32 + 32));
  };

  #level(height: number): { base: number; hashes: Uint8Array } {
    if (this.#levels.length === 0)
      this.#levels.push({ base: this.#m, hashes: this.#hashes.subarray(0, this.length * 32) });
    for (let h = this.#levels.length; h <= height; h++) {
      const below = this.#levels[h - 1];
      const base = Math.ceil(this.#m / 2 ** h);
      const end = Math.floor((this.#m + this.length) / 2 ** h);
      const hashes = new Uint8Array(Math.max(0, end - base) * 32);
      for (let j = base; j < end; j++) {
        const l = (2 * j - below.base) * 32;
        hashes.set(
          nodeHash(below.hashes.subarray(l, l + 32), below.hashes.subarray(l + 32, l + 64)),
          (j - base) * 32,
        );
      }
      this.#levels.push({ base, hashes });
    }
    return this.#levels[height];
  }
}

function split(lo: number, hi: number, mth: (lo: number, hi: number) => Buffer): Buffer {
  let k = 1;
  while (k * 2 < hi - lo) k *= 2;
  return nodeHash(mth(lo, lo + k), mth(lo + k, hi));
}

function foldRange(range: { root: Buffer; height: number }[]): Buffer {
  let acc = range[range.length - 1].root;
  for (let i = range.length - 2; i >= 0; i--) acc = nodeHash(range[i].root, acc);
  return acc;
}
