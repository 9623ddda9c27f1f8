import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { generateSigner, NoteError, type NoteSigner, parseSigner } from './signed-note.js';

/** The file a generated signing key is kept in, inside the journal directory. */
export const GENERATED_KEY_FILE = 'signing-key.private';

/** Where the checkpoint signing key comes from. */
export interface SigningKeyOptions {
  /** A file holding a `PRIVATE+KEY+…` string (from `mltrail keygen`). */
  file?: string;
  /** The key string itself; defaults to the MLTRAIL_SIGNING_KEY environment variable. */
  key?: string;
  /** The journal directory: where a key is generated on first use when none is configured. */
  dir?: string;
  /** Key name for a generated key; defaults to `mltrail-<hostname>`. */
  name?: string;
  /**
   * Warn also when a key generated earlier is used again, not only when one is generated (default false).
   * `mltrail/register` sets it: a service that starts signing with a key kept beside its journal says so at
   * every start; the CLI's access journal only when its key is made.
   */
  warnOnReuse?: boolean;
}

/**
 * Loads the checkpoint signing key: an explicit key, then a key file, then MLTRAIL_SIGNING_KEY, then a key
 * generated on first use and stored 0600 beside the journal (with a warning: production deployments should
 * supply their own key, held where the journal's writer cannot rewrite history with it).
 */
export function loadSigningKey(opts: SigningKeyOptions = {}): NoteSigner {
  if (opts.key !== undefined) return parseSigner(opts.key);
  if (opts.file !== undefined) return parseSigner(readFileSync(opts.file, 'utf8'));
  const env = process.env.MLTRAIL_SIGNING_KEY;
  if (env !== undefined && env.trim() !== '') {
    if (env.startsWith('PRIVATE+KEY+')) return parseSigner(env);
    let text: string;
    try {
      text = readFileSync(env, 'utf8');
    } catch (err) {
      // Never echo the value: it may be a mistyped key rather than a path.
      throw new NoteError(
        `signing key: MLTRAIL_SIGNING_KEY is neither a PRIVATE+KEY+… string nor a readable file (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      );
    }
    return parseSigner(text);
  }
  const dir = opts.dir ?? process.env.MLTRAIL_DIR ?? '.mltrail';
  const path = join(dir, GENERATED_KEY_FILE);
  if (existsSync(path)) {
    const signer = parseSigner(readFileSync(path, 'utf8'));
    if (opts.warnOnReuse === true) warnGeneratedKey(path, signer, 'using the generated');
    return signer;
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = opts.name ?? `mltrail-${hostname().replace(/[^A-Za-z0-9.-]/g, '-') || 'host'}`;
  const { signer, privateKey } = generateSigner(name);
  try {
    writeFileSync(path, `${privateKey}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process sharing the journal generated one first: use that key.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      const theirs = parseSigner(readFileSync(path, 'utf8'));
      if (opts.warnOnReuse === true) warnGeneratedKey(path, theirs, 'using the generated');
      return theirs;
    }
    throw err;
  }
  chmodSync(path, 0o600);
  warnGeneratedKey(path, signer, 'generated a');
  return signer;
}

/** Key files this process has warned about: once per process and key is enough. */
const warned = new Set<string>();

/**
 * A process warning (stderr by default; not `diag`, which is silent unless OTEL_LOG_LEVEL asks) when a
 * process signs with a key kept beside the journal: whoever can write the journal can read that key and
 * re-sign a rewritten history, so the operator must see it without asking for diagnostics.
 */
function warnGeneratedKey(path: string, signer: NoteSigner, what: string): void {
  if (warned.has(path)) return;
  warned.add(path);
  process.emitWarning(
    `mltrail: ${what} checkpoint signing key at ${path} (verifier key ${signer.verifierKey}): fine for trying ` +
      'mltrail, wrong for production, where whoever can write the journal could re-sign it; supply your own key ' +
      'with MLTRAIL_SIGNING_KEY ("npx mltrail keygen")',
    'MltrailSigningKeyWarning',
  );
}
