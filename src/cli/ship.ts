import { Shipper } from '../journal/index.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail ship [--journal DIR] [--endpoint URL] [--header K=V ...] [--once] [--json]

Delivers journal records to an OTLP/HTTP endpoint (the bundled collector) at least once, from a cursor kept
in the journal directory (per endpoint): a restart resumes where it stopped. Failed deliveries are retried
with exponential backoff (never given up). Without --once it keeps following the journal until SIGINT/SIGTERM.

  --journal DIR       journal directory (default: MLTRAIL_DIR, then ./.mltrail)
  --endpoint URL      OTLP/HTTP base URL (/v1/logs is appended) or the full logs URL
                      (default: OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT)
  --header K=V        extra request header, repeatable, e.g. "Authorization=Bearer …"
                      (default: OTEL_EXPORTER_OTLP_LOGS_HEADERS, then OTEL_EXPORTER_OTLP_HEADERS)
  --batch-size N      records per request (default 512)
  --once              ship what is there now, then exit
  --json              print {"delivered", "failedAttempts", "rejected", "endpoint"} on stdout at the end
`;

/** `mltrail ship`: at-least-once delivery of the journal to OTLP/HTTP. */
export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    HELP,
    {
      journal: { type: 'string' },
      endpoint: { type: 'string' },
      header: { type: 'string', multiple: true },
      'batch-size': { type: 'string' },
      once: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    0,
  );
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const headers: Record<string, string> = {};
  for (const h of values.header ?? []) {
    const eq = h.indexOf('=');
    if (eq <= 0) throw new CliError(`--header expects K=V, got "${h}"`);
    headers[h.slice(0, eq)] = h.slice(eq + 1);
  }
  let batchSize: number | undefined;
  if (values['batch-size'] !== undefined) {
    batchSize = Number(values['batch-size']);
    if (!Number.isSafeInteger(batchSize) || batchSize < 1)
      throw new CliError(`--batch-size expects a positive integer, got "${values['batch-size']}"`);
  }
  let shipper: Shipper;
  try {
    shipper = new Shipper({
      dir: resolveJournalDir(values.journal),
      endpoint: values.endpoint,
      headers,
      batchSize,
    });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (values.once) {
    await shipper.drain();
    await shipper.close();
    if (shipper.lockedBy !== undefined)
      throw new CliError(
        `another process (pid ${shipper.lockedBy}) is shipping ${shipper.dir} to ${shipper.url}; nothing sent`,
        1,
      );
  } else {
    process.stderr.write(`mltrail ship: following ${shipper.dir} → ${shipper.url} (Ctrl-C to stop)\n`);
    shipper.start();
    await new Promise<void>((resolve) => {
      for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve());
    });
    await shipper.close();
  }
  const summary = {
    delivered: shipper.shipped,
    failedAttempts: shipper.failures,
    rejected: shipper.rejected,
    endpoint: shipper.url,
  };
  if (values.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  else
    process.stderr.write(
      `mltrail ship: delivered ${summary.delivered} record(s) to ${summary.endpoint}` +
        `${summary.failedAttempts > 0 ? ` after ${summary.failedAttempts} failed attempt(s)` : ''}` +
        `${summary.rejected > 0 ? `; the endpoint rejected ${summary.rejected}` : ''}\n`,
    );
  if (shipper.refused.size > 0) {
    // What could be read was delivered; a file the journal's rules refuse is named, never read.
    for (const why of shipper.refused.values()) process.stderr.write(`mltrail: not shipped: ${why}\n`);
    throw new CliError(
      `${shipper.refused.size} file(s) in ${shipper.dir} refused (above); ${summary.delivered} record(s) delivered`,
    );
  }
  return summary.rejected > 0 ? 1 : 0;
}
