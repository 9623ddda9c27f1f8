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

/**
 * Gathers the evidence for one prediction (its decision, model, training, data, deployments, drift and the
 * integrity proof of its record) or one model version, reading the journal once for records and once to
 * verify it.
 */
export function gatherEvidence(dir: string, subject: { prediction?: string; model?: string }): Evidence {
  const records: AuditRecord[] = [];
  for (const l of new JournalReader(dir).lines()) records.push(parseRecordLine(l.text, l));
  const graph = new LineageGraph();
  for (const r of records) graph.add(r);
  const body = (r: AuditRecord) =>
    r.body === '' ? { ...r.attrs, erased: true } : (JSON.parse(r.body) as Record<string, unknown>);
  const where = (event: string, key: string, value: unknown) =>
    records
      .filter((r) => r.event === event)
      .map((r) => ({ r, b: body(r) }))
      .filter((x) => x.b[key] === value);

  let kind: 'prediction' | 'model';
  let id: string;
  let subjectRecord: AuditRecord | undefined;
  let prediction: Record<string, unknown> | undefined;
  let modelName: string | undefined;
  let modelVersion: string | undefined;
  if (subject.prediction !== undefined) {
    kind = 'prediction';
    id = subject.prediction;
    const p = where(sc.EVENT_ML_PREDICTION, sc.ATTR_ML_PREDICTION_ID, id)[0];
    if (p === undefined) throw new EvidenceNotFoundError(`no prediction ${id} in ${dir}`);
    subjectRecord = p.r;
    prediction = p.b;
    modelName = p.b[sc.ATTR_ML_MODEL_NAME] as string | undefined;
    modelVersion = p.b[sc.ATTR_ML_MODEL_VERSION] as string | undefined;
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
  const registered = records
    .filter((r) => r.event === sc.EVENT_ML_MODEL_REGISTERED)
    .map((r) => ({ r, b: body(r) }))
    .find((x) => x.b[sc.ATTR_ML_MODEL_NAME] === modelName && x.b[sc.ATTR_ML_MODEL_VERSION] === modelVersion);
  if (kind === 'model') subjectRecord = registered?.r;
  const runId = registered?.b[sc.ATTR_ML_RUN_ID];
  const training =
    runId !== undefined ? where(sc.EVENT_ML_TRAINING_COMPLETED, sc.ATTR_ML_RUN_ID, runId)[0]?.b : undefined;
  const evaluations =
    runId !== undefined
      ? where(sc.EVENT_ML_EVALUATION_COMPLETED, sc.ATTR_ML_RUN_ID, runId).map((x) => x.b)
      : [];
  const deployments = records
    .filter((r) => r.event === sc.EVENT_ML_DEPLOYMENT_COMPLETED)
    .map((r) => body(r))
    .filter((b) => b[sc.ATTR_ML_MODEL_NAME] === modelName);
  const drift = records
    .filter((r) => r.event === sc.EVENT_ML_DRIFT_DETECTED)
    .map((r) => body(r))
    .filter((b) => b[sc.ATTR_ML_MODEL_NAME] === modelName && b[sc.ATTR_ML_MODEL_VERSION] === modelVersion);
  const decisions =
    kind === 'prediction' ? where(sc.EVENT_ML_DECISION, sc.ATTR_ML_PREDICTION_ID, id).map((x) => x.b) : [];
  const feedback =
    kind === 'prediction' ? where(sc.EVENT_ML_FEEDBACK, sc.ATTR_ML_PREDICTION_ID, id).map((x) => x.b) : [];
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
    decisions,
    feedback,
    model: registered?.b,
    training,
    evaluations,
    deployments,
    drift,
    lineage,
    integrity: prove(dir, records, subjectRecord),
  };
}

function dedupeNodes(nodes: LineageNode[]): LineageNode[] {
  const seen = new Map<string, LineageNode>();
  for (const n of nodes) seen.set(n.id, n);
  return [...seen.values()];
}

/** Inclusion of the subject's record in a signed checkpoint, plus a full verification of the journal. */
function prove(dir: string, records: AuditRecord[], r: AuditRecord | undefined): IntegrityProof {
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
  const chain = records.filter((x) => x.chain === r.chain).sort((a, b) => a.seq - b.seq);
  // The first checkpoint that covers the record: in the chain itself, else the checkpoint file.
  const candidates: { note: string; source: string; key?: string }[] = [];
  for (const x of chain) {
    if (x.event !== sc.EVENT_MLTRAIL_CHECKPOINT || x.body === '') continue;
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
    const leaves = chain.slice(0, size).map((x) => Buffer.from(x.hash, 'hex'));
    if (leaves.length !== size) break;
    const path = inclusionProof(leaves, r.seq);
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
      verifyInclusion(r.seq, size, Buffer.from(r.hash, 'hex'), path, root) && rootOf(leaves).equals(root);
    break;
  }
  proof.verified = proof.inclusionValid && proof.checkpoint?.signatureValid === true && proof.journalIntact;
  return proof;
}
