import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;
/** The millisecond of the first two groups now in the id buffer, rewritten only when it changes. */
let prefixMs = -1;
// Random bytes are drawn 4 KiB at a time: one system call per ~400 ids instead of one or two per id.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/**
 * Ids are written into one reused buffer and read out as one flat string: an id built by concatenating
 * its pieces is a rope that is flattened (allocated and copied again) the first time it is hashed, as a
 * Map key or a digest input, or escaped into a record.
 */
const ID = Buffer.alloc(36);
const HEX_DIGITS = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/** Writes byte `b` as two lower-case hex digits at `at`. */
function putHex(at: number, b: number): void {
  ID[at] = HEX_DIGITS[b >> 4];
  ID[at + 1] = HEX_DIGITS[b & 15];
}

/** The offset of `n` fresh random bytes in the pool. */
function random(n: number): number {
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += n;
  return poolAt - n;
}

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then 12 bits used as a counter that keeps ids from one
 * process strictly increasing within the same millisecond, then 62 random bits. Sorting ids sorts them by
 * creation time, which keeps journals and Loki queries in order.
 */
export function uuidv7(): string {
  let ms = Date.now();
  if (ms <= lastMs) {
    counter++;
    if (counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
    ms = lastMs;
  } else {
    lastMs = ms;
    const at = random(2);
    counter = ((pool[at] << 8) | pool[at + 1]) & 0x3ff;
  }
  // Bytes 0–5: the milliseconds; 6–7: version 7 and the counter; 8: variant 10 and 6 random bits; 9–15: random.
  if (ms !== prefixMs) {
    const t = ms.toString(16).padStart(12, '0');
    ID.write(`${t.slice(0, 8)}-${t.slice(8, 12)}-`, 0, 'latin1');
    prefixMs = ms;
  }
  const r = random(8);
  putHex(14, 0x70 | (counter >> 8));
  putHex(16, counter & 0xff);
  ID[18] = 0x2d;
  putHex(19, 0x80 | (pool[r] & 0x3f));
  putHex(21, pool[r + 1]);
  ID[23] = 0x2d;
  for (let i = 0; i < 6; i++) putHex(24 + 2 * i, pool[r + 2 + i]);
  return ID.toString('latin1', 0, 36);
}

/** The millisecond timestamp in a UUIDv7. */
export function uuidv7Time(id: string): number {
  return Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}
