import { FIELDS } from './line-check-protocol.js';
import type { RecordLineScanner } from './record-scanner.js';

/**
 * Checks the lines of `data[start, end)` (each ending in a newline) that need no other record, and writes
 * one entry per line that passed, in order: {@link FIELDS} numbers (line offset, chain start and end, seq,
 * prev offset) and 64 bytes (record hash, body digest). Returns the number of entries (at most `capacity`;
 * lines past it are left to the strict path).
 */
export function checkLines(
  scanner: RecordLineScanner,
  data: Buffer,
  start: number,
  end: number,
  fields: Float64Array,
  sums: Uint8Array,
  capacity: number,
): number {
  let n = 0;
  while (start < end && n < capacity) {
    const nl = data.indexOf(10, start);
    if (scanner.check(data, start, nl)) {
      const f = n * FIELDS;
      fields[f] = start;
      fields[f + 1] = scanner.chainStart;
      fields[f + 2] = scanner.chainEnd;
      fields[f + 3] = scanner.seq;
      fields[f + 4] = scanner.prevHex;
      sums.set(scanner.sums, n * 64);
      n++;
    }
    start = nl + 1;
  }
  return n;
}
