import { closeSync, existsSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
// Only what an indexed lookup needs is loaded up front (a cold lookup's cost is mostly start-up): the
// Loki reader is imported when --loki is given.
import { IndexCoverageError, JournalIndex } from '../journal-index/journal-index.js';
import { type LineageStream, queryIndexed } from '../lineage/indexed-lineage.js';
import { LineageGraph, type LineageResult, UnknownLineageIdError } from '../lineage/lineage-graph.js';
import { renderDot, renderMermaid, renderTree } from '../lineage/render.js';
import { ACCESS_HELP, recordAccess } from './access-record.js';
import { CliError, parseCommand, resolveJournalDir } from './command.js';

const HELP = `usage: mltrail lineage <id> [--journal DIR | --loki URL --query Q] [--upstream|--downstream] [--json] [--format tree|mermaid|dot] [--scan]

Shows where anything came from and what came of it: a prediction id, a model version (name@version or its
sha256 digest), a dataset version, a run, a deployment, a drift event. --downstream from a dataset version
lists the models trained on it and every prediction they made (impact analysis).
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
    const written = await writeStreamed(stream!);
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
 * the in-memory part, then each streamed node as it is read, its edge kept in a private temporary file
 * (an impact answer can have millions; the file is removed at the end) and written after the nodes. A
 * reader that stops early (`| head`) ends the output without an error.
 */
async function writeStreamed(stream: LineageStream): Promise<number> {
  // Each line read becomes short-lived strings at a high rate, and V8 then grows its young generation to
  // far more than the answer ever holds live: a small, fixed one keeps the process's memory flat however
  // many predictions stream (the collections it costs are cheap, the live part being small).
  (await import('node:v8')).setFlagsFromString('--max-semi-space-size=1 --semi-space-growth-factor=1');
  const out = new StdoutWriter();
  const spoolDir = mkdtempSync(join(tmpdir(), 'mltrail-lineage-'));
  const spool = join(spoolDir, 'edges.ndjson');
  const fd = openSync(spool, 'w+', 0o600);
  let nodes = 0;
  try {
    await out.write(`{"root":${JSON.stringify(stream.root)},\n"nodes":[\n`);
    for (const n of stream.result.nodes) {
      await out.write(`${nodes++ === 0 ? '' : ',\n'}${JSON.stringify(n)}`);
      if (out.closed) return nodes;
    }
    let edges = '';
    let spooled = 0;
    for (const { node, edge } of stream.streamed()) {
      if (node !== undefined) await out.write(`${nodes++ === 0 ? '' : ',\n'}${JSON.stringify(node)}`);
      if (out.closed) return nodes;
      edges += `,\n${JSON.stringify(edge)}`;
      if (edges.length > 1 << 20) {
        spooled += writeSync(fd, edges);
        edges = '';
      }
    }
    if (edges.length > 0) spooled += writeSync(fd, edges);
    await out.write('\n],\n"edges":[\n');
    let first = true;
    for (const e of stream.result.edges) {
      await out.write(`${first ? '' : ',\n'}${JSON.stringify(e)}`);
      first = false;
    }
    // The spooled edges each start with ",\n"; without an in-memory edge before them, the first one's goes.
    const buf = Buffer.allocUnsafe(1 << 20);
    let skip = first ? 2 : 0;
    for (let at = 0; at < spooled && !out.closed; ) {
      const n = readSync(fd, buf, 0, buf.length, at);
      if (n === 0) break;
      at += n;
      await out.write(buf.toString('utf8', Math.min(skip, n), n));
      skip = Math.max(0, skip - n);
    }
    await out.write('\n]}\n');
    await out.flush();
    return nodes;
  } finally {
    closeSync(fd);
    rmSync(spoolDir, { recursive: true, force: true });
  }
}

/**
 * Buffered writes straight to file descriptor 1, synchronously: nothing queues in memory however fast the
 * answer is produced (a stream would hold what the reader has not taken yet). A reader that has gone
 * (EPIPE) ends the output; a non-blocking pipe that is full (EAGAIN) is waited for.
 */
class StdoutWriter {
  closed = false;
  #chunk = '';
  readonly #pause = new Int32Array(new SharedArrayBuffer(4));

  async write(s: string): Promise<void> {
    this.#chunk += s;
    if (this.#chunk.length > 1 << 20) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.closed || this.#chunk === '') return;
    const bytes = Buffer.from(this.#chunk, 'utf8');
    this.#chunk = '';
    for (let at = 0; at < bytes.length; ) {
      try {
        at += writeSync(1, bytes, at, bytes.length - at);
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
  }
}

/** An in-memory answer as `--json`, one node or edge per line, as a streamed one is written. */
function jsonLines(r: LineageResult): string {
  const items = (xs: unknown[]) => xs.map((x) => JSON.stringify(x)).join(',\n');
  return `{"root":${JSON.stringify(r.root)},\n"nodes":[\n${items(r.nodes)}\n],\n"edges":[\n${items(r.edges)}\n]}\n`;
}
