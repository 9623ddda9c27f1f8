import { existsSync, readdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { runDemo } from '../demo/run-demo.js';
import { shipsJournal } from '../instrumentation/register-options.js';
import { ChainVerifier, lineEventName, loadSigningKey } from '../integrity/index.js';
import { Shipper } from '../journal/index.js';
import { LineageGraph, renderTree } from '../lineage/index.js';
import { gatherEvidence, renderEvidenceHtml } from '../report/index.js';
import { ATTR_ML_DECISION_OUTCOME } from '../semconv/index.js';
import { JournalReader } from '../sources/journal-reader.js';
import { readIntoVerifier } from '../sources/record-sources.js';
import { CliError, parseCommand } from './command.js';
import { writePrivateFile } from './private-file.js';

const HELP = `usage: mltrail demo [--journal DIR] [--fresh] [--ship-timeout SECONDS]

Runs the end-to-end demo on real data with no network and no stack: the Seattle weather data set (npm
package vega-datasets) → feature selection → a logistic-regression rain model → evaluation → registration →
deployment → a year of audited quotes with decisions and feedback — then verifies the journal and prints a
summary. The journal goes to --journal, MLTRAIL_DIR, or ./.mltrail/demo.

  --journal DIR  where the journal is written
  --fresh        start a new journal: an existing DIR is first moved aside to DIR.replaced-<time>
                 (kept, never deleted), so the summary covers this run only. Without --fresh a run
                 appends to the journal already in DIR (two more chains per run).
  --ship-timeout SECONDS
                 with an OTLP endpoint configured (OTEL_EXPORTER_OTLP_ENDPOINT), how long the demo waits
                 for the collector to take the journal (default 30). If it cannot deliver in that time
                 (unreachable, refusing), it says so on stderr and finishes: every record stays in the
                 journal, and "npx mltrail ship --once --journal DIR" sends it later.
`;

const DEFAULT_SHIP_TIMEOUT_S = 30;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    HELP,
    { journal: { type: 'string' }, fresh: { type: 'boolean' }, 'ship-timeout': { type: 'string' } },
    0,
  );
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const shipTimeoutS =
    values['ship-timeout'] === undefined ? DEFAULT_SHIP_TIMEOUT_S : Number(values['ship-timeout']);
  if (!Number.isFinite(shipTimeoutS) || shipTimeoutS <= 0)
    throw new CliError(`--ship-timeout: "${values['ship-timeout']}" is not a positive number of seconds`, 2);
  const dir = values.journal ?? process.env.MLTRAIL_DIR ?? join('.mltrail', 'demo');
  if (values.fresh === true) {
    const aside = moveAside(dir);
    if (aside !== undefined)
      process.stderr.write(`mltrail demo: --fresh: the existing journal in ${dir} was moved to ${aside}\n`);
  } else if (existsSync(join(dir, 'chains')) && readdirSync(join(dir, 'chains')).length > 0) {
    process.stderr.write(
      `mltrail demo: appending to the existing journal in ${dir} (--fresh moves it aside and starts a new one)\n`,
    );
  }
  const started = Date.now();
  const result = await runDemo({ dir, log: (l) => process.stdout.write(`  ${l}\n`) });

  // Summary from the journal itself, not from what the demo believes it wrote.
  const counts = new Map<string, number>();
  for (const l of new JournalReader(dir).lines()) {
    const event = lineEventName(l.text);
    if (event) counts.set(event, (counts.get(event) ?? 0) + 1);
  }
  const verifier = new ChainVerifier();
  readIntoVerifier(dir, verifier);
  const report = verifier.finish();
  // With an OTLP endpoint configured, the same run goes to the collector/stack (the whole journal, every chain).
  let shipped = '';
  if (shipsJournal()) shipped = await shipBounded(dir, shipTimeoutS);
  if (!report.ok)
    throw new CliError(`the demo journal in ${dir} did not verify; run "mltrail verify ${dir}"`, 1);
  let out = `\nmltrail demo finished in ${((Date.now() - started) / 1000).toFixed(1)}s — journal ${result.dir}\n\n`;
  out += 'records per event\n';
  for (const [event, n] of [...counts].sort((a, b) => b[1] - a[1])) out += `  ${event.padEnd(26)} ${n}\n`;
  out += shipped;
  out += `\nintegrity: ${report.records} records in ${report.chains.length} chain(s) verified, `;
  out += `${report.chains.reduce((s, c) => s + c.checkpointsVerified, 0)} signed checkpoint(s) checked\n`;
  for (const m of result.models)
    out += `model rain-cover v${m.version}: accuracy ${m.accuracy.toFixed(3)}, ${m.digest}\n`;
  // The lineage of one declined quote, and its evidence report.
  const graph = LineageGraph.fromJournal(dir);
  const declined = [...graph.nodes.values()].find(
    (n) => n.kind === 'decision' && n.facts[ATTR_ML_DECISION_OUTCOME] === 'decline',
  );
  const predictionId =
    declined !== undefined ? graph.inputsOf(declined.id)[0]?.from : result.samplePredictionId;
  if (predictionId !== undefined) {
    out += `\nlineage of prediction ${predictionId} (a declined quote):\n`;
    out += renderTree(graph.query(predictionId, 'upstream'))
      .split('\n')
      .map((l) => (l === '' ? l : `  ${l.length > 150 ? `${l.slice(0, 149)}…` : l}`))
      .join('\n');
    const reportPath = join(dir, `evidence-${predictionId}.html`);
    // The demo is the operator: it pins the key it signed with (the one it was given, or generated).
    const vkey = loadSigningKey({ dir }).verifierKey;
    const evidence = gatherEvidence(dir, { prediction: predictionId }, { trustedKeys: [vkey] });
    writePrivateFile(reportPath, renderEvidenceHtml(evidence));
    out += `\nevidence report: ${reportPath} (${evidence.integrity.badge})\n`;
    out += `next: npx mltrail verify ${dir} --trusted-key ${vkey} · npx mltrail lineage ${predictionId} --journal ${dir} · npx mltrail drift --journal ${dir}\n`;
  }
  process.stdout.write(out);
  return 0;
}

/**
 * Moves a non-empty journal directory aside for --fresh and returns where it went. A journal is evidence,
 * so a fresh start keeps the old one (with its signing key, so it still verifies) instead of deleting it.
 */
function moveAside(dir: string): string | undefined {
  if (!existsSync(dir) || readdirSync(dir).length === 0) return undefined;
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const base = `${dir.replace(/[/\\]+$/, '')}.replaced-${stamp}`;
  let aside = base;
  for (let n = 2; existsSync(aside); n++) aside = `${base}-${n}`;
  try {
    renameSync(dir, aside);
  } catch (err) {
    throw new CliError(
      `cannot move the existing journal ${dir} aside for --fresh (${err instanceof Error ? err.message : String(err)}); move or remove it yourself, or pass another --journal`,
      1,
    );
  }
  return aside;
}

/**
 * Delivers the journal to the configured collector, waiting at most `seconds`: the shipper retries forever
 * (at-least-once), and a demo must not hang on a collector that is down or refusing. What is not delivered
 * stays in the journal behind the shipper's cursor.
 */
async function shipBounded(dir: string, seconds: number): Promise<string> {
  const shipper = new Shipper({ dir });
  const outcome = await shipper.drainWithin(seconds * 1000);
  if ('shipped' in outcome) return `shipped ${outcome.shipped} record(s) to ${shipper.url}\n`;
  const why =
    'error' in outcome
      ? outcome.error.message
      : `${shipper.failures} failed attempt(s) in ${seconds}s: the collector is unreachable or refusing`;
  process.stderr.write(
    `mltrail demo: could not ship the journal to ${shipper.url} (${why}); every record stays in ${dir}: send it later with "npx mltrail ship --once --journal ${dir}"\n`,
  );
  return `not shipped to ${shipper.url} (see the message above)\n`;
}
