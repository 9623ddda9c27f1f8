import { once } from 'node:events';
import {
  createServer,
  IncomingMessage,
  type RequestListener,
  request,
  Server,
  ServerResponse,
} from 'node:http';
import { type AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { PredictionHeaderGlue } from '../../src/instrumentation/prediction-header.js';
import { type TrailHarness, trailHarness, UUID_V7 } from '../trail/harness.js';

const HEADER = 'x-mltrail-prediction-id';

let h: TrailHarness | undefined;
let glue: PredictionHeaderGlue | undefined;
const servers: { close(): void; closeAllConnections(): void }[] = [];

afterEach(async () => {
  glue?.disable();
  glue = undefined;
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
  await h?.trail.shutdown();
  h = undefined;
});

async function setUp(): Promise<{ harness: TrailHarness; glue: PredictionHeaderGlue }> {
  h = await trailHarness();
  const harness = h;
  glue = new PredictionHeaderGlue({ trail: () => harness.trail, header: HEADER });
  glue.enable();
  return { harness, glue };
}

/** A prediction through the trail: its id lands in the scope of the running request, if any. */
function predictOnce(harness: TrailHarness): number {
  return harness.trail.predict({}, () => 1)();
}

async function serve(handler: RequestListener): Promise<number> {
  const server = createServer(handler);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

function post(port: number, path: string, agent?: import('node:http').Agent) {
  return new Promise<{ status: number; header: string | undefined; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, header: res.headers[HEADER] as string | undefined, body }),
      );
    });
    req.on('error', reject);
    req.end('{"x":1}');
  });
}

describe('PredictionHeaderGlue', () => {
  it('keeps the prediction scope in req.on / req.once listeners and for-await body reads', async () => {
    const { harness } = await setUp();
    const port = await serve((req, res) => {
      if (req.url === '/on') {
        req.on('data', () => {});
        req.on('end', () => {
          predictOnce(harness);
          res.end(JSON.stringify(harness.trail.currentPredictionIds()));
        });
      } else if (req.url === '/once') {
        req.resume();
        req.once('end', () => {
          predictOnce(harness);
          predictOnce(harness);
          res.end(JSON.stringify(harness.trail.currentPredictionIds()));
        });
      } else {
        void (async () => {
          for await (const _ of req);
          predictOnce(harness);
          res.end(JSON.stringify(harness.trail.currentPredictionIds()));
        })();
      }
    });
    for (const [path, count] of [
      ['/on', 1],
      ['/once', 2],
      ['/await', 1],
    ] as const) {
      const r = await post(port, path);
      const ids = JSON.parse(r.body) as string[];
      expect(ids).toHaveLength(count);
      for (const id of ids) expect(id).toMatch(UUID_V7);
      expect(r.header).toBe(ids.join(','));
    }
  });

  it('keeps concurrent requests on one keep-alive agent apart', async () => {
    const { harness } = await setUp();
    const port = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        predictOnce(harness);
        // Answer later, after other requests have predicted in their own scopes.
        setTimeout(() => res.end(JSON.stringify(harness.trail.currentPredictionIds())), 5);
      });
    });
    const { Agent } = await import('node:http');
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    const results = await Promise.all(Array.from({ length: 12 }, () => post(port, '/', agent)));
    agent.destroy();
    const all = results.map((r) => JSON.parse(r.body) as string[]);
    for (const [i, r] of results.entries()) {
      expect(all[i]).toHaveLength(1);
      expect(r.header).toBe(all[i][0]);
    }
    expect(new Set(all.flat()).size).toBe(12);
  });

  it('a bound listener is still the app function for removeListener, off and listeners()', async () => {
    await setUp();
    const seen: Record<string, unknown> = {};
    const port = await serve((req, res) => {
      const onEnd = () => {
        seen.onEndRan = true;
      };
      const onceEnd = () => {
        seen.onceEndRan = true;
      };
      req.on('end', onEnd);
      req.once('end', onceEnd);
      seen.listed = req.listeners('end').filter((l) => l === onEnd || l === onceEnd).length;
      req.removeListener('end', onEnd);
      req.off('end', onceEnd);
      seen.left = req.listeners('end').filter((l) => l === onEnd || l === onceEnd).length;
      req.resume();
      req.on('end', () => res.end('ok'));
    });
    expect((await post(port, '/')).status).toBe(200);
    expect(seen).toEqual({ listed: 2, left: 0 });
  });

  it('no header without a prediction, none on a raw header array, none once disabled', async () => {
    const { harness, glue: g } = await setUp();
    const port = await serve((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/none') {
          res.end('none');
          return;
        }
        predictOnce(harness);
        if (req.url === '/raw') res.writeHead(200, ['content-type', 'text/plain']);
        res.end('predicted');
      });
    });
    expect((await post(port, '/none')).header).toBeUndefined();
    expect((await post(port, '/raw')).header).toBeUndefined();
    expect((await post(port, '/one')).header).toMatch(UUID_V7);
    g.disable();
    expect((await post(port, '/one')).header).toBeUndefined();
  });

  it('a request emitted again is scoped again; two glues keep their own scopes; nothing shows on req/res', async () => {
    const { harness, glue: first } = await setUp();
    // Enabled second, so its `emit` wrapper runs outside the first glue's: the prediction lands in the
    // first glue's (inner) scope only.
    const second = new PredictionHeaderGlue({ trail: () => harness.trail, header: 'x-second' });
    second.enable();
    try {
      const seen: { first: readonly string[]; second: readonly string[]; keys: number }[] = [];
      const server = new Server((req, res) => {
        predictOnce(harness);
        seen.push({ first: first.idsOf(res), second: second.idsOf(req), keys: Reflect.ownKeys(req).length });
      });
      const req = new IncomingMessage(new Socket());
      const res = new ServerResponse(req);
      const keysBefore = Reflect.ownKeys(req).length;
      server.emit('request', req, res);
      server.emit('request', req, res);
      expect(seen.map((s) => [s.first.length, s.second.length])).toEqual([
        [1, 0],
        [1, 0],
      ]);
      expect(seen[1].first[0]).not.toBe(seen[0].first[0]);
      expect(first.idsOf(req)).toBe(seen[1].first);
      expect(second.idsOf(res)).toBe(seen[1].second);
      // The marks are private fields: no property or symbol of the request changes.
      expect(seen.map((s) => s.keys)).toEqual([keysBefore, keysBefore]);
    } finally {
      second.disable();
    }
  });

  it('patches prototypes once and restores them on disable', async () => {
    const before = {
      on: IncomingMessage.prototype.on,
      once: IncomingMessage.prototype.once,
      writeHead: ServerResponse.prototype.writeHead,
      resOn: ServerResponse.prototype.on,
    };
    const { glue: g } = await setUp();
    expect(IncomingMessage.prototype.on).not.toBe(before.on);
    g.enable();
    g.disable();
    expect(IncomingMessage.prototype.on).toBe(before.on);
    expect(IncomingMessage.prototype.once).toBe(before.once);
    expect(ServerResponse.prototype.writeHead).toBe(before.writeHead);
    expect(ServerResponse.prototype.on).toBe(before.resOn);
    expect(Object.hasOwn(IncomingMessage.prototype, 'on')).toBe(false);
    // Streams that are not scoped requests are untouched by the glue either way.
    expect(Readable.prototype.on).toBe(before.on);
  });
});
