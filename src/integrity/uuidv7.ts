import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;
// Random bytes are drawn 4 KiB at a time: one system call per ~400 ids instead of one or two per id.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

function random(n: number): Buffer {
  if (poolAt + n > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  poolAt += n;
  return pool.subarray(poolAt - n, poolAt);
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
    counter = random(2).readUInt16BE(0) & 0x3ff;
  }
  const b = Buffer.allocUnsafe(16);
  random(10).copy(b, 6);
  b.writeUIntBE(ms, 0, 6);
  b[6] = 0x70 | (counter >> 8);
  b[7] = counter & 0xff;
  b[8] = 0x80 | (b[8] & 0x3f);
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The millisecond timestamp in a UUIDv7. */
export function uuidv7Time(id: string): number {
  return Number.parseInt(id.replaceAll('-', '').slice(0, 12), 16);
}
