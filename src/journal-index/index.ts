export {
  type IncrementalVerification,
  IncrementalVerifyError,
  verifySinceCheckpoint,
} from './incremental-verify.js';
export {
  buildSealed,
  buildSegmentIndex,
  indexFile,
  indexJournal,
  type JournalIndexBuild,
  lineEntries,
  type SegmentIndexBuild,
} from './index-builder.js';
export { type IndexHit, type IndexNote, JournalIndex } from './journal-index.js';
export { TileReader, type TilesBuild, tilePath, tilesDir, writeTiles } from './merkle-tiles.js';
export {
  EntryKind,
  type IndexEntry,
  keyHash,
  SegmentIndexFile,
  type SegmentIndexHeader,
  StaleIndexError,
} from './segment-index.js';
export { SegmentIndexer } from './segment-indexer.js';
