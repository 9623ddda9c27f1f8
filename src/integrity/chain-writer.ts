// The generated constants alone: the semconv index also loads the zod schemas (the verifier imports this file).
import {
  ATTR_MLTRAIL_CHECKPOINT_NOTE,
  ATTR_MLTRAIL_CHECKPOINT_ROOT,
  ATTR_MLTRAIL_CHECKPOINT_SIZE,
  ATTR_MLTRAIL_KEY_ID,
  ATTR_MLTRAIL_KEY_PUBLIC,
} from '../semconv/attributes.js';
import { EVENT_MLTRAIL_CHECKPOINT } from '../semconv/events.js';
import { canonicalize } from './canonical-json.js';
import { CompactMerkleTree } from './merkle.js';
import {
  type AuditRecord,
  bodyDigest,
  RECORD_VERSION,
  type RecordAttrs,
  type RecordVersion,
  recordHash,
  ZERO_HASH,
} from './record.js';
import { formatCheckpoint, type NoteSigner } from './signed-note.js';
import { uuidv7 } from './uuidv7.js';

/**
 * One audit event before chaining. The body is the evidence: it holds `event.name`, `timestamp`,
 * `severity_text` and the trace ids itself, and format 2 stores nothing else (the other fields are what
 * the writer already knows, returned in the record for the caller's use; format 1 also writes them).
 */
export interface AuditEventInput {
  event: string;
  sev: 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';
  /** ISO 8601 time. */
  ts: string;
  traceId?: string;
  spanId?: string;
  attrs: RecordAttrs;
  /** Canonical JSON of the event. */
  body: string;
}

/** Options of {@link ChainWriter}. */
export interface ChainWriterOptions {
  signer: NoteSigner;
  /** Defaults to a new UUIDv7. */
  chainId?: string;
  /** Checkpoint origin line; defaults to `mltrail/chain/<chainId>`. */
  origin?: string;
  /** A signed checkpoint after every this many records (default 1000; 0 disables count-based ones). */
  checkpointEvery?: number;
  /** Line format (default 2). Format 1 exists to test reading older journals. */
  version?: RecordVersion;
}

/** A record hash as bytes, for the Merkle tree. */
const LEAF = Buffer.alloc(32);

/** The origin line of a chain's checkpoints. */
export function checkpointOrigin(chainId: string): string {
  return `mltrail/chain/${chainId}`;
}

/**
 * Seals audit events into one hash chain: assigns the gap-free seq, the body digest, the previous hash and
 * the record hash, keeps the RFC 6962 tree over record hashes, and emits signed checkpoint records (C2SP
 * tlog-checkpoint in a C2SP signed note) into the chain itself. No I/O: the owner writes what it returns.
 */
export class ChainWriter {
  readonly chainId: string;
  readonly origin: string;
  readonly version: RecordVersion;
  readonly #signer: NoteSigner;
  readonly #every: number;
  readonly #tree = new CompactMerkleTree();
  #prev = ZERO_HASH;
  #sinceCheckpoint = 0;
  #latest: { note: string; size: number } | undefined;

  constructor(opts: ChainWriterOptions) {
    this.chainId = opts.chainId ?? uuidv7();
    this.origin = opts.origin ?? checkpointOrigin(this.chainId);
    this.#signer = opts.signer;
    this.#every = opts.checkpointEvery ?? 1000;
    this.version = opts.version ?? RECORD_VERSION;
  }

  /** Records sealed so far (including checkpoint records). */
  get size(): number {
    return this.#tree.size;
  }

  /** Seals one event; returns its record, followed by a checkpoint record when one is due by count. */
  append(input: AuditEventInput): AuditRecord[] {
    const out = [this.#seal(input)];
    this.#sinceCheckpoint++;
    if (this.#every > 0 && this.#sinceCheckpoint >= this.#every) out.push(this.checkpoint());
    return out;
  }

  /** Seals a signed checkpoint over every record so far, as a record of the chain. */
  checkpoint(): AuditRecord {
    const size = this.#tree.size;
    const root = this.#tree.root();
    const note = this.#signer.signNote(formatCheckpoint({ origin: this.origin, size, root }));
    const ts = new Date().toISOString();
    const body = canonicalize({
      'event.name': EVENT_MLTRAIL_CHECKPOINT,
      timestamp: ts,
      ...(this.version === 2 ? { severity_text: 'INFO' } : {}),
      [ATTR_MLTRAIL_CHECKPOINT_NOTE]: note,
      [ATTR_MLTRAIL_CHECKPOINT_SIZE]: size,
      [ATTR_MLTRAIL_CHECKPOINT_ROOT]: root.toString('base64'),
      [ATTR_MLTRAIL_KEY_ID]: this.#signer.keyId,
      [ATTR_MLTRAIL_KEY_PUBLIC]: this.#signer.verifierKey,
    });
    this.#latest = { note, size };
    this.#sinceCheckpoint = 0;
    return this.#seal({
      event: EVENT_MLTRAIL_CHECKPOINT,
      sev: 'INFO',
      ts,
      attrs: { [ATTR_MLTRAIL_CHECKPOINT_SIZE]: size, [ATTR_MLTRAIL_KEY_ID]: this.#signer.keyId },
      body,
    });
  }

  /** The latest checkpoint this writer signed. */
  latestCheckpoint(): { note: string; size: number } | undefined {
    return this.#latest;
  }

  #seal(input: AuditEventInput): AuditRecord {
    const seq = this.#tree.size;
    const digest = bodyDigest(input.body);
    const hash = recordHash(this.chainId, seq, this.#prev, digest, this.version);
    const record: AuditRecord = {
      v: this.version,
      chain: this.chainId,
      seq,
      ts: input.ts,
      event: input.event,
      sev: input.sev,
      attrs: input.attrs,
      body: input.body,
      digest,
      prev: this.#prev,
      hash,
    };
    if (input.traceId !== undefined) record.trace_id = input.traceId;
    if (input.spanId !== undefined) record.span_id = input.spanId;
    // Decoded into one reused buffer (the tree copies it): no Buffer per record.
    LEAF.write(hash, 0, 'hex');
    this.#tree.appendLeafHash(LEAF);
    this.#prev = hash;
    return record;
  }
}
