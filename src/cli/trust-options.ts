import { parseCheckpoint, parseNote, parseVerifier } from '../integrity/signed-note.js';
import type { TrustBasis } from '../integrity/trust-verdict.js';
import { EvidenceFileError, readNamedFile } from '../sources/evidence-files.js';
import { CliError } from './command.js';

/** The trust flags `verify` and `report` share (parseArgs options). */
export const TRUST_OPTIONS = {
  'trusted-key': { type: 'string', multiple: true },
  'trust-file': { type: 'string' },
  'since-checkpoint': { type: 'string', multiple: true },
  'allow-unsigned-tail': { type: 'boolean' },
} as const;

/** Their help lines. */
export const TRUST_HELP = `  --trusted-key VKEY       pin a checkpoint verifier key (<name>+<key id>+<key>, repeatable): only
                           checkpoints it signs count, and every record must be covered by one
  --trust-file FILE        verifier keys to pin, one per line (# comments); default MLTRAIL_TRUST_FILE
  --since-checkpoint FILE  prove the trail extends this older checkpoint (held by someone else; repeatable)
  --allow-unsigned-tail    accept records after a chain's last trusted checkpoint (reported as unsigned)`;

/** What the trust flags resolve to. */
export interface TrustSettings extends TrustBasis {
  /** The held checkpoints' notes, to give the verifier. */
  checkpoints: { note: string; source: string }[];
}

/**
 * Resolves the trust flags: pinned keys from `--trusted-key` and the trust file (`--trust-file`, else
 * MLTRAIL_TRUST_FILE), held checkpoints from `--since-checkpoint`. A private signing key where a verifier
 * key belongs is refused without repeating any of it (it would land in terminals and CI logs).
 */
export function resolveTrust(values: {
  'trusted-key'?: string[];
  'trust-file'?: string;
  'since-checkpoint'?: string[];
  'allow-unsigned-tail'?: boolean;
}): TrustSettings {
  const keys: string[] = [];
  (values['trusted-key'] ?? []).forEach((k, i) => {
    keys.push(checkVerifierKey(k, `--trusted-key #${i + 1}`));
  });
  const trustFile = values['trust-file'] ?? nonEmpty(process.env.MLTRAIL_TRUST_FILE);
  if (trustFile !== undefined) {
    let text: string;
    try {
      text = readNamedFile(trustFile).toString('utf8');
    } catch (err) {
      if (err instanceof EvidenceFileError) throw new CliError(`cannot read the trust file: ${err.message}`);
      throw new CliError(
        `cannot read the trust file ${trustFile} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      );
    }
    const lines = text.split('\n');
    let found = 0;
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      keys.push(checkVerifierKey(line, `${trustFile}:${i + 1}`));
      found++;
    });
    if (found === 0) throw new CliError(`the trust file ${trustFile} holds no verifier key`);
  }
  const checkpoints: { note: string; source: string }[] = [];
  const held = new Map<string, number[]>();
  for (const f of values['since-checkpoint'] ?? []) {
    let note: string;
    try {
      note = readNamedFile(f).toString('utf8');
    } catch (err) {
      throw new CliError(`cannot read checkpoint ${f}: ${(err as Error).message}`);
    }
    checkpoints.push({ note, source: f });
    try {
      const cp = parseCheckpoint(parseNote(note).text);
      const chain = /^mltrail\/chain\/(.+)$/.exec(cp.origin)?.[1];
      if (chain !== undefined) held.set(chain, [...(held.get(chain) ?? []), cp.size]);
    } catch {
      // The verifier reports a held checkpoint that does not parse, where it came from.
    }
  }
  return {
    trustedKeys: keys,
    held,
    allowUnsignedTail: values['allow-unsigned-tail'] === true,
    checkpoints,
  };
}

/** A verifier key as given, or an error naming where it came from — never its content. */
function checkVerifierKey(value: string, where: string): string {
  const v = value.trim();
  if (/private\+key/i.test(v) || /^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(v))
    throw new CliError(
      `${where} is a PRIVATE signing key, not a verifier key; it is not shown here. Pass the verifier key ` +
        '(<name>+<key id>+<key>, printed by "mltrail keygen"), and treat the private key as exposed if this ' +
        'command line was logged',
    );
  try {
    return parseVerifier(v).verifierKey;
  } catch {
    throw new CliError(
      `${where} is not a verifier key: expected <name>+<key id>+<key> as printed by "mltrail keygen"`,
    );
  }
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s;
}
