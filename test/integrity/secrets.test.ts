import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENERATED_KEY_FILE } from '../../src/integrity/index.js';
import { AuditLog } from '../../src/journal/index.js';
import { createTrail } from '../../src/trail/index.js';

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

describe('key and journal file protection', () => {
  it('the generated signing key is 0600, every journal file is 0600, and the private key never appears in a record', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-secrets-'));
    const trail = await createTrail({ serviceName: 'svc', sink: new AuditLog({ dir, checkpointEvery: 2 }) });
    for (let i = 0; i < 5; i++) await trail.dataset({ name: `d${i}`, data: String(i) });
    await trail.shutdown();
    const keyFile = join(dir, GENERATED_KEY_FILE);
    const privateKey = readFileSync(keyFile, 'utf8').trim();
    expect(privateKey).toMatch(/^PRIVATE\+KEY\+/);
    // PRIVATE+KEY+<name>+<hex id>+<base64>: the base64 itself may hold '+'.
    const secret = privateKey.split('+').slice(4).join('+');
    expect(Buffer.from(secret, 'base64')).toHaveLength(33);
    for (const f of filesUnder(dir)) {
      expect(statSync(f).mode & 0o077, `${f} must not be readable by group or others`).toBe(0);
      if (f !== keyFile) expect(readFileSync(f, 'utf8'), f).not.toContain(secret);
    }
  });
});
