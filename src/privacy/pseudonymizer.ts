import { createHash, createHmac, createSecretKey, hash, type KeyObject } from 'node:crypto';

/** The environment variable the pseudonym key is read from when no `key` option is given. */
export const PSEUDONYM_KEY_ENV = 'MLTRAIL_PSEUDONYM_KEY';

/** Keys shorter than this are weak for HMAC; strict mode refuses them, default mode warns. */
export const MIN_PSEUDONYM_KEY_BYTES = 16;

/** Matches a pseudonym this package writes: `pii:<8 hex key id>:<43 base64url chars>`. */
export const PSEUDONYM_PATTERN = /^pii:[0-9a-f]{8}:[A-Za-z0-9_-]{43}$/;

const SHA256_BLOCK = 64;

/** Whether this Node has the one-shot `crypto.hash` (the HMAC fast path needs it). */
const ONE_SHOT = typeof hash === 'function';

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
  /**
   * HMAC (RFC 2104) as two one-shot SHA-256 calls over key blocks XORed once here: a `createHmac` object
   * per value costs more than the hashing. `#inner` is ipad-key then room for the value, `#outer` is
   * opad-key then the inner digest. Undefined where there is no `crypto.hash` (then createHmac).
   */
  readonly #inner: Buffer | undefined;
  readonly #outer: Buffer | undefined;

  constructor(key: string | Uint8Array) {
    const bytes = typeof key === 'string' ? Buffer.from(key, 'utf8') : Uint8Array.from(key);
    if (bytes.length === 0) throw new TypeError('mltrail: the pseudonym key is empty');
    this.#key = createSecretKey(bytes);
    this.keyId = pseudonymKeyId(bytes);
    this.#prefix = `pii:${this.keyId}:`;
    if (ONE_SHOT) {
      const block = bytes.length > SHA256_BLOCK ? createHash('sha256').update(bytes).digest() : bytes;
      this.#inner = Buffer.alloc(SHA256_BLOCK + 256, 0x36);
      this.#outer = Buffer.alloc(SHA256_BLOCK + 32, 0x5c);
      for (let i = 0; i < block.length; i++) {
        this.#inner[i] ^= block[i];
        this.#outer[i] ^= block[i];
      }
    }
  }

  /** The pseudonym of a string (hashed as its UTF-8 bytes). */
  pseudonym(value: string): string {
    const inner = this.#inner;
    const outer = this.#outer;
    // A value that may not fit the scratch room (3 UTF-8 bytes per UTF-16 unit at most) takes createHmac.
    if (inner === undefined || outer === undefined || value.length * 3 > inner.length - SHA256_BLOCK)
      return this.#prefix + createHmac('sha256', this.#key).update(value, 'utf8').digest('base64url');
    const n = inner.write(value, SHA256_BLOCK, 'utf8');
    // The inner digest travels as a 'binary' (latin1) string, one char per byte: on Node 24 crypto.hash
    // returns a string encoding faster than a Buffer.
    outer.write(hash('sha256', inner.subarray(0, SHA256_BLOCK + n), 'binary'), SHA256_BLOCK, 'latin1');
    inner.fill(0x36, SHA256_BLOCK, SHA256_BLOCK + n); // the value does not linger in the scratch room
    return this.#prefix + hash('sha256', outer, 'base64url');
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
