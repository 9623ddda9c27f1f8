import {
  closeSync,
  constants,
  fstatSync,
  lstatSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  realpathSync,
  type Stats,
  statSync,
} from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';

/**
 * A file mltrail refuses to read as evidence: one that leads out of the directory it was given (a symbolic
 * link), or that is not a regular file (a FIFO would hang the reader, a device such as /dev/zero never ends,
 * a socket is not data). The message names the path and says what to do.
 */
export class EvidenceFileError extends Error {
  /** The path as it was found (inside the directory given, or as named). */
  readonly path: string;
  /** `named`: the user named the file itself (a symbolic link to it is fine, what it leads to is not). */
  constructor(path: string, reason: string, named = false) {
    super(
      named
        ? `${path} ${reason}; mltrail reads only regular files (give the path of one)`
        : `${path} ${reason}; mltrail reads only regular files inside the directory it is given (remove it, or replace it with a copy of the file it stands for)`,
    );
    this.name = 'EvidenceFileError';
    this.path = path;
  }
}

// O_NOFOLLOW: a last path component swapped for a symbolic link after the checks fails to open instead of
// being followed. O_NONBLOCK: a FIFO swapped in after the checks opens at once instead of waiting for a
// writer (and is then refused by the fstat check).
const READ = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
const UPDATE = constants.O_RDWR | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** What a file that is not regular is, in words. */
function kindOf(st: Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  return 'not a regular file';
}

/** True when `path` is `root` or lies below it (both already resolved). */
function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}

/** Where the kernel says an open descriptor's file is, when it says (Linux /proc); undefined elsewhere. */
function openedPath(fd: number): string | undefined {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/**
 * Opens `fd` checks: the file behind it must be regular, and (with `root`) still inside it. Closes the
 * descriptor and throws {@link EvidenceFileError} otherwise.
 */
function checkOpened(fd: number, path: string, root: string | undefined, rootName: string): number {
  try {
    const st = fstatSync(fd);
    if (!st.isFile())
      throw new EvidenceFileError(path, `is ${kindOf(st)}, not a regular file`, root === undefined);
    const at = root === undefined ? undefined : openedPath(fd);
    if (root !== undefined && at !== undefined && !isInside(root, at))
      throw new EvidenceFileError(path, `leads to ${at}, outside ${rootName}`);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The status of `real` (the file `path` leads to) if it is a regular file; else an EvidenceFileError. */
function regularFile(path: string, real: string): Stats {
  const st = statSync(real);
  if (!st.isFile()) throw new EvidenceFileError(path, `is ${kindOf(st)}, not a regular file`);
  return st;
}

function openChecked(path: string, target: string, flags: number, named: boolean): number {
  try {
    return openSync(target, flags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ELOOP')
      throw new EvidenceFileError(path, 'was replaced by a symbolic link while it was being read', named);
    if (code === 'ENXIO') throw new EvidenceFileError(path, 'is a socket, not a regular file', named);
    throw err;
  }
}

/**
 * A directory of evidence (a journal, an archive directory) and the rules for reading what is in it:
 * every file opened must be a regular file whose real path lies inside the directory. A symbolic link that
 * stays inside is followed; one that leads out of it, and a FIFO, device or socket, is refused with an
 * {@link EvidenceFileError} naming the path — before the file is opened, and again on the open descriptor
 * (so a file swapped in between is refused too, never read).
 *
 * @example
 *   const dir = new EvidenceDir('.mltrail');
 *   const fd = dir.open('.mltrail/chains/0190…/000001.ndjson');
 */
export class EvidenceDir {
  /** The directory as given. */
  readonly path: string;
  /** Its real path: the boundary every file must stay within. */
  readonly real: string;

  constructor(path: string) {
    this.path = path;
    this.real = realpathSync.native(path);
  }

  /** The real path of `path` (under this directory), refused when it leads out of it. */
  resolve(path: string): string {
    let real: string;
    try {
      real = realpathSync.native(path);
    } catch (err) {
      // A link whose target is missing; a missing file itself stays ENOENT (callers tell "no such file").
      if (
        (err as NodeJS.ErrnoException).code === 'ENOENT' &&
        lstatSync(path, { throwIfNoEntry: false })?.isSymbolicLink()
      )
        throw new EvidenceFileError(path, 'is a symbolic link to nothing');
      throw err;
    }
    if (!isInside(this.real, real))
      throw new EvidenceFileError(path, `leads to ${real}, outside ${this.path}`);
    return real;
  }

  /** The status of a regular file of this directory, checked as {@link open} checks it (without opening it). */
  stat(path: string): Stats {
    return regularFile(path, this.resolve(path));
  }

  /** Opens a file of this directory for reading (or, with `update`, for rewriting in place): see the class. */
  open(path: string, update = false): number {
    const real = this.resolve(path);
    // Refused before opening (opening a device can itself do something), and again on the descriptor.
    regularFile(path, real);
    return checkOpened(openChecked(path, real, update ? UPDATE : READ, false), path, this.real, this.path);
  }

  /** The whole content of a file of this directory. */
  read(path: string): Buffer {
    return readAll(this.open(path));
  }

  /**
   * The entries of a directory under this one, sorted, as paths, with whether each is a directory. A
   * symbolic link to a directory inside is one; a link that leads out is refused (its files are not this
   * directory's evidence).
   */
  entries(dir: string): { path: string; directory: boolean }[] {
    const out: { path: string; directory: boolean }[] = [];
    for (const d of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    )) {
      const path = join(dir, d.name);
      let directory = d.isDirectory();
      if (d.isSymbolicLink()) {
        const st = statSync(path, { throwIfNoEntry: false });
        directory = st?.isDirectory() === true;
        if (directory) this.resolve(path);
      }
      out.push({ path, directory });
    }
    return out;
  }
}

/**
 * Opens a file the user named on the command line (a journal segment or archive given as FILE, a trust
 * file, a held checkpoint): a symbolic link is followed, since the user chose the path, but the file it
 * leads to must be a regular file — a FIFO, device or socket is refused with an {@link EvidenceFileError}.
 */
export function openNamedFile(path: string): number {
  const st = statSync(path);
  if (!st.isFile()) throw new EvidenceFileError(path, `is ${kindOf(st)}, not a regular file`, true);
  return checkOpened(
    openChecked(path, path, constants.O_RDONLY | constants.O_NONBLOCK, true),
    path,
    undefined,
    '',
  );
}

/** The whole content of a file the user named: see {@link openNamedFile}. */
export function readNamedFile(path: string): Buffer {
  return readAll(openNamedFile(path));
}

/** Reads an open regular file to its end and closes it (it may grow while read: reads until EOF). */
function readAll(fd: number): Buffer {
  try {
    let buf = Buffer.allocUnsafe(Math.max(4096, fstatSync(fd).size + 1));
    let len = 0;
    for (;;) {
      if (len === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, len);
        buf = bigger;
      }
      const n = readSync(fd, buf, len, buf.length - len, len);
      if (n === 0) return buf.subarray(0, len);
      len += n;
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Opens a file under `root` for reading under the rules of {@link EvidenceDir} (a one-off; a reader of
 * many files keeps an `EvidenceDir`).
 */
export function openInside(root: string, path: string): number {
  return new EvidenceDir(root).open(path);
}
