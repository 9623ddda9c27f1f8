import { parseArgs } from 'node:util';
import {
  LineageGraph,
  renderDot,
  renderMermaid,
  renderTree,
  UnknownLineageIdError,
} from '../lineage/index.js';
import { recordAccess } from './access-record.js';
import { CliError, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail lineage <id> [--journal DIR] [--upstream|--downstream] [--json] [--format tree|mermaid|dot]

Shows where anything came from and what came of it: a prediction id, a model version (name@version or its
sha256 digest), a dataset version, a run, a deployment, a drift event. --downstream from a dataset version
lists the models trained on it and every prediction they made (impact analysis).
exit: 0 found, 1 unknown id (with close matches), 2 usage or I/O error
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      journal: { type: 'string' },
      upstream: { type: 'boolean' },
      downstream: { type: 'boolean' },
      json: { type: 'boolean' },
      format: { type: 'string' },
      actor: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const id = positionals[0];
  if (id === undefined) throw new CliError(`an id is required\n\n${HELP}`);
  const format = values.format ?? 'tree';
  if (!['tree', 'mermaid', 'dot'].includes(format))
    throw new CliError(`--format must be tree, mermaid or dot (got "${format}")`);
  const dir = resolveJournalDir(values.journal);
  const direction = values.upstream ? 'upstream' : values.downstream ? 'downstream' : 'both';
  let result: ReturnType<LineageGraph['query']>;
  try {
    result = LineageGraph.queryJournal(dir, id, direction);
  } catch (err) {
    if (err instanceof UnknownLineageIdError) {
      // A lookup that found nothing is still a look (probing for ids is what an access log must show).
      await recordAccess({ dir, command: 'lineage', argv, resultCount: 0, actor: values.actor });
      throw new CliError(`${err.message} (in ${dir})`, 1);
    }
    throw new CliError(`cannot read the journal in ${dir}: ${(err as Error).message}`);
  }
  await recordAccess({
    dir,
    command: 'lineage',
    argv,
    resultCount: result.nodes.length,
    actor: values.actor,
  });
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
function writeJson(result: ReturnType<LineageGraph['query']>): void {
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
  result.nodes.forEach((n, i) => {
    chunk += `${i === 0 ? '' : ',\n'}${JSON.stringify(n)}`;
    flush(false);
  });
  chunk += '\n],\n"edges":[\n';
  result.edges.forEach((e, i) => {
    chunk += `${i === 0 ? '' : ',\n'}${JSON.stringify(e)}`;
    flush(false);
  });
  chunk += '\n]}\n';
  flush(true);
}
