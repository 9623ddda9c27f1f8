import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import { userInfo } from 'node:os';
import { dirname, relative, resolve } from 'node:path';
import {
  ATTR_MLTRAIL_ACCESS_ACTOR,
  ATTR_MLTRAIL_ACCESS_ARGS_DIGEST,
  ATTR_MLTRAIL_ACCESS_COMMAND,
  ATTR_MLTRAIL_ACCESS_RESULT_COUNT,
} from '../semconv/attributes.js';
import { EVENT_MLTRAIL_ACCESS } from '../semconv/events.js';

/** The help lines of the access journal flags every reading command takes. */
export const ACCESS_HELP = `  --access-journal DIR     record this read ("who looked") in this journal (default MLTRAIL_ACCESS_JOURNAL;
                           off when neither is set); never the journal being read
  --actor WHO              who is reading, for the access record (default MLTRAIL_ACTOR, the OS user)`;

/** Gives up on recording an access after this long (a stuck disk must not hold the answer back). */
const ACCESS_TIMEOUT_MS = 10_000;

/**
 * Records who read the audit data ("who looked"): an `mltrail.access` record — actor (OS user or
 * `--actor`), command, a digest of its arguments, time and result count — in the access journal configured
 * with `--access-journal` or MLTRAIL_ACCESS_JOURNAL, a journal of its own, sealed and signed like any other
 * (with MLTRAIL_SIGNING_KEY, or a key generated inside the access journal). Never in the evidence being
 * read: reading must leave it byte-identical, and a reader's key must not appear beside it. With no access
 * journal configured, or one that cannot be written, the command still answers and says so in one line on
 * stderr. Resolves to whether the access was recorded; never rejects.
 */
export async function recordAccess(opts: {
  /** The directory or file that was read (undefined for Loki). */
  read?: string;
  /** `--access-journal`; defaults to MLTRAIL_ACCESS_JOURNAL. */
  journal?: string;
  command: string;
  argv: readonly string[];
  resultCount?: number;
  actor?: string;
}): Promise<boolean> {
  const dir = opts.journal ?? nonEmpty(process.env.MLTRAIL_ACCESS_JOURNAL);
  if (dir === undefined) {
    process.stderr.write(
      'mltrail: note: this access was not recorded (no access journal: set --access-journal DIR or MLTRAIL_ACCESS_JOURNAL)\n',
    );
    return false;
  }
  if (opts.read !== undefined && inside(dir, opts.read)) {
    process.stderr.write(
      `mltrail: note: this access was not recorded: the access journal ${dir} is inside what was read (${opts.read}); readers never write into the evidence — configure an access journal elsewhere\n`,
    );
    return false;
  }
  // The writer, redactor and OTel are loaded only when an access is recorded: a lookup with no access
  // journal configured answers without paying for them (most of a cold lineage query's start-up).
  const [{ canonicalize }, { AuditLog }, { createRedactor }, { digestBytes }] = await Promise.all([
    import('../integrity/canonical-json.js'),
    import('../journal/index.js'),
    import('../privacy/index.js'),
    import('../trail/digest.js'),
  ]);
  // The actor may be given as a name or an address: redacted like every record the trail writes.
  const actor = String(
    createRedactor().redactString(opts.actor ?? process.env.MLTRAIL_ACTOR ?? safeUser()).value,
  );
  const ts = new Date().toISOString();
  let timer: NodeJS.Timeout | undefined;
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // The command reports a failed access record in its own one line below: no journal warnings too.
    const log = new AuditLog({
      dir,
      failClosed: true,
      checkpointIntervalMs: 0,
      signingKey: { dir },
      warn: false,
    });
    const write = (async () => {
      const { durable } = log.append({
        event: EVENT_MLTRAIL_ACCESS,
        sev: 'INFO',
        ts,
        attrs: { [ATTR_MLTRAIL_ACCESS_ACTOR]: actor, [ATTR_MLTRAIL_ACCESS_COMMAND]: opts.command },
        body: canonicalize({
          'event.name': EVENT_MLTRAIL_ACCESS,
          timestamp: ts,
          severity_text: 'INFO',
          [ATTR_MLTRAIL_ACCESS_ACTOR]: actor,
          [ATTR_MLTRAIL_ACCESS_COMMAND]: opts.command,
          [ATTR_MLTRAIL_ACCESS_ARGS_DIGEST]: digestBytes(canonicalize([...opts.argv])),
          ...(opts.resultCount !== undefined ? { [ATTR_MLTRAIL_ACCESS_RESULT_COUNT]: opts.resultCount } : {}),
        }),
      });
      try {
        await durable;
      } finally {
        await log.close();
      }
    })();
    // A referenced timer keeps the process alive until the write settles one way or the other: a write
    // that never settles must not let Node exit before the command has finished.
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from the disk after ${ACCESS_TIMEOUT_MS / 1000} s`)),
        ACCESS_TIMEOUT_MS,
      );
    });
    await Promise.race([write, timeout]);
    return true;
  } catch (err) {
    process.stderr.write(
      `mltrail: note: this access was not recorded in the access journal ${dir} (${(err as Error).message})\n`,
    );
    return false;
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** True when `path` is `outer` or lies inside it (symlinks resolved where they exist). */
function inside(path: string, outer: string): boolean {
  const real = (p: string): string => {
    // The access journal may not exist yet: resolve its nearest existing ancestor.
    let at = resolve(p);
    let rest = '';
    while (!existsSync(at) && dirname(at) !== at) {
      rest = rest === '' ? relative(dirname(at), at) : `${relative(dirname(at), at)}/${rest}`;
      at = dirname(at);
    }
    try {
      at = realpathSync(at);
    } catch {
      // Keep the resolved path.
    }
    return rest === '' ? at : resolve(at, rest);
  };
  const rel = relative(real(outer), real(path));
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
}

function nonEmpty(s: string | undefined): string | undefined {
  return s === undefined || s.trim() === '' ? undefined : s;
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}
