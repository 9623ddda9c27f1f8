import { existsSync } from 'node:fs';
// Only what an indexed lookup needs is loaded up front (a cold lookup's cost is mostly start-up): the
// Loki reader is imported when --loki is given.
import { JournalIndex } from '../journal-index/journal-index.js';
import { type LineageStream, queryIndexed } from '../lineage/indexed-lineage.js';
import {
  type LineageEdge,
  LineageGraph,
  type LineageNode,
  UnknownLineageIdError,
} from '../lineage/lineage-graph.js';
import { renderDot, renderMermaid, renderTree } from '../lineage/render.js';
import { ACCESS_HELP, recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail lineage <id> [--journal DIR | --loki URL --query Q] [--upstream|--downstream] [--json] [--format tree|mermaid|dot] [--scan]

Shows where anything came from and what came of it: a prediction id, a model version (name@version or its
sha256 digest), a dataset version, a run, a deployment, a drift event. --downstream from a dataset version
lists the models trained on it and every prediction they made (impact analysis).
  --loki URL --query Q [--tenant T]   read the records from Loki's query API instead of the journal
  --scan                              read every record instead of looking ids up in the journal index
                                      (the index is derived data; "mltrail index" builds missing ones)
${ACCESS_HELP}
exit: 0 found, 1 unknown id (with close matches), 2 usage or I/O error
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, HELP, {
    journal: { type: 'string' },
    upstream: { type: 'boolean' },
    downstream: { type: 'boolean' },
    json: { type: 'boolean' },
    format: { type: 'string' },
    actor: { type: 'string' },
    'access-journal': { type: 'string' },
    loki: { type: 'string' },
    query: { type: 'string' },
    tenant: { type: 'string' },
    scan: { type: 'boolean' },
  });
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const id = positionals[0];
  if (id === undefined) throw new CliError(`an id is required\n\n${HELP}`);
  const format = values.format ?? 'tree';
  if (!['tree', 'mermaid', 'dot'].includes(format))
    throw new CliError(`--format must be tree, mermaid or dot (got "${format}")`);
  const dir = resolveJournalDir(values.journal);
  const direction = values.upstream ? 'upstream' : values.downstream ? 'downstream' : 'both';
  if (values.loki !== undefined && values.query === undefined)
    throw new CliError('--loki needs --query (a LogQL stream selector)');
  const source = values.loki !== undefined ? `Loki ${values.loki} ${values.query}` : dir;
  const access = async (resultCount: number) => {
    await recordAccess({
      read: values.loki === undefined ? dir : undefined,
      journal: values['access-journal'],
      command: 'lineage',
      argv,
      resultCount,
      actor: values.actor,
    });
  };
  let result: ReturnType<LineageGraph['query']> | undefined;
  let stream: LineageStream | undefined;
  let index: JournalIndex | undefined;
  // Segments whose index is damaged or stale are scanned instead; say so (once the answer is complete:
  // a damaged block is found when a lookup reads it).
  const notes = () => {
    for (const n of index?.notes ?? [])
      if (n.reason !== 'no index')
        process.stderr.write(
          `mltrail: note: index not used for ${n.segment}, scanned instead: ${n.reason}; "mltrail index" rebuilds it\n`,
        );
  };
  try {
    if (values.loki !== undefined) {
      // Hop by hop, each inside the time window its id gives (docs/lineage.md).
      const { lokiLineage } = await import('../sources/loki-lineage.js');
      const answer = await lokiLineage(
        { url: values.loki, query: values.query!, tenant: values.tenant },
        id,
        direction,
      );
      if (answer.malformed > 0)
        process.stderr.write(
          `mltrail: ${answer.malformed} Loki entries are not audit records (run mltrail verify --loki)\n`,
        );
      if (answer.mode === 'full-range')
        process.stderr.write(`mltrail: note: read every record in Loki's range: ${answer.reason}\n`);
      result = answer.result;
    } else {
      if (!values.scan && existsSync(dir)) {
        index = JournalIndex.open(dir);
        stream = queryIndexed(index, id, direction);
      }
      if (stream === undefined) result = LineageGraph.queryJournal(dir, id, direction);
      else if (!stream.fansOut || !values.json) result = stream.collect();
    }
  } catch (err) {
    if (err instanceof UnknownLineageIdError) {
      // A lookup that found nothing is still a look (probing for ids is what an access log must show).
      await access(0);
      throw new CliError(`${err.message} (in ${source})`, 1);
    }
    throw new CliError(`cannot read the audit records in ${source}: ${(err as Error).message}`);
  }
  if (result === undefined) {
    // An impact query streams: the nodes and edges are read from the journal as they are written out.
    await access(stream!.count());
    writeJson({ root: stream!.root, nodes: stream!.nodes(), edges: stream!.edges() });
    notes();
    return 0;
  }
  notes();
  await access(result.nodes.length);
  if (values.json) writeJson(result);
  else if (format === 'mermaid') process.stdout.write(renderMermaid(result));
  else if (format === 'dot') process.stdout.write(renderDot(result));
  else process.stdout.write(renderTree(result));
  return 0;
}

/**
 * `--json` written in pieces, one node or edge per line: an impact query can return millions of nodes, and
 * one JSON.stringify of all of them would hold the whole text in memory twice.
 */
function writeJson(result: {
  root: LineageNode;
  nodes: Iterable<LineageNode>;
  edges: Iterable<LineageEdge>;
}): void {
  // A reader that stops early (`| head`) is not an error; the access was recorded before any output.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  let chunk = `{"root":${JSON.stringify(result.root)},\n"nodes":[\n`;
  const flush = (force: boolean) => {
    if (force || chunk.length > 1 << 20) {
      process.stdout.write(chunk);
      chunk = '';
    }
  };
  let i = 0;
  for (const n of result.nodes) {
    chunk += `${i++ === 0 ? '' : ',\n'}${JSON.stringify(n)}`;
    flush(false);
  }
  chunk += '\n],\n"edges":[\n';
  i = 0;
  for (const e of result.edges) {
    chunk += `${i++ === 0 ? '' : ',\n'}${JSON.stringify(e)}`;
    flush(false);
  }
  chunk += '\n]}\n';
  flush(true);
}
