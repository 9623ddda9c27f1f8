import { createHash, hash } from 'node:crypto';

/** The Merkle tree hash of the empty tree: SHA-256 of nothing. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

/**
 * The RFC 6962 tree hash over leaf hashes appended in order (the compact range behind
 * {@link CompactMerkleTree}), for the verifier's hot loop: leaves are read from a table of 32-byte hashes, the compact
 * range lives in one preallocated byte array, and every interior node is one one-shot SHA-256 of a reused
 * 65-byte buffer with a binary-string result (a Buffer result allocates a backing store per call).
 */
export class MerkleFolder {
  #size = 0;
  /** Roots of the perfect subtrees, largest (leftmost) first, 32 bytes each; `#depth` of them. */
  readonly #stack = new Uint8Array(64 * 32);
  #depth = 0;
  /** `0x01 || left || right`; a new leaf is written into the right half. */
  readonly #node = Buffer.alloc(65);

  constructor() {
    this.#node[0] = 1;
  }

  get size(): number {
    return this.#size;
  }

  /** Appends the leaf hash held in `table[at, at + 32)`. */
  appendFromTable(table: Uint8Array, at: number): void {
    if ((this.#size & 1) === 0) {
      // An even size folds nothing: the leaf goes straight onto the stack.
      const to = this.#depth++ * 32;
      for (let i = 0; i < 32; i++) this.#stack[to + i] = table[at + i];
      this.#size++;
      return;
    }
    const node = this.#node;
    for (let i = 0; i < 32; i++) node[33 + i] = table[at + i];
    this.#fold();
  }

  /**
   * Appends a perfect subtree of 2^height leaves by its root (`table[at, at + 32)`): the tree must end on
   * a multiple of its size, as in the blocks of {@link alignedBlocks}.
   */
  appendSubtree(table: Uint8Array, at: number, height: number): void {
    const leaves = 2 ** height;
    if (this.#size % leaves !== 0)
      throw new RangeError(`a subtree of ${leaves} leaves cannot follow ${this.#size}`);
    const node = this.#node;
    const stack = this.#stack;
    for (let i = 0; i < 32; i++) node[33 + i] = table[at + i];
    // The entries it merges with are those of the size's set bits from `height` up, smallest on top.
    for (let n = this.#size / leaves; n % 2 === 1; n = (n - 1) / 2) {
      const from = --this.#depth * 32;
      for (let i = 0; i < 32; i++) node[1 + i] = stack[from + i];
      const h = hash('sha256', node, 'binary');
      for (let i = 0; i < 32; i++) node[33 + i] = h.charCodeAt(i);
    }
    const to = this.#depth++ * 32;
    for (let i = 0; i < 32; i++) stack[to + i] = node[33 + i];
    this.#size += leaves;
  }

  /** The root at the current size. */
  root(): Buffer {
    if (this.#depth === 0) return EMPTY_ROOT;
    const node = this.#node;
    const stack = this.#stack;
    const right = Buffer.from(stack.subarray((this.#depth - 1) * 32, this.#depth * 32));
    for (let d = this.#depth - 2; d >= 0; d--) {
      node.set(stack.subarray(d * 32, d * 32 + 32), 1);
      node.set(right, 33);
      right.write(hash('sha256', node, 'binary'), 'latin1');
    }
    return right;
  }

  /** Folds the leaf in the node's right half into the stack. */
  #fold(): void {
    const node = this.#node;
    const stack = this.#stack;
    for (let n = this.#size; n & 1; n >>= 1) {
      const at = --this.#depth * 32;
      for (let i = 0; i < 32; i++) node[1 + i] = stack[at + i];
      const h = hash('sha256', node, 'binary');
      for (let i = 0; i < 32; i++) node[33 + i] = h.charCodeAt(i);
    }
    const at = this.#depth++ * 32;
    for (let i = 0; i < 32; i++) stack[at + i] = node[33 + i];
    this.#size++;
  }
}

/**
 * Splits the leaf range [start, end) into the perfect subtrees a tree growing through it is made of:
 * each block starts on a multiple of its size (2^height) and is as large as that allows. Calls
 * `block(start, height)` in order.
 */
export function alignedBlocks(
  start: number,
  end: number,
  block: (start: number, height: number) => void,
): void {
  let at = start;
  while (at < end) {
    let height = 0;
    while (height < 52 && at % 2 ** (height + 1) === 0 && at + 2 ** (height + 1) <= end) height++;
    block(at, height);
    at += 2 ** height;
  }
}
