import { openLineageFromJournal } from '../lineage/index.js';
import { ACCESS_HELP, recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';
import { writePrivateFile } from './private-file.js';

const HELP = `usage: mltrail export openlineage [--journal DIR] [--out FILE]

Writes the trail's pipeline runs as OpenLineage RunEvents (spec 2-0-2), one JSON event per line (NDJSON):
START/COMPLETE for transforms, training runs and evaluations, START/FAIL for failed stages, with input/output
datasets, standard facets and the mltrail_ml run facet. stdout without --out.
${ACCESS_HELP}
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, HELP, {
    journal: { type: 'string' },
    out: { type: 'string' },
    actor: { type: 'string' },
    'access-journal': { type: 'string' },
  });
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals[0] !== 'openlineage')
    throw new CliError(`unknown export format "${positionals[0] ?? ''}"\n\n${HELP}`);
  const dir = resolveJournalDir(values.journal);
  let text: string;
  let count: number;
  try {
    const events = openLineageFromJournal(dir);
    count = events.length;
    text = events.map((e) => `${JSON.stringify(e)}\n`).join('');
  } catch (err) {
    throw new CliError(`cannot read the journal in ${dir}: ${(err as Error).message}`);
  }
  await recordAccess({
    read: dir,
    journal: values['access-journal'],
    command: 'export openlineage',
    argv,
    resultCount: count,
    actor: values.actor,
  });
  if (values.out !== undefined) writePrivateFile(values.out, text);
  else process.stdout.write(text);
  return 0;
}
