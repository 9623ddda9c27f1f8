import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;
/** The first two groups (the milliseconds) of the last id made, reused while the millisecond is the same. */
let prefixMs = -1;
let prefix = '';
// Random bytes are drawn 4 KiB at a time: one system call per ~400 ids instead of one or two per id.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** Two hex digits of every byte value: ids are written from the pool's bytes with no Buffer in between. */
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

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
    prefix = `${t.slice(0, 8)}-${t.slice(8, 12)}-`;
    prefixMs = ms;
  }
  const r = random(8);
  return (
    `${prefix}${HEX[0x70 | (counter >> 8)]}${HEX[counter & 0xff]}-` +
    `${HEX[0x80 | (pool[r] & 0x3f)]}${HEX[pool[r + 1]]}-${HEX[pool[r + 2]]}${HEX[pool[r + 3]]}` +
    `${HEX[pool[r + 4]]}${HEX[pool[r + 5]]}${HEX[pool[r + 6]]}${HEX[pool[r + 7]]}`
  );
}

/** The millisecond timestamp in a UUIDv7. */
export function uuidv7Time(id: string): number {
  return Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}
