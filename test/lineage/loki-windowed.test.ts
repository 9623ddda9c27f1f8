/**
 * `mltrail lineage --loki` hop by hop in time windows, against Loki's query API as recorded from a real
 * trail: the demo ships through the real collector (production pipeline), whose Loki exporter posts to a
 * capture server; the records are stored the way Loki maps OTLP (test/grafana/loki-model.ts, from Loki's
 * documentation), and a real HTTP server answers each `query_range` from that recording: the LogQL is
 * evaluated by the model over the entries inside the request's [start, end), forward, up to its limit.
 * Loki itself does not run here (AGPL, images only). Each answer must equal the journal's, and every
 * request's window must be bounded by the time its id encodes (or by the record that named the id).
 */
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { parseRecordLine } from '../../src/integrity/index.js';
import * as sc from '../../src/semconv/index.js';
import { idTime, LOKI_SKEW_MS, lokiLineage } from '../../src/sources/loki-lineage.js';
import { collectorAvailable, collectorSkipReason } from '../collector/harness.js';
import { runCli } from '../fixtures/cli-run.js';
import { demoInLoki } from '../grafana/demo-in-loki.js';
import { type LokiEntry, query } from '../grafana/loki-model.js';
import { sortedAnswer } from './sorted-answer.js';

const SELECTOR = '{service_name=~".+"}';

interface Seen {
  query: string;
  start: number;
  end: number;
  limit: number;
  direction: string;
}

const cli = (args: string[]) =>
  spawnSync(process.execPath, ['dist/cli/main.js', ...args], { encoding: 'utf8' });
// The CLI talks to the server in this process, so it must not block the event loop.
const cliAsync = (args: string[]) => runCli(args);

describe.skipIf(!collectorAvailable())(
  `mltrail lineage --loki in time windows, against recorded query-API answers (${collectorSkipReason})`,
  () => {
    let entries: LokiEntry[] = [];
    let journal: ReturnType<typeof parseRecordLine>[] = [];
    let dir = '';
    let loki: Server;
    let url = '';
    const seen: Seen[] = [];

    beforeAll(async () => {
      ({ dir, journal, entries } = await demoInLoki('mltrail-loki-windowed'));

      // Loki's query API over the recording: the request's window, its LogQL, forward, its limit.
      loki = createServer((req, res) => {
        const u = new URL(req.url ?? '/', 'http://x');
        if (u.pathname !== '/loki/api/v1/query_range') {
          res.writeHead(404).end();
          return;
        }
        const p = u.searchParams;
        const start = BigInt(p.get('start') ?? '0');
        const end = BigInt(p.get('end') ?? '0');
        seen.push({
          query: p.get('query') ?? '',
          start: Number(start / 1_000_000n),
          end: Number(end / 1_000_000n),
          limit: Number(p.get('limit')),
          direction: p.get('direction') ?? '',
        });
        const inWindow = entries.filter((e) => BigInt(e.tsNs) >= start && BigInt(e.tsNs) < end);
        let answer: ReturnType<typeof query>;
        try {
          answer = query(inWindow, p.get('query') ?? '');
        } catch (err) {
          res.writeHead(400).end((err as Error).message);
          return;
        }
        if (answer.resultType !== 'streams') {
          res.writeHead(400).end('not a log query');
          return;
        }
        // Forward: oldest first, the first `limit` entries over all streams.
        const limit = Number(p.get('limit'));
        const all = answer.result
          .flatMap((s) => s.values.map((v) => ({ s, v })))
          .sort((a, b) => (BigInt(a.v[0]) < BigInt(b.v[0]) ? -1 : 1))
          .slice(0, limit);
        const result = answer.result
          .map((s) => ({
            stream: s.stream,
            values: all.filter((x) => x.s === s).map((x) => x.v),
          }))
          .filter((s) => s.values.length > 0);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'success', data: { resultType: 'streams', result } }));
      });
      await new Promise<void>((r) => loki.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(loki.address() as { port: number }).port}`;
    }, 240_000);

    afterAll(async () => {
      await new Promise((r) => (loki ? loki.close(r) : r(undefined)));
    });

    /** Lineage from Loki and from the journal, and the requests Loki saw for it. */
    async function both(id: string, direction: string) {
      // Loki answers always carry the facts; the journal's impact answer does with --facts.
      const fromJournal = cli(['lineage', id, direction, '--journal', dir, '--json', '--facts']);
      expect(fromJournal.status, fromJournal.stderr).toBe(0);
      const before = seen.length;
      const fromLoki = await cliAsync([
        'lineage',
        id,
        direction,
        '--loki',
        url,
        '--query',
        SELECTOR,
        '--journal',
        dir,
        '--json',
      ]);
      expect(fromLoki.status, fromLoki.stderr).toBe(0);
      return { fromJournal, fromLoki, requests: seen.slice(before) };
    }

    const body = (r: (typeof journal)[number]) => JSON.parse(r.body) as Record<string, string>;

    it('each hop asks for one id inside the window its UUIDv7 gives, and the answer is the journal’s', async () => {
      // A prediction with a decision: upstream to the data sources, and downstream to the decision.
      const decision = journal.find((r) => r.event === sc.EVENT_ML_DECISION)!;
      const prediction = body(decision)[sc.ATTR_ML_PREDICTION_ID];
      const { fromJournal, fromLoki, requests } = await both(prediction, '--upstream');
      expect(sortedAnswer(fromLoki.stdout)).toEqual(sortedAnswer(fromJournal.stdout));
      expect(fromLoki.stderr).not.toMatch(/read every record/);
      // The first hop: the prediction's own record, by its id, from its time minus the skew margin.
      expect(requests[0]).toEqual({
        query: `${SELECTOR} | event_name=\`${sc.EVENT_ML_PREDICTION}\` | ml_prediction_id=\`${prediction}\``,
        start: idTime(prediction)! - LOKI_SKEW_MS,
        end: expect.any(Number),
        limit: 5000,
        direction: 'forward',
      });
      const newest = Math.max(...journal.map((r) => Date.parse(r.ts)));
      const oldest = Math.min(...journal.map((r) => Date.parse(r.ts)));
      for (const r of requests) {
        // Every request names one id by its metadata key and the event that defines it.
        expect(r.query).toMatch(
          /^\{service_name=~"\.\+"\} \| event_name=~?`[^`]+`( \| ml_[a-z_]+=`[^`]+`)+$/,
        );
        // A UUIDv7 id is looked for from its own time (less the skew margin) to the time of the record
        // that named it (plus the margin): never the retention.
        const uuid = /ml_[a-z_]+_id=`([0-9a-f-]{36})`/.exec(r.query)?.[1];
        if (uuid !== undefined) {
          expect(r.start).toBe(idTime(uuid)! - LOKI_SKEW_MS);
          expect(r.end).toBeLessThanOrEqual(newest + LOKI_SKEW_MS + 1);
        } else {
          // A model version or data set has no time of its own: an hour back from the record that named it.
          expect(r.start).toBeGreaterThanOrEqual(oldest - 3_600_000 - 2 * LOKI_SKEW_MS);
          expect(r.end).toBeLessThanOrEqual(newest + LOKI_SKEW_MS + 1);
        }
        expect(r.end - r.start).toBeLessThanOrEqual(3_600_000 + 2 * LOKI_SKEW_MS + (newest - oldest));
      }
      // Both directions: the decision comes from the records that name the prediction after its time.
      const withDecision = await both(prediction, '--json');
      expect(sortedAnswer(withDecision.fromLoki.stdout)).toEqual(
        sortedAnswer(withDecision.fromJournal.stdout),
      );
      expect(withDecision.requests.at(-1)).toMatchObject({
        query: `${SELECTOR} | event_name=~\`ml\\.decision|ml\\.feedback\` | ml_prediction_id=\`${prediction}\``,
        start: idTime(prediction)! - LOKI_SKEW_MS,
      });
    }, 120_000);

    it('ids without a time (a model version, a data set) are searched back from the record that named them; a decision leads up to the same graph', async () => {
      const model = journal.find((r) => r.event === sc.EVENT_ML_MODEL_REGISTERED)!;
      const key = `${body(model)[sc.ATTR_ML_MODEL_NAME]}@${body(model)[sc.ATTR_ML_MODEL_VERSION]}`;
      const dataset = body(journal.find((r) => r.event === sc.EVENT_ML_DATASET_REGISTERED)!)[
        sc.ATTR_ML_DATASET_ID
      ];
      const decision = body(journal.find((r) => r.event === sc.EVENT_ML_DECISION)!)[sc.ATTR_ML_DECISION_ID];
      for (const id of [key, dataset, decision]) {
        const { fromJournal, fromLoki, requests } = await both(id, '--upstream');
        expect(sortedAnswer(fromLoki.stdout), id).toEqual(sortedAnswer(fromJournal.stdout));
        expect(requests.length, id).toBeGreaterThan(0);
        // No request reaches back further than a day before the trail (the first backward windows).
        const oldest = Math.min(...journal.map((r) => Date.parse(r.ts)));
        for (const r of requests)
          expect(r.start).toBeGreaterThanOrEqual(oldest - 86_400_000 - 2 * LOKI_SKEW_MS);
      }
    }, 120_000);

    it('an id no record defines is searched in windows that widen from its time, one after the other, up to now', async () => {
      const decision = journal.find((r) => r.event === sc.EVENT_ML_DECISION)!;
      const t = Date.parse(decision.ts);
      // A UUIDv7 of the trail's time that names nothing, asked two days later.
      const id = `${t
        .toString(16)
        .padStart(12, '0')
        .replace(/^(.{8})(.{4})$/, '$1-$2')}-7000-8000-000000000000`;
      expect(idTime(id)).toBe(t);
      const now = new Date(t + 2 * 86_400_000);
      const answer = await lokiLineage({ url, query: SELECTOR, now }, id, 'upstream').catch((e: Error) => e);
      expect(answer).toBeInstanceOf(Error);
      const windows = seen.slice(-40).filter((r) => r.query.includes(id));
      const byQuery = new Map<string, Seen[]>();
      for (const w of windows) byQuery.set(w.query, [...(byQuery.get(w.query) ?? []), w]);
      expect(byQuery.size).toBe(9);
      for (const ws of byQuery.values())
        expect(ws.map((w) => [w.start, w.end])).toEqual([
          [t - LOKI_SKEW_MS, t + LOKI_SKEW_MS + 3_600_000],
          [t + LOKI_SKEW_MS + 3_600_000, t + LOKI_SKEW_MS + 86_400_000],
          [t + LOKI_SKEW_MS + 86_400_000, now.getTime() + 1],
        ]);
    }, 120_000);

    it('the downstream of a data set (an impact query) reads the whole range and says so', async () => {
      const dataset = body(journal.find((r) => r.event === sc.EVENT_ML_DATASET_REGISTERED)!)[
        sc.ATTR_ML_DATASET_ID
      ];
      const { fromJournal, fromLoki, requests } = await both(dataset, '--downstream');
      expect(sortedAnswer(fromLoki.stdout)).toEqual(sortedAnswer(fromJournal.stdout));
      expect(fromLoki.stderr).toMatch(/note: read every record in Loki's range: the downstream of a dataset/);
      expect(requests.at(-1)?.query).toBe(SELECTOR);
    }, 120_000);
  },
);
