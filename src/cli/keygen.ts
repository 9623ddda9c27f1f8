import { existsSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { generateSigner } from '../integrity/index.js';
import { CliError, parseCommand } from './command.js';

const HELP = `usage: mltrail keygen [--out FILE] [--name NAME]

Generates an Ed25519 checkpoint signing key. The private key goes to FILE (created 0600; refuses to
overwrite) or stdout; the verifier key (give it to whoever checks your trail: mltrail verify
--trusted-key) is printed on stderr. Use the key with MLTRAIL_SIGNING_KEY=FILE or the key itself.
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(
    argv,
    HELP,
    {
      out: { type: 'string' },
      name: { type: 'string' },
    },
    0,
  );
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const name = values.name ?? `mltrail-${hostname().replace(/[^A-Za-z0-9.-]/g, '-')}`;
  let generated: ReturnType<typeof generateSigner>;
  try {
    generated = generateSigner(name);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (values.out !== undefined) {
    if (existsSync(values.out))
      throw new CliError(`${values.out} exists; refusing to overwrite a signing key`);
    try {
      writeFileSync(values.out, `${generated.privateKey}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      throw new CliError(`cannot write the signing key to ${values.out}: ${(err as Error).message}`);
    }
    process.stderr.write(`private key written to ${values.out} (0600)\n`);
  } else {
    process.stdout.write(`${generated.privateKey}\n`);
  }
  process.stderr.write(`verifier key: ${generated.signer.verifierKey}\n`);
  return 0;
}
