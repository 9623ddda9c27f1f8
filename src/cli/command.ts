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
