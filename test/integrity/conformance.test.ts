import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CompactMerkleTree,
  consistencyProof,
  generateSigner,
  inclusionProof,
  leafHash,
  parseCheckpoint,
  parseNote,
  parseVerifier,
  rootOf,
  verifyConsistency,
  verifyInclusion,
  verifyNote,
} from '../../src/integrity/index.js';
import { describeWithSharedData, sharedTestdata } from '../shared-data.js';

function jsonFiles(dir: string): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir)) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...jsonFiles(p));
    else if (n.endsWith('.json')) out.push(p);
  }
  return out.sort();
}
const b64 = (s: string | null | undefined) => Buffer.from(s ?? '', 'base64');

describeWithSharedData('rfc6962', 'RFC 6962 test vectors', () => {
  const ref = JSON.parse(readFileSync(join(sharedTestdata, 'rfc6962/reference-tree.json'), 'utf8')) as {
    leaves_hex: string[];
    leaf_hashes_hex: string[];
    roots_hex: Record<string, string>;
  };
  const leaves = ref.leaves_hex.map((h) => leafHash(Buffer.from(h, 'hex')));

  it('leaf hashes are SHA-256(0x00 || data)', () => {
    expect(leaves.map((l) => l.toString('hex'))).toEqual(ref.leaf_hashes_hex);
  });

  it('roots for every size 0..8, recursive and incremental', () => {
    const tree = new CompactMerkleTree();
    for (let n = 0; n <= leaves.length; n++) {
      expect(rootOf(leaves.slice(0, n)).toString('hex'), `size ${n}`).toBe(ref.roots_hex[String(n)]);
      expect(tree.root().toString('hex'), `incremental size ${n}`).toBe(ref.roots_hex[String(n)]);
      if (n < leaves.length) tree.appendLeafHash(leaves[n]);
    }
  });

  it('generated inclusion and consistency proofs verify for every pair in the reference tree', () => {
    for (let n = 1; n <= leaves.length; n++) {
      const root = rootOf(leaves.slice(0, n));
      for (let i = 0; i < n; i++) {
        expect(
          verifyInclusion(i, n, leaves[i], inclusionProof(leaves.slice(0, n), i), root),
          `${i}/${n}`,
        ).toBe(true);
      }
      for (let m = 1; m <= n; m++) {
        const proof = consistencyProof(leaves.slice(0, n), m);
        expect(verifyConsistency(m, n, rootOf(leaves.slice(0, m)), root, proof), `${m}→${n}`).toBe(true);
      }
    }
  });

  const inclusion = jsonFiles(join(sharedTestdata, 'rfc6962/inclusion'));
  it.each(inclusion.map((f) => [relative(sharedTestdata, f), f]))('inclusion probe %s', (_name, file) => {
    const p = JSON.parse(readFileSync(file, 'utf8'));
    const ok = verifyInclusion(p.leafIdx, p.treeSize, b64(p.leafHash), (p.proof ?? []).map(b64), b64(p.root));
    expect(ok).toBe(!p.wantErr);
  });

  const consistency = jsonFiles(join(sharedTestdata, 'rfc6962/consistency'));
  it.each(consistency.map((f) => [relative(sharedTestdata, f), f]))('consistency probe %s', (_name, file) => {
    const p = JSON.parse(readFileSync(file, 'utf8'));
    const ok = verifyConsistency(p.size1, p.size2, b64(p.root1), b64(p.root2), (p.proof ?? []).map(b64));
    expect(ok).toBe(!p.wantErr);
  });
});

describeWithSharedData('c2sp', 'C2SP signed note vector', () => {
  const vector = JSON.parse(readFileSync(join(sharedTestdata, 'c2sp/signed-note-vector.json'), 'utf8')) as {
    vkey: string;
    note: string;
  };
  const verifier = parseVerifier(vector.vkey);

  it('accepts the example note and computes its key id', () => {
    expect(verifier.keyId).toBe(vector.vkey.split('+')[1]);
    expect(verifyNote(vector.note, verifier)).toBe(true);
    expect(parseNote(vector.note).text).toBe('This is an example message.\n');
  });

  it('rejects the note when any byte of the message or signature is flipped', () => {
    const bytes = Buffer.from(vector.note, 'utf8');
    const sigStart = bytes.lastIndexOf(' ') + 1;
    const positions = [0, 5, bytes.indexOf(10) - 1, sigStart, sigStart + 10, bytes.length - 3];
    for (const i of positions) {
      const flipped = Buffer.from(bytes);
      flipped[i] ^= i >= sigStart ? 0x01 : 0x20;
      expect(verifyNote(flipped.toString('utf8'), verifier), `byte ${i}`).toBe(false);
    }
  });
});

describe('our own notes and checkpoints', () => {
  it('sign and verify round-trip; a different key does not verify', () => {
    const { signer } = generateSigner('mltrail-test');
    const note = signer.signNote('mltrail/chain/x\n3\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n');
    expect(verifyNote(note, parseVerifier(signer.verifierKey))).toBe(true);
    expect(verifyNote(note, parseVerifier(generateSigner('mltrail-test').signer.verifierKey))).toBe(false);
    expect(parseCheckpoint(parseNote(note).text)).toEqual({
      origin: 'mltrail/chain/x',
      size: 3,
      root: Buffer.from('47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=', 'base64'),
      extensions: [],
    });
  });

  it('rejects malformed checkpoints with a clear message', () => {
    expect(() => parseCheckpoint('origin\nx\nroot\n')).toThrow(/tree size "x" is not a decimal number/);
    expect(() => parseCheckpoint('origin\n1\nAAAA\n')).toThrow(/root hash is not 32 bytes/);
    expect(() => parseVerifier('nope')).toThrow(/expected <name>\+<key id>\+<key>/);
  });
});
