export {
  type LineageEdge,
  LineageGraph,
  type LineageKind,
  type LineageNode,
  type LineageResult,
  UnknownLineageIdError,
} from './lineage-graph.js';
export {
  MLTRAIL_FACET_SCHEMA_URL,
  OPENLINEAGE_SCHEMA_URL,
  openLineageEvents,
  openLineageFromJournal,
  type RunEvent,
} from './openlineage.js';
export { renderDot, renderMermaid, renderTree } from './render.js';
