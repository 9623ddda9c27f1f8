import { hash } from 'node:crypto';
// The generated constants alone: the semconv index also loads the zod schemas, which verifying never uses.
import {
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_CHECKPOINT_NOTE,
  ATTR_MLTRAIL_ERASURE_RECORD_REF,
  ATTR_MLTRAIL_KEY_PUBLIC,
} from '../semconv/attributes.js';
import { EVENT_MLTRAIL_CHECKPOINT, EVENT_MLTRAIL_ERASURE } from '../semconv/events.js';
import { canonicalize } from './canonical-json.js';
import { checkpointOrigin } from './chain-writer.js';
import { CompactMerkleTree, EMPTY_ROOT, sha256Bytes } from './merkle.js';
import { alignedBlocks, MerkleFolder } from './merkle-folder.js';
import {
  type AuditRecord,
  type RecordLocation,
  type RecordVersion,
  recordHash,
  SEVERITIES,
} from './record.js';
import { RecordLineScanner, tableHexEquals } from './record-scanner.js';
import {
  type Checkpoint,
  type NoteVerifier,
  parseCheckpoint,
  parseNote,
  parseVerifier,
  verifyNote,
} from './signed-note.js';

/** The kinds of problem `verify` reports. */
export type ProblemKind =
  | 'modified'
  | 'missing'
  | 'reordered'
  | 'conflicting-duplicate'
  | 'truncated'
  | 'bad-signature'
  | 'unknown-key'
  | 'bad-checkpoint'
  | 'torn-line'
  | 'malformed'
  | 'attrs-mismatch'
  | 'bad-erasure'
  | 'unauthorised-erasure'
  | 'wrong-origin'
  | 'inconsistent-checkpoint'
  | 'field-mismatch'
  | 'mixed-versions';

/** One problem, with where it was found. */
export interface Problem {
  kind: ProblemKind;
  chain?: string;
  seq?: number;
  /** `file:line` (or another source position). */
  location?: string;
  message: string;
}

/** What `verify` found for one chain. */
export interface ChainReport {
  chain: string;
  records: number;
  firstSeq: number;
  lastSeq: number;
  /** Checkpoints whose signature and root verified. */
  checkpointsVerified: number;
  /** Verifier keys that signed this chain's checkpoints. */
  keys: string[];
  /** Seqs whose bodies were erased with a valid erasure record. */
  erased: number[];
  /** Those tombstones with the erasure record (`<chain>:<seq>`) each names: its authority is judged later. */
  erasures: { seq: number; by: string }[];
  /** Every checkpoint of this chain whose origin, signature and root verified. */
  signatures: SignedCheckpoint[];
  duplicates: number;
  problems: Problem[];
}

/** A checkpoint whose origin, signature and Merkle root verified: it covers seqs 0..size-1 of its chain. */
export interface SignedCheckpoint {
  size: number;
  /** The signing key as `<name>+<key id>`. */
  key: string;
  /** True when the key was pinned (`trustedKeys`); false when it is the key the chain declares. */
  pinned: boolean;
  /** Held elsewhere (a checkpoint file or `--since-checkpoint`), rather than a record of the chain. */
  external: boolean;
  /** For a checkpoint record of the chain: its own seq (equal to `size`). */
  seq?: number;
  /** Where it was found (`file:line`, a checkpoint file). */
  location: string;
  /** The signed note itself. */
  note: string;
}

/** The whole verification result. */
export interface VerifyReport {
  ok: boolean;
  records: number;
  chains: ChainReport[];
  /** Problems not tied to one chain (torn or malformed lines). */
  problems: Problem[];
}

/** Options of {@link ChainVerifier}. */
export interface ChainVerifierOptions {
  /** Pinned verifier keys; when given, checkpoints signed by any other key are problems. */
  trustedKeys?: readonly string[];
  /** Checkpoints held elsewhere (signed note texts): prove the chain was not truncated or rewritten. */
  checkpoints?: readonly { note: string; source: string }[];
  /**
   * Verify one chain from seq `size` on (incremental verification): the records before are not read. The
   * caller has established, against a root it trusts, the tree of the first `size` records — its compact
   * range (perfect subtree roots, largest first) — and the hash of record `size - 1`. Records of that
   * chain with a lower seq must not be added.
   */
  resume?: ResumePoint;
}

/** Where an incremental verification of a chain starts (see {@link ChainVerifierOptions.resume}). */
export interface ResumePoint {
  chain: string;
  size: number;
  /** Hex hash of record `size - 1` (the `prev` record `size` must name). */
  lastHash: string;
  /** The compact range of the tree of the first `size` records. */
  range: readonly { root: Uint8Array; height: number }[];
}

/** A record kept with its strings: anything not in the compact table (see {@link ChainState}). */
interface Entry {
  hash: string;
  prev: string;
  digest: string;
  bodyHash: string;
  where: RecordLocation | undefined;
  chain: string;
  seq: number;
  erasedBy?: string;
  /** Its link to the previous record was checked when it arrived (the previous seq was already there). */
  linked: boolean;
  linkBroken: boolean;
}

/** Slot flags of the compact table. */
const COMPACT = 1;
const FULL = 2;
const LINK_BROKEN = 4;
/** The compact table grows by doubling up to this many seqs per chain; seqs beyond are kept as entries. */
const MAX_TABLE = 1 << 26;
const HEX64 = /^[0-9a-fA-F]{64}$/;

/**
 * What the verifier keeps per chain. Nearly every record arrives in seq order with its hash and digest
 * intact: those take one slot of a table indexed by seq (32-byte hash, 32-byte digest, location), with no
 * per-record object, and their link and Merkle leaf are settled as they arrive. Everything else — erased,
 * out of order, tampered or far-off seqs — is an {@link Entry}, and the chain is walked again at the end.
 */
interface ChainState {
  chain: string;
  /** The line format of the chain's first record (0 before it): a chain never mixes formats. */
  version: 0 | RecordVersion;
  /** The seq of slot 0: the first seq seen. */
  base: number;
  cap: number;
  flags: Uint8Array;
  hashes: Uint8Array;
  digests: Uint8Array;
  /** Location of a compact slot: index into the verifier's file names (+1; 0 = none) and line. */
  files: Uint32Array;
  lines: Uint32Array;
  entries: Map<number, Entry>;
  /** Seqs held (compact or entry). */
  count: number;
  /** The highest seq held (-1 before the first). */
  lastAdded: number;
  /**
   * The Merkle tree of the records so far while they arrived as seq 0, 1, 2, … (undefined once one did
   * not: the tree is then rebuilt at the end), with its roots at the seqs of checkpoint records.
   */
  tree: MerkleFolder | undefined;
  /**
   * Compact records after the tree's last leaf whose leaves are not appended yet (`deferMerkle`): their
   * seqs are [tree.size, tree.size + treeLag), their hashes in the table.
   */
  treeLag: number;
  roots: Map<number, Buffer>;
  checkpoints: { seq: number; note: string; vkey: string; location: string }[];
  duplicates: number;
  problems: Problem[];
  /** Set when the chain is verified from a resume point, not from seq 0. */
  resume: ResumePoint | undefined;
}

/** Problems not tied to a chain (torn or malformed lines) listed one by one before they are only counted. */
const MAX_LISTED_PROBLEMS = 10_000;

/**
 * Verifies audit records from any source, streaming: feed records with {@link ChainVerifier.add} in the
 * order they were stored, then call {@link ChainVerifier.finish}. Detects modified, missing, reordered and
 * conflicting records, broken links, bad or untrusted checkpoint signatures, roots that do not match, tails
 * truncated relative to a checkpoint, erasures without their erasure record, and attrs that disagree with
 * the body. Exact duplicates (at-least-once delivery) are fine.
 */
export class ChainVerifier {
  readonly #chains = new Map<string, ChainState>();
  readonly #problems: Problem[] = [];
  readonly #trusted: Map<string, NoteVerifier> | undefined;
  readonly #external: { note: string; source: string; chain?: string }[];
  readonly #resume: ResumePoint | undefined;
  readonly #erasures = new Map<string, { digest: string; location: string }>();
  readonly #files: string[] = [];
  readonly #fileIds = new Map<string, number>();
  readonly #scanner = new RecordLineScanner();
  #lastFile = '';
  #lastFileId = 0;
  #lastChain: ChainState | undefined;
  #lastChainBytes = Buffer.alloc(0);
  #records = 0;

  constructor(opts: ChainVerifierOptions = {}) {
    if (opts.trustedKeys !== undefined && opts.trustedKeys.length > 0) {
      this.#trusted = new Map(
        opts.trustedKeys.map((k) => {
          const v = parseVerifier(k);
          return [`${v.name}+${v.keyId}`, v];
        }),
      );
    }
    this.#external = [...(opts.checkpoints ?? [])];
    this.#resume = opts.resume;
  }

  /**
   * Adds a checkpoint held elsewhere (a signed note), checked against the chain its origin names. With
   * `chain` (a checkpoint file named for its chain), an origin naming another chain is a problem.
   */
  addCheckpoint(note: string, source: string, chain?: string): void {
    this.#external.push({ note, source, chain });
  }

  /** Reports a problem found while reading (torn line, malformed record). */
  addProblem(problem: Problem): void {
    if (problem.chain !== undefined) this.#state(problem.chain).problems.push(problem);
    else if (this.#problems.length < MAX_LISTED_PROBLEMS) this.#problems.push(problem);
    else {
      // A file of garbage must not cost memory per line: past the limit, one entry counts the rest.
      this.#unlisted ??= { kind: problem.kind, location: problem.location, message: '' };
      if (this.#unlistedCount++ === 0) this.#problems.push(this.#unlisted);
      this.#unlisted.message = `${this.#unlistedCount} more torn or malformed lines from here on are not listed (the first ${MAX_LISTED_PROBLEMS} are)`;
    }
  }
  #unlisted: Problem | undefined;
  #unlistedCount = 0;

  /**
   * Adds one journal line straight from its bytes (`buf[start, end)`, valid UTF-8, no newline) when it is
   * the next record of a chain already seen and verifies cleanly — nearly every line of a journal segment —
   * and returns true. Returns false, having recorded nothing, for anything else: the caller then parses the
   * line with `parseRecordLine()` and calls {@link add}, which reports precisely.
   */
  addJournalLine(buf: Buffer, start: number, end: number, file: string, line: number): boolean {
    const sc = this.#scanner;
    if (!sc.check(buf, start, end)) return false;
    return this.acceptCheckedLine(
      buf,
      sc.chainStart,
      sc.chainEnd,
      sc.seq,
      sc.prevHex,
      sc.sums,
      0,
      file,
      line,
    );
  }

  /**
   * The part of {@link addJournalLine} that needs this verifier's state, for a line whose own checks
   * (`RecordLineScanner.check()`, possibly on another thread) passed: the chain, the seq and the link to the
   * previous record. `sums[at, at + 64)` holds the record hash and the body digest. False, having recorded
   * nothing, when the strict path must decide.
   */
  acceptCheckedLine(
    buf: Buffer,
    chainStart: number,
    chainEnd: number,
    seq: number,
    prevHex: number,
    sums: Uint8Array,
    at: number,
    file: string,
    line: number,
    deferMerkle = false,
  ): boolean {
    let st = this.#lastChain;
    if (st === undefined || !sameBytes(this.#lastChainBytes, buf, chainStart, chainEnd)) {
      st = this.#chains.get(buf.toString('utf8', chainStart, chainEnd));
      // A chain's first record goes through add(), which creates its state.
      if (st === undefined || st.version !== 2) return false;
      this.#lastChain = st;
      this.#lastChainBytes = Buffer.from(buf.subarray(chainStart, chainEnd));
    }
    if (seq !== st.lastAdded + 1) return false;
    const slot = seq - st.base;
    if (slot >= st.cap && !grow(st, slot)) return false;
    // The link: only to a compact previous record (an entry's hash is a string; add() compares those).
    const prevSlot = slot - 1;
    if (prevSlot < 0 || st.flags[prevSlot] !== COMPACT) return false;
    if (!tableHexEquals(st.hashes, prevSlot * 32, buf, prevHex)) return false;
    this.#records++;
    const hashes = st.hashes;
    const digests = st.digests;
    const to = slot * 32;
    for (let i = 0; i < 32; i++) {
      hashes[to + i] = sums[at + i];
      digests[to + i] = sums[at + 32 + i];
    }
    st.flags[slot] = COMPACT;
    st.files[slot] = this.#fileId(file);
    st.lines[slot] = line;
    st.count++;
    st.lastAdded = seq;
    if (st.tree !== undefined) {
      if (seq !== st.tree.size + st.treeLag) st.tree = undefined;
      else if (deferMerkle) st.treeLag++;
      else {
        flushLag(st);
        st.tree.appendFromTable(sums, at);
      }
    }
    return true;
  }

  /**
   * Appends the Merkle leaves of records accepted with `deferMerkle` — seqs [start, end) of the chain
   * named by `buf[chainStart, chainEnd)` — as the roots of their aligned blocks (`alignedBlocks`), 32 bytes
   * each in `roots` from `at`, computed by whoever checked the lines. When those records are not exactly
   * what the tree is waiting for (one was not accepted, or the tree was given up), their leaves are
   * appended one by one from the table instead, or not at all.
   */
  appendCheckedRun(
    buf: Buffer,
    chainStart: number,
    chainEnd: number,
    start: number,
    end: number,
    roots: Uint8Array,
    at: number,
  ): void {
    const st =
      this.#lastChain !== undefined && sameBytes(this.#lastChainBytes, buf, chainStart, chainEnd)
        ? this.#lastChain
        : this.#chains.get(buf.toString('utf8', chainStart, chainEnd));
    if (st?.tree === undefined || st.treeLag === 0) return;
    if (st.tree.size !== start || st.tree.size + st.treeLag !== end) {
      flushLag(st);
      return;
    }
    const tree = st.tree;
    let block = at;
    alignedBlocks(start, end, (_, height) => {
      tree.appendSubtree(roots, block, height);
      block += 32;
    });
    st.treeLag = 0;
  }

  /**
   * Adds one record. `ordered` (default true) says the source is append-only in seq order (a journal
   * segment), so a lower seq after a higher one is reported as reordered; archives and Loki deliver records
   * in arrival order and pass false.
   */
  add(r: AuditRecord, where?: RecordLocation, ordered = true): void {
    this.#records++;
    const st = this.#state(r.chain);
    // Locations are built only when a problem needs one: this runs a million times per verify.
    const problem = (kind: ProblemKind, message: string) =>
      st.problems.push({ kind, chain: r.chain, seq: r.seq, location: locate(r, where), message });
    const bodyHash = hash('sha256', r.body);
    const existing = this.#entryAt(st, r.seq);
    if (existing !== undefined) {
      if (existing.hash === r.hash && existing.bodyHash === bodyHash && existing.digest === r.digest) {
        st.duplicates++;
        return;
      }
      if (existing.erasedBy !== undefined || r.erased_by !== undefined) {
        // An erased copy next to an older un-erased copy (e.g. an archive made before the erasure).
        if (existing.hash === r.hash && existing.digest === r.digest) {
          st.duplicates++;
          return;
        }
      }
      problem(
        'conflicting-duplicate',
        `seq ${r.seq} appears twice with different content (first at ${locate(existing, existing.where)})`,
      );
      return;
    }
    if (ordered && r.seq <= st.lastAdded)
      problem('reordered', `seq ${r.seq} stored after seq ${st.lastAdded}`);
    if (st.version === 0) st.version = r.v;
    else if (st.version !== r.v)
      problem(
        'mixed-versions',
        `a format ${r.v} record in a chain whose records are format ${st.version} (a chain is written in one format)`,
      );
    const expectedHash = recordHash(r.chain, r.seq, r.prev, r.digest, r.v);
    if (expectedHash !== r.hash)
      problem(
        'modified',
        r.v === 2 && r.erased_by === undefined
          ? 'record hash does not match its chain fields and body (chain, seq, prev, body digest)'
          : 'record hash does not match its chain fields (chain, seq, prev, digest)',
      );
    const digestOk = `sha256:${bodyHash}` === r.digest;
    if (r.erased_by === undefined) {
      if (!digestOk) problem('modified', 'body does not match its digest');
      else {
        if (r.v === 1) checkCopiedFields(r, problem);
        this.#checkAttrs(r, problem);
      }
    } else if (r.body !== '') {
      problem('bad-erasure', `record is marked erased by ${r.erased_by} but still has a body`);
    }
    this.#store(st, r, where, bodyHash, expectedHash === r.hash && digestOk && r.erased_by === undefined);
    if (r.event === EVENT_MLTRAIL_CHECKPOINT && r.erased_by === undefined) {
      const body = safeParse(r.body);
      const note = body?.[ATTR_MLTRAIL_CHECKPOINT_NOTE];
      const vkey = body?.[ATTR_MLTRAIL_KEY_PUBLIC];
      if (typeof note === 'string' && typeof vkey === 'string')
        st.checkpoints.push({ seq: r.seq, note, vkey, location: locate(r, where) });
      else problem('bad-checkpoint', 'checkpoint record without a note or key');
    } else if (r.event === EVENT_MLTRAIL_ERASURE && r.erased_by === undefined) {
      const body = safeParse(r.body);
      const ref = body?.[ATTR_MLTRAIL_ERASURE_RECORD_REF];
      const digest = body?.[ATTR_MLTRAIL_BODY_DIGEST];
      if (typeof ref === 'string' && typeof digest === 'string')
        this.#erasures.set(ref, { digest, location: locate(r, where) });
      else problem('bad-erasure', 'erasure record without a record ref or digest');
    }
  }

  /**
   * Keeps a new (not duplicate) record. Its link to the previous seq is checked now when that seq is already
   * there (records in order), otherwise when the chain is walked at the end.
   */
  #store(
    st: ChainState,
    r: AuditRecord,
    where: RecordLocation | undefined,
    bodyHash: string,
    clean: boolean,
  ) {
    const seq = r.seq;
    // The first record after a resume point links to the hash the caller established.
    const resumed = st.count === 0 && st.resume !== undefined && seq === st.resume.size;
    const linked = resumed || (st.count > 0 && seq === st.lastAdded + 1);
    let linkBroken = false;
    if (resumed) linkBroken = r.prev !== st.resume!.lastHash;
    else if (linked) {
      const prevSlot = seq - 1 - st.base;
      if (prevSlot >= 0 && prevSlot < st.cap && st.flags[prevSlot] & COMPACT)
        linkBroken = r.prev !== slotHex(st.hashes, prevSlot);
      else linkBroken = r.prev !== st.entries.get(seq - 1)?.hash;
    }
    if (st.count === 0) st.base = seq;
    const slot = seq - st.base;
    const inTable = slot >= 0 && (slot < st.cap || grow(st, slot));
    // A compact slot keeps no prev: only records whose link is settled now (or that have none) take one.
    if (inTable && clean && (linked || seq === 0)) {
      st.hashes.set(Buffer.from(r.hash, 'hex'), slot * 32);
      st.digests.set(Buffer.from(bodyHash, 'hex'), slot * 32);
      st.flags[slot] = COMPACT | (linkBroken ? LINK_BROKEN : 0);
      st.files[slot] = where !== undefined ? this.#fileId(where.file) : 0;
      st.lines[slot] = where !== undefined ? where.line : 0;
    } else {
      st.entries.set(seq, {
        hash: r.hash,
        prev: r.prev,
        digest: r.digest,
        bodyHash,
        where,
        chain: r.chain,
        seq,
        erasedBy: r.erased_by,
        linked,
        linkBroken,
      });
      if (inTable) st.flags[slot] = FULL;
    }
    st.count++;
    st.lastAdded = Math.max(st.lastAdded, seq);
    flushLag(st);
    if (st.tree !== undefined) {
      // Leaves whose hash field is not plain hex are left to the exact rebuild at the end.
      if (seq === st.tree.size && HEX64.test(r.hash)) {
        if (r.event === EVENT_MLTRAIL_CHECKPOINT) st.roots.set(seq, st.tree.root());
        st.tree.appendFromTable(Buffer.from(r.hash, 'hex'), 0);
      } else st.tree = undefined;
    }
  }

  /** The record held at `seq`, as an entry (compact slots are expanded). */
  #entryAt(st: ChainState, seq: number): Entry | undefined {
    if (st.count === 0) return undefined;
    const slot = seq - st.base;
    if (slot >= 0 && slot < st.cap) {
      const f = st.flags[slot];
      if (f === 0) return undefined;
      if (f & COMPACT) return this.#expand(st, slot);
    }
    return st.entries.get(seq);
  }

  #expand(st: ChainState, slot: number): Entry {
    const bodyHash = slotHex(st.digests, slot);
    return {
      hash: slotHex(st.hashes, slot),
      // Not kept: a compact record's link was checked when it arrived.
      prev: '',
      digest: `sha256:${bodyHash}`,
      bodyHash,
      where: this.#slotWhere(st, slot),
      chain: st.chain,
      seq: st.base + slot,
      linked: true,
      linkBroken: (st.flags[slot] & LINK_BROKEN) !== 0,
    };
  }

  #slotWhere(st: ChainState, slot: number): RecordLocation | undefined {
    const id = st.files[slot];
    return id > 0 ? { file: this.#files[id - 1], line: st.lines[slot] } : undefined;
  }

  #fileId(file: string): number {
    if (file === this.#lastFile && this.#lastFileId > 0) return this.#lastFileId;
    let id = this.#fileIds.get(file);
    if (id === undefined) {
      this.#files.push(file);
      id = this.#files.length;
      this.#fileIds.set(file, id);
    }
    this.#lastFile = file;
    this.#lastFileId = id;
    return id;
  }

  /** Finishes verification and returns the report. */
  finish(): VerifyReport {
    for (const st of this.#chains.values()) flushLag(st);
    const chains: ChainReport[] = [];
    const external = this.#externalByChain();
    for (const [chain, st] of [...this.#chains].sort(([a], [b]) => a.localeCompare(b))) {
      chains.push(this.#finishChain(chain, st, external.get(chain) ?? []));
    }
    for (const [chain, list] of external) {
      if (!this.#chains.has(chain)) {
        for (const c of list) {
          this.#problems.push({
            kind: 'truncated',
            chain,
            location: c.source,
            message: `checkpoint for chain ${chain} (size ${c.checkpoint.size}) but no records of that chain were found`,
          });
        }
      }
    }
    const ok = this.#problems.length === 0 && chains.every((c) => c.problems.length === 0);
    return { ok, records: this.#records, chains, problems: this.#problems };
  }

  /**
   * Calls `visit` for every held seq in order (compact slots as `entry` undefined). With `skipSettled`,
   * compact slots whose link held are passed over: the caller knows the chain is gap-free from seq 0.
   */
  #walk(
    st: ChainState,
    skipSettled: boolean,
    visit: (seq: number, slot: number, entry: Entry | undefined) => void,
  ): void {
    const outside = [...st.entries.keys()]
      .filter((s) => s < st.base || s - st.base >= st.cap)
      .sort((a, b) => a - b);
    let o = 0;
    while (o < outside.length && outside[o] < st.base) visit(outside[o], -1, st.entries.get(outside[o++]));
    const flags = st.flags;
    for (let slot = 0; slot < st.cap; slot++) {
      const f = flags[slot];
      if (f === 0 || (skipSettled && f === COMPACT)) continue;
      visit(st.base + slot, slot, f & COMPACT ? undefined : st.entries.get(st.base + slot));
    }
    while (o < outside.length) visit(outside[o], -1, st.entries.get(outside[o++]));
  }

  #finishChain(
    chain: string,
    st: ChainState,
    external: { checkpoint: Checkpoint; note: string; source: string }[],
  ): ChainReport {
    const problem = (kind: ProblemKind, message: string, seq?: number, location?: string) =>
      st.problems.push({ kind, chain, seq, location, message });
    const wanted = new Set<number>([
      ...st.checkpoints.map((c) => c.seq),
      ...external.map((e) => e.checkpoint.size),
    ]);
    const where = (seq: number, slot: number, e: Entry | undefined): string =>
      e !== undefined ? locate(e, e.where) : locate({ chain, seq }, this.#slotWhere(st, slot));
    const erased: number[] = [];
    const erasures: { seq: number; by: string }[] = [];
    const checkErasure = (seq: number, e: Entry) => {
      const er = this.#erasures.get(`${chain}:${seq}`);
      if (er === undefined)
        problem(
          'bad-erasure',
          `erased by ${e.erasedBy} but no mltrail.erasure record for ${chain}:${seq} was found`,
          seq,
          where(seq, -1, e),
        );
      else if (er.digest !== e.digest)
        problem(
          'bad-erasure',
          `the erasure record at ${er.location} names a different digest`,
          seq,
          where(seq, -1, e),
        );
      else {
        erased.push(seq);
        erasures.push({ seq, by: e.erasedBy! });
      }
    };
    const roots = new Map<number, Buffer>();
    let expected = 0;
    const streamed = st.tree;
    if (
      streamed !== undefined &&
      [...wanted].every((s) => s >= streamed.size || s === 0 || st.roots.has(s))
    ) {
      // Every record arrived in seq order from 0: no gaps, links and roots settled on arrival. Only the
      // records kept as entries (and broken links) need a look.
      expected = streamed.size;
      for (const s of wanted) {
        if (s === 0) roots.set(0, EMPTY_ROOT);
        else if (s === streamed.size) roots.set(s, streamed.root());
        else if (st.roots.has(s)) roots.set(s, st.roots.get(s)!);
      }
      this.#walk(st, true, (seq, slot, e) => {
        if (e === undefined ? (st.flags[slot] & LINK_BROKEN) !== 0 : e.linkBroken)
          problem(
            'modified',
            'prev does not match the hash of the previous record',
            seq,
            where(seq, slot, e),
          );
        if (e?.erasedBy !== undefined) checkErasure(seq, e);
      });
    } else {
      let tree: CompactMerkleTree | undefined = new CompactMerkleTree();
      // The previous record's hash: a compact slot, or an entry's string.
      let prevSlot = -1;
      let prevHash: string | undefined;
      let havePrev = false;
      if (st.resume !== undefined) {
        for (const r of st.resume.range) tree.appendSubtree(r.root, r.height);
        expected = st.resume.size;
        prevHash = st.resume.lastHash;
        havePrev = st.resume.size > 0;
        if (wanted.has(expected)) roots.set(expected, tree.root());
      }
      if (wanted.has(0)) roots.set(0, tree.root());
      this.#walk(st, false, (seq, slot, e) => {
        if (seq !== expected) {
          problem(
            'missing',
            `seq ${expected}${seq - 1 > expected ? `..${seq - 1}` : ''} missing before seq ${seq}`,
            expected,
            where(seq, slot, e),
          );
          havePrev = false;
          // No root past a gap can match a checkpoint (the missing leaves are unknown), so the tree stops
          // here and every later checkpoint is reported as not matching. (Padding it with zero leaves up to
          // the next seq, as before, never finished for a seq like 2^53 in a hostile file.)
          tree = undefined;
        }
        const broken =
          e === undefined
            ? (st.flags[slot] & LINK_BROKEN) !== 0
            : e.linked
              ? e.linkBroken
              : havePrev && e.prev !== (prevSlot >= 0 ? slotHex(st.hashes, prevSlot) : prevHash);
        if (broken)
          problem(
            'modified',
            'prev does not match the hash of the previous record',
            seq,
            where(seq, slot, e),
          );
        if (e?.erasedBy !== undefined) checkErasure(seq, e);
        if (tree !== undefined) {
          tree.appendLeafHash(
            e === undefined
              ? Buffer.from(st.hashes.buffer, st.hashes.byteOffset + slot * 32, 32)
              : leafOf(e.hash),
          );
          if (wanted.has(tree.size)) roots.set(tree.size, tree.root());
        }
        havePrev = true;
        prevSlot = e === undefined ? slot : -1;
        prevHash = e?.hash;
        expected = seq + 1;
      });
    }
    let first = -1;
    let last = -1;
    if (st.count > 0) {
      first = Math.min(st.base, ...[...st.entries.keys()]);
      last = st.lastAdded;
    }
    const keys = new Set<string>();
    const signatures: SignedCheckpoint[] = [];
    let verified = 0;
    const checkNote = (
      note: string,
      declaredKey: string | undefined,
      size: number,
      location: string,
      external: boolean,
    ) => {
      let cp: Checkpoint;
      try {
        cp = parseCheckpoint(parseNote(note).text);
      } catch (err) {
        problem('bad-checkpoint', (err as Error).message, undefined, location);
        return;
      }
      if (cp.origin !== checkpointOrigin(chain)) {
        problem(
          'wrong-origin',
          `checkpoint origin "${cp.origin}" is not this chain's (${checkpointOrigin(chain)})`,
          external ? undefined : size,
          location,
        );
        return;
      }
      if (cp.size !== size && !external)
        problem(
          'bad-checkpoint',
          `checkpoint claims size ${cp.size} but sits at seq ${size}`,
          size,
          location,
        );
      const verifier = this.#verifierFor(note, declaredKey);
      if (verifier === undefined) {
        problem(
          'unknown-key',
          `checkpoint signed by a key that is not trusted (${signerOf(note)})`,
          size,
          location,
        );
        return;
      }
      if (!verifyNote(note, verifier)) {
        problem(
          'bad-signature',
          `checkpoint signature by ${verifier.name}+${verifier.keyId} does not verify`,
          size,
          location,
        );
        return;
      }
      keys.add(verifier.verifierKey);
      if (cp.size > expected) {
        problem(
          'truncated',
          `a checkpoint (${location}) covers ${cp.size} records but the chain ends at ${expected}`,
          expected,
          location,
        );
        return;
      }
      const root = roots.get(cp.size);
      if (root === undefined || !root.equals(cp.root)) {
        problem(
          external ? 'inconsistent-checkpoint' : 'modified',
          `Merkle root at size ${cp.size} does not match the signed checkpoint`,
          cp.size,
          location,
        );
        return;
      }
      verified++;
      signatures.push({
        size: cp.size,
        key: `${verifier.name}+${verifier.keyId}`,
        pinned: this.#trusted !== undefined,
        external,
        ...(external ? {} : { seq: size }),
        location,
        note,
      });
    };
    for (const c of st.checkpoints) checkNote(c.note, c.vkey, c.seq, c.location, false);
    for (const x of external) checkNote(x.note, undefined, x.checkpoint.size, x.source, true);
    return {
      chain,
      records: st.count,
      firstSeq: first,
      lastSeq: last,
      checkpointsVerified: verified,
      keys: [...keys],
      erased,
      erasures,
      signatures,
      duplicates: st.duplicates,
      problems: st.problems,
    };
  }

  #verifierFor(note: string, declared: string | undefined): NoteVerifier | undefined {
    let sigs: ReturnType<typeof parseNote>['signatures'];
    try {
      sigs = parseNote(note).signatures;
    } catch {
      return undefined;
    }
    if (this.#trusted !== undefined) {
      for (const s of sigs) {
        const v = this.#trusted.get(`${s.name}+${s.keyId}`);
        if (v !== undefined) return v;
      }
      return undefined;
    }
    // Without pinned keys, trust the key each chain declares (report it; pin with --trusted-key).
    if (declared === undefined) {
      for (const c of this.#chains.values())
        for (const cp of c.checkpoints) {
          const v = tryVerifier(cp.vkey);
          if (v !== undefined && sigs.some((s) => s.name === v.name && s.keyId === v.keyId)) return v;
        }
      return undefined;
    }
    return tryVerifier(declared);
  }

  #externalByChain(): Map<string, { checkpoint: Checkpoint; note: string; source: string }[]> {
    const out = new Map<string, { checkpoint: Checkpoint; note: string; source: string }[]>();
    for (const x of this.#external) {
      let cp: Checkpoint;
      try {
        cp = parseCheckpoint(parseNote(x.note).text);
      } catch (err) {
        this.#problems.push({ kind: 'bad-checkpoint', location: x.source, message: (err as Error).message });
        continue;
      }
      const m = /^mltrail\/chain\/(.+)$/.exec(cp.origin);
      if (x.chain !== undefined && m?.[1] !== x.chain) {
        // A checkpoint file named for one chain holding another's checkpoint (files swapped or replaced).
        (this.#chains.get(x.chain)?.problems ?? this.#problems).push({
          kind: 'wrong-origin',
          chain: x.chain,
          location: x.source,
          message: `checkpoint file for chain ${x.chain} holds a checkpoint of "${cp.origin}"`,
        });
        continue;
      }
      if (m === null) {
        this.#problems.push({
          kind: 'bad-checkpoint',
          location: x.source,
          message: `checkpoint origin "${cp.origin}" is not an mltrail chain`,
        });
        continue;
      }
      const list = out.get(m[1]) ?? [];
      list.push({ checkpoint: cp, note: x.note, source: x.source });
      out.set(m[1], list);
    }
    return out;
  }

  #checkAttrs(r: AuditRecord, problem: (kind: ProblemKind, message: string) => void): void {
    // The body is canonical JSON, so every attr must appear in it as `"key":<canonical value>`.
    for (const k in r.attrs) {
      const needle = `${JSON.stringify(k)}:${canonicalize(r.attrs[k])}`;
      if (!r.body.includes(needle)) problem('attrs-mismatch', `attribute ${k} does not match the body`);
    }
  }

  #state(chain: string): ChainState {
    let st = this.#chains.get(chain);
    if (st === undefined) {
      const resume = this.#resume?.chain === chain ? this.#resume : undefined;
      st = {
        chain,
        version: 0,
        base: 0,
        cap: 0,
        flags: new Uint8Array(0),
        hashes: new Uint8Array(0),
        digests: new Uint8Array(0),
        files: new Uint32Array(0),
        lines: new Uint32Array(0),
        entries: new Map(),
        count: 0,
        lastAdded: -1,
        tree: new MerkleFolder(),
        treeLag: 0,
        roots: new Map(),
        checkpoints: [],
        duplicates: 0,
        problems: [],
        resume,
      };
      if (resume !== undefined) {
        // The tree so far is the established one; records arrive from seq `size`.
        const tree = new MerkleFolder();
        for (const r of resume.range) tree.appendSubtree(r.root, 0, r.height);
        st.tree = tree;
        st.roots.set(resume.size, tree.root());
        st.lastAdded = resume.size - 1;
      }
      this.#chains.set(chain, st);
    }
    return st;
  }
}

/**
 * Format 1 lines carry copies of body keys outside the hash: each must equal the body's value (a line
 * whose `event`, `ts` or trace ids were edited is reported, never believed). `sev` has no copy in a format 1
 * body; only its form is checked (format 2 keeps it in the body).
 */
function checkCopiedFields(r: AuditRecord, problem: (kind: ProblemKind, message: string) => void): void {
  const body = safeParse(r.body);
  if (body === undefined) {
    problem('field-mismatch', 'the body is not a JSON object, so event, ts and trace ids cannot be checked');
    return;
  }
  const copies: [string, string, unknown][] = [
    ['event', 'event.name', r.event],
    ['ts', 'timestamp', r.ts],
    ['trace_id', 'trace_id', r.trace_id],
    ['span_id', 'span_id', r.span_id],
  ];
  for (const [field, key, value] of copies)
    if (body[key] !== value)
      problem(
        'field-mismatch',
        `field "${field}" (${JSON.stringify(value) ?? 'absent'}) does not match the body's ${key} (${JSON.stringify(body[key]) ?? 'absent'})`,
      );
  if (!SEVERITIES.includes(r.sev))
    problem(
      'field-mismatch',
      `field "sev" (${JSON.stringify(r.sev)}) is not one of ${SEVERITIES.join(', ')}`,
    );
}

/** Makes room for `slot` in the compact table, doubling it; false when the seq is too far off for a table. */
function grow(st: ChainState, slot: number): boolean {
  let cap = Math.max(st.cap, 1024);
  if (slot >= 2 * cap + 65536) return false;
  while (cap <= slot) cap *= 2;
  if (cap > MAX_TABLE) return false;
  const flags = new Uint8Array(cap);
  flags.set(st.flags);
  const hashes = new Uint8Array(cap * 32);
  hashes.set(st.hashes);
  const digests = new Uint8Array(cap * 32);
  digests.set(st.digests);
  const files = new Uint32Array(cap);
  files.set(st.files);
  const lines = new Uint32Array(cap);
  lines.set(st.lines);
  Object.assign(st, { cap, flags, hashes, digests, files, lines });
  return true;
}

/** Appends the leaves held back by `deferMerkle` from the table. */
function flushLag(st: ChainState): void {
  if (st.tree === undefined) st.treeLag = 0;
  for (; st.treeLag > 0; st.treeLag--) st.tree!.appendFromTable(st.hashes, (st.tree!.size - st.base) * 32);
}

/** True when `a` equals `b[start, end)` (a byte loop: Buffer#compare costs more for a chain id). */
function sameBytes(a: Uint8Array, b: Uint8Array, start: number, end: number): boolean {
  if (a.length !== end - start) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[start + i]) return false;
  return true;
}

/** The hash held in a compact slot, as hex. */
function slotHex(table: Uint8Array, slot: number): string {
  return Buffer.from(table.buffer, table.byteOffset + slot * 32, 32).toString('hex');
}

function locate(r: { chain: string; seq: number }, where: RecordLocation | undefined): string {
  return where !== undefined ? `${where.file}:${where.line}` : `${r.chain}:${r.seq}`;
}

function safeParse(body: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(body);
    return v !== null && typeof v === 'object' ? v : undefined;
  } catch {
    return undefined;
  }
}

function tryVerifier(vkey: string): NoteVerifier | undefined {
  try {
    return parseVerifier(vkey);
  } catch {
    return undefined;
  }
}

function signerOf(note: string): string {
  try {
    return parseNote(note)
      .signatures.map((s) => `${s.name}+${s.keyId}`)
      .join(', ');
  } catch {
    return 'unparseable note';
  }
}

/**
 * The tree leaf of a record whose hash came from its line: a hash that is not 64 hex digits (reported as
 * modified elsewhere) stands in as its own digest, so every root over it differs from a signed one.
 */
function leafOf(hex: string): Buffer {
  const b = Buffer.from(hex, 'hex');
  return b.length === 32 && b.toString('hex') === hex ? b : sha256Bytes(hex);
}
