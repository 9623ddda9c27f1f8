import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { rootOf } from '../../src/integrity/index.js';
import { alignedBlocks, MerkleFolder } from '../../src/integrity/merkle-folder.js';

describe('MerkleFolder (the verifier’s streaming tree)', () => {
  it('has the RFC 6962 root of every size from 0 to 130, as rootOf computes it', () => {
    const leaves = Array.from({ length: 130 }, (_, i) => createHash('sha256').update(`leaf ${i}`).digest());
    const table = Buffer.concat(leaves);
    const folder = new MerkleFolder();
    for (let n = 0; n <= leaves.length; n++) {
      expect(folder.size).toBe(n);
      expect(folder.root().toString('hex'), `size ${n}`).toBe(rootOf(leaves.slice(0, n)).toString('hex'));
      if (n < leaves.length) folder.appendFromTable(table, n * 32);
    }
  });
});

describe('MerkleFolder.appendSubtree with alignedBlocks', () => {
  it('folding a range by its aligned blocks gives the same roots as leaf by leaf', () => {
    const leaves = Array.from({ length: 200 }, (_, i) => createHash('sha256').update(`leaf ${i}`).digest());
    const table = Buffer.concat(leaves);
    for (const [a, b] of [
      [0, 200],
      [0, 1],
      [1, 2],
      [5, 77],
      [64, 128],
      [63, 129],
      [100, 200],
    ]) {
      const folder = new MerkleFolder();
      for (let i = 0; i < a; i++) folder.appendFromTable(table, i * 32);
      alignedBlocks(a, b, (start, height) => {
        const root = rootOf(leaves, start, start + 2 ** height);
        folder.appendSubtree(root, 0, height);
      });
      expect(folder.size).toBe(b);
      expect(folder.root().toString('hex'), `${a}..${b}`).toBe(rootOf(leaves.slice(0, b)).toString('hex'));
    }
  });
});
