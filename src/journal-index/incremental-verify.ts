import { ChainVerifier, type VerifyReport } from '../integrity/chain-verifier.js';
import { nodeHash, rootOf, verifyConsistency, verifyInclusion } from '../integrity/merkle.js';
import { parseRecordLine, RecordFormatError } from '../integrity/record.js';
import { type Checkpoint, parseCheckpoint, parseNote } from '../integrity/signed-note.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { listSegments } from '../sources/journal-reader.js';
import {
  compactRange,
  consistencyProofBy,
  inclusionProofBy,
  startingSegments,
  TileError,
  TileReader,
  tilesDir,
} from './merkle-tiles.js';
import { segmentLines } from './segment-lines.js';

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
  const newLeaves: Buffer[] = [];
  let reached = false;
  const files = new EvidenceDir(dir);
  for (const file of startingSegments(files, segments, m)) {
    let lineNo = 0;
    let end = 0;
    for (const l of segmentLines(files, file)) {
      lineNo++;
      end = l.offset + l.length + 1;
      const seq = seqOf(l.text);
      if (seq !== undefined && seq < m) {
        reached ||= seq === m - 1;
        continue;
      }
      if (seq === undefined && !reached) continue;
      reached = true;
      try {
        const r = parseRecordLine(l.text, { file, line: lineNo });
        if (r.chain === chain && r.seq === m + newLeaves.length) newLeaves.push(Buffer.from(r.hash, 'hex'));
        verifier.add(r, { file, line: lineNo });
        incremental.newRecords++;
      } catch (err) {
        if (!(err instanceof RecordFormatError)) throw err;
        verifier.addProblem({ kind: 'malformed', location: `${file}:${lineNo}`, message: err.message });
      }
    }
    const size = files.stat(file).size;
    if (size > end)
      verifier.addProblem({
        kind: 'torn-line',
        location: `${file}:${lineNo + 1}`,
        message: `${file} ends in a torn line (${size - end} bytes without a newline)`,
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
      hi <= m ? tiles.mth(lo, hi) : lo >= m ? rootOf(newLeaves, lo - m, hi - m) : split(lo, hi, mth);
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

function seqOf(text: string): number | undefined {
  const m = /^\{"(?:v":2,"chain":"[^"\\]*","seq|chain":"[^"\\]*","seq)":(0|[1-9]\d*)[,}]/.exec(text);
  return m === null ? undefined : Number(m[1]);
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
