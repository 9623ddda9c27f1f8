export {
  type AppendedRecord,
  AuditLog,
  type AuditLogLoss,
  type AuditLogOptions,
  checkpointFile,
} from './audit-log.js';
export {
  type JournalChunk,
  type JournalLine,
  JournalReader,
  listSegments,
  repairTornTails,
  type TornTail,
} from './journal-reader.js';
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
