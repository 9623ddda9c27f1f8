import { closeSync, constants, fchmodSync, fstatSync, openSync, writeSync } from 'node:fs';
import { CliError } from './command.js';

/**
 * Writes a file holding trail data (an evidence report, an export) readable by its owner only: created
 * 0600 whatever the umask, and an existing file is cut and set to 0600 too. A symbolic link or anything
 * but a regular file at `path` is refused (the data must not land somewhere else).
 */
export function writePrivateFile(path: string, data: string): void {
  let fd: number;
  try {
    fd = openSync(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o600,
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP')
      throw new CliError(`${path} is a symbolic link; give the path of a regular file to write`);
    throw new CliError(`cannot write ${path}: ${(err as Error).message}`);
  }
  try {
    if (!fstatSync(fd).isFile()) throw new CliError(`${path} is not a regular file; nothing was written`);
    fchmodSync(fd, 0o600);
    const bytes = Buffer.from(data, 'utf8');
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  } finally {
    closeSync(fd);
  }
}
