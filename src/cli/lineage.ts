import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Only what an indexed lookup needs is loaded up front (a cold lookup's cost is mostly start-up): the
// Loki reader is imported when --loki is given.
import { IndexCoverageError, JournalIndex } from '../journal-index/journal-index.js';
import { type FanOutTable, writeUuidJson } from '../journal-index/segment-index.js';
import { type LineageStream, queryIndexed } from '../lineage/indexed-lineage.js';
import {
  type LineageEdge,
  LineageGraph,
  type LineageResult,
  UnknownLineageIdError,
} from '../lineage/lineage-graph.js';
import { renderDot, renderMermaid, renderTree } from '../lineage/render.js';
import type { LeanNode } from '../lineage/served-stream.js';
import { ACCESS_HELP, recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail lineage <id> [--journal DIR | --loki URL --query Q] [--upstream|--downstream] [--json [--facts]] [--format tree|mermaid|dot] [--scan]

Shows where anything came from and what came of it: a prediction id, a model version (name@version or its
sha256 digest), a dataset version, a run, a deployment, a drift event. --downstream from a dataset version
lists the models trained on it and every prediction they made (impact analysis).
  --json --facts                      an impact answer's predictions, decisions and feedback with the facts
                                      of their records (without it, each is its id, kind and record, which
                                      the journal index holds: no record is read)
  --loki URL --query Q [--tenant T]   read the records from Loki's query API instead of the journal
  --scan                              read every record instead of looking ids up in the journal index
                                      (the index is derived data; "mltrail index" builds missing ones)
${ACCESS_HELP}
exit: 0 found, 1 unknown id (with close matches), 2 usage or I/O error
`;

export async function run(argv: string[]): Promise<number> {
  const parsed = parseCommand(argv, HELP, {
    journal: { type: 'string' },
    upstream: { type: 'boolean' },
    downstream: { type: 'boolean' },
    json: { type: 'boolean' },
    format: { type: 'string' },
    actor: { type: 'string' },
    'access-journal': { type: 'string' },
    loki: { type: 'string' },
    query: { type: 'string' },
    tenant: { type: 'string' },
    scan: { type: 'boolean' },
    facts: { type: 'boolean' },
  });
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const id = positionals[0];
  if (id === undefined) throw new CliError(`an id is required\n\n${HELP}`);
  const format = values.format ?? 'tree';
  if (!['tree', 'mermaid', 'dot'].includes(format))
    throw new CliError(`--format must be tree, mermaid or dot (got "${format}")`);
  const dir = resolveJournalDir(values.journal);
  const direction = values.upstream ? 'upstream' : values.downstream ? 'downstream' : 'both';
  if (values.loki !== undefined && values.query === undefined)
    throw new CliError('--loki needs --query (a LogQL stream selector)');
  const source = values.loki !== undefined ? `Loki ${values.loki} ${values.query}` : dir;
  const access = async (resultCount: number) => {
    await recordAccess({
      read: values.loki === undefined ? dir : undefined,
      journal: values['access-journal'],
      command: 'lineage',
      argv,
      resultCount,
      actor: values.actor,
    });
  };
  let result: LineageResult | undefined;
  let stream: LineageStream | undefined;
  let index: JournalIndex | undefined;
  // Segments whose index is damaged or stale are scanned instead; say so (once the answer is complete:
  // a damaged block is found when a lookup reads it).
  const notes = () => {
    for (const n of index?.notes ?? [])
      if (n.reason !== 'no index')
        process.stderr.write(
          `mltrail: note: index not used for ${n.segment}, scanned instead: ${n.reason}; "mltrail index" rebuilds it\n`,
        );
  };
  try {
    if (values.loki !== undefined) {
      // Hop by hop, each inside the time window its id gives (docs/lineage.md).
      const { lokiLineage } = await import('../sources/loki-lineage.js');
      const answer = await lokiLineage(
        { url: values.loki, query: values.query!, tenant: values.tenant },
        id,
        direction,
      );
      if (answer.malformed > 0)
        process.stderr.write(
          `mltrail: ${answer.malformed} Loki entries are not audit records (run mltrail verify --loki)\n`,
        );
      if (answer.mode === 'full-range')
        process.stderr.write(`mltrail: note: read every record in Loki's range: ${answer.reason}\n`);
      result = answer.result;
    } else {
      if (!values.scan && existsSync(dir)) {
        index = JournalIndex.open(dir);
        stream = queryIndexed(index, id, direction);
        // Unknown to the index is unknown to a scan too; a scan only adds close matches, and on a large
        // journal that is minutes of reading, so it is left to --scan.
        if (stream === undefined && journalBytes(index) > SUGGESTION_SCAN_BYTES)
          throw new UnknownLineageIdError(id, [], 'run with --scan to read every record for close matches');
      }
      stream ??= LineageGraph.streamJournal(dir, id, direction);
      if (!stream.fansOut) result = stream.result;
      else if (!values.json) result = collectAtMost(stream, MAX_RENDERED_NODES);
    }
  } catch (err) {
    if (err instanceof UnknownLineageIdError) {
      // A lookup that found nothing is still a look (probing for ids is what an access log must show).
      await access(0);
      throw new CliError(`${err.message} (in ${source})`, 1);
    }
    if (err instanceof CliError) throw err;
    if (err instanceof IndexCoverageError) throw new CliError(err.message);
    throw new CliError(`cannot read the audit records in ${source}: ${(err as Error).message}`);
  }
  if (result === undefined) {
    // An impact query streams: the predictions are read from the journal as they are written out, and the
    // access is recorded once it is known how many nodes were returned.
    const written = await writeStreamed(stream!, values.facts === true);
    notes();
    await access(written);
    return 0;
  }
  notes();
  await access(result.nodes.length);
  if (values.json) process.stdout.write(jsonLines(result));
  else if (format === 'mermaid') process.stdout.write(renderMermaid(result));
  else if (format === 'dot') process.stdout.write(renderDot(result));
  else process.stdout.write(renderTree(result));
  return 0;
}

/** Above this much journal, an id the index does not know is not searched for close matches by a scan. */
const SUGGESTION_SCAN_BYTES = 256 * 2 ** 20;
/** A tree, mermaid or dot answer is held whole: above this many nodes, --json (which streams) is needed. */
const MAX_RENDERED_NODES = 100_000;

function journalBytes(ix: JournalIndex): number {
  let n = 0;
  for (const p of ix.segmentPaths) n += ix.files.stat(p).size;
  return n;
}

/** The whole answer, refused with a usage error when it has more than `max` nodes. */
function collectAtMost(stream: LineageStream, max: number): LineageResult {
  const nodes = [...stream.result.nodes];
  const edges = [...stream.result.edges];
  for (const { node, edge } of stream.streamed()) {
    if (node !== undefined && nodes.push(node) > max)
      throw new CliError(
        `the answer has more than ${max.toLocaleString('en')} nodes (every prediction served downstream): use --json, which streams it`,
      );
    edges.push(edge);
  }
  return { root: stream.root, nodes, edges };
}

/**
 * Writes a streamed answer as `--json`, one node or edge per line, and returns the number of nodes written:
 * the in-memory part, then each streamed node as it is read (lean unless `facts`), its edge kept in a
 * private temporary file (an impact answer can have millions; the file is removed at the end) and written
 * after the nodes. A reader that stops early (`| head`) ends the output without an error.
 */
async function writeStreamed(stream: LineageStream, facts: boolean): Promise<number> {
  // Each line read becomes short-lived strings at a high rate, and V8 then grows its young generation to
  // far more than the answer ever holds live: a small, fixed one keeps the process's memory flat however
  // many predictions stream (the collections it costs are cheap, the live part being small). A lean answer
  // reads no line, and collecting that often would cost more than the rest of its work.
  if (facts)
    (await import('node:v8')).setFlagsFromString('--max-semi-space-size=1 --semi-space-growth-factor=1');
  const out = new FdWriter(1);
  const spoolDir = mkdtempSync(join(tmpdir(), 'mltrail-lineage-'));
  const spool = join(spoolDir, 'edges');
  const fd = openSync(spool, 'w+', 0o600);
  const edges = new FdWriter(fd);
  let nodes = 0;
  try {
    out.write(`{"root":${JSON.stringify(stream.root)},\n"nodes":[\n`);
    for (const n of stream.result.nodes) {
      out.write(`${nodes++ === 0 ? '' : ',\n'}${JSON.stringify(n)}`);
      if (out.closed) return nodes;
    }
    const item = (node: object | undefined, edge: LineageEdge) => {
      if (node !== undefined) {
        if (nodes++ > 0) out.write(',\n');
        out.write(facts ? JSON.stringify(node) : leanJson(node as LeanNode));
      }
      const json = `,\n{"from":${JSON.stringify(edge.from)},"to":${JSON.stringify(edge.to)},"relation":${JSON.stringify(edge.relation)}}`;
      // Spooled as it is: a tag, its length and its UTF-8 (a UTF-16 code unit takes at most 3 bytes).
      const b = edges.reserve(5 + json.length * 3);
      const at = edges.at;
      const n = b.write(json, at + 5, 'utf8');
      b[at] = SPOOL_JSON;
      b.writeUInt32LE(n, at + 1);
      edges.at = at + 5 + n;
    };
    // A served row's edge is spooled as its server's slot in `templates` and the UUID's 16 bytes (21 bytes
    // instead of ~110 as JSON: the spool of a 10M answer is 210 MB, not 1.1 GB), and spelled out when read back.
    const slots = new Map<string, number>();
    const templates: Buffer[] = [];
    if (facts)
      for (const { node, edge } of stream.streamed()) {
        item(node, edge);
        if (out.closed) return nodes;
      }
    else {
      // A served row is copied out of the index table byte by byte: at a million rows a second, making
      // strings and objects for each would cost more than all the rest.
      // Each node is written from a template made once per chain: one copy of it, then the id's hex digits (a
      // UUID's: always 36) and the record's seq patched in (copying a handful of short constants instead
      // costs as much again).
      let table: FanOutTable | undefined;
      let slotOf: number[] = [];
      let chainOf = '';
      let nodeOf = Buffer.alloc(0);
      stream.visitLean({
        get stopped() {
          return out.closed;
        },
        item,
        servedRow(t, row, server, chain, known) {
          if (t.servedTail(row) === undefined) {
            const id = t.servedPrediction(row);
            const record = `${chain}:${t.servedSeq(row)}`;
            item(known ? undefined : { id, kind: 'prediction', record }, {
              from: t.servers[server],
              to: id,
              relation: 'served',
            });
            return;
          }
          if (t !== table) {
            table = t;
            slotOf = t.servers.map((s) => {
              let k = slots.get(s);
              if (k === undefined) {
                k = templates.push(
                  Buffer.from(
                    `,\n{"from":${JSON.stringify(s)},"to":${UUID_SLOT},"relation":"served"}`,
                    'utf8',
                  ),
                );
                slots.set(s, --k);
              }
              return k;
            });
          }
          if (chain !== chainOf) {
            chainOf = chain;
            nodeOf = Buffer.from(
              `,\n{"id":${UUID_SLOT},"kind":"prediction","record":${JSON.stringify(chain).slice(0, -1)}:`,
              'utf8',
            );
          }
          const e = edges.reserve(SERVED_RECORD);
          let at = edges.at;
          const slot = slotOf[server];
          e[at] = SPOOL_SERVED;
          e[at + 1] = slot >>> 24;
          e[at + 2] = slot >>> 16;
          e[at + 3] = slot >>> 8;
          e[at + 4] = slot;
          t.copyServedUuid(row, e, at + 5);
          edges.at = at + SERVED_RECORD;
          if (known) return;
          const o = out.reserve(nodeOf.length + 32);
          at = out.at;
          // The first node has no ",\n" before it.
          const skip = nodes++ > 0 ? 0 : 2;
          o.set(skip === 0 ? nodeOf : nodeOf.subarray(2), at);
          writeUuidJson(e, edges.at - 16, o, at + NODE_ID_AT - skip);
          at = putDecimal(o, at + nodeOf.length - skip, t.servedSeq(row));
          o[at++] = 0x22;
          o[at++] = 0x7d;
          out.at = at;
        },
      });
      if (out.closed) return nodes;
    }
    edges.flush();
    out.write('\n],\n"edges":[\n');
    let first = true;
    for (const e of stream.result.edges) {
      out.write(`${first ? '' : ',\n'}${JSON.stringify(e)}`);
      first = false;
    }
    // The spooled edges each start with ",\n"; without an in-memory edge before them, the first one's goes.
    replaySpool(fd, edges.written, templates, out, first);
    out.write('\n]}\n');
    out.flush();
    return nodes;
  } finally {
    closeSync(fd);
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

/**
 * Writes the spooled edges (see writeStreamed) to `out` as JSON, the first one without its ",\n" when `skip`.
 * (A function of its own: inside the long async writer, the loop is compiled far less well.)
 */
function replaySpool(
  fd: number,
  written: number,
  templates: readonly Buffer[],
  out: FdWriter,
  skip: boolean,
): void {
  let buf = Buffer.allocUnsafe(1 << 20);
  let have = 0;
  for (let pos = 0; pos < written && !out.closed; ) {
    const n = readSync(fd, buf, have, Math.min(buf.length - have, written - pos), pos);
    if (n === 0) break;
    pos += n;
    have += n;
    let r = 0;
    for (let start = 0; !out.closed; ) {
      if (have - r >= SERVED_RECORD && buf[r] === SPOOL_SERVED) {
        const t = templates[buf.readUInt32BE(r + 1)];
        const o = out.reserve(t.length);
        start = out.at;
        o.set(t, out.at);
        writeUuidJson(buf, r + 5, o, out.at + t.length - EDGE_SERVED_TAIL);
        out.at += t.length;
        r += SERVED_RECORD;
      } else if (have - r >= 5 && buf[r] === SPOOL_JSON) {
        const len = buf.readUInt32LE(r + 1);
        if (5 + len > buf.length) {
          // A record longer than the buffer (an id of megabytes): a larger buffer for it.
          const bigger = Buffer.allocUnsafe(5 + len);
          buf.copy(bigger, 0, r, have);
          buf = bigger;
          have -= r;
          r = 0;
        }
        if (have - r < 5 + len) break;
        const o = out.reserve(len);
        start = out.at;
        buf.copy(o, out.at, r + 5, r + 5 + len);
        out.at += len;
        r += 5 + len;
      } else break;
      if (skip) {
        const o = out.reserve(0);
        o.copyWithin(start, start + 2, out.at);
        out.at -= 2;
        skip = false;
      }
    }
    buf.copyWithin(0, r, have);
    have -= r;
  }
}

/** Where a UUID's quoted hex goes in a lean row's template (see writeStreamed); a UUID as JSON is 38 bytes. */
const UUID_SLOT = `"${'0'.repeat(36)}"`;
const NODE_ID_AT = ',\n{"id":'.length;
const EDGE_SERVED_TAIL = `${UUID_SLOT},"relation":"served"}`.length;
/** The spool's records: an edge as JSON (tag, length, bytes), or a served row's (tag, server slot, UUID). */
const SPOOL_JSON = 0;
const SPOOL_SERVED = 1;
const SERVED_RECORD = 1 + 4 + 16;

/** Writes a non-negative integer's decimal digits into `out` at `at`; returns the end. */
function putDecimal(out: Buffer, at: number, n: number): number {
  if (!Number.isSafeInteger(n) || n < 0) return at + out.write(String(n), at, 'latin1');
  if (n < 2 ** 31) {
    // Small integer arithmetic, which the compiler keeps off floating point.
    let end = at + 1;
    for (let p = 10; p <= n; p *= 10) end++;
    for (let i = end - 1, m = n | 0; i >= at; i--) {
      const q = (m / 10) | 0;
      out[i] = 0x30 + m - q * 10;
      m = q;
    }
    return end;
  }
  let digits = 1;
  for (let p = 10; p <= n; p *= 10) digits++;
  for (let i = at + digits - 1; i >= at; i--) {
    out[i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  return at + digits;
}

/** A lean node as JSON, in the key order `JSON.stringify` gives it. */
function leanJson(n: LeanNode): string {
  return `{"id":${JSON.stringify(n.id)},"kind":"${n.kind}","record":${JSON.stringify(n.record)}}`;
}

/**
 * Buffered writes straight to a file descriptor (1, or the edges' spool), synchronously, through one 1 MiB
 * buffer: nothing queues in memory however fast the answer is produced (a stream would hold what the reader
 * has not taken yet), and no string grows with the answer. A reader that has gone (EPIPE) ends the output;
 * a non-blocking pipe that is full (EAGAIN) is waited for.
 */
class FdWriter {
  closed = false;
  /** Bytes written to the descriptor so far. */
  written = 0;
  readonly #fd: number;
  #buf = Buffer.allocUnsafe(1 << 20);
  /** Where the next byte goes in the buffer (see {@link reserve}). */
  at = 0;
  readonly #pause = new Int32Array(new SharedArrayBuffer(4));

  constructor(fd: number) {
    this.#fd = fd;
  }

  write(s: string): void {
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    if (this.at + s.length * 3 > this.#buf.length) {
      this.flush();
      if (s.length * 3 > this.#buf.length) {
        this.#writeAll(Buffer.from(s, 'utf8'));
        return;
      }
    }
    this.at += this.#buf.write(s, this.at);
  }

  /**
   * The buffer, with at least `n` bytes free from {@link at}: write, then move `at`. (It grows past 1 MiB
   * only for a row around an id that long: a record can name a deployment by a megabyte of text.)
   */
  reserve(n: number): Buffer {
    if (this.at + n > this.#buf.length) this.flush();
    if (n > this.#buf.length) this.#buf = Buffer.allocUnsafe(n);
    return this.#buf;
  }

  flush(): void {
    if (this.at === 0) return;
    const n = this.at;
    this.at = 0;
    this.#writeAll(this.#buf.subarray(0, n));
  }

  #writeAll(bytes: Buffer): void {
    if (this.closed) return;
    for (let at = 0; at < bytes.length; ) {
      try {
        at += writeSync(this.#fd, bytes, at, bytes.length - at);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') {
          this.closed = true;
          return;
        }
        if (code !== 'EAGAIN') throw err;
        Atomics.wait(this.#pause, 0, 0, 5);
      }
    }
    this.written += bytes.length;
  }
}

/** An in-memory answer as `--json`, one node or edge per line, as a streamed one is written. */
function jsonLines(r: LineageResult): string {
  const items = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).join(',\n');
  return `{"root":${JSON.stringify(r.root)},\n"nodes":[\n${items(r.nodes)}\n],\n"edges":[\n${items(r.edges)}\n]}\n`;
}
