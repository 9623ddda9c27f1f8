import { EvidenceNotFoundError, gatherEvidence, renderEvidenceHtml } from '../report/index.js';
import { ACCESS_HELP, recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';
import { writePrivateFile } from './private-file.js';
import { resolveTrust, TRUST_HELP, TRUST_OPTIONS } from './trust-options.js';

const HELP = `usage: mltrail report (--prediction ID | --model NAME@VERSION) [--out report.html] [--journal DIR] [--json]

Writes one self-contained, printable HTML evidence report (no network): the decision and its reasons and
attributions, the lineage drawn as a graph, the model's training configuration, evaluation, approval and
deployment history, drift alerts, mapped to EU AI Act Art. 12 and GDPR Art. 22 — and, for every record it
shows, the line as stored, its body, the signed checkpoint note and an RFC 6962 inclusion proof, so the
report alone lets a third party check it. The badge says what was verified against what: "verified:
pinned key …, covered by checkpoint size N" only with a pinned key; otherwise "NOT VERIFIED: <reason>".

  --journal DIR            journal directory (default MLTRAIL_DIR, ./.mltrail); only read
  --out FILE               the HTML file (default report.html)
  --json                   the same evidence as JSON on stdout
${TRUST_HELP}
${ACCESS_HELP}
exit: 0 written (even when the proof fails: the report says so), 1 subject not found, 2 usage or I/O error
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    HELP,
    {
      prediction: { type: 'string' },
      model: { type: 'string' },
      out: { type: 'string' },
      journal: { type: 'string' },
      json: { type: 'boolean' },
      ...TRUST_OPTIONS,
      actor: { type: 'string' },
      'access-journal': { type: 'string' },
    },
    0,
  );
  if (parsed === undefined) return 0;
  const { values } = parsed;
  if ((values.prediction === undefined) === (values.model === undefined)) {
    throw new CliError(`give exactly one of --prediction or --model\n\n${HELP}`);
  }
  const dir = resolveJournalDir(values.journal);
  const trust = resolveTrust(values);
  let evidence: ReturnType<typeof gatherEvidence>;
  try {
    evidence = gatherEvidence(dir, { prediction: values.prediction, model: values.model }, trust);
  } catch (err) {
    if (err instanceof EvidenceNotFoundError) {
      // A lookup that found nothing is still a look (probing for ids is what an access log must show).
      await recordAccess({
        read: dir,
        journal: values['access-journal'],
        command: 'report',
        argv,
        resultCount: 0,
        actor: values.actor,
      });
      throw new CliError(err.message, 1);
    }
    throw new CliError(`cannot read the journal in ${dir}: ${(err as Error).message}`);
  }
  await recordAccess({
    read: dir,
    journal: values['access-journal'],
    command: 'report',
    argv,
    resultCount: evidence.lineage.nodes.length,
    actor: values.actor,
  });
  if (values.json) {
    process.stdout.write(`${JSON.stringify(evidence, null, 2)}\n`);
    return 0;
  }
  const out = values.out ?? 'report.html';
  writePrivateFile(out, renderEvidenceHtml(evidence));
  process.stdout.write(`wrote ${out} — ${evidence.integrity.badge}\n`);
  return 0;
}
