import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto';

/** The environment variable the pseudonym key is read from when no `key` option is given. */
export const PSEUDONYM_KEY_ENV = 'MLTRAIL_PSEUDONYM_KEY';

/** Keys shorter than this are weak for HMAC; strict mode refuses them, default mode warns. */
export const MIN_PSEUDONYM_KEY_BYTES = 16;

/** Matches a pseudonym this package writes: `pii:<8 hex key id>:<43 base64url chars>`. */
export const PSEUDONYM_PATTERN = /^pii:[0-9a-f]{8}:[A-Za-z0-9_-]{43}$/;

/**
 * Turns values into keyed pseudonyms, `pii:<keyId>:<base64url(HMAC-SHA256(key, value))>`. The same value
 * and key always give the same pseudonym, so an auditor can follow one customer across records without
 * seeing who it is; without the key the value cannot be confirmed by guessing. The key id (first 8 hex of
 * SHA-256 of the key) says which key made a pseudonym, so a rotated key is visible in the data.
 */
export class Pseudonymizer {
  /** First 8 hex digits of SHA-256 of the key. */
  readonly keyId: string;
  // A KeyObject made once: handing raw bytes to every createHmac call re-imports the key each time.
  readonly #key: KeyObject;
  readonly #prefix: string;

  constructor(key: string | Uint8Array) {
    const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Uint8Array.from(key);
    if (bytes.length === 0) throw new TypeError('mltrail: the pseudonym key is empty');
    this.#key = createSecretKey(bytes);
    this.keyId = pseudonymKeyId(bytes);
    this.#prefix = `pii:${this.keyId}:`;
  }

  /** The pseudonym of a string (hashed as its UTF-8 bytes). */
  pseudonym(value: string): string {
    return this.#prefix + createHmac('sha256', this.#key).update(value, 'utf8').digest('base64url');
  }

  /** True when `value` is a pseudonym made with this key (so hashing again would lose the link). */
  isOwnPseudonym(value: string): boolean {
    return value.startsWith(this.#prefix) && PSEUDONYM_PATTERN.test(value);
  }
}

/** The key id recorded with pseudonyms: first 8 hex of SHA-256 of the key bytes. */
export function pseudonymKeyId(key: string | Uint8Array): string {
  return createHash('sha256')
    .update(typeof key === 'string' ? Buffer.from(key, 'utf8') : key)
    .digest('hex')
    .slice(0, 8);
}

/**
 * The pseudonym key from an explicit option, else from `MLTRAIL_PSEUDONYM_KEY` (its UTF-8 bytes), else
 * undefined. An empty variable counts as unset.
 */
export function resolvePseudonymKey(
  option: string | Uint8Array | undefined,
  env: Record<string, string | undefined> = process.env,
): Uint8Array | undefined {
  if (option !== undefined) return typeof option === 'string' ? Buffer.from(option, 'utf8') : option;
  const fromEnv = env[PSEUDONYM_KEY_ENV];
  return fromEnv !== undefined && fromEnv !== '' ? Buffer.from(fromEnv, 'utf8') : undefined;
}
