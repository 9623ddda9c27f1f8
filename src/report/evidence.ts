import {
  type AuditRecord,
  ChainVerifier,
  inclusionProof,
  judgeTrust,
  parseCheckpoint,
  parseNote,
  parseRecordLine,
  parseVerifier,
  rootOf,
  TOFU_BASIS,
  type TrustBasis,
  type TrustVerdict,
  verifyInclusion,
  verifyNote,
} from '../integrity/index.js';
import { LineageGraph, type LineageNode, type LineageResult } from '../lineage/index.js';
import * as sc from '../semconv/index.js';
import { JournalReader } from '../sources/journal-reader.js';
import { addCheckpointFiles, readIntoVerifier } from '../sources/record-sources.js';

/** Everything the evidence report shows, gathered from the journal (also returned for `--json`). */
export interface Evidence {
  subject: { kind: 'prediction' | 'model'; id: string };
  generatedAt: string;
  journal: string;
  prediction?: Record<string, unknown>;
  decisions: Record<string, unknown>[];
  feedback: Record<string, unknown>[];
  model?: Record<string, unknown>;
  training?: Record<string, unknown>;
  evaluations: Record<string, unknown>[];
  deployments: Record<string, unknown>[];
  drift: Record<string, unknown>[];
  lineage: LineageResult;
  integrity: IntegrityProof;
}

/** What a shown record is in the report. */
export type EvidenceRole =
  | 'prediction'
  | 'decision'
  | 'feedback'
  | 'model'
  | 'training'
  | 'evaluation'
  | 'deployment'
  | 'dataset'
  | 'transform';

/**
 * The proof of one record the report shows, complete enough to check with standard tools and no journal:
 * the line as stored, its body, the signed checkpoint note and the RFC 6962 inclusion path from the
 * record hash (the leaf) to the note's root.
 */
export interface RecordEvidence {
  role: EvidenceRole;
  /** The journal line exactly as stored. */
  line: string;
  /** Where it was read (`file:line`). */
  location: string;
  /** The fields the record hash covers. */
  record: { chain: string; seq: number; prev: string; hash: string; digest: string; erased_by?: string };
  /** The body (canonical JSON) whose SHA-256 is the digest; empty when erased. */
  body: string;
  /** True when a checkpoint signed by a trusted key (or, without one, the declared key) includes it. */
  covered: boolean;
  proof?: InclusionEvidence;
}

/** An RFC 6962 inclusion proof against a signed checkpoint (hashes as lower-case hex). */
export interface InclusionEvidence {
  /** The record's seq: its leaf index. */
  leafIndex: number;
  /** The checkpoint's tree size. */
  treeSize: number;
  /** The record hash (the leaf hash). */
  leafHash: string;
  /** Sibling hashes from the leaf up, as RFC 6962 / RFC 9162 define the audit path. */
  path: string[];
  /** The root the path leads to (the checkpoint's root hash, in hex). */
  root: string;
  checkpoint: {
    /** The C2SP signed note (tlog-checkpoint text, blank line, signature lines). */
    note: string;
    origin: string;
    /** The verifier key the signature was checked with (`<name>+<key id>+<key>`). */
    verifierKey: string;
    /** `pinned` (given by the reader) or `declared` (trust on first use). */
    trust: 'pinned' | 'declared';
    /** Where the checkpoint was found. */
    location: string;
  };
  signatureValid: boolean;
  inclusionValid: boolean;
}

/** The integrity proof of everything the report shows, and the verdict on the whole journal. */
export interface IntegrityProof {
  /**
   * True only when a key was pinned, the whole journal verifies under it (every chain covered, no
   * problems) and every shown record is included in a checkpoint signed by it.
   */
  verified: boolean;
  /** `verified: pinned key …, covered by checkpoint size N` or `NOT VERIFIED: <reason>`. */
  badge: string;
  /** The trust basis in words. */
  basis: string;
  trust: TrustVerdict;
  journalIntact: boolean;
  problems: string[];
  /** Every record the report shows, with its proof. */
  records: RecordEvidence[];
  /** How to check `records` with standard tools. */
  recipe: string;
  /** The subject's record (the first of `records`), kept for readers of earlier reports. */
  record?: { chain: string; seq: number; hash: string; digest: string };
  checkpoint?: { source: string; size: number; root: string; signer: string; signatureValid: boolean };
  inclusionProof: string[];
  inclusionValid: boolean;
}

/** The trust a report is judged against: the options `verify` takes. */
export interface EvidenceTrust extends TrustBasis {
  /** Checkpoints held elsewhere (signed notes). */
  checkpoints?: readonly { note: string; source: string }[];
}

/** Thrown when the subject of a report is not in the journal. */
export class EvidenceNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvidenceNotFoundError';
  }
}

// Record kinds there is one of per prediction: a report keeps only those that name its subject, so the
// memory it needs follows the size of the pipeline, not the traffic.
const PER_PREDICTION = new Set<string>([sc.EVENT_ML_PREDICTION, sc.EVENT_ML_DECISION, sc.EVENT_ML_FEEDBACK]);
const PIPELINE = new Set<string>([
  sc.EVENT_ML_MODEL_REGISTERED,
  sc.EVENT_ML_TRAINING_COMPLETED,
  sc.EVENT_ML_EVALUATION_COMPLETED,
  sc.EVENT_ML_DEPLOYMENT_COMPLETED,
  sc.EVENT_ML_DRIFT_DETECTED,
]);

/** The record hashes of each chain by seq, 32 bytes each: the leaves of the inclusion proof. */
class ChainLeaves {
  #buf = Buffer.alloc(32 * 1024);
  #present = new Uint8Array(1024);

  set(seq: number, hashHex: string): void {
    if (!Number.isSafeInteger(seq) || seq < 0 || hashHex.length !== 64) return;
    while ((seq + 1) * 32 > this.#buf.length) {
      const bigger = Buffer.alloc(this.#buf.length * 2);
      this.#buf.copy(bigger);
      this.#buf = bigger;
      const present = new Uint8Array(this.#present.length * 2);
      present.set(this.#present);
      this.#present = present;
    }
    this.#buf.write(hashHex, seq * 32, 'hex');
    this.#present[seq] = 1;
  }

  /** Leaves 0..size-1, or undefined when one of them was not read. */
  upTo(size: number): Buffer[] | undefined {
    if (size * 32 > this.#buf.length) return undefined;
    const out: Buffer[] = [];
    for (let i = 0; i < size; i++) {
      if (this.#present[i] !== 1) return undefined;
      out.push(this.#buf.subarray(i * 32, i * 32 + 32));
    }
    return out;
  }
}

/** A record kept for the report: parsed, its body, and its line as stored. */
interface Kept {
  r: AuditRecord;
  b: Record<string, unknown>;
  line: string;
  location: string;
}

/**
 * Gathers the evidence for one prediction (its decision, model, training, data, deployments, drift and the
 * integrity proof of every record shown) or one model version. Streams the journal once for the evidence
 * and once to verify it against `trust` (as `mltrail verify` does); of the per-prediction records it keeps
 * only those naming the subject.
 */
export function gatherEvidence(
  dir: string,
  subject: { prediction?: string; model?: string },
  trust: EvidenceTrust = { trustedKeys: [] },
): Evidence {
  const graph = new LineageGraph();
  const pipeline: Kept[] = [];
  const lineageRecords = new Map<string, Kept>();
  const declaredKeys = new Map<string, string>();
  const leaves = new Map<string, ChainLeaves>();
  const body = (r: AuditRecord) =>
    r.body === '' ? { ...r.attrs, erased: true } : (JSON.parse(r.body) as Record<string, unknown>);
  const keep = (r: AuditRecord, l: { text: string; file: string; line: number }): Kept => ({
    r,
    b: body(r),
    line: l.text,
    location: `${l.file}:${l.line}`,
  });
  const predictionId = subject.prediction;
  // The id as it appears inside a canonical JSON body, for a cheap test before parsing.
  const needle = predictionId === undefined ? undefined : JSON.stringify(predictionId).slice(1, -1);
  let predictionRecord: Kept | undefined;
  const decisionsFound: Kept[] = [];
  const feedbackFound: Kept[] = [];
  for (const l of new JournalReader(dir).lines()) {
    const r = parseRecordLine(l.text, l);
    let chainLeaves = leaves.get(r.chain);
    if (chainLeaves === undefined) leaves.set(r.chain, (chainLeaves = new ChainLeaves()));
    chainLeaves.set(r.seq, r.hash);
    if (PER_PREDICTION.has(r.event)) {
      if (needle === undefined || !r.body.includes(needle)) continue;
      const k = keep(r, l);
      if (k.b[sc.ATTR_ML_PREDICTION_ID] !== predictionId) continue;
      graph.add(r);
      if (r.event === sc.EVENT_ML_PREDICTION) predictionRecord ??= k;
      else if (r.event === sc.EVENT_ML_DECISION) decisionsFound.push(k);
      else feedbackFound.push(k);
      continue;
    }
    graph.add(r);
    if (PIPELINE.has(r.event)) pipeline.push(keep(r, l));
    else if (r.event === sc.EVENT_ML_DATASET_REGISTERED || r.event === sc.EVENT_ML_TRANSFORM_COMPLETED)
      lineageRecords.set(`${r.chain}:${r.seq}`, keep(r, l));
    else if (r.event === sc.EVENT_MLTRAIL_CHECKPOINT && r.body !== '') {
      const vkey = body(r)[sc.ATTR_MLTRAIL_KEY_PUBLIC];
      if (typeof vkey === 'string') {
        const [name, id] = vkey.split('+');
        declaredKeys.set(`${name}+${id}`, vkey);
      }
    }
  }
  const where = (event: string, key: string, value: unknown) =>
    pipeline.filter((x) => x.r.event === event && x.b[key] === value);

  let kind: 'prediction' | 'model';
  let id: string;
  let modelName: string | undefined;
  let modelVersion: string | undefined;
  if (predictionId !== undefined) {
    kind = 'prediction';
    id = predictionId;
    if (predictionRecord === undefined) {
      const named = graph.resolve(id);
      throw new EvidenceNotFoundError(
        named?.kind === 'prediction'
          ? `prediction ${id} has no record in ${dir} (erased under GDPR Art. 17, or not in this journal); ${graph.outputsOf(id).length} decision/feedback record(s) name it: mltrail lineage ${id}`
          : `no prediction ${id} in ${dir}`,
      );
    }
    modelName = predictionRecord.b[sc.ATTR_ML_MODEL_NAME] as string | undefined;
    modelVersion = predictionRecord.b[sc.ATTR_ML_MODEL_VERSION] as string | undefined;
  } else if (subject.model !== undefined) {
    kind = 'model';
    const node = graph.resolve(subject.model);
    if (node === undefined || node.kind !== 'model') {
      throw new EvidenceNotFoundError(
        `no model version ${subject.model} in ${dir} (use name@version or the sha256 digest)`,
      );
    }
    id = node.id;
    [modelName, modelVersion] = [
      node.facts[sc.ATTR_ML_MODEL_NAME] as string,
      node.facts[sc.ATTR_ML_MODEL_VERSION] as string,
    ];
  } else {
    throw new EvidenceNotFoundError('a prediction id or a model version is required');
  }
  const registered = pipeline.find(
    (x) =>
      x.r.event === sc.EVENT_ML_MODEL_REGISTERED &&
      x.b[sc.ATTR_ML_MODEL_NAME] === modelName &&
      x.b[sc.ATTR_ML_MODEL_VERSION] === modelVersion,
  );
  const runId = registered?.b[sc.ATTR_ML_RUN_ID];
  const training =
    runId !== undefined ? where(sc.EVENT_ML_TRAINING_COMPLETED, sc.ATTR_ML_RUN_ID, runId)[0] : undefined;
  const evaluations =
    runId !== undefined ? where(sc.EVENT_ML_EVALUATION_COMPLETED, sc.ATTR_ML_RUN_ID, runId) : [];
  const deployments = pipeline.filter(
    (x) => x.r.event === sc.EVENT_ML_DEPLOYMENT_COMPLETED && x.b[sc.ATTR_ML_MODEL_NAME] === modelName,
  );
  const drift = pipeline
    .filter(
      (x) =>
        x.r.event === sc.EVENT_ML_DRIFT_DETECTED &&
        x.b[sc.ATTR_ML_MODEL_NAME] === modelName &&
        x.b[sc.ATTR_ML_MODEL_VERSION] === modelVersion,
    )
    .map((x) => x.b);
  const upstream = graph.query(id, 'upstream');
  const downstream = kind === 'prediction' ? graph.query(id, 'downstream') : { nodes: [], edges: [] };
  const lineage: LineageResult = {
    root: upstream.root,
    nodes: dedupeNodes([...upstream.nodes, ...downstream.nodes]),
    edges: [...upstream.edges, ...downstream.edges],
  };
  // Every record the report shows, the subject first.
  const shown: { role: EvidenceRole; k: Kept }[] = [];
  if (predictionRecord !== undefined) shown.push({ role: 'prediction', k: predictionRecord });
  if (kind === 'model' && registered !== undefined) shown.push({ role: 'model', k: registered });
  for (const k of decisionsFound) shown.push({ role: 'decision', k });
  for (const k of feedbackFound) shown.push({ role: 'feedback', k });
  if (kind === 'prediction' && registered !== undefined) shown.push({ role: 'model', k: registered });
  if (training !== undefined) shown.push({ role: 'training', k: training });
  for (const k of evaluations) shown.push({ role: 'evaluation', k });
  for (const k of deployments) shown.push({ role: 'deployment', k });
  const listed = new Set<string>();
  for (const n of lineage.nodes) {
    const k = n.record !== undefined ? lineageRecords.get(n.record) : undefined;
    // A transform's record defines both the transform and the dataset it produced: show it once.
    if (k === undefined || listed.has(n.record!)) continue;
    listed.add(n.record!);
    shown.push({ role: k.r.event === sc.EVENT_ML_DATASET_REGISTERED ? 'dataset' : 'transform', k });
  }
  return {
    subject: { kind, id },
    generatedAt: new Date().toISOString(),
    journal: dir,
    prediction: predictionRecord?.b,
    decisions: decisionsFound.map((k) => k.b),
    feedback: feedbackFound.map((k) => k.b),
    model: registered?.b,
    training: training?.b,
    evaluations: evaluations.map((k) => k.b),
    deployments: deployments.map((k) => k.b),
    drift,
    lineage,
    integrity: prove(dir, leaves, shown, declaredKeys, trust),
  };
}

function dedupeNodes(nodes: LineageNode[]): LineageNode[] {
  const seen = new Map<string, LineageNode>();
  for (const n of nodes) seen.set(n.id, n);
  return [...seen.values()];
}

/** How a third party checks `integrity.records` with standard tools (docs/integrity.md has the same). */
export const EVIDENCE_RECIPE = `For each record in integrity.records (jq, sha256sum, openssl, python3):
1. Body: printf %s "$body" | sha256sum  → equals record.digest without "sha256:".
2. Record hash: the RFC 6962 leaf hash of the leaf data the line's format defines (docs/integrity.md,
   "The record hash"), from record.chain, record.seq, record.prev and the digest → equals record.hash
   (= proof.leafHash).
3. Inclusion: fold proof.path into proof.leafHash at index proof.leafIndex in a tree of proof.treeSize leaves
   (RFC 9162 section 2.1.3.2; any RFC 6962 library: Go transparency-dev/merkle proof.VerifyInclusion) →
   equals proof.root.
4. Checkpoint: proof.checkpoint.note is a C2SP signed note; its second line is proof.treeSize, its third
   the base64 of proof.root, its first the origin mltrail/chain/<record.chain>. Verify its Ed25519
   signature with proof.checkpoint.verifierKey (Go golang.org/x/mod/sumdb/note, or openssl pkeyutl -verify
   -rawin over the note text with the key's last 32 bytes) — and check that key is the one you trust.`;

/** Inclusion of every shown record in a signed checkpoint, plus a full verification of the journal. */
function prove(
  dir: string,
  leaves: Map<string, ChainLeaves>,
  shown: { role: EvidenceRole; k: Kept }[],
  declaredKeys: Map<string, string>,
  trust: EvidenceTrust,
): IntegrityProof {
  const verifier = new ChainVerifier({ trustedKeys: trust.trustedKeys, checkpoints: trust.checkpoints });
  const summary = readIntoVerifier(dir, verifier);
  addCheckpointFiles(summary, verifier);
  const judged = judgeTrust(verifier.finish(), trust);
  const report = judged.report;
  const verdict = judged.verdict;
  const problems = [...report.problems, ...report.chains.flatMap((c) => c.problems)].map(
    (p) => `${p.kind}${p.location ? ` at ${p.location}` : ''}: ${p.message}`,
  );
  const pinned = new Map<string, string>();
  for (const k of trust.trustedKeys) {
    const [name, id] = k.trim().split('+');
    pinned.set(`${name}+${id}`, k.trim());
  }
  const records: RecordEvidence[] = shown.map(({ role, k }) => {
    const r = k.r;
    const ev: RecordEvidence = {
      role,
      line: k.line,
      location: k.location,
      record: {
        chain: r.chain,
        seq: r.seq,
        prev: r.prev,
        hash: r.hash,
        digest: r.digest,
        ...(r.erased_by !== undefined ? { erased_by: r.erased_by } : {}),
      },
      body: r.body,
      covered: false,
    };
    const c = verdict.chains.find((x) => x.chain === r.chain);
    const sig = report.chains
      .find((x) => x.chain === r.chain)
      ?.signatures.find((s) => s.size === c?.covered?.checkpointSize && s.location === c?.covered?.location);
    if (c?.covered === undefined || sig === undefined || r.seq >= sig.size) return ev;
    const chainLeaves = leaves.get(r.chain)?.upTo(sig.size);
    if (chainLeaves === undefined) return ev;
    const cp = parseCheckpoint(parseNote(sig.note).text);
    const path = inclusionProof(chainLeaves, r.seq);
    const vkey = verdict.mode === 'pinned' ? pinned.get(sig.key) : declaredKeys.get(sig.key);
    let signatureValid = false;
    try {
      signatureValid = vkey !== undefined && verifyNote(sig.note, parseVerifier(vkey));
    } catch {
      signatureValid = false;
    }
    const leaf = Buffer.from(r.hash, 'hex');
    const inclusionValid =
      leaf.length === 32 &&
      verifyInclusion(r.seq, sig.size, leaf, path, cp.root) &&
      rootOf(chainLeaves).equals(cp.root);
    ev.proof = {
      leafIndex: r.seq,
      treeSize: sig.size,
      leafHash: r.hash,
      path: path.map((p) => p.toString('hex')),
      root: cp.root.toString('hex'),
      checkpoint: {
        note: sig.note,
        origin: cp.origin,
        verifierKey: vkey ?? sig.key,
        trust: verdict.mode === 'pinned' ? 'pinned' : 'declared',
        location: sig.location,
      },
      signatureValid,
      inclusionValid,
    };
    ev.covered = signatureValid && inclusionValid;
    return ev;
  });
  const subject = records[0];
  let reason: string | undefined;
  if (verdict.mode !== 'pinned')
    reason = `no trusted key given (${TOFU_BASIS}): the records are checked only against the key the journal itself declares; pass --trusted-key`;
  else if (!report.ok) reason = `the journal has ${problems.length} problem(s): ${problems[0]}`;
  else {
    const uncovered = records.find((x) => !x.covered);
    if (uncovered !== undefined)
      reason = `the ${uncovered.role} record ${uncovered.record.chain}:${uncovered.record.seq} is not covered by a checkpoint signed by a trusted key`;
    else if (!verdict.verified)
      reason = verdict.reasons[0] ?? 'not every record is covered by a trusted signature';
  }
  let badge: string;
  if (reason === undefined && subject?.proof !== undefined) {
    const sizes = [
      ...new Set(
        records.map((x) =>
          x.record.chain === subject.record.chain
            ? `checkpoint size ${x.proof!.treeSize}`
            : `checkpoint size ${x.proof!.treeSize} of chain ${x.record.chain}`,
        ),
      ),
    ];
    badge = `verified: pinned key ${subject.proof.checkpoint.verifierKey.split('+').slice(0, 2).join('+')}, covered by ${sizes.join(', ')}`;
  } else badge = `NOT VERIFIED: ${reason ?? 'no record to prove'}`;
  return {
    verified: reason === undefined && subject !== undefined,
    badge,
    basis: verdict.basis,
    trust: verdict,
    journalIntact: report.ok,
    problems,
    records,
    recipe: EVIDENCE_RECIPE,
    record:
      subject === undefined
        ? undefined
        : {
            chain: subject.record.chain,
            seq: subject.record.seq,
            hash: subject.record.hash,
            digest: subject.record.digest,
          },
    checkpoint:
      subject?.proof === undefined
        ? undefined
        : {
            source: subject.proof.checkpoint.location,
            size: subject.proof.treeSize,
            root: Buffer.from(subject.proof.root, 'hex').toString('base64'),
            signer: subject.proof.checkpoint.verifierKey,
            signatureValid: subject.proof.signatureValid,
          },
    inclusionProof: subject?.proof?.path.map((h) => Buffer.from(h, 'hex').toString('base64')) ?? [],
    inclusionValid: subject?.proof?.inclusionValid === true,
  };
}
