import { chmodSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../fixtures/cli-run.js';

/**
 * The CLI keeps Node's compile cache only in a directory this user owns and nobody else can write (a V8
 * code cache is trusted input). Whether Node wrote its cache is what is checked: files in the directory.
 */
const filesUnder = (dir: string): string[] =>
  readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => d.name);

describe('the CLI compile cache', () => {
  it('is kept in a private directory under XDG_CACHE_HOME', { timeout: 120_000 }, async () => {
    const home = mkdtempSync(join(tmpdir(), 'mltrail-cache-'));
    const r = await runCli(['lineage', '--help'], { env: { XDG_CACHE_HOME: home } });
    expect(r.status, r.stderr).toBe(0);
    const dir = join(home, 'mltrail', 'node-compile-cache');
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(filesUnder(dir).length).toBeGreaterThan(0);
  });

  it('is never used from a directory others can write, nor when Node is told not to', {
    timeout: 120_000,
  }, async () => {
    const home = mkdtempSync(join(tmpdir(), 'mltrail-cache-'));
    const dir = join(home, 'mltrail', 'node-compile-cache');
    mkdirSync(dir, { recursive: true });
    chmodSync(dir, 0o777);
    const r = await runCli(['lineage', '--help'], { env: { XDG_CACHE_HOME: home } });
    expect(r.status, r.stderr).toBe(0);
    expect(filesUnder(dir)).toEqual([]);

    const off = mkdtempSync(join(tmpdir(), 'mltrail-cache-'));
    const r2 = await runCli(['lineage', '--help'], {
      env: { XDG_CACHE_HOME: off, NODE_DISABLE_COMPILE_CACHE: '1' },
    });
    expect(r2.status, r2.stderr).toBe(0);
    expect(readdirSync(off)).toEqual([]);
  });
});
