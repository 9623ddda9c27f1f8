// Reading lives in sources/ (with the rules for the files it opens); the reader stays part of this
// subpath's public API.
export {
  type JournalChunk,
  type JournalLine,
  JournalReader,
  listSegments,
  type TornTail,
} from '../sources/journal-reader.js';
export {
  type AppendedRecord,
  AuditLog,
  type AuditLogLoss,
  type AuditLogOptions,
  checkpointFile,
} from './audit-log.js';
export {
  chainDir,
  type JournalFailure,
  type JournalGap,
  type JournalLoss,
  JournalWriter,
  type JournalWriterOptions,
  probeJournalDir,
  resolveDir,
  segmentName,
} from './journal-writer.js';
export { cursorFile, otlpLogsTarget, Shipper, type ShipperOptions, toOtlp } from './shipper.js';
export { repairTornTails } from './tail-repair.js';
