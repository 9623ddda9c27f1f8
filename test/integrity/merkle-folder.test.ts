import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { rootOf } from '../../src/integrity/index.js';
import { MerkleFolder } from '../../src/integrity/merkle-folder.js';

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
