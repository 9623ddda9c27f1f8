import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser as logqlParser } from '@grafana/lezer-logql';
import { parser as traceqlParser } from '@grafana/lezer-traceql';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { generate, promName } from '../../scripts/dashboards-gen.js';
import {
  ATTR_ML_DRIFT_FEATURE,
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_SEQ,
  ATTRIBUTE_TYPES,
  EVENT_MLTRAIL_JOURNAL_GAP,
  EVENT_NAMES,
  METRIC_INSTRUMENTS,
  METRIC_ML_DRIFT_SCORE,
} from '../../src/semconv/index.js';

const dashboards = readdirSync('grafana/dashboards').map((f) => ({
  file: f,
  json: JSON.parse(readFileSync(join('grafana/dashboards', f), 'utf8')),
}));
const rules = parse(readFileSync('grafana/provisioning/alerting/rules.yaml', 'utf8'));
const datasources = parse(readFileSync('grafana/provisioning/datasources/datasources.yaml', 'utf8'));
const compose = parse(readFileSync('docker-compose.yml', 'utf8'));

interface Query {
  where: string;
  lang: 'logql' | 'traceql' | 'promql';
  expr: string;
  uid: string;
}

function queries(): Query[] {
  const out: Query[] = [];
  for (const d of dashboards) {
    for (const p of d.json.panels) {
      for (const t of p.targets) {
        const lang =
          t.datasource.type === 'loki' ? 'logql' : t.datasource.type === 'tempo' ? 'traceql' : 'promql';
        out.push({ where: `${d.file} › ${p.title}`, lang, expr: t.expr ?? t.query, uid: t.datasource.uid });
      }
    }
    for (const a of d.json.annotations.list ?? [])
      out.push({
        where: `${d.file} › annotation ${a.name}`,
        lang: 'logql',
        expr: a.expr,
        uid: a.datasource.uid,
      });
  }
  for (const g of rules.groups) {
    for (const r of g.rules) {
      const a = r.data.find((x: { refId: string }) => x.refId === 'A');
      const lang = a.datasourceUid === 'mltrail-loki' ? 'logql' : 'promql';
      out.push({ where: `alert ${r.title}`, lang, expr: a.model.expr, uid: a.datasourceUid });
    }
  }
  return out;
}

/** Grafana variables become plain values so the real parsers see valid syntax. */
const substitute = (expr: string) =>
  expr
    .replaceAll('$__auto', '5m')
    .replaceAll('$__range', '1h')
    .replace(/\$[a-z_]+/g, 'x');

function errorNodes(tree: {
  iterate: (o: { enter: (n: { type: { isError: boolean }; from: number }) => void }) => void;
}): number[] {
  const errs: number[] = [];
  tree.iterate({
    enter: (n) => {
      if (n.type.isError) errs.push(n.from);
    },
  });
  return errs;
}

const lokiKeys = new Set([
  ...Object.keys(ATTRIBUTE_TYPES).map((k) => k.replaceAll('.', '_')),
  'trace_id',
  'span_id',
]);
const promMetrics = new Set(
  Object.entries(METRIC_INSTRUMENTS).map(([m, instrument]) =>
    promName(m, instrument, m === METRIC_ML_DRIFT_SCORE ? '1' : m.endsWith('.duration') ? 's' : ''),
  ),
);

describe('dashboards and alert rules (static checks with the real parsers)', () => {
  const all = queries();

  it('finds the queries', () => {
    expect(all.length).toBeGreaterThan(15);
    expect(dashboards.map((d) => d.json.uid).sort()).toEqual([
      'mltrail-anomalies-drift',
      'mltrail-audit-trail',
      'mltrail-deployments',
      'mltrail-lineage',
    ]);
  });

  it('every LogQL string parses without error nodes (@grafana/lezer-logql)', () => {
    for (const q of all.filter((x) => x.lang === 'logql')) {
      expect(errorNodes(logqlParser.parse(substitute(q.expr))), `${q.where}: ${q.expr}`).toEqual([]);
    }
  });

  it('every TraceQL string parses without error nodes (@grafana/lezer-traceql)', () => {
    const tq = all.filter((x) => x.lang === 'traceql');
    expect(tq.length).toBeGreaterThan(0);
    for (const q of tq)
      expect(errorNodes(traceqlParser.parse(substitute(q.expr))), `${q.where}: ${q.expr}`).toEqual([]);
  });

  it('every attribute and event a query references exists in model/ (Loki underscore form)', () => {
    for (const q of all) {
      const text = q.expr;
      for (const m of text.matchAll(/\b((?:ml|mltrail)_[a-z_]+)\b/g)) {
        const name = m[1];
        if (q.lang === 'promql' && name.startsWith('ml_') && /_(total|ratio|seconds|bucket)$/.test(name))
          continue;
        expect(
          lokiKeys.has(name) || promMetrics.has(name) || promMetrics.has(name.replace(/_bucket$/, '')),
          `${q.where}: ${name}`,
        ).toBe(true);
      }
      for (const m of text.matchAll(/event_name=~?"([^"]+)"/g)) {
        if (m[1].includes('[')) continue; // a pattern over all events
        for (const e of m[1].split('|'))
          expect(EVENT_NAMES as readonly string[], `${q.where}: ${e}`).toContain(e);
      }
      for (const m of text.matchAll(/span\.([a-z_.]+)/g))
        expect(Object.keys(ATTRIBUTE_TYPES), `${q.where}`).toContain(m[1]);
    }
  });

  it('every Prometheus metric queried is a registry metric in its OTLP-translated name', () => {
    for (const q of all.filter((x) => x.lang === 'promql')) {
      const names = [...q.expr.matchAll(/\b(ml_[a-z_]+?(?:_total|_ratio|_seconds))(?:_bucket)?\b/g)].map(
        (m) => m[1],
      );
      expect(names.length, q.where).toBeGreaterThan(0);
      for (const n of names) expect(promMetrics.has(n), `${q.where}: ${n}`).toBe(true);
    }
  });

  it('every datasource uid referenced is provisioned', () => {
    const provisioned = new Set(datasources.datasources.map((d: { uid: string }) => d.uid));
    for (const q of all) expect(provisioned.has(q.uid), `${q.where}: ${q.uid}`).toBe(true);
    for (const d of datasources.datasources) {
      for (const ref of [
        d.jsonData?.tracesToLogsV2?.datasourceUid,
        d.jsonData?.serviceMap?.datasourceUid,
        ...(d.jsonData?.derivedFields ?? []).map((f: { datasourceUid: string }) => f.datasourceUid),
      ]) {
        if (ref !== undefined) expect(provisioned.has(ref), `${d.name} → ${ref}`).toBe(true);
      }
    }
  });

  it('the drift panel and drift alert use exactly the names the DriftMonitor emits', () => {
    const drift = dashboards.find((d) => d.json.uid === 'mltrail-anomalies-drift')!.json;
    const score = drift.panels.find((p: { title: string }) => p.title === 'Drift score per feature')
      .targets[0].expr as string;
    expect(score).toContain(promName(METRIC_ML_DRIFT_SCORE, 'gauge', '1'));
    expect(score).toContain(ATTR_ML_DRIFT_FEATURE.replaceAll('.', '_'));
    const alert = rules.groups[0].rules.find((r: { uid: string }) => r.uid === 'mltrail-drift-detected');
    expect(alert.data[0].model.expr).toContain('event_name="ml.drift.detected"');
  });

  it('the integrity alarms watch journal gaps and per-chain sequence gaps with the registry names', () => {
    const byUid = (uid: string) => rules.groups[0].rules.find((r: { uid: string }) => r.uid === uid);
    expect(byUid('mltrail-integrity').data[0].model.expr).toContain(
      `event_name="${EVENT_MLTRAIL_JOURNAL_GAP}"`,
    );
    const gap = byUid('mltrail-chain-gap').data[0].model.expr as string;
    const seq = ATTR_MLTRAIL_SEQ.replaceAll('.', '_');
    const chain = ATTR_MLTRAIL_CHAIN_ID.replaceAll('.', '_');
    expect(gap).toContain(`unwrap ${seq}`);
    // Each of the three per-chain terms is grouped by the chain id, so vector matching pairs them per chain.
    expect(gap.split(`by (${chain})`).length - 1).toBe(3);
    expect(byUid('mltrail-chain-gap').data[2].model.conditions[0].evaluator).toEqual({
      type: 'gt',
      params: [0],
    });
  });

  it('generated files are not stale (npm run dashboards)', () => {
    for (const [path, content] of Object.entries(generate() as Record<string, string>)) {
      expect(readFileSync(path, 'utf8'), `${path} is stale: run "npm run dashboards"`).toBe(content);
    }
  });
});

describe('docker-compose.yml (static)', () => {
  const services = compose.services as Record<
    string,
    { image?: string; ports?: string[]; volumes?: string[]; healthcheck?: unknown; build?: string }
  >;

  it('names the stack services, pins images by version and health-checks the long-running ones', () => {
    expect(Object.keys(services).sort()).toEqual([
      'collector',
      'grafana',
      'grafana-auditor',
      'loki',
      'prometheus',
      'tempo',
    ]);
    for (const [name, s] of Object.entries(services)) {
      if (s.image !== undefined) expect(s.image, name).toMatch(/:[0-9v][^:]*$/);
      // Loki's images from 3.6 on and Tempo's distroless images have no /bin/sh (or wget) to run a healthcheck
      // with: they get none, and nothing waits on one. Prometheus (busybox) and Grafana images have both.
      if (!['collector', 'grafana-auditor', 'loki', 'tempo'].includes(name))
        expect(s.healthcheck, name).toBeDefined();
    }
    expect(services.loki.healthcheck).toBeUndefined();
    expect(services.tempo.healthcheck).toBeUndefined();
  });

  it('a service waits for another to be healthy only when that one has a healthcheck', () => {
    for (const [name, s] of Object.entries(compose.services as Record<string, { depends_on?: object }>)) {
      for (const [dep, how] of Object.entries(s.depends_on ?? {}) as [string, { condition: string }][]) {
        if (how.condition === 'service_healthy')
          expect(services[dep].healthcheck, `${name} waits for ${dep} to be healthy`).toBeDefined();
      }
    }
  });

  it('dashboards and alert rules land in one folder: both name it by the same title, neither by uid', () => {
    const providers = parse(
      readFileSync('grafana/provisioning/dashboards/dashboards.yaml', 'utf8'),
    ).providers;
    expect(providers).toHaveLength(1);
    expect(providers[0].folderUid).toBeUndefined();
    for (const g of rules.groups) expect(g.folder, g.name).toBe(providers[0].folder);
  });

  it('Tempo’s metrics-generator writes to the Prometheus the service map reads, which accepts remote write', () => {
    const tempo = parse(readFileSync('grafana/tempo.yaml', 'utf8'));
    expect(tempo.overrides.defaults.metrics_generator.processors.sort()).toEqual([
      'service-graphs',
      'span-metrics',
    ]);
    expect(tempo.metrics_generator.storage.remote_write).toEqual([
      expect.objectContaining({ url: 'http://prometheus:9090/api/v1/write' }),
    ]);
    expect(compose.services.prometheus.command).toContain('--web.enable-remote-write-receiver');
    const tempoDs = datasources.datasources.find((d: { uid: string }) => d.uid === 'mltrail-tempo');
    const promDs = datasources.datasources.find((d: { uid: string }) => d.uid === 'mltrail-prometheus');
    expect(tempoDs.jsonData.serviceMap.datasourceUid).toBe(promDs.uid);
    expect(promDs.url).toBe('http://prometheus:9090');
  });

  it('publishes only Grafana and the collector OTLP ports', () => {
    const published = Object.entries(services).flatMap(([name, s]) =>
      (s.ports ?? []).map((p) => `${name}:${p}`),
    );
    expect(published.sort()).toEqual(['collector:4317:4317', 'collector:4318:4318', 'grafana:3000:3000']);
  });

  it('Grafana provisioning uses only plain env references (the syntax Grafana expands), each set for the grafana service', () => {
    const env = (compose.services.grafana.environment ?? {}) as Record<string, string>;
    for (const dir of ['datasources', 'dashboards', 'alerting']) {
      for (const f of readdirSync(join('grafana/provisioning', dir))) {
        // $$ is Grafana's literal dollar (template variables such as $${__value.raw}).
        const text = readFileSync(join('grafana/provisioning', dir, f), 'utf8')
          .split('\n')
          .filter((l) => !l.trimStart().startsWith('#'))
          .join('\n')
          .replaceAll('$$', '');
        for (const m of text.matchAll(/\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g)) {
          const name = m[1] ?? m[2];
          expect(name, `${dir}/${f}: ${m[0]}`).toMatch(/^[A-Za-z_][A-Za-z0-9_]*$/);
          expect(
            env[name],
            `${dir}/${f}: ${name} is not set for grafana in docker-compose.yml`,
          ).toBeDefined();
        }
      }
    }
  });

  it('the collector image runs as nonroot and owns the data directory its volume is mounted on', () => {
    const dockerfile = readFileSync('collector/Dockerfile', 'utf8');
    const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    expect(finalStage).toMatch(/^USER 65532:65532$/m);
    expect(finalStage).toMatch(/^COPY --from=build --chown=65532:65532 \S+ \/var\/lib\/mltrail-collector$/m);
    const volume = compose.services.collector.volumes.find((v: string) => v.startsWith('collector-data:'));
    expect(volume).toBe('collector-data:/var/lib/mltrail-collector');
    for (const v of ['MLTRAIL_STORAGE_DIR', 'MLTRAIL_ARCHIVE_PATH'])
      expect(compose.services.collector.environment[v], v).toMatch(/^\/var\/lib\/mltrail-collector\//);
    // The image builds the same manifest with the same ocb release as collector/build.sh.
    const ocb = /OCB_VERSION=(\S+)/.exec(readFileSync('collector/build.sh', 'utf8'))![1];
    expect(dockerfile).toContain(`go.opentelemetry.io/collector/cmd/builder@${ocb}`);
    expect(dockerfile).toMatch(/^COPY builder-config\.yaml /m);
  });

  it('declares every named volume a service uses, and every config file it mounts exists', () => {
    const declared = new Set(Object.keys(compose.volumes));
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const src = v.split(':')[0];
        if (src.startsWith('./')) expect(existsSync(src), `${name}: ${src}`).toBe(true);
        else expect(declared.has(src), `${name}: volume ${src}`).toBe(true);
      }
    }
  });
});

describe('Loki label shaping (static)', () => {
  it('only the registry index-label attributes become Loki index labels; structured metadata stays on', async () => {
    const { INDEX_LABEL_ATTRIBUTES } = await import('../../src/semconv/index.js');
    const loki = parse(readFileSync('grafana/loki.yaml', 'utf8'));
    const rules = loki.limits_config.otlp_config.resource_attributes;
    expect(rules.ignore_defaults).toBe(true);
    const labels = rules.attributes_config
      .filter((r: { action: string }) => r.action === 'index_label')
      .flatMap((r: { attributes: string[] }) => r.attributes);
    expect(labels.sort()).toEqual([...INDEX_LABEL_ATTRIBUTES].sort());
    expect(loki.limits_config.allow_structured_metadata).toBe(true);
    expect(loki.schema_config.configs[0]).toEqual(expect.objectContaining({ store: 'tsdb', schema: 'v13' }));
    expect(loki.auth_enabled).toBe(true);
  });

  it('Loki never stores a cut body (a cut body no longer matches its hash) and its metadata limits fit the collector caps', () => {
    const loki = parse(readFileSync('grafana/loki.yaml', 'utf8'));
    expect(loki.limits_config.max_line_size_truncate).toBe(false);
    expect(loki.limits_config.max_structured_metadata_entries_count).toBeGreaterThan(100);
    const collector = parse(readFileSync('collector/config.yaml', 'utf8'));
    const statements: string[] = collector.processors['transform/loki'].log_statements[0].statements;
    expect(statements).toContain('truncate_all(log.attributes, 8192)');
    expect(statements.some((s) => s.startsWith('limit(log.attributes, 100,'))).toBe(true);
    expect(statements.some((s) => /^set\(log\.body\b|log\.body\s*,/.test(s))).toBe(false);
  });

  it('Loki takes old journals: lines older than a week are not refused (its default would answer 400 and drop them)', () => {
    const loki = parse(readFileSync('grafana/loki.yaml', 'utf8'));
    // Loki's defaults are reject_old_samples: true with a 1w max age; the choice must be stated, not inherited.
    expect(loki.limits_config.reject_old_samples).toBe(false);
    expect(loki.limits_config.retention_period).toBe('0s');
  });
});
