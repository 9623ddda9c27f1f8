import { parseArgs } from 'node:util';
import { Shipper } from '../journal/index.js';
import { CliError, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail ship [--journal DIR] [--endpoint URL] [--header K=V ...] [--once]

Delivers journal records to an OTLP/HTTP endpoint (the bundled collector) at least once, from a cursor kept
in the journal directory: a restart resumes where it stopped. Without --once it keeps following the journal.
Endpoint and headers default to OTEL_EXPORTER_OTLP_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS.
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      journal: { type: 'string' },
      endpoint: { type: 'string' },
      header: { type: 'string', multiple: true },
      once: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const eq = h.indexOf('=');
    if (eq <= 0) throw new CliError(`--header expects K=V, got "${h}"`);
    headers[h.slice(0, eq)] = h.slice(eq + 1);
  }
  let shipper: Shipper;
  try {
    shipper = new Shipper({ dir: resolveJournalDir(values.journal), endpoint: values.endpoint, headers });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (values.once) {
    const n = await shipper.drain();
    process.stderr.write(`mltrail ship: delivered ${n} record(s) to ${shipper.url}\n`);
    return 0;
  }
  process.stderr.write(`mltrail ship: following ${shipper.dir} → ${shipper.url} (Ctrl-C to stop)\n`);
  shipper.start();
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
  });
  await shipper.stop();
  process.stderr.write(`mltrail ship: delivered ${shipper.shipped} record(s)\n`);
  return 0;
}
