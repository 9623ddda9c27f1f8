// Reading audit records from where they are kept — journal directories, archive files, Loki — and the
// rules for every file a reader opens. The proof itself (src/integrity/) reads nothing.
export { type ArchiveFormat, archiveFormat, archiveText } from './archive-format.js';
export {
  EvidenceDir,
  EvidenceFileError,
  openInside,
  openNamedFile,
  readNamedFile,
} from './evidence-files.js';
export { type FeedTarget, feedJournal } from './journal-feed.js';
export {
  type JournalChunk,
  type JournalLine,
  JournalReader,
  listSegments,
  type TornTail,
} from './journal-reader.js';
export {
  idTime,
  LOKI_LOOKBACK_MS,
  LOKI_SKEW_MS,
  type LokiLineageAnswer,
  type LokiLineageOptions,
  type LokiWindowRequest,
  lokiLineage,
  lookupQuery,
} from './loki-lineage.js';
export {
  type LokiRecordSink,
  type LokiSourceOptions,
  readLokiIntoVerifier,
  readLokiRecords,
} from './loki-source.js';
export {
  addCheckpointFiles,
  type ReadOptions,
  type ReadSummary,
  readIntoVerifier,
} from './record-sources.js';
