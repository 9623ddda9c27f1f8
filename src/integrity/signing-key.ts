import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { diag } from '@opentelemetry/api';
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
  if (existsSync(path)) return parseSigner(readFileSync(path, 'utf8'));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const name = opts.name ?? `mltrail-${hostname().replace(/[^A-Za-z0-9.-]/g, '-') || 'host'}`;
  const { signer, privateKey } = generateSigner(name);
  try {
    writeFileSync(path, `${privateKey}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process sharing the journal generated one first: use that key.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return parseSigner(readFileSync(path, 'utf8'));
    throw err;
  }
  chmodSync(path, 0o600);
  diag.warn(
    `mltrail: generated a checkpoint signing key at ${path} (verifier key ${signer.verifierKey}); ` +
      'production deployments should supply their own with MLTRAIL_SIGNING_KEY ("mltrail keygen")',
  );
  return signer;
}
