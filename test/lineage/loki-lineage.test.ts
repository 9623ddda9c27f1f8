import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRecordLine } from '../../src/integrity/index.js';
import { JournalReader } from '../../src/journal/index.js';
import { runCli } from '../fixtures/cli-run.js';
import { buildTrailJournal, type TrailJournal } from '../fixtures/trail-journal.js';
import { ACCESS_NOT_RECORDED } from '../fixtures/trust.js';
import { sortedAnswer } from './sorted-answer.js';

/**
 * Loki cannot run here (no container engine), so a real HTTP server on loopback answers Loki's documented
 * query_range shape (streams; values of [ns, line, {structuredMetadata}], paginated by start/limit) with
 * the records of a journal written through the real trail, the way the collector ships them: the body as
 * the log line, chain fields and the event name as structured metadata. `mltrail lineage --loki` must give
 * the same answer as the journal.
 */
let j: TrailJournal;
let server: Server;
let url = '';
const tenants: string[] = [];

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });
// The CLI talks to the server in this process, so it must not block the event loop.
const cliAsync = (args: string[]) => runCli(args);

beforeAll(async () => {
  j = await buildTrailJournal();
  const entries = [...new JournalReader(j.dir).lines()].map((l, i) => {
    const r = parseRecordLine(l.text);
    return [
      (BigInt(Date.parse(r.ts)) * 1_000_000n + BigInt(i)).toString(),
      r.body,
      {
        structuredMetadata: {
          event_name: r.event,
          mltrail_chain_id: r.chain,
          mltrail_seq: String(r.seq),
          mltrail_prev_hash: r.prev,
          mltrail_hash: r.hash,
          mltrail_body_digest: r.digest,
          mltrail_record_version: String(r.v),
        },
      },
    ] as const;
  });
  server = createServer((req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    tenants.push(String(req.headers['x-scope-orgid']));
    if (u.pathname !== '/loki/api/v1/query_range') {
      res.writeHead(404).end();
      return;
    }
    const start = BigInt(u.searchParams.get('start') ?? '0');
    const page = entries
      .filter((e) => BigInt(e[0]) >= start)
      .sort((a, b) => (BigInt(a[0]) < BigInt(b[0]) ? -1 : 1))
      .slice(0, Number(u.searchParams.get('limit')));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        status: 'success',
        data: { resultType: 'streams', result: [{ stream: { service_name: 'loan-scoring' }, values: page }] },
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
});

describe('mltrail lineage --loki', () => {
  it('answers exactly as the journal does, upstream of a prediction and downstream of the raw data set', async () => {
    for (const [id, dir] of [
      [j.declined, '--upstream'],
      [j.raw.id, '--downstream'],
    ]) {
      // Loki's answer holds the records' facts: the journal's with them (an impact answer is lean without).
      const fromJournal = cli(['lineage', id, dir, '--journal', j.dir, '--json', '--facts']);
      expect(fromJournal.status, fromJournal.stderr).toBe(0);
      const fromLoki = await cliAsync([
        'lineage',
        id,
        dir,
        '--loki',
        url,
        '--query',
        '{service_name="loan-scoring"}',
        '--tenant',
        'prod',
        '--journal',
        j.dir,
        '--json',
      ]);
      expect(fromLoki.status, fromLoki.stderr).toBe(0);
      // An impact query (downstream of a data set) needs every record after it: it says it read them all.
      expect(fromLoki.stderr).toBe(
        dir === '--downstream'
          ? `mltrail: note: read every record in Loki's range: the downstream of a dataset is every record after it (an impact query)\n${ACCESS_NOT_RECORDED}`
          : ACCESS_NOT_RECORDED,
      );
      // The same graph; the journal answers through its index, whose edge order is by record location.
      expect(sortedAnswer(fromLoki.stdout)).toEqual(sortedAnswer(fromJournal.stdout));
    }
    expect(tenants.every((t) => t === 'prod')).toBe(true);
  });

  it('an unknown id is exit 1 with close matches, and without a local journal it says the access was not recorded', async () => {
    const missing = join(mkdtempSync(join(tmpdir(), 'mltrail-no-journal-')), 'none');
    const r = await cliAsync([
      'lineage',
      'credit-risk@7',
      '--loki',
      url,
      '--query',
      '{service_name="loan-scoring"}',
      '--journal',
      missing,
    ]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(
      /no lineage node "credit-risk@7"; did you mean "credit-risk@1", "credit-risk@2"\? \(in Loki http/,
    );
    expect(r.stderr).toMatch(/note: this access was not recorded \(no access journal/);
    expect(cli(['lineage', 'x', '--loki', url]).stderr).toMatch(/--loki needs --query/);
  });
});
