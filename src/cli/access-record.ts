import { existsSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';
import { canonicalize } from '../integrity/index.js';
import { AuditLog } from '../journal/index.js';
import { createRedactor } from '../privacy/index.js';
import {
  ATTR_MLTRAIL_ACCESS_ACTOR,
  ATTR_MLTRAIL_ACCESS_ARGS_DIGEST,
  ATTR_MLTRAIL_ACCESS_COMMAND,
  ATTR_MLTRAIL_ACCESS_RESULT_COUNT,
  EVENT_MLTRAIL_ACCESS,
} from '../semconv/index.js';
import { digestBytes } from '../trail/digest.js';

/**
 * Records who read the audit data ("who looked"): an `mltrail.access` record — actor (OS user or
 * `--actor`), command, a digest of its arguments, time and result count — on a chain of its own in the
 * journal that was read, integrity-protected like every other chain. When the journal cannot be written
 * (read-only media, a copy handed to an auditor) the command still works and says so on stderr.
 */
export async function recordAccess(opts: {
  dir: string;
  command: string;
  argv: readonly string[];
  resultCount?: number;
  actor?: string;
}): Promise<boolean> {
  if (!existsSync(opts.dir) || !statSync(opts.dir).isDirectory()) return false;
  // The actor may be given as a name or an address: redacted like every record the trail writes.
  const actor = String(
    createRedactor().redactString(opts.actor ?? process.env.MLTRAIL_ACTOR ?? safeUser()).value,
  );
  const ts = new Date().toISOString();
  try {
    const log = new AuditLog({ dir: opts.dir, failClosed: true, checkpointIntervalMs: 0 });
    const { durable } = log.append({
      event: EVENT_MLTRAIL_ACCESS,
      sev: 'INFO',
      ts,
      attrs: { [ATTR_MLTRAIL_ACCESS_ACTOR]: actor, [ATTR_MLTRAIL_ACCESS_COMMAND]: opts.command },
      body: canonicalize({
        'event.name': EVENT_MLTRAIL_ACCESS,
        timestamp: ts,
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
    return true;
  } catch (err) {
    process.stderr.write(
      `mltrail: note: this access was not recorded in ${opts.dir} (${(err as Error).message})\n`,
    );
    return false;
  }
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}
