import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';

/** The shape every `mltrail` sub-command module exports. */
export interface CommandModule {
  /** Runs the command with its own arguments (after the command name); resolves to the exit code. */
  run(argv: string[]): Promise<number>;
}

/**
 * An error a user can act on. The entry point prints `mltrail: <message>` and exits with `exitCode`:
 * 1 when the answer is "problems"/"not found", 2 for usage and I/O errors.
 */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 2) {
    super(message);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/** Resolves the journal directory the way every reading command does: flag, then MLTRAIL_DIR, then ./.mltrail. */
export function resolveJournalDir(flag: string | undefined): string {
  return flag ?? process.env.MLTRAIL_DIR ?? '.mltrail';
}

/** The `--help`/`-h` flag every command takes. */
const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * Parses a command's flags with `node:util` parseArgs (strict: unknown flags are errors), adding `--help`.
 * Prints `help` and returns undefined when asked for it; turns a flag parseArgs rejects into a
 * {@link CliError} that shows the usage, so every command reports usage errors the same way (exit 2).
 * More than `maxPositionals` positional arguments is such an error too.
 */
export function parseCommand<O extends ParseArgsOptionsConfig>(
  argv: string[],
  help: string,
  options: O,
  maxPositionals = Number.POSITIVE_INFINITY,
): ParsedCommand<O> | undefined {
  let parsed: ParsedCommand<O>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: { ...options, ...HELP_OPTION },
    }) as unknown as ParsedCommand<O>;
  } catch (err) {
    throw new CliError(`${(err as Error).message}\n\n${help}`);
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    process.stdout.write(help);
    return undefined;
  }
  if (parsed.positionals.length > maxPositionals)
    throw new CliError(`unexpected argument "${parsed.positionals[maxPositionals]}"\n\n${help}`);
  return parsed;
}

/** What {@link parseCommand} returns: typed flag values and the positional arguments. */
export type ParsedCommand<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; allowPositionals: true; strict: true; options: O }>
>;
