import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const COMMANDS = [
  'verify',
  'keygen',
  'erase',
  'ship',
  'drift',
  'lineage',
  'index',
  'export',
  'report',
  'demo',
];

const mltrail = (...args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });

describe('every command reports usage the same way', () => {
  it.each(COMMANDS)('%s --help prints its usage and exits 0', (cmd) => {
    const r = mltrail(cmd, '--help');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: mltrail ${cmd}\\b`));
  });

  it.each(COMMANDS)('%s with an unknown flag exits 2 with a usage error, not an internal error', (cmd) => {
    const r = mltrail(cmd, '--no-such-flag');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^mltrail: .*--no-such-flag/);
    expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  });

  it('a flag that needs a value and has none is a usage error', () => {
    const r = mltrail('keygen', '--name');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/^mltrail: .*--name/);
    expect(r.stderr).not.toMatch(/internal error/);
  });
});
