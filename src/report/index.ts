export { type Evidence, EvidenceNotFoundError, gatherEvidence, type IntegrityProof } from './evidence.js';
export { escapeHtml, lineageSvg, renderEvidenceHtml } from './render-html.js';
