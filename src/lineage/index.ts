export { type LineageStream, queryIndexed } from './indexed-lineage.js';
export {
  type LineageEdge,
  LineageGraph,
  type LineageKind,
  type LineageNode,
  type LineageResult,
  nodeFacts,
  UnknownLineageIdError,
} from './lineage-graph.js';
export {
  MLTRAIL_FACET_SCHEMA_URL,
  OPENLINEAGE_SCHEMA_URL,
  openLineageEvents,
  openLineageFromJournal,
  type RunEvent,
} from './openlineage.js';
export { RELATIONS, recordLineage } from './record-lineage.js';
export { renderDot, renderMermaid, renderTree } from './render.js';
export type { LeanItem, LeanNode, StreamedItem } from './served-stream.js';
