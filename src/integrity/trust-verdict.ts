import type { ChainReport, Problem, SignedCheckpoint, VerifyReport } from './chain-verifier.js';

/** What the reader trusts, as given to `verify` and `report`. */
export interface TrustBasis {
  /** Pinned verifier keys (`<name>+<key id>+<key>`); empty for trust on first use. */
  trustedKeys: readonly string[];
  /** Tree sizes of the checkpoints held elsewhere (`--since-checkpoint`), per chain. */
  held?: ReadonlyMap<string, readonly number[]>;
  /** Records after the last signed checkpoint are accepted (and reported as such). */
  allowUnsignedTail?: boolean;
}

/** A range of seqs, both ends included. */
export interface SeqRange {
  first: number;
  last: number;
}

/**
 * How far one chain is covered by signatures the reader trusts:
 * - `verified`: every record is covered by a trusted signed checkpoint;
 * - `unsigned-tail`: records after the last such checkpoint are covered by nothing;
 * - `unsigned`: no checkpoint of the chain verified under a trusted key;
 * - `problems`: the chain itself did not verify (see its problems).
 */
export type ChainTrustStatus = 'verified' | 'unsigned-tail' | 'unsigned' | 'problems';

/** The trust verdict of one chain. */
export interface ChainTrust {
  chain: string;
  status: ChainTrustStatus;
  /** The basis in words, e.g. `pinned key acme-audit+7bf2a1c3, held checkpoint size 40`. */
  basis: string;
  /** Seqs covered by the signed checkpoint below (records 0..size-1, plus that checkpoint's own record). */
  covered?: SeqRange & { checkpointSize: number; key: string; location: string };
  /** Seqs no trusted signature covers. */
  unsigned?: SeqRange;
  /** The unsigned tail was accepted by `allowUnsignedTail`. */
  tailAccepted: boolean;
  /** Erased records whose erasure record is itself covered by a trusted signature. */
  erased: { seq: number; by: string }[];
}

/** The trust verdict of a whole verification. */
export interface TrustVerdict {
  /** True only when the trail is intact and every record is covered by a trusted signature (or an accepted tail). */
  verified: boolean;
  /** `pinned` with trusted keys, `tofu` (trust on first use) without. */
  mode: 'pinned' | 'tofu';
  /** The basis in words for the whole run. */
  basis: string;
  allowUnsignedTail: boolean;
  chains: ChainTrust[];
  /** Why the trail is not verified, one sentence each (empty when verified). */
  reasons: string[];
}

/** Trust on first use, in the words `verify` and `report` print. */
export const TOFU_BASIS = 'trust on first use: the key the chain declares';

/**
 * Judges a verification report against what the reader trusts. The report says whether the records are
 * intact and which checkpoints verified; this says which seqs those signatures cover, and whether that is
 * enough: with pinned keys, a chain no trusted checkpoint signs, or records after the last one (unless
 * accepted), leave the trail NOT verified. Erasure is an authority act: a tombstone counts as erased only
 * when its `mltrail.erasure` record is covered by a trusted signature; otherwise it becomes an
 * `unauthorised-erasure` problem of the tombstone's chain. Returns the report with those problems added
 * (and `ok` recomputed) and the verdict.
 */
export function judgeTrust(
  report: VerifyReport,
  basis: TrustBasis,
): { report: VerifyReport; verdict: TrustVerdict } {
  const mode = basis.trustedKeys.length > 0 ? 'pinned' : 'tofu';
  const coveredUpTo = new Map<string, number>();
  const best = new Map<string, SignedCheckpoint>();
  for (const c of report.chains) {
    const top = bestSignature(c.signatures);
    if (top === undefined) continue;
    best.set(c.chain, top);
    coveredUpTo.set(c.chain, lastCovered(c, top));
  }
  const isCovered = (ref: string): boolean => {
    const m = /^(.+):(\d+)$/.exec(ref);
    if (m === null) return false;
    const last = coveredUpTo.get(m[1]);
    return last !== undefined && Number(m[2]) <= last;
  };
  const chains: ChainReport[] = [];
  const verdicts: ChainTrust[] = [];
  const reasons: string[] = [];
  for (const c of report.chains) {
    const problems: Problem[] = [...c.problems];
    const erased: { seq: number; by: string }[] = [];
    for (const e of c.erasures) {
      if (isCovered(e.by)) erased.push(e);
      else
        problems.push({
          kind: 'unauthorised-erasure',
          chain: c.chain,
          seq: e.seq,
          location: `${c.chain}:${e.seq}`,
          message: `erased by ${e.by}, but no ${mode === 'pinned' ? 'trusted ' : ''}signed checkpoint covers that erasure record: the erasure has no authority`,
        });
    }
    const judged: ChainReport = { ...c, erased: erased.map((e) => e.seq), erasures: erased, problems };
    chains.push(judged);
    const v = chainVerdict(judged, best.get(c.chain), basis, mode);
    verdicts.push(v);
    if (v.status === 'problems') reasons.push(`chain ${c.chain}: ${problems.length} problem(s)`);
    else if (v.status === 'unsigned')
      reasons.push(
        `chain ${c.chain}: no checkpoint signed by ${mode === 'pinned' ? 'a trusted key' : 'any key'} covers its ${c.records} record(s)`,
      );
    else if (v.status === 'unsigned-tail' && !v.tailAccepted)
      reasons.push(
        `chain ${c.chain}: seq ${range(v.unsigned!)} after the last trusted checkpoint are unsigned`,
      );
  }
  if (report.problems.length > 0) reasons.unshift(`${report.problems.length} problem(s) outside any chain`);
  const intact = report.problems.length === 0 && chains.every((c) => c.problems.length === 0);
  const covered = verdicts.every(
    (v) => v.status === 'verified' || (v.status === 'unsigned-tail' && v.tailAccepted),
  );
  if (report.chains.length === 0) reasons.push('no records');
  const verified = intact && covered && report.chains.length > 0;
  return {
    report: { ...report, ok: intact, chains },
    verdict: {
      verified,
      mode,
      basis: runBasis(basis, report.chains),
      allowUnsignedTail: basis.allowUnsignedTail === true,
      chains: verdicts,
      reasons: verified ? [] : reasons,
    },
  };
}

/** The checkpoint covering the most records (pinned before declared keys, in-chain before held at a tie). */
function bestSignature(sigs: readonly SignedCheckpoint[]): SignedCheckpoint | undefined {
  let top: SignedCheckpoint | undefined;
  for (const s of sigs) {
    if (
      top === undefined ||
      s.size > top.size ||
      (s.size === top.size && s.seq !== undefined && top.seq === undefined)
    )
      top = s;
  }
  return top;
}

/**
 * The last seq a checkpoint covers: size-1, or size when the record at seq `size` is a checkpoint record of
 * that very size that verified — its content is the signed note itself, so nothing in it is unsigned.
 */
function lastCovered(c: ChainReport, top: SignedCheckpoint): number {
  const selfRecord = c.signatures.some((s) => s.seq === top.size && s.size === top.size);
  return selfRecord ? top.size : top.size - 1;
}

function chainVerdict(
  c: ChainReport,
  top: SignedCheckpoint | undefined,
  basis: TrustBasis,
  mode: 'pinned' | 'tofu',
): ChainTrust {
  const words: string[] = [];
  if (top !== undefined) words.push(mode === 'pinned' ? `pinned key ${top.key}` : TOFU_BASIS);
  else words.push(mode === 'pinned' ? 'no trusted signature' : `${TOFU_BASIS} (none signed)`);
  for (const size of basis.held?.get(c.chain) ?? []) words.push(`held checkpoint size ${size}`);
  const v: ChainTrust = {
    chain: c.chain,
    status: 'verified',
    basis: words.join(', '),
    tailAccepted: false,
    erased: c.erasures,
  };
  if (top !== undefined) {
    const last = Math.min(lastCovered(c, top), c.lastSeq);
    v.covered = { first: 0, last, checkpointSize: top.size, key: top.key, location: top.location };
    if (c.lastSeq > last) v.unsigned = { first: last + 1, last: c.lastSeq };
  } else if (c.records > 0) v.unsigned = { first: Math.max(0, c.firstSeq), last: c.lastSeq };
  if (c.problems.length > 0) v.status = 'problems';
  else if (top === undefined) v.status = 'unsigned';
  else if (v.unsigned !== undefined) {
    v.status = 'unsigned-tail';
    v.tailAccepted = basis.allowUnsignedTail === true;
  }
  return v;
}

function runBasis(basis: TrustBasis, chains: readonly ChainReport[]): string {
  const words: string[] = [];
  if (basis.trustedKeys.length > 0) {
    const names = new Set<string>();
    for (const k of basis.trustedKeys) {
      const [name, id] = k.trim().split('+');
      names.add(`${name}+${id}`);
    }
    words.push(`pinned key ${[...names].join(', pinned key ')}`);
  } else words.push(TOFU_BASIS);
  for (const c of chains)
    for (const size of basis.held?.get(c.chain) ?? []) words.push(`held checkpoint size ${size}`);
  return words.join(', ');
}

/** `a..b`, or `a` for one seq. */
export function range(r: SeqRange): string {
  return r.first === r.last ? `${r.first}` : `${r.first}..${r.last}`;
}
