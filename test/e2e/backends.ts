import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { collectorBinary, freePort, productionConfig } from '../collector/harness.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const build = join(root, 'test', 'e2e', 'backends', '_build');
/** The binaries test/e2e/backends/build.sh makes (scripts/test-setup.mjs runs it). */
export const prometheusBinary = join(build, 'prometheus-v0.305.0', 'prometheus');
export const jaegerBinary = join(build, 'jaeger-v1.75.0', 'jaeger');

/** Whether Prometheus, Jaeger and the collector are built; under CI=true a missing one is a failure. */
export function backendsAvailable(): boolean {
  const missing = [prometheusBinary, jaegerBinary, collectorBinary].filter((b) => !existsSync(b));
  if (missing.length > 0 && process.env.CI === 'true')
    throw new Error(`${missing.join(', ')} missing: run "node scripts/test-setup.mjs"`);
  return missing.length === 0;
}

export const backendsSkipReason =
  'Prometheus, Jaeger or the collector is not built (bash test/e2e/backends/build.sh, npm run collector:build)';

/** A child process whose stderr is kept for the failure message. */
class Daemon {
  readonly #child: ChildProcess;
  #log = '';
  constructor(
    readonly name: string,
    cmd: string,
    args: string[],
    env: Record<string, string> = {},
  ) {
    this.#child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => {
      this.#log = (this.#log + d.toString('utf8')).slice(-20_000);
    };
    this.#child.stdout!.on('data', keep);
    this.#child.stderr!.on('data', keep);
  }
  get log(): string {
    return this.#log;
  }
  /** Polls `url` until it answers 2xx; fails with the daemon's output if it exits or never answers. */
  async ready(url: string, tries = 600): Promise<void> {
    for (let i = 0; i < tries; i++) {
      if (this.#child.exitCode !== null)
        throw new Error(`${this.name} exited (${this.#child.exitCode}):\n${this.#log}`);
      try {
        if ((await fetch(url)).ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${this.name} did not answer ${url}:\n${this.#log}`);
  }
  async stop(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((r) => this.#child.once('exit', r));
    this.#child.kill('SIGTERM');
    await exited;
  }
}

/** The running stack: Prometheus, Jaeger, a Loki stand-in, and the collector in front of them. */
export interface Backends {
  dir: string;
  prometheus: string;
  /** Jaeger's query service (HTTP API). */
  jaeger: string;
  /** The collector's OTLP/HTTP endpoint and bearer token. */
  otlp: string;
  token: string;
  /** Where the collector archives audit records: the same records, shaped the same, as it sends to Loki. */
  archive: string;
  /** OTLP log requests the collector sent to the Loki stand-in. */
  lokiRequests(): number;
  /** The last output of each daemon, for a failure message. */
  logs(): string;
  stop(): Promise<void>;
}

/**
 * Starts Prometheus v3.5 (grafana/prometheus.yaml and docker-compose.yml's flags, as shipped), Jaeger v1.75 (in-memory,
 * OTLP in), an HTTP server standing in for Loki (it accepts every OTLP request: Loki itself is AGPL and stays
 * an image), and the bundled collector with collector/config.yaml as shipped — only its endpoints are set,
 * through the variables the config reads, and its own metrics listener is turned off.
 */
export async function startBackends(dir: string): Promise<Backends> {
  // A free port is only free until someone takes it: test files run in parallel, and between freePort()
  // and a daemon's bind another process may take one. Such a start is tried again on new ports (each
  // attempt in a directory of its own, since the first one's Prometheus data may be half written).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startBackendsOnce(attempt === 1 ? dir : `${dir}-${attempt}`);
    } catch (err) {
      if (attempt >= 4 || !/address already in use/.test(String(err))) throw err;
    }
  }
}

async function startBackendsOnce(dir: string): Promise<Backends> {
  mkdirSync(dir, { recursive: true });
  const daemons: Daemon[] = [];
  let loki: Server | undefined;
  try {
    const promPort = await freePort();
    // docker-compose.yml's flags (so the real binary checks them), with this run's paths and address.
    const composeFlags = (
      parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')).services.prometheus.command as string[]
    ).filter((f) => !/^--(config\.file|storage\.tsdb\.path|web\.listen-address)=/.test(f));
    const prometheus = new Daemon('prometheus', prometheusBinary, [
      ...composeFlags,
      `--config.file=${join(root, 'grafana', 'prometheus.yaml')}`,
      `--storage.tsdb.path=${join(dir, 'prometheus')}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
      '--log.level=warn',
    ]);
    daemons.push(prometheus);

    const [jGrpc, jHttp, jQuery, jQueryGrpc, jHealth] = await Promise.all(
      Array.from({ length: 5 }, () => freePort()),
    );
    const jaegerConfig = join(dir, 'jaeger.yaml');
    writeFileSync(
      jaegerConfig,
      stringify({
        service: {
          extensions: ['jaeger_storage', 'jaeger_query', 'healthcheckv2'],
          pipelines: {
            traces: { receivers: ['otlp'], processors: ['batch'], exporters: ['jaeger_storage_exporter'] },
          },
          telemetry: { metrics: { level: 'none' }, logs: { level: 'warn' } },
        },
        extensions: {
          healthcheckv2: { use_v2: true, http: { endpoint: `127.0.0.1:${jHealth}` } },
          jaeger_query: {
            storage: { traces: 'memstore' },
            http: { endpoint: `127.0.0.1:${jQuery}` },
            grpc: { endpoint: `127.0.0.1:${jQueryGrpc}` },
          },
          jaeger_storage: { backends: { memstore: { memory: { max_traces: 100_000 } } } },
        },
        receivers: {
          otlp: {
            protocols: {
              grpc: { endpoint: `127.0.0.1:${jGrpc}` },
              http: { endpoint: `127.0.0.1:${jHttp}` },
            },
          },
        },
        processors: { batch: { timeout: '200ms' } },
        exporters: { jaeger_storage_exporter: { trace_storage: 'memstore' } },
      }),
    );
    const jaeger = new Daemon('jaeger', jaegerBinary, [`--config=${jaegerConfig}`]);
    daemons.push(jaeger);

    let lokiRequests = 0;
    loki = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/otlp/v1/logs') lokiRequests++;
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => loki!.listen(0, '127.0.0.1', r));
    const lokiPort = (loki.address() as { port: number }).port;

    await prometheus.ready(`http://127.0.0.1:${promPort}/-/ready`);
    await jaeger.ready(`http://127.0.0.1:${jQuery}/api/v3/services`);

    const [cGrpc, cHttp, cHealth] = [await freePort(), await freePort(), await freePort()];
    const token = 'e2e-token-0123456789abcdef';
    // A directory that does not exist yet: the shipped config must create it.
    const archive = join(dir, 'collector', 'archive', 'audit.jsonl');
    const collector = new Daemon(
      'collector',
      collectorBinary,
      [`--config=${productionConfig}`, '--set=service::telemetry::metrics::level=none'],
      {
        MLTRAIL_COLLECTOR_TOKEN: token,
        MLTRAIL_OTLP_GRPC_ENDPOINT: `127.0.0.1:${cGrpc}`,
        MLTRAIL_OTLP_HTTP_ENDPOINT: `127.0.0.1:${cHttp}`,
        MLTRAIL_HEALTH_ENDPOINT: `127.0.0.1:${cHealth}`,
        MLTRAIL_LOKI_OTLP_ENDPOINT: `http://127.0.0.1:${lokiPort}/otlp`,
        MLTRAIL_TEMPO_ENDPOINT: `127.0.0.1:${jGrpc}`,
        MLTRAIL_PROMETHEUS_OTLP_ENDPOINT: `http://127.0.0.1:${promPort}/api/v1/otlp`,
        MLTRAIL_STORAGE_DIR: join(dir, 'collector', 'queue'),
        MLTRAIL_ARCHIVE_PATH: archive,
      },
    );
    daemons.push(collector);
    await collector.ready(`http://127.0.0.1:${cHealth}/`);

    const server = loki;
    return {
      dir,
      prometheus: `http://127.0.0.1:${promPort}`,
      jaeger: `http://127.0.0.1:${jQuery}`,
      otlp: `http://127.0.0.1:${cHttp}`,
      token,
      archive,
      lokiRequests: () => lokiRequests,
      logs: () => daemons.map((d) => `--- ${d.name}\n${d.log}`).join('\n'),
      async stop() {
        for (const d of [...daemons].reverse()) await d.stop();
        await new Promise((r) => server.close(r));
      },
    };
  } catch (err) {
    for (const d of [...daemons].reverse()) await d.stop().catch(() => {});
    loki?.close();
    throw err;
  }
}

/** Polls `probe` until it returns a value; fails naming `what` (a guard against hanging, not a timed assertion). */
export async function poll<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  tries = 600,
  everyMs = 250,
): Promise<T> {
  let last: unknown;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`gave up waiting for ${what}${last === undefined ? '' : ` (last error: ${String(last)})`}`);
}
