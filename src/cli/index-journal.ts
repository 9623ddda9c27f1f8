import { existsSync } from 'node:fs';
import { indexJournal } from '../journal-index/index.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail index [DIR] [--journal DIR] [--force] [--json]

Builds the journal index (lookup files under DIR/index/) for every segment that has none, or whose index
is stale or damaged, and brings each chain's Merkle tree, stored as C2SP tlog-tiles under DIR/tiles/<chain>/
(what "mltrail verify --since-checkpoint" reads), up to date. The journal writer indexes segments as it seals them; this catches up on the rest
(segments sealed by a process that stopped first, a journal copied without its index, an index deleted).
The index is derived data: deleting it loses nothing, and "mltrail verify" never reads it.
  --force   rebuild every segment's index and every chain's tiles
  --json    machine-readable summary
exit: 0 done, 2 usage or I/O error
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    HELP,
    { journal: { type: 'string' }, force: { type: 'boolean' }, json: { type: 'boolean' } },
    1,
  );
  if (parsed === undefined) return 0;
  const dir = parsed.positionals[0] ?? resolveJournalDir(parsed.values.journal);
  if (!existsSync(dir)) throw new CliError(`no journal directory ${dir}`);
  let result: ReturnType<typeof indexJournal>;
  try {
    result = indexJournal(dir, { force: parsed.values.force });
  } catch (err) {
    throw new CliError(`cannot index ${dir}: ${(err as Error).message}`);
  }
  if (parsed.values.json) {
    process.stdout.write(
      `${JSON.stringify({ dir, current: result.current, built: result.built.map((b) => ({ file: b.file, records: b.header.records, malformed: b.header.malformed, bytes: b.header.bytes })), tiles: result.tiles }, null, 2)}\n`,
    );
    return 0;
  }
  const records = result.built.reduce((n, b) => n + b.header.records, 0);
  process.stdout.write(
    `indexed ${result.built.length} segment(s) (${records.toLocaleString('en')} records) in ${dir}; ${result.current} already current\n`,
  );
  for (const t of result.tiles)
    if (t.size > t.from)
      process.stdout.write(
        `  Merkle tiles of chain ${t.chain}: ${t.from.toLocaleString('en')} -> ${t.size.toLocaleString('en')} records\n`,
      );
  for (const b of result.built)
    if (b.header.malformed > 0)
      process.stdout.write(
        `  ${b.file}: ${b.header.malformed} line(s) are not records (run "mltrail verify")\n`,
      );
  return 0;
}
