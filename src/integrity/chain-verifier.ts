import { hash } from 'node:crypto';
import {
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_CHECKPOINT_NOTE,
  ATTR_MLTRAIL_ERASURE_RECORD_REF,
  ATTR_MLTRAIL_KEY_PUBLIC,
  EVENT_MLTRAIL_CHECKPOINT,
  EVENT_MLTRAIL_ERASURE,
} from '../semconv/index.js';
import { canonicalize } from './canonical-json.js';
import { CompactMerkleTree } from './merkle.js';
import { type AuditRecord, type RecordLocation, recordHash } from './record.js';
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
  | 'inconsistent-checkpoint';

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
  duplicates: number;
  problems: Problem[];
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
}

interface Entry {
  hash: string;
  prev: string;
  digest: string;
  bodyHash: string;
  where: RecordLocation | undefined;
  chain: string;
  seq: number;
  erasedBy?: string;
}

interface ChainState {
  entries: Map<number, Entry>;
  lastAdded: number;
  checkpoints: { seq: number; note: string; vkey: string; location: string }[];
  duplicates: number;
  problems: Problem[];
}

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
  readonly #external: { note: string; source: string }[];
  readonly #erasures = new Map<string, { digest: string; location: string }>();
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
  }

  /** Adds a checkpoint held elsewhere (a signed note), checked against the chain it names. */
  addCheckpoint(note: string, source: string): void {
    this.#external.push({ note, source });
  }

  /** Reports a problem found while reading (torn line, malformed record). */
  addProblem(problem: Problem): void {
    if (problem.chain !== undefined) this.#state(problem.chain).problems.push(problem);
    else this.#problems.push(problem);
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
    const existing = st.entries.get(r.seq);
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
    st.lastAdded = Math.max(st.lastAdded, r.seq);
    const expectedHash = recordHash(r.chain, r.seq, r.prev, r.digest);
    if (expectedHash !== r.hash)
      problem('modified', 'record hash does not match its chain fields (chain, seq, prev, digest)');
    if (r.erased_by === undefined) {
      if (`sha256:${bodyHash}` !== r.digest) problem('modified', 'body does not match its digest');
      else this.#checkAttrs(r, problem);
    } else if (r.body !== '') {
      problem('bad-erasure', `record is marked erased by ${r.erased_by} but still has a body`);
    }
    st.entries.set(r.seq, {
      hash: r.hash,
      prev: r.prev,
      digest: r.digest,
      bodyHash,
      where,
      chain: r.chain,
      seq: r.seq,
      erasedBy: r.erased_by,
    });
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

  /** Finishes verification and returns the report. */
  finish(): VerifyReport {
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

  #finishChain(
    chain: string,
    st: ChainState,
    external: { checkpoint: Checkpoint; note: string; source: string }[],
  ): ChainReport {
    const seqs = [...st.entries.keys()].sort((a, b) => a - b);
    const problem = (kind: ProblemKind, message: string, seq?: number, location?: string) =>
      st.problems.push({ kind, chain, seq, location, message });
    const tree = new CompactMerkleTree();
    const roots = new Map<number, Buffer>();
    const wanted = new Set<number>([
      ...st.checkpoints.map((c) => c.seq),
      ...external.map((e) => e.checkpoint.size),
    ]);
    const erased: number[] = [];
    let expected = 0;
    let prevHash: string | undefined;
    if (wanted.has(0)) roots.set(0, tree.root());
    for (const seq of seqs) {
      const e = st.entries.get(seq)!;
      if (seq !== expected) {
        problem(
          'missing',
          `seq ${expected}${seq - 1 > expected ? `..${seq - 1}` : ''} missing before seq ${seq}`,
          expected,
          locate(e, e.where),
        );
        prevHash = undefined;
        // Keep the tree aligned to seq so checkpoint roots after a gap are still checked as far as possible.
        while (tree.size < seq) tree.appendLeafHash(Buffer.alloc(32));
      }
      if (prevHash !== undefined && e.prev !== prevHash)
        problem('modified', 'prev does not match the hash of the previous record', seq, locate(e, e.where));
      if (e.erasedBy !== undefined) {
        const er = this.#erasures.get(`${chain}:${seq}`);
        if (er === undefined)
          problem(
            'bad-erasure',
            `erased by ${e.erasedBy} but no mltrail.erasure record for ${chain}:${seq} was found`,
            seq,
            locate(e, e.where),
          );
        else if (er.digest !== e.digest)
          problem(
            'bad-erasure',
            `the erasure record at ${er.location} names a different digest`,
            seq,
            locate(e, e.where),
          );
        else erased.push(seq);
      }
      tree.appendLeafHash(Buffer.from(e.hash, 'hex'));
      if (wanted.has(tree.size)) roots.set(tree.size, tree.root());
      prevHash = e.hash;
      expected = seq + 1;
    }
    const keys = new Set<string>();
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
    };
    for (const c of st.checkpoints) checkNote(c.note, c.vkey, c.seq, c.location, false);
    for (const x of external) checkNote(x.note, undefined, x.checkpoint.size, x.source, true);
    return {
      chain,
      records: seqs.length,
      firstSeq: seqs[0] ?? -1,
      lastSeq: seqs.at(-1) ?? -1,
      checkpointsVerified: verified,
      keys: [...keys],
      erased,
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
      st = { entries: new Map(), lastAdded: -1, checkpoints: [], duplicates: 0, problems: [] };
      this.#chains.set(chain, st);
    }
    return st;
  }
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
