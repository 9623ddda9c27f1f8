#!/usr/bin/env node
/**
 * The `mltrail` command. Each sub-command lives in its own file and is imported only when it runs,
 * so `mltrail verify` never pays for loading the report renderer.
 */
import { CliError, type CommandModule } from './command.js';
import { enableCompileCache } from './compile-cache.js';

const commands: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  demo: { summary: 'run the end-to-end demo on a real model and data set', load: () => import('./demo.js') },
  verify: {
    summary: 'prove a journal, archive or Loki stream is complete and unmodified',
    load: () => import('./verify.js'),
  },
  keygen: { summary: 'generate an Ed25519 checkpoint signing key', load: () => import('./keygen.js') },
  erase: {
    summary: 'erase a record body (GDPR Art. 17) without breaking the proof',
    load: () => import('./erase.js'),
  },
  lineage: { summary: 'upstream and downstream lineage of any id', load: () => import('./lineage.js') },
  index: {
    summary: 'build the journal index lineage lookups use (derived data)',
    load: () => import('./index-journal.js'),
  },
  report: { summary: 'write a self-contained HTML evidence report', load: () => import('./report.js') },
  export: { summary: 'export the trail (openlineage)', load: () => import('./export.js') },
  drift: { summary: 'summarise drift over time per model version', load: () => import('./drift.js') },
  ship: { summary: 'ship journal records to an OTLP/HTTP endpoint', load: () => import('./ship.js') },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `usage: mltrail <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nrun "mltrail <command> --help" for a command's options\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    const { createRequire } = await import('node:module');
    const pkg = createRequire(import.meta.url)('../../package.json') as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const entry = commands[name];
  if (entry === undefined) {
    process.stderr.write(`mltrail: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  enableCompileCache();
  const mod = await entry.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof CliError) {
      process.stderr.write(`mltrail: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else if (
      ['RecordFormatError', 'NoteError', 'EvidenceFileError'].includes((err as Error | null)?.name ?? '')
    ) {
      // A malformed journal or archive line (the message names the file and line), a signing key,
      // verifier key or checkpoint that does not parse (it names which), or a file the readers refuse to
      // open (a FIFO, a device, a link out of the directory; it names the path): bad input, not a bug.
      process.stderr.write(`mltrail: ${(err as Error).message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(
        `mltrail: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 2;
    }
  },
);
