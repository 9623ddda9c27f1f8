import { createHash, hash } from 'node:crypto';
import { createReadStream } from 'node:fs';

/** A content digest in the form every mltrail record uses: `sha256:<lower-case hex>`. */
export type Digest = `sha256:${string}`;

/** The sha256 digest of raw bytes (a UTF-8 string is hashed as its bytes). */
export function digestBytes(data: Uint8Array | string): Digest {
  // One-shot hashing: about half the cost of a Hash object for the small inputs of a prediction.
  return `sha256:${hash('sha256', data)}`;
}

/** The sha256 digest of a file's bytes, streamed so large data sets do not sit in memory. */
export async function digestFile(path: string): Promise<Digest> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return `sha256:${hash.digest('hex')}`;
}

/**
 * The digest of tabular rows: each row serialised as canonical JSON on its own line, so the same rows in
 * the same order give the same digest in any process or language that follows RFC 8785.
 */
export function digestRows(rows: readonly unknown[], canonicalize: (v: unknown) => string): Digest {
  const hash = createHash('sha256');
  for (const row of rows) {
    hash.update(canonicalize(row));
    hash.update('\n');
  }
  return `sha256:${hash.digest('hex')}`;
}

/** True when `value` looks like a digest this package writes. */
export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && /^sha256:[0-9a-f]{64}$/.test(value);
}
