import { closeSync, fsyncSync, writeSync } from 'node:fs';
import { canonicalize, parseRecordLine, RecordFormatError, serializeRecord } from '../integrity/index.js';
import { AuditLog } from '../journal/index.js';
import { createRedactor } from '../privacy/index.js';
import {
  ATTR_ML_ACTOR_ID,
  ATTR_MLTRAIL_BODY_DIGEST,
  ATTR_MLTRAIL_ERASURE_REASON,
  ATTR_MLTRAIL_ERASURE_RECORD_REF,
  EVENT_MLTRAIL_ERASURE,
} from '../semconv/index.js';
import { EvidenceDir } from '../sources/evidence-files.js';
import { JournalReader } from '../sources/journal-reader.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail erase <chain>:<seq> --reason TEXT [--journal DIR] [--actor WHO]

Erases the body of one audit record (GDPR Art. 17) without breaking the proof: the body is replaced by an
empty tombstone that keeps the body's digest, and an mltrail.erasure record naming the record, the digest
and the reason is appended to the journal. "mltrail verify" then reports the record as erased, not modified.
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, HELP, {
    journal: { type: 'string' },
    reason: { type: 'string' },
    actor: { type: 'string' },
  });
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const ref = positionals[0];
  const m = ref === undefined ? null : /^([0-9a-f-]{36}):(\d+)$/.exec(ref);
  if (m === null)
    throw new CliError(`expected a record reference <chain>:<seq>, got "${ref ?? ''}"\n\n${HELP}`);
  if (values.reason === undefined || values.reason.trim() === '')
    throw new CliError('--reason is required: say why (e.g. the request id)');
  const dir = resolveJournalDir(values.journal);
  const [, chain, seqText] = m;
  const seq = Number(seqText);
  let found: { file: string; line: number; offset: number; text: string } | undefined;
  for (const l of new JournalReader(dir).lines()) {
    if (!l.text.includes(chain)) continue;
    let r: ReturnType<typeof parseRecordLine>;
    try {
      r = parseRecordLine(l.text, l);
    } catch (err) {
      // A line that is not a record cannot be the one to erase; `mltrail verify` reports it where it is.
      if (err instanceof RecordFormatError) continue;
      throw err;
    }
    if (r.chain === chain && r.seq === seq) {
      if (r.erased_by !== undefined) throw new CliError(`${ref} is already erased (by ${r.erased_by})`, 1);
      found = { file: l.file, line: l.line, offset: l.offset, text: l.text };
      break;
    }
  }
  if (found === undefined) throw new CliError(`no record ${ref} in ${dir}`, 1);

  // Record the erasure first: if rewriting the segment fails, the trail still says what was requested.
  const target = parseRecordLine(found.text, found);
  const log = new AuditLog({ dir });
  const ts = new Date().toISOString();
  // The request itself names the person ("request from jane@…"): the erasure record passes the same
  // redaction as every record the trail writes (MLTRAIL_PSEUDONYM_KEY pseudonymises where rules say so).
  const body = createRedactor().redact({
    'event.name': EVENT_MLTRAIL_ERASURE,
    timestamp: ts,
    severity_text: 'WARN',
    [ATTR_MLTRAIL_ERASURE_RECORD_REF]: ref,
    [ATTR_MLTRAIL_ERASURE_REASON]: values.reason,
    [ATTR_MLTRAIL_BODY_DIGEST]: target.digest,
    ...(values.actor !== undefined ? { [ATTR_ML_ACTOR_ID]: values.actor } : {}),
  }).value;
  const { record } = log.append({
    event: EVENT_MLTRAIL_ERASURE,
    sev: 'WARN',
    ts,
    attrs: { [ATTR_MLTRAIL_ERASURE_RECORD_REF]: ref },
    body: canonicalize(body),
  });
  await log.close();

  // Overwrite the line in place, padded with spaces to its exact length (JSON allows trailing whitespace):
  // the segment keeps its inode and size, so a process still appending to it and the shipper's byte cursor
  // are unaffected. Copies already shipped (Loki, archives) must be erased where they are kept.
  const tombstone = serializeRecord({
    ...target,
    body: '',
    attrs: {},
    erased_by: `${record.chain}:${record.seq}`,
  });
  const pad = Buffer.byteLength(found.text, 'utf8') - Buffer.byteLength(tombstone, 'utf8');
  if (pad < 0) {
    throw new CliError(
      `${ref}: the tombstone is longer than the record; nothing was changed (the erasure record was written)`,
    );
  }
  const fd = new EvidenceDir(dir).open(found.file, true);
  try {
    writeSync(fd, tombstone + ' '.repeat(pad), found.offset, 'utf8');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  process.stdout.write(
    `erased ${ref} (digest ${target.digest}); erasure record ${record.chain}:${record.seq}\n`,
  );
  return 0;
}
