import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';

const ED25519 = 0x01;
// DER prefixes that wrap a raw 32-byte Ed25519 key as PKCS#8 / SPKI for node:crypto.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** C2SP signed-note key id: the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key). */
export function keyId(name: string, publicKey: Uint8Array): Buffer {
  return createHash('sha256')
    .update(name)
    .update(Buffer.from([0x0a, ED25519]))
    .update(publicKey)
    .digest()
    .subarray(0, 4);
}

/** A checkpoint signer: an Ed25519 key with a C2SP key name. */
export interface NoteSigner {
  readonly name: string;
  readonly keyId: string;
  /** The verifier key string `<name>+<hex key id>+<base64(0x01 || public key)>`. */
  readonly verifierKey: string;
  /** Signs a note body (must end in a newline) and returns the full signed note. */
  signNote(body: string): string;
}

/** A key that verifies notes, parsed from a verifier key string. */
export interface NoteVerifier {
  readonly name: string;
  readonly keyId: string;
  readonly verifierKey: string;
  readonly publicKey: KeyObject;
}

/** Thrown for malformed keys and notes; the message says which part is wrong. */
export class NoteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoteError';
  }
}

/** Generates a new Ed25519 signer; returns it with its private key string (`PRIVATE+KEY+…`). */
export function generateSigner(name: string): { signer: NoteSigner; privateKey: string } {
  checkName(name);
  const { privateKey } = generateKeyPairSync('ed25519');
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
  const text = formatPrivateKey(name, seed);
  return { signer: parseSigner(text), privateKey: text };
}

function formatPrivateKey(name: string, seed: Buffer): string {
  const pub = rawPublic(
    createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' }),
  );
  return `PRIVATE+KEY+${name}+${keyId(name, pub).toString('hex')}+${Buffer.concat([Buffer.from([ED25519]), seed]).toString('base64')}`;
}

function rawPublic(priv: KeyObject): Buffer {
  return createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
}

/** Parses a private key string `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 || seed)>`. */
export function parseSigner(text: string): NoteSigner {
  const parts = splitKey(text.trim(), 5);
  if (parts === undefined || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') {
    throw new NoteError('signing key: expected PRIVATE+KEY+<name>+<key id>+<key> (from "mltrail keygen")');
  }
  const [, , name, id, b64] = parts;
  checkName(name);
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 33 || raw[0] !== ED25519)
    throw new NoteError('signing key: not an Ed25519 key (type 0x01, 32 bytes)');
  const priv = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, raw.subarray(1)]),
    format: 'der',
    type: 'pkcs8',
  });
  const pub = rawPublic(priv);
  const kid = keyId(name, pub);
  if (kid.toString('hex') !== id.toLowerCase())
    throw new NoteError(`signing key: key id ${id} does not match the key`);
  const verifierKey = `${name}+${kid.toString('hex')}+${Buffer.concat([Buffer.from([ED25519]), pub]).toString('base64')}`;
  return {
    name,
    keyId: kid.toString('hex'),
    verifierKey,
    signNote(body: string): string {
      if (!body.endsWith('\n')) throw new NoteError('note body must end with a newline');
      const sig = sign(null, Buffer.from(body, 'utf8'), priv);
      return `${body}\n\u2014 ${name} ${Buffer.concat([kid, sig]).toString('base64')}\n`;
    },
  };
}

/** Parses a verifier key `<name>+<hex key id>+<base64(0x01 || public key)>`. */
export function parseVerifier(vkey: string): NoteVerifier {
  const parts = splitKey(vkey.trim(), 3);
  if (parts === undefined) throw new NoteError(`verifier key "${vkey}": expected <name>+<key id>+<key>`);
  const [name, id, b64] = parts;
  checkName(name);
  const raw = Buffer.from(b64, 'base64');
  if (raw.length !== 33 || raw[0] !== ED25519)
    throw new NoteError(`verifier key "${vkey}": not an Ed25519 key`);
  const kid = keyId(name, raw.subarray(1)).toString('hex');
  if (kid !== id.toLowerCase()) throw new NoteError(`verifier key "${vkey}": key id does not match the key`);
  const publicKey = createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, raw.subarray(1)]),
    format: 'der',
    type: 'spki',
  });
  return { name, keyId: kid, verifierKey: vkey.trim(), publicKey };
}

/** A note split into its text and signature lines. */
export interface ParsedNote {
  text: string;
  signatures: { name: string; keyId: string; signature: Buffer }[];
}

/** Splits a signed note; throws {@link NoteError} if it is not one. */
export function parseNote(note: string): ParsedNote {
  const sep = note.lastIndexOf('\n\n');
  if (sep < 0 || !note.endsWith('\n'))
    throw new NoteError('signed note: missing the blank line before the signatures');
  const text = note.slice(0, sep + 1);
  const signatures: ParsedNote['signatures'] = [];
  for (const line of note.slice(sep + 2, -1).split('\n')) {
    const m = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/.exec(line);
    if (m === null) throw new NoteError(`signed note: malformed signature line "${line}"`);
    const raw = Buffer.from(m[2], 'base64');
    if (raw.length < 5) throw new NoteError('signed note: signature too short');
    signatures.push({ name: m[1], keyId: raw.subarray(0, 4).toString('hex'), signature: raw.subarray(4) });
  }
  if (signatures.length === 0) throw new NoteError('signed note: no signatures');
  return { text, signatures };
}

/** True when `note` carries a valid signature by `verifier` over its text. */
export function verifyNote(note: string, verifier: NoteVerifier): boolean {
  let parsed: ParsedNote;
  try {
    parsed = parseNote(note);
  } catch {
    return false;
  }
  for (const s of parsed.signatures) {
    if (s.name !== verifier.name || s.keyId !== verifier.keyId) continue;
    if (s.signature.length !== 64) return false;
    return verify(null, Buffer.from(parsed.text, 'utf8'), verifier.publicKey, s.signature);
  }
  return false;
}

/** Splits on the first n-1 "+" only: the base64 key at the end may itself contain "+". */
function splitKey(text: string, n: number): string[] | undefined {
  const parts: string[] = [];
  let rest = text;
  for (let i = 0; i < n - 1; i++) {
    const at = rest.indexOf('+');
    if (at < 0) return undefined;
    parts.push(rest.slice(0, at));
    rest = rest.slice(at + 1);
  }
  parts.push(rest);
  return parts;
}

function checkName(name: string): void {
  if (name === '' || /[\s+]/.test(name))
    throw new NoteError(`key name "${name}" must be non-empty, without spaces or "+"`);
}

/** A C2SP tlog-checkpoint body. */
export interface Checkpoint {
  origin: string;
  size: number;
  /** RFC 6962 root hash (32 bytes). */
  root: Buffer;
  extensions: string[];
}

/** Formats a checkpoint body: origin, decimal size, base64 root, each on its own line. */
export function formatCheckpoint(c: Omit<Checkpoint, 'extensions'> & { extensions?: string[] }): string {
  return `${c.origin}\n${c.size}\n${c.root.toString('base64')}\n${(c.extensions ?? []).map((e) => `${e}\n`).join('')}`;
}

/** Parses a checkpoint body (the text of a signed note). */
export function parseCheckpoint(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length < 4 || lines.at(-1) !== '')
    throw new NoteError('checkpoint: expected origin, size and root hash lines');
  const [origin, size, root, ...rest] = lines.slice(0, -1);
  if (!/^(0|[1-9][0-9]*)$/.test(size))
    throw new NoteError(`checkpoint: tree size "${size}" is not a decimal number`);
  const hash = Buffer.from(root, 'base64');
  if (hash.length !== 32 || hash.toString('base64') !== root)
    throw new NoteError('checkpoint: root hash is not 32 bytes of base64');
  return { origin, size: Number(size), root: hash, extensions: rest };
}
