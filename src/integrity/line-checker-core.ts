import { FIELDS } from './line-check-protocol.js';
import { alignedBlocks, MerkleFolder } from './merkle-folder.js';
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

/** Per run, in a slot's runs array: first entry, number of entries, first seq, first block. */
export const RUN_FIELDS = 4;

/**
 * Groups checked entries into runs — consecutive entries of one chain with consecutive seqs — and
 * computes each run's Merkle blocks ({@link alignedBlocks}: perfect subtrees aligned on the seqs) from the
 * entries' record hashes, so the reading thread appends a block instead of hashing its nodes. Returns the
 * number of runs; their block roots are 32 bytes each in `roots`, in order.
 */
export function foldRuns(
  data: Buffer,
  fields: Float64Array,
  sums: Uint8Array,
  count: number,
  runs: Float64Array,
  roots: Uint8Array,
): number {
  let nRuns = 0;
  let nBlocks = 0;
  let r = 0;
  while (r < count) {
    let end = r + 1;
    while (
      end < count &&
      fields[end * FIELDS + 3] === fields[(end - 1) * FIELDS + 3] + 1 &&
      sameChain(data, fields, end)
    )
      end++;
    const firstSeq = fields[r * FIELDS + 3];
    const run = nRuns++ * RUN_FIELDS;
    runs[run] = r;
    runs[run + 1] = end - r;
    runs[run + 2] = firstSeq;
    runs[run + 3] = nBlocks;
    alignedBlocks(firstSeq, firstSeq + (end - r), (start, height) => {
      const first = r + (start - firstSeq);
      if (height === 0) roots.set(sums.subarray(first * 64, first * 64 + 32), nBlocks * 32);
      else {
        const tree = new MerkleFolder();
        for (let e = first; e < first + 2 ** height; e++) tree.appendFromTable(sums, e * 64);
        roots.set(tree.root(), nBlocks * 32);
      }
      nBlocks++;
    });
    r = end;
  }
  return nRuns;
}

/** True when entry `e` names the same chain as entry `e - 1`. */
function sameChain(data: Buffer, fields: Float64Array, e: number): boolean {
  const a = fields[(e - 1) * FIELDS + 1];
  const b = fields[e * FIELDS + 1];
  const len = fields[e * FIELDS + 2] - b;
  if (fields[(e - 1) * FIELDS + 2] - a !== len) return false;
  for (let i = 0; i < len; i++) if (data[a + i] !== data[b + i]) return false;
  return true;
}
