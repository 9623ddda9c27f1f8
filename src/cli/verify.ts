import { readFileSync } from 'node:fs';
import { ChainVerifier, type VerifyReport } from '../integrity/index.js';
import { readLokiIntoVerifier } from '../integrity/loki-source.js';
import { readIntoVerifier } from '../integrity/record-sources.js';
import { repairTornTails } from '../journal/index.js';
import { recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail verify [DIR|FILE] [options]

Proves that an audit trail is complete and unmodified: every record's digest and hash, the links between
records, gap-free sequence numbers, and every signed checkpoint (signature and Merkle root).

  DIR|FILE                 a journal directory (default: --journal, MLTRAIL_DIR, ./.mltrail), a journal
                           segment, or the collector's file archive (OTLP JSON lines, .gz/.zst)
  --journal DIR            journal directory
  --loki URL --query Q     read records from Loki's query API instead (LogQL stream selector)
  --tenant T               X-Scope-OrgID for multi-tenant Loki
  --page-size N            entries per Loki request (default 5000, Loki's default maximum)
  --since-checkpoint FILE  prove the trail extends this older checkpoint (held by someone else)
  --trusted-key VKEY       pin the checkpoint verifier key (repeatable); others are "unknown key"
  --repair-tail            cut torn last lines left by a crash, then verify
  --json                   machine-readable report
exit: 0 intact, 1 problems found, 2 usage or I/O error
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, HELP, {
    journal: { type: 'string' },
    loki: { type: 'string' },
    query: { type: 'string' },
    tenant: { type: 'string' },
    'page-size': { type: 'string' },
    'since-checkpoint': { type: 'string', multiple: true },
    'trusted-key': { type: 'string', multiple: true },
    'repair-tail': { type: 'boolean' },
    json: { type: 'boolean' },
    actor: { type: 'string' },
  });
  if (args === undefined) return 0;
  const v = args.values;
  const external: { note: string; source: string }[] = [];
  for (const f of v['since-checkpoint'] ?? []) {
    try {
      external.push({ note: readFileSync(f, 'utf8'), source: f });
    } catch (err) {
      throw new CliError(`cannot read checkpoint ${f}: ${(err as Error).message}`);
    }
  }
  let verifier: ChainVerifier;
  const progress = process.stderr.isTTY && !v.json;
  let source: string;
  if (v.loki !== undefined) {
    if (v.query === undefined) throw new CliError('--loki needs --query (a LogQL stream selector)');
    source = `${v.loki} ${v.query}`;
    verifier = new ChainVerifier({ trustedKeys: v['trusted-key'], checkpoints: external });
    try {
      const pageSize = v['page-size'] !== undefined ? Number(v['page-size']) : undefined;
      if (pageSize !== undefined && !(Number.isInteger(pageSize) && pageSize > 0))
        throw new CliError('--page-size must be a positive integer');
      await readLokiIntoVerifier({ url: v.loki, query: v.query, tenant: v.tenant, pageSize }, verifier);
    } catch (err) {
      throw new CliError(`reading from Loki failed: ${(err as Error).message}`);
    }
  } else {
    source = args.positionals[0] ?? resolveJournalDir(v.journal);
    if (v['repair-tail']) {
      for (const t of repairTornTails(source))
        process.stderr.write(`mltrail: cut ${t.bytes} torn bytes at the end of ${t.file}\n`);
    }
    verifier = new ChainVerifier({ trustedKeys: v['trusted-key'], checkpoints: external });
    try {
      const summary = readIntoVerifier(
        source,
        verifier,
        progress ? (n) => process.stderr.write(`\rverify: ${n.toLocaleString()} records…`) : undefined,
      );
      for (const f of summary.checkpointFiles) verifier.addCheckpoint(readFileSync(f, 'utf8'), f);
    } catch (err) {
      throw new CliError(`cannot read ${source}: ${(err as Error).message}`);
    }
    if (progress) process.stderr.write('\r\x1b[K');
  }
  const report = verifier.finish();
  // Who looked: recorded after verifying, so the access record never changes what was verified.
  if (v.loki === undefined)
    await recordAccess({ dir: source, command: 'verify', argv, resultCount: report.records, actor: v.actor });
  if (v.json) process.stdout.write(`${JSON.stringify({ source, ...report }, null, 2)}\n`);
  else process.stdout.write(render(source, report));
  return report.ok ? 0 : 1;
}

function render(source: string, r: VerifyReport): string {
  let s = `${r.ok ? 'intact' : 'PROBLEMS FOUND'}: ${r.records} records in ${r.chains.length} chain(s) from ${source}\n`;
  for (const c of r.chains) {
    s += `  chain ${c.chain}: ${c.records} records (seq ${c.firstSeq}..${c.lastSeq}), ${c.checkpointsVerified} checkpoint(s) verified`;
    if (c.erased.length > 0) s += `, ${c.erased.length} erased (${c.erased.join(', ')})`;
    if (c.duplicates > 0) s += `, ${c.duplicates} exact duplicate(s)`;
    s += c.problems.length === 0 ? ' — ok\n' : ` — ${c.problems.length} problem(s)\n`;
    for (const p of c.problems)
      s += `    ${p.kind}${p.seq !== undefined ? ` seq ${p.seq}` : ''}${p.location ? ` at ${p.location}` : ''}: ${p.message}\n`;
    if (c.keys.length > 0) s += `    signed by ${c.keys.join(', ')}\n`;
  }
  for (const p of r.problems) s += `  ${p.kind}${p.location ? ` at ${p.location}` : ''}: ${p.message}\n`;
  return s;
}
