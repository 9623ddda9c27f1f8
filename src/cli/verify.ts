import { CliError } from './command.js';

/** Placeholder until the command lands; replaced by its owner. */
export async function run(_argv: string[]): Promise<number> {
  throw new CliError('"verify" is not available in this build yet', 2);
}
