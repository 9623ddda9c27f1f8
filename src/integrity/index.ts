export { CanonicalJsonError, canonicalize } from './canonical-json.js';
export {
  type ChainReport,
  ChainVerifier,
  type ChainVerifierOptions,
  type Problem,
  type ProblemKind,
  type SignedCheckpoint,
  type VerifyReport,
} from './chain-verifier.js';
export {
  type AuditEventInput,
  ChainWriter,
  type ChainWriterOptions,
  checkpointOrigin,
} from './chain-writer.js';
export {
  CompactMerkleTree,
  consistencyProof,
  EMPTY_ROOT,
  inclusionProof,
  leafHash,
  nodeHash,
  rootOf,
  verifyConsistency,
  verifyInclusion,
} from './merkle.js';
export { parseOtlpLogRecord } from './otlp-record.js';
export {
  type AuditRecord,
  bodyDigest,
  checkRecord,
  lineEventName,
  lookupAttributes,
  parseRecordLine,
  RECORD_VERSION,
  type RecordAttrs,
  RecordFormatError,
  type RecordLocation,
  type RecordVersion,
  recordHash,
  recordLeafData,
  SEVERITIES,
  serializeRecord,
  ZERO_HASH,
} from './record.js';
export {
  type Checkpoint,
  formatCheckpoint,
  generateSigner,
  keyId,
  NoteError,
  type NoteSigner,
  type NoteVerifier,
  parseCheckpoint,
  parseNote,
  parseSigner,
  parseVerifier,
  verifyNote,
} from './signed-note.js';
export { GENERATED_KEY_FILE, loadSigningKey, type SigningKeyOptions } from './signing-key.js';
export {
  type ChainTrust,
  type ChainTrustStatus,
  judgeTrust,
  range,
  type SeqRange,
  TOFU_BASIS,
  type TrustBasis,
  type TrustVerdict,
} from './trust-verdict.js';
export { uuidv7, uuidv7Time } from './uuidv7.js';
