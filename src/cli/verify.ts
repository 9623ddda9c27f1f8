import { existsSync, statSync } from 'node:fs';
// Only what both paths need is loaded up front: `--incremental` reads a few thousand records, so its cost
// is mostly start-up, and the full reader, the Loki client and the tail repair (which loads the writer)
// are imported by the paths that use them.
import { ChainVerifier, type VerifyReport } from '../integrity/chain-verifier.js';
import { judgeTrust, range, type TrustVerdict } from '../integrity/trust-verdict.js';
import { ACCESS_HELP, recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';
import { resolveTrust, TRUST_HELP, TRUST_OPTIONS } from './trust-options.js';

const HELP = `usage: mltrail verify [DIR|FILE] [options]

Proves that an audit trail is complete and unmodified — every record's digest and hash, the links between
records, gap-free sequence numbers, every signed checkpoint (origin, signature and Merkle root) — and says
which records a signature you trust covers. Reads only: nothing in DIR or FILE is created or changed.

  DIR|FILE                 a journal directory (default: --journal, MLTRAIL_DIR, ./.mltrail), a journal
                           segment, or the collector's file archive (OTLP JSON lines: plain, gzip, zstd
                           or the collector's framed zstd, told by content whatever the file name);
                           only regular files inside DIR are read (a FIFO, device, socket or a link
                           out of DIR stops the command, exit 2)
  --journal DIR            journal directory
  --loki URL --query Q     read records from Loki's query API instead (LogQL stream selector)
  --tenant T               X-Scope-OrgID for multi-tenant Loki
  --page-size N            entries per Loki request (default 5000, Loki's default maximum)
${TRUST_HELP}
  --incremental            with one --since-checkpoint HELD: verify only the records written since HELD
                           (a checkpoint-<chain>.txt copied earlier); the records before are not re-read
                           but proven unchanged by the chain's Merkle tiles (DIR/tiles/, written by the
                           journal writer and "mltrail index") hashing to HELD's root, and an RFC 6962
                           consistency proof from HELD to the newest checkpoint since
  --repair-tail            cut torn last lines left by a crash, then verify (this one writes)
  --json                   machine-readable report
${ACCESS_HELP}
Without a pinned key the checkpoints are checked with the key each chain declares (trust on first use):
that proves the records are intact, not who signed them.
exit: 0 verified (pinned) or intact (trust on first use), 1 problems or not verified, 2 usage or I/O error
`;

export async function run(argv: string[]): Promise<number> {
  const args = parseCommand(argv, HELP, {
    journal: { type: 'string' },
    loki: { type: 'string' },
    query: { type: 'string' },
    tenant: { type: 'string' },
    'page-size': { type: 'string' },
    ...TRUST_OPTIONS,
    'repair-tail': { type: 'boolean' },
    incremental: { type: 'boolean' },
    json: { type: 'boolean' },
    actor: { type: 'string' },
    'access-journal': { type: 'string' },
  });
  if (args === undefined) return 0;
  const v = args.values;
  const trust = resolveTrust(v);
  if (v.incremental) return runIncremental(args.positionals[0], v, trust, argv);
  const verifier = new ChainVerifier({ trustedKeys: trust.trustedKeys, checkpoints: trust.checkpoints });
  const progress = process.stderr.isTTY && !v.json;
  let source: string;
  if (v.loki !== undefined) {
    if (v.query === undefined) throw new CliError('--loki needs --query (a LogQL stream selector)');
    source = `${v.loki} ${v.query}`;
    try {
      const pageSize = v['page-size'] !== undefined ? Number(v['page-size']) : undefined;
      if (pageSize !== undefined && !(Number.isInteger(pageSize) && pageSize > 0))
        throw new CliError('--page-size must be a positive integer');
      const { readLokiIntoVerifier } = await import('../sources/loki-source.js');
      await readLokiIntoVerifier({ url: v.loki, query: v.query, tenant: v.tenant, pageSize }, verifier);
    } catch (err) {
      throw new CliError(`reading from Loki failed: ${(err as Error).message}`);
    }
  } else {
    source = args.positionals[0] ?? resolveJournalDir(v.journal);
    if (v['repair-tail']) {
      const { repairTornTails } = await import('../journal/tail-repair.js');
      for (const t of repairTornTails(source))
        process.stderr.write(`mltrail: cut ${t.bytes} torn bytes at the end of ${t.file}\n`);
    }
    const { addCheckpointFiles, readIntoVerifier } = await import('../sources/record-sources.js');
    try {
      const summary = readIntoVerifier(
        source,
        verifier,
        progress ? (n) => process.stderr.write(`\rverify: ${n.toLocaleString()} records…`) : undefined,
      );
      addCheckpointFiles(summary, verifier);
    } catch (err) {
      throw new CliError(`cannot read ${source}: ${(err as Error).message}`);
    }
    if (progress) process.stderr.write('\r\x1b[K');
  }
  const { report, verdict } = judgeTrust(verifier.finish(), trust);
  const passed = verdict.mode === 'pinned' ? verdict.verified : report.ok;
  if (v.json) {
    const out = {
      source,
      ok: passed,
      intact: report.ok,
      verified: verdict.verified,
      trust: verdict,
      ...rest(report),
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else process.stdout.write(render(source, report, verdict));
  const code = passed ? 0 : 1;
  // The answer is out before the access is recorded: recording can only add a note on stderr.
  process.exitCode = code;
  await recordAccess({
    read: v.loki === undefined ? source : undefined,
    journal: v['access-journal'],
    command: 'verify',
    argv,
    resultCount: report.records,
    actor: v.actor,
  });
  return code;
}

/** `verify --since-checkpoint HELD`: the records since a held checkpoint, the rest by proof. */
async function runIncremental(
  positional: string | undefined,
  v: Record<string, string | boolean | string[] | undefined>,
  trust: ReturnType<typeof resolveTrust>,
  argv: string[],
): Promise<number> {
  if (v.loki !== undefined)
    throw new CliError('--incremental reads a journal directory (its Merkle tiles), not Loki');
  if (trust.checkpoints.length !== 1)
    throw new CliError(
      `--incremental needs exactly one --since-checkpoint HELD (the checkpoint verified before), got ${trust.checkpoints.length}`,
    );
  const held = trust.checkpoints[0];
  const source = positional ?? resolveJournalDir(v.journal as string | undefined);
  if (!existsSync(source) || !statSync(source).isDirectory())
    throw new CliError(`--incremental needs a journal directory; ${source} is not one`);
  const { verifySinceCheckpoint, IncrementalVerifyError } = await import(
    '../journal-index/incremental-verify.js'
  );
  let result: ReturnType<typeof verifySinceCheckpoint>;
  try {
    result = verifySinceCheckpoint(source, held, { trustedKeys: trust.trustedKeys });
  } catch (err) {
    if (err instanceof IncrementalVerifyError) throw new CliError(err.message);
    throw new CliError(`cannot read ${source}: ${(err as Error).message}`);
  }
  const { report, verdict } = judgeTrust(result.report, trust);
  const inc = result.incremental;
  const consistent = inc.tilesMatch && (inc.consistency === undefined || inc.consistency.verified);
  const passed = consistent && (verdict.mode === 'pinned' ? verdict.verified : report.ok);
  if (v.json) {
    const out = {
      source,
      ok: passed,
      intact: report.ok,
      verified: verdict.verified && consistent,
      incremental: inc,
      trust: verdict,
      ...rest(report),
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    let s = render(source, report, verdict);
    const old = inc.held.size > 0 ? `seq 0..${inc.held.size - 1}` : 'no records';
    if (!inc.tilesMatch)
      s += `  incremental: ${old} NOT covered: the stored tree does not match the held checkpoint (${inc.held.source})\n`;
    else if (inc.consistency === undefined)
      s += `  incremental: ${old} not re-read: covered by the held checkpoint (size ${inc.held.size}, ${inc.held.source}), whose root the chain's Merkle tiles hash to; no newer checkpoint to prove consistency with; ${inc.newRecords} record(s) since, verified\n`;
    else
      s += `  incremental: ${old} not re-read: covered by the held checkpoint (size ${inc.held.size}, ${inc.held.source}) and the RFC 6962 consistency proof to checkpoint size ${inc.consistency.to} (${inc.consistency.proofHashes} hashes, ${inc.consistency.verified ? 'verified' : 'FAILED'}); ${inc.newRecords} record(s) since seq ${inc.held.size}, verified in full (run without --incremental to re-read everything)\n`;
    process.stdout.write(s);
  }
  const code = passed ? 0 : 1;
  process.exitCode = code;
  await recordAccess({
    read: source,
    journal: v['access-journal'] as string | undefined,
    command: 'verify',
    argv,
    resultCount: report.records,
    actor: v.actor as string | undefined,
  });
  return code;
}

function rest(r: VerifyReport): Omit<VerifyReport, 'ok'> {
  const { ok: _, ...others } = r;
  return others;
}

function render(source: string, r: VerifyReport, t: TrustVerdict): string {
  const counts = `${r.records} records in ${r.chains.length} chain(s) from ${source}`;
  let s: string;
  if (!r.ok) s = `PROBLEMS FOUND — NOT VERIFIED: ${counts}\n`;
  else if (t.mode === 'pinned')
    s = !t.verified
      ? `NOT VERIFIED: ${counts}\n`
      : t.chains.some((c) => c.tailAccepted)
        ? `VERIFIED except the unsigned tails accepted by --allow-unsigned-tail: ${counts}\n`
        : `VERIFIED: ${counts}\n`;
  else
    s = `intact, NOT VERIFIED against a pinned key: ${counts}\n  (trust on first use: each chain's checkpoints were checked with the key the chain itself declares; pin one with --trusted-key)\n`;
  s += `  trust basis: ${t.basis}${t.allowUnsignedTail ? '; unsigned tails accepted (--allow-unsigned-tail)' : ''}\n`;
  for (const reason of t.reasons) s += `  reason: ${reason}\n`;
  const byChain = new Map(t.chains.map((c) => [c.chain, c]));
  for (const c of r.chains) {
    const v = byChain.get(c.chain)!;
    s += `  chain ${c.chain}: ${c.records} records (seq ${c.firstSeq}..${c.lastSeq}) — ${status(v, t.mode, c.problems.length)}\n`;
    if (v.covered !== undefined) {
      const size = v.covered.checkpointSize;
      const self = v.covered.last === size ? ` (seq ${size} is that signed checkpoint's own record)` : '';
      s += `    signed: seq ${range(v.covered)} by checkpoint size ${size} (${t.mode === 'pinned' ? `pinned key ${v.covered.key}` : `declared key ${v.covered.key}, trust on first use`}) at ${v.covered.location}${self}\n`;
    }
    if (v.unsigned !== undefined)
      s += `    UNSIGNED: seq ${range(v.unsigned)} — no ${t.mode === 'pinned' ? 'trusted ' : ''}signed checkpoint covers ${v.unsigned.first === v.unsigned.last ? 'it' : 'them'}${v.tailAccepted ? ' (accepted: --allow-unsigned-tail)' : ''}\n`;
    s += `    basis: ${v.basis}; ${c.checkpointsVerified} checkpoint(s) verified\n`;
    if (v.erased.length > 0)
      s += `    erased: ${v.erased.map((e) => `seq ${e.seq} by ${e.by}`).join(', ')} (erasure records covered by a signature)\n`;
    if (c.duplicates > 0) s += `    ${c.duplicates} exact duplicate(s)\n`;
    for (const p of c.problems)
      s += `    ${p.kind}${p.seq !== undefined ? ` seq ${p.seq}` : ''}${p.location ? ` at ${p.location}` : ''}: ${p.message}\n`;
  }
  for (const p of r.problems) s += `  ${p.kind}${p.location ? ` at ${p.location}` : ''}: ${p.message}\n`;
  return s;
}

function status(v: TrustVerdict['chains'][number], mode: 'pinned' | 'tofu', problems: number): string {
  switch (v.status) {
    case 'problems':
      return `${problems} PROBLEM(S)`;
    case 'unsigned':
      return 'UNSIGNED (no signed checkpoint covers it)';
    case 'unsigned-tail':
      return v.tailAccepted ? 'unsigned tail accepted' : 'UNSIGNED TAIL';
    default:
      return mode === 'pinned' ? 'verified' : 'signed (trust on first use)';
  }
}
