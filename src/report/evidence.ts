import { readFileSync } from 'node:fs';
import {
  type AuditRecord,
  ChainVerifier,
  inclusionProof,
  parseCheckpoint,
  parseNote,
  parseRecordLine,
  parseVerifier,
  rootOf,
  verifyInclusion,
  verifyNote,
} from '../integrity/index.js';
import { readIntoVerifier } from '../integrity/record-sources.js';
import { JournalReader } from '../journal/index.js';
import { LineageGraph, type LineageNode, type LineageResult } from '../lineage/index.js';
import * as sc from '../semconv/index.js';

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

/** The integrity proof of the subject's audit record. */
export interface IntegrityProof {
  record?: { chain: string; seq: number; hash: string; digest: string };
  checkpoint?: { source: string; size: number; root: string; signer: string; signatureValid: boolean };
  inclusionProof: string[];
  inclusionValid: boolean;
  journalIntact: boolean;
  problems: string[];
  /** True only when the record is included in a validly signed checkpoint and the whole journal verifies. */
  verified: boolean;
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

/**
 * Gathers the evidence for one prediction (its decision, model, training, data, deployments, drift and the
 * integrity proof of its record) or one model version. Streams the journal once for the evidence and once
 * to verify it; of the per-prediction records it keeps only those naming the subject.
 */
export function gatherEvidence(dir: string, subject: { prediction?: string; model?: string }): Evidence {
  const graph = new LineageGraph();
  const pipeline: { r: AuditRecord; b: Record<string, unknown> }[] = [];
  const checkpoints: AuditRecord[] = [];
  const leaves = new Map<string, ChainLeaves>();
  const body = (r: AuditRecord) =>
    r.body === '' ? { ...r.attrs, erased: true } : (JSON.parse(r.body) as Record<string, unknown>);
  const predictionId = subject.prediction;
  // The id as it appears inside a canonical JSON body, for a cheap test before parsing.
  const needle = predictionId === undefined ? undefined : JSON.stringify(predictionId).slice(1, -1);
  let predictionRecord: { r: AuditRecord; b: Record<string, unknown> } | undefined;
  const decisionsFound: Record<string, unknown>[] = [];
  const feedbackFound: Record<string, unknown>[] = [];
  for (const l of new JournalReader(dir).lines()) {
    const r = parseRecordLine(l.text, l);
    let chainLeaves = leaves.get(r.chain);
    if (chainLeaves === undefined) leaves.set(r.chain, (chainLeaves = new ChainLeaves()));
    chainLeaves.set(r.seq, r.hash);
    if (PER_PREDICTION.has(r.event)) {
      if (needle === undefined || !r.body.includes(needle)) continue;
      const b = body(r);
      if (b[sc.ATTR_ML_PREDICTION_ID] !== predictionId) continue;
      graph.add(r);
      if (r.event === sc.EVENT_ML_PREDICTION) predictionRecord ??= { r, b };
      else if (r.event === sc.EVENT_ML_DECISION) decisionsFound.push(b);
      else feedbackFound.push(b);
      continue;
    }
    graph.add(r);
    if (PIPELINE.has(r.event)) pipeline.push({ r, b: body(r) });
    else if (r.event === sc.EVENT_MLTRAIL_CHECKPOINT) checkpoints.push(r);
  }
  const where = (event: string, key: string, value: unknown) =>
    pipeline.filter((x) => x.r.event === event && x.b[key] === value);

  let kind: 'prediction' | 'model';
  let id: string;
  let subjectRecord: AuditRecord | undefined;
  let prediction: Record<string, unknown> | undefined;
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
    subjectRecord = predictionRecord.r;
    prediction = predictionRecord.b;
    modelName = prediction[sc.ATTR_ML_MODEL_NAME] as string | undefined;
    modelVersion = prediction[sc.ATTR_ML_MODEL_VERSION] as string | undefined;
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
  if (kind === 'model') subjectRecord = registered?.r;
  const runId = registered?.b[sc.ATTR_ML_RUN_ID];
  const training =
    runId !== undefined ? where(sc.EVENT_ML_TRAINING_COMPLETED, sc.ATTR_ML_RUN_ID, runId)[0]?.b : undefined;
  const evaluations =
    runId !== undefined
      ? where(sc.EVENT_ML_EVALUATION_COMPLETED, sc.ATTR_ML_RUN_ID, runId).map((x) => x.b)
      : [];
  const deployments = pipeline
    .filter((x) => x.r.event === sc.EVENT_ML_DEPLOYMENT_COMPLETED && x.b[sc.ATTR_ML_MODEL_NAME] === modelName)
    .map((x) => x.b);
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
  return {
    subject: { kind, id },
    generatedAt: new Date().toISOString(),
    journal: dir,
    prediction,
    decisions: decisionsFound,
    feedback: feedbackFound,
    model: registered?.b,
    training,
    evaluations,
    deployments,
    drift,
    lineage,
    integrity: prove(dir, checkpoints, leaves, subjectRecord),
  };
}

function dedupeNodes(nodes: LineageNode[]): LineageNode[] {
  const seen = new Map<string, LineageNode>();
  for (const n of nodes) seen.set(n.id, n);
  return [...seen.values()];
}

/** Inclusion of the subject's record in a signed checkpoint, plus a full verification of the journal. */
function prove(
  dir: string,
  checkpoints: AuditRecord[],
  leaves: Map<string, ChainLeaves>,
  r: AuditRecord | undefined,
): IntegrityProof {
  const verifier = new ChainVerifier();
  const summary = readIntoVerifier(dir, verifier);
  const notes = summary.checkpointFiles.map((f) => ({ note: readFileSync(f, 'utf8'), source: f }));
  for (const n of notes) verifier.addCheckpoint(n.note, n.source);
  const report = verifier.finish();
  const problems = [...report.problems, ...report.chains.flatMap((c) => c.problems)].map(
    (p) => `${p.kind}${p.location ? ` at ${p.location}` : ''}: ${p.message}`,
  );
  const proof: IntegrityProof = {
    inclusionProof: [],
    inclusionValid: false,
    journalIntact: report.ok,
    problems,
    verified: false,
  };
  if (r === undefined) return proof;
  proof.record = { chain: r.chain, seq: r.seq, hash: r.hash, digest: r.digest };
  const chain = checkpoints.filter((x) => x.chain === r.chain).sort((a, b) => a.seq - b.seq);
  // The first checkpoint that covers the record: in the chain itself, else the checkpoint file.
  const candidates: { note: string; source: string; key?: string }[] = [];
  for (const x of chain) {
    if (x.body === '') continue;
    const b = JSON.parse(x.body) as Record<string, unknown>;
    candidates.push({
      note: String(b[sc.ATTR_MLTRAIL_CHECKPOINT_NOTE]),
      source: `${x.chain}:${x.seq}`,
      key: String(b[sc.ATTR_MLTRAIL_KEY_PUBLIC]),
    });
  }
  const key = candidates.find((c) => c.key !== undefined)?.key;
  for (const n of notes) candidates.push({ note: n.note, source: n.source, key });
  for (const c of candidates) {
    let size: number;
    let root: Buffer;
    try {
      const cp = parseCheckpoint(parseNote(c.note).text);
      if (cp.origin !== `mltrail/chain/${r.chain}`) continue;
      size = cp.size;
      root = cp.root;
    } catch {
      continue;
    }
    if (size <= r.seq) continue;
    const chainLeaves = leaves.get(r.chain)?.upTo(size);
    if (chainLeaves === undefined) break;
    const path = inclusionProof(chainLeaves, r.seq);
    let signatureValid = false;
    let signer = 'unknown';
    try {
      const v = parseVerifier(c.key ?? '');
      signer = v.verifierKey;
      signatureValid = verifyNote(c.note, v);
    } catch {
      signatureValid = false;
    }
    proof.checkpoint = { source: c.source, size, root: root.toString('base64'), signer, signatureValid };
    proof.inclusionProof = path.map((p) => p.toString('base64'));
    proof.inclusionValid =
      verifyInclusion(r.seq, size, Buffer.from(r.hash, 'hex'), path, root) &&
      rootOf(chainLeaves).equals(root);
    break;
  }
  proof.verified = proof.inclusionValid && proof.checkpoint?.signatureValid === true && proof.journalIntact;
  return proof;
}
