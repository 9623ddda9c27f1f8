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
  let graph: LineageGraph;
  try {
    graph = LineageGraph.fromJournal(dir);
  } catch (err) {
    throw new CliError(`cannot read the journal in ${dir}: ${(err as Error).message}`);
  }
  const direction = values.upstream ? 'upstream' : values.downstream ? 'downstream' : 'both';
  let result: ReturnType<LineageGraph['query']>;
  try {
    result = graph.query(id, direction);
  } catch (err) {
    if (err instanceof UnknownLineageIdError) {
      // A lookup that found nothing is still a look (probing for ids is what an access log must show).
      await recordAccess({ dir, command: 'lineage', argv, resultCount: 0, actor: values.actor });
      throw new CliError(`${err.message} (in ${dir})`, 1);
    }
    throw err;
  }
  await recordAccess({
    dir,
    command: 'lineage',
    argv,
    resultCount: result.nodes.length,
    actor: values.actor,
  });
  if (values.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else if (format === 'mermaid') process.stdout.write(renderMermaid(result));
  else if (format === 'dot') process.stdout.write(renderDot(result));
  else process.stdout.write(renderTree(result));
  return 0;
}
