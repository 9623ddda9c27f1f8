import { lstatSync, mkdirSync } from 'node:fs';
import module from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';

/**
 * Turns on Node's on-disk compile cache for the CLI's own modules, so a short command (a lineage lookup,
 * an incremental verify) does not spend its first ~100 ms compiling JavaScript it compiled last time. The
 * cache lives in `$XDG_CACHE_HOME/mltrail/node-compile-cache` (default `~/.cache/…`), and is used only when
 * that is a real directory this user owns that nobody else can write: V8 code caches are trusted input, so a
 * shared or foreign directory (a world-writable /tmp) is never read. Node's own switch
 * `NODE_DISABLE_COMPILE_CACHE=1` turns it off. Any failure only means a slower start.
 */
export function enableCompileCache(): void {
  if (process.env.NODE_DISABLE_COMPILE_CACHE !== undefined) return;
  if (typeof module.enableCompileCache !== 'function') return;
  try {
    const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
    const dir = join(base, 'mltrail', 'node-compile-cache');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    if (!st.isDirectory() || st.uid !== process.getuid?.() || (st.mode & 0o022) !== 0) return;
    module.enableCompileCache(dir);
  } catch {
    // no cache: the command runs as before
  }
}
