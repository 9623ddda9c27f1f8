export {
  EVIDENCE_RECIPE,
  type Evidence,
  EvidenceNotFoundError,
  type EvidenceRole,
  type EvidenceTrust,
  gatherEvidence,
  type InclusionEvidence,
  type IntegrityProof,
  type RecordEvidence,
} from './evidence.js';
export { escapeHtml, lineageSvg, renderEvidenceHtml } from './render-html.js';
