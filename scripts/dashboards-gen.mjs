#!/usr/bin/env node
// Dashboards and alert rules as code: `npm run dashboards` writes grafana/dashboards/*.json and
// grafana/provisioning/alerting/rules.yaml; `generate()` returns them so a test can prove they are not stale.
// Every query uses names from model/ (Loki form: dots → underscores; Prometheus form: see promName()).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOKI = { type: 'loki', uid: 'mltrail-loki' };
const TEMPO = { type: 'tempo', uid: 'mltrail-tempo' };
const PROM = { type: 'prometheus', uid: 'mltrail-prometheus' };
/** Every stream mltrail writes (service_name is an index label on every OTLP stream in Loki). */
const ALL = '{service_name=~".+"}';

/** A registry key in its Loki structured-metadata form. */
export const loki = (key) => key.replaceAll('.', '_');

/**
 * A registry metric in its Prometheus form (OTLP translation with suffixes): dots → underscores, unit
 * suffix (s → _seconds, "1" on gauges → _ratio), counters end in _total, histograms expose _bucket.
 */
export function promName(metric, instrument, unit) {
  let n = metric.replaceAll('.', '_');
  if (unit === 's') n += '_seconds';
  if (unit === '1' && instrument === 'gauge') n += '_ratio';
  if (instrument === 'counter') n += '_total';
  return n;
}

const M = {
  driftScore: promName('ml.drift.score', 'gauge', '1'),
  predictions: promName('ml.prediction.count', 'counter', '{prediction}'),
  errors: promName('ml.prediction.errors', 'counter', '{error}'),
  duration: promName('ml.prediction.duration', 'histogram', 's'),
};

let panelId = 0;
function panel(type, title, gridPos, targets, extra = {}) {
  panelId++;
  return {
    id: panelId,
    type,
    title,
    gridPos,
    targets: targets.map((t, i) => ({ refId: String.fromCharCode(65 + i), ...t })),
    ...extra,
  };
}
const lokiQ = (expr, extra = {}) => ({ datasource: LOKI, expr, queryType: 'range', ...extra });
const promQ = (expr, legendFormat) => ({ datasource: PROM, expr, legendFormat });
const traceQ = (query) => ({ datasource: TEMPO, queryType: 'traceql', query, limit: 20 });

function dashboard(uid, title, panels, templating = [], annotations = []) {
  panelId = 0;
  return {
    uid,
    title,
    tags: ['mltrail', 'audit'],
    timezone: 'utc',
    schemaVersion: 41,
    version: 1,
    editable: false,
    time: { from: 'now-7d', to: 'now' },
    templating: { list: templating },
    annotations: { list: annotations },
    panels: panels(),
  };
}

const textVar = (name, label) => ({
  type: 'textbox',
  name,
  label,
  query: '',
  current: { text: '', value: '' },
});
const customVar = (name, label, values) => ({
  type: 'custom',
  name,
  label,
  query: values.join(','),
  includeAll: true,
  allValue: '.*',
  current: { text: 'All', value: '$__all' },
});

function auditTrail() {
  return dashboard(
    'mltrail-audit-trail',
    'mltrail · Audit trail',
    () => [
      panel(
        'logs',
        'Audit records (filter by prediction id, model version, decision outcome)',
        { x: 0, y: 0, w: 24, h: 10 },
        [
          lokiQ(
            `${ALL} | event_name=~"(ml|mltrail)[.].+" | ${loki('ml.prediction.id')}=~"$prediction_id.*" | ${loki('ml.model.version')}=~"$model_version.*"`,
          ),
        ],
      ),
      panel(
        'table',
        'Decisions',
        { x: 0, y: 10, w: 16, h: 10 },
        [
          lokiQ(
            `${ALL} | event_name="ml.decision" | ${loki('ml.decision.outcome')}=~"$outcome" | ${loki('ml.prediction.id')}=~"$prediction_id.*" | json | __error__=""`,
          ),
        ],
        { transformations: [{ id: 'extractFields', options: { source: 'labels' } }] },
      ),
      panel('piechart', 'Decisions by outcome', { x: 16, y: 10, w: 8, h: 10 }, [
        lokiQ(
          `sum by (${loki('ml.decision.outcome')}) (count_over_time(${ALL} | event_name="ml.decision" [$__auto]))`,
          { queryType: 'instant' },
        ),
      ]),
      panel('table', 'Traces of this prediction (jump to trace)', { x: 0, y: 20, w: 24, h: 8 }, [
        traceQ(`{ span.${'ml.prediction.id'} = "$prediction_id" }`),
      ]),
    ],
    [
      textVar('prediction_id', 'Prediction id'),
      textVar('model_version', 'Model version'),
      customVar('outcome', 'Decision outcome', [
        'approved',
        'declined',
        'decline',
        'standard',
        'surcharge',
        'review',
      ]),
    ],
  );
}

/**
 * The lineage graph as Grafana's node graph draws it: one nodes frame (`id`, `title`, `subtitle`) and one
 * edges frame (`id`, `source`, `target`, `mainstat` = the relation), each from one instant Loki query.
 *
 * A log query cannot do this: Grafana turns it into one logs frame whose `id` field is Loki's row id, and
 * no transformation turns one row per record into one row per edge. So each relation is a metric query
 * term (`sum by (...) (count_over_time(...))`, one series per node or edge) reading the ids from the
 * record body with `| json` expressions, the terms joined with `or`. A list of ids (transform inputs,
 * training datasets, retraining triggers) is read position by position, up to LINEAGE_LIST_LIMITS ids per
 * record (each position is one term); `mltrail lineage` has the full graph whatever its size. Predictions, decisions and feedback are
 * left out (one node per request would bury the pipeline); the graph is the pipeline's lineage: sources,
 * datasets, transforms, runs, evaluations, models, deployments, drift records and retraining.
 */
export const LINEAGE_LIST_LIMITS = { inputs: 8, triggers: 32 };

/** A `| json` path to a body key (the keys hold dots, so the bracket form). */
const bodyPath = (key, index) => `\`["${key}"]${index === undefined ? '' : `[${index}]`}\``;

/**
 * One term of a lineage query: the records of `event`, the labels `extract` reads from the body (each
 * required non-empty), then `format` (label → template) and the grouping labels.
 */
function lineageTerm(event, extract, format, by) {
  const json = Object.entries(extract)
    .map(([label, path]) => `${label}=${path}`)
    .join(', ');
  const required = Object.keys(extract)
    .filter((l) => !l.startsWith('opt_'))
    .map((l) => ` | ${l}!=""`)
    .join('');
  const stages = format.map((f) =>
    Object.entries(f)
      .map(([label, template]) => `${label}=\`${template}\``)
      .join(', '),
  );
  const formats = stages.map((f) => ` | label_format ${f}`).join('');
  return `sum by (${by.join(', ')}) (count_over_time(${ALL} | event_name="${event}" | json ${json} | __error__=""${required}${formats} [$__range]))`;
}

const nodeTerm = (event, extract, title, kind) =>
  lineageTerm(event, extract, [{ title, subtitle: kind }], ['id', 'title', 'subtitle']);
const edgeTerm = (event, extract, relation, format = {}) =>
  lineageTerm(
    event,
    extract,
    [{ ...format, mainstat: relation }, { id: '{{.source}} → {{.target}}' }],
    ['id', 'source', 'target', 'mainstat'],
  );
const positions = (n) => Array.from({ length: n }, (_, i) => i);

/** The nodes query: every node a pipeline record defines, with a title and its kind. */
export function lineageNodesQuery() {
  const k = (key) => bodyPath(key);
  return [
    nodeTerm(
      'ml.dataset.registered',
      { id: k('ml.dataset.id'), opt_n: k('ml.dataset.name'), opt_v: k('ml.dataset.version') },
      'dataset {{.opt_n}}@{{.opt_v}}',
      'dataset',
    ),
    lineageTerm(
      'ml.dataset.registered',
      { s: k('ml.dataset.source') },
      [{ id: 'source:{{.s}}', title: 'source {{.s}}', subtitle: 'source' }],
      ['id', 'title', 'subtitle'],
    ),
    nodeTerm(
      'ml.transform.completed',
      { id: k('ml.transform.id'), opt_n: k('ml.transform.name') },
      'transform {{.opt_n}}',
      'transform',
    ),
    nodeTerm(
      'ml.transform.completed',
      { id: k('ml.transform.output_id'), opt_n: k('ml.dataset.name'), opt_v: k('ml.dataset.version') },
      'dataset {{.opt_n}}@{{.opt_v}}',
      'dataset',
    ),
    nodeTerm(
      'ml.training.completed',
      { id: k('ml.run.id'), opt_t: k('ml.run.type'), opt_m: k('ml.model.name') },
      '{{.opt_t}} run of {{.opt_m}}',
      'run',
    ),
    nodeTerm(
      'ml.evaluation.completed',
      { id: k('ml.evaluation.id'), opt_m: k('ml.evaluation.metric_name') },
      'evaluation {{.opt_m}}',
      'evaluation',
    ),
    lineageTerm(
      'ml.model.registered',
      { n: k('ml.model.name'), v: k('ml.model.version') },
      [{ id: '{{.n}}@{{.v}}', title: 'model {{.n}}@{{.v}}', subtitle: 'model' }],
      ['id', 'title', 'subtitle'],
    ),
    nodeTerm(
      'ml.deployment.completed',
      { id: k('ml.deployment.id'), opt_e: k('ml.deployment.environment') },
      'deployment to {{.opt_e}}',
      'deployment',
    ),
    nodeTerm(
      'ml.drift.detected',
      { id: k('ml.drift.id'), opt_f: k('ml.drift.feature') },
      'drift on {{.opt_f}}',
      'drift',
    ),
    lineageTerm(
      'ml.retraining.triggered',
      { r: k('ml.run.id'), opt_t: k('ml.retraining.trigger') },
      [{ id: 'retraining:{{.r}}', title: 'retraining ({{.opt_t}})', subtitle: 'retraining' }],
      ['id', 'title', 'subtitle'],
    ),
  ].join(' or ');
}

/** The edges query: every relation between pipeline nodes (the relations of recordLineage()). */
export function lineageEdgesQuery() {
  const k = (key, i) => bodyPath(key, i);
  const list = (event, key, target, relation, format) =>
    positions(
      key === 'ml.retraining.trigger_ids' ? LINEAGE_LIST_LIMITS.triggers : LINEAGE_LIST_LIMITS.inputs,
    ).map((i) => edgeTerm(event, { source: k(key, i), ...target }, relation, format));
  return [
    edgeTerm('ml.dataset.registered', { s: k('ml.dataset.source'), target: k('ml.dataset.id') }, 'provides', {
      source: 'source:{{.s}}',
    }),
    ...list('ml.transform.completed', 'ml.transform.input_ids', { target: k('ml.transform.id') }, 'input'),
    edgeTerm(
      'ml.transform.completed',
      { source: k('ml.transform.id'), target: k('ml.transform.output_id') },
      'produces',
    ),
    ...list(
      'ml.training.completed',
      'ml.training.input_dataset_ids',
      { target: k('ml.run.id') },
      'trained on',
    ),
    edgeTerm(
      'ml.evaluation.completed',
      { source: k('ml.evaluation.dataset_id'), target: k('ml.evaluation.id') },
      'evaluated on',
    ),
    edgeTerm(
      'ml.evaluation.completed',
      { source: k('ml.run.id'), target: k('ml.evaluation.id') },
      'evaluated',
    ),
    edgeTerm(
      'ml.model.registered',
      { source: k('ml.run.id'), n: k('ml.model.name'), v: k('ml.model.version') },
      'produced',
      { target: '{{.n}}@{{.v}}' },
    ),
    edgeTerm(
      'ml.deployment.completed',
      { n: k('ml.model.name'), v: k('ml.model.version'), target: k('ml.deployment.id') },
      'deployed',
      { source: '{{.n}}@{{.v}}' },
    ),
    edgeTerm('ml.drift.detected', { source: k('ml.deployment.id'), target: k('ml.drift.id') }, 'drifted'),
    ...list('ml.retraining.triggered', 'ml.retraining.trigger_ids', { r: k('ml.run.id') }, 'triggered', {
      target: 'retraining:{{.r}}',
    }),
    edgeTerm(
      'ml.retraining.triggered',
      { r: k('ml.run.id'), target: k('ml.run.id') },
      'retrained because of drift',
      { source: 'retraining:{{.r}}' },
    ),
  ].join(' or ');
}

/**
 * Grafana's transformations for the node graph: the labels of each series become fields, the sample time
 * and count are dropped, then the series of each query are merged into one frame (the node graph reads the
 * first nodes frame and the first edges frame only).
 */
export const LINEAGE_TRANSFORMATIONS = [
  { id: 'labelsToFields', options: { mode: 'columns' } },
  { id: 'organize', options: { excludeByName: { Time: true, Value: true } } },
  { id: 'merge', options: {}, filter: { id: 'byRefId', options: 'nodes' } },
  { id: 'merge', options: {}, filter: { id: 'byRefId', options: 'edges' } },
];

function lineage() {
  const lineageEvents =
    'ml.dataset.registered|ml.transform.completed|ml.training.completed|ml.evaluation.completed|ml.model.registered|ml.deployment.completed|ml.retraining.triggered|ml.drift.detected';
  return dashboard(
    'mltrail-lineage',
    'mltrail · Lineage',
    () => [
      panel(
        'nodeGraph',
        'Lineage: source → dataset → transform → run → model → deployment → drift → retraining',
        { x: 0, y: 0, w: 24, h: 14 },
        [
          { refId: 'nodes', ...lokiQ(lineageNodesQuery(), { queryType: 'instant' }) },
          { refId: 'edges', ...lokiQ(lineageEdgesQuery(), { queryType: 'instant' }) },
        ],
        {
          description: `The pipeline lineage of the records in the time range: nodes are the ids records define (datasets, transforms, runs, evaluations, models, deployments, drift records, retraining), edges the relations they name (at most ${LINEAGE_LIST_LIMITS.inputs} input datasets and ${LINEAGE_LIST_LIMITS.triggers} drift records per record). Predictions are not drawn; for the lineage of one prediction, or a graph of any size, run "mltrail lineage <id>".`,
          transformations: LINEAGE_TRANSFORMATIONS,
        },
      ),
      panel('table', 'Lineage records', { x: 0, y: 14, w: 24, h: 10 }, [
        lokiQ(
          `${ALL} | event_name=~"${lineageEvents}" | ${loki('ml.model.name')}=~"$model.*" | json | __error__=""`,
        ),
      ]),
    ],
    [textVar('model', 'Model name')],
  );
}

/** Low-cardinality grouping for metric queries over predictions: one series per model version. */
const byModel = `${loki('ml.model.name')}, ${loki('ml.model.version')}`;
/**
 * The output score of every prediction (a body field, not structured metadata: it is not a lookup key).
 * Records whose body does not parse, or has no numeric score, are dropped rather than failing the panel.
 */
const scores = `${ALL} | event_name="ml.prediction" | json | __error__="" | unwrap ${loki('ml.prediction.output_score')} | __error__=""`;

function anomalies() {
  return dashboard(
    'mltrail-anomalies-drift',
    'mltrail · Anomalies and drift',
    () => [
      panel('timeseries', 'Drift score per feature', { x: 0, y: 0, w: 12, h: 9 }, [
        promQ(
          `max by (${loki('ml.drift.feature')}, ${loki('ml.model.version')}) (${M.driftScore})`,
          '{{ml_drift_feature}} v{{ml_model_version}}',
        ),
      ]),
      panel('timeseries', 'Drift events', { x: 12, y: 0, w: 12, h: 9 }, [
        lokiQ(
          `sum by (${loki('ml.drift.feature')}) (count_over_time(${ALL} | event_name="ml.drift.detected" [$__auto]))`,
        ),
      ]),
      panel('timeseries', 'Prediction score distribution (mean, p90)', { x: 0, y: 9, w: 12, h: 9 }, [
        lokiQ(`avg_over_time(${scores} [$__auto]) by (${byModel})`, {
          legendFormat: 'mean v{{ml_model_version}}',
        }),
        lokiQ(`quantile_over_time(0.9, ${scores} [$__auto]) by (${byModel})`, {
          legendFormat: 'p90 v{{ml_model_version}}',
        }),
      ]),
      panel('timeseries', 'Error rate', { x: 12, y: 9, w: 6, h: 9 }, [
        promQ(`sum(rate(${M.errors}[5m])) / clamp_min(sum(rate(${M.predictions}[5m])), 1e-9)`, 'error rate'),
      ]),
      panel('timeseries', 'Latency p50 / p99', { x: 18, y: 9, w: 6, h: 9 }, [
        promQ(`histogram_quantile(0.5, sum by (le) (rate(${M.duration}_bucket[5m])))`, 'p50'),
        promQ(`histogram_quantile(0.99, sum by (le) (rate(${M.duration}_bucket[5m])))`, 'p99'),
      ]),
      panel('logs', 'Failed stages and predictions', { x: 0, y: 18, w: 24, h: 8 }, [
        lokiQ(`${ALL} | event_name="ml.stage.failed"`),
      ]),
    ],
    [],
    [
      {
        name: 'Deployments',
        datasource: LOKI,
        enable: true,
        iconColor: 'green',
        expr: `${ALL} | event_name="ml.deployment.completed"`,
      },
      {
        name: 'Retraining',
        datasource: LOKI,
        enable: true,
        iconColor: 'orange',
        expr: `${ALL} | event_name="ml.retraining.triggered"`,
      },
    ],
  );
}

function deployments() {
  return dashboard('mltrail-deployments', 'mltrail · Deployments', () => [
    panel('table', 'Deployments (which model version, where, by whom)', { x: 0, y: 0, w: 24, h: 10 }, [
      lokiQ(`${ALL} | event_name="ml.deployment.completed" | json | __error__=""`),
    ]),
    panel('state-timeline', 'Model version serving predictions', { x: 0, y: 10, w: 24, h: 8 }, [
      lokiQ(
        `sum by (${loki('ml.model.name')}, ${loki('ml.model.version')}) (count_over_time(${ALL} | event_name="ml.prediction" [$__auto]))`,
      ),
    ]),
    panel('logs', 'Unregistered models serving traffic', { x: 0, y: 18, w: 24, h: 6 }, [
      lokiQ(`${ALL} | event_name="ml.model.unregistered"`),
    ]),
  ]);
}

function rule(uid, title, datasource, expr, summary, labels) {
  const model =
    datasource.type === 'loki'
      ? { expr, queryType: 'instant', refId: 'A' }
      : { expr, instant: true, refId: 'A' };
  return {
    uid,
    title,
    condition: 'C',
    data: [
      { refId: 'A', datasourceUid: datasource.uid, relativeTimeRange: { from: 600, to: 0 }, model },
      {
        refId: 'B',
        datasourceUid: '__expr__',
        model: { type: 'reduce', expression: 'A', reducer: 'last', refId: 'B' },
      },
      {
        refId: 'C',
        datasourceUid: '__expr__',
        model: {
          type: 'threshold',
          expression: 'B',
          conditions: [{ evaluator: { type: 'gt', params: [0] } }],
          refId: 'C',
        },
      },
    ],
    for: '0m',
    noDataState: 'OK',
    execErrState: 'Error',
    annotations: { summary },
    labels,
  };
}

/**
 * Missing records per chain within a window: (max seq - min seq + 1) - records seen. A chain is written in
 * seq order with non-decreasing timestamps and shipped in that order, so the records of any time window (even
 * one the shipper has not finished) form a contiguous run unless some are missing. A heuristic alarm: a
 * duplicate delivery in the same window can hide a gap; `mltrail verify` is the definitive check.
 */
function chainGapExpr(window) {
  const seq = `mltrail_seq`;
  const chain = `mltrail_chain_id`;
  const sel = `${ALL} | ${seq}!=""`;
  const unwrapped = `${sel} | unwrap ${seq} | __error__="" [${window}]`;
  return (
    `max_over_time(${unwrapped}) by (${chain}) - min_over_time(${unwrapped}) by (${chain}) + 1` +
    ` - sum by (${chain}) (count_over_time(${sel} [${window}]))`
  );
}

function alertRules() {
  return {
    apiVersion: 1,
    groups: [
      {
        orgId: 1,
        name: 'mltrail',
        folder: 'mltrail audit',
        interval: '1m',
        rules: [
          rule(
            'mltrail-drift-detected',
            'Drift detected',
            LOKI,
            `sum(count_over_time(${ALL} | event_name="ml.drift.detected" [10m]))`,
            'A drift monitor recorded ml.drift.detected in the last 10 minutes',
            { severity: 'warning' },
          ),
          rule(
            'mltrail-error-rate',
            'Prediction error rate above 5%',
            PROM,
            `sum(rate(${M.errors}[5m])) / clamp_min(sum(rate(${M.predictions}[5m])), 1e-9) - 0.05`,
            'More than 5% of predictions failed over 5 minutes',
            { severity: 'critical' },
          ),
          rule(
            'mltrail-integrity',
            'Audit trail integrity alarm',
            LOKI,
            `sum(count_over_time(${ALL} | event_name="mltrail.journal.gap" [10m]))`,
            'A journal write failure (mltrail.journal.gap) was recorded: records may be missing from a chain',
            { severity: 'critical' },
          ),
          rule(
            'mltrail-chain-gap',
            'Audit chain sequence gap',
            LOKI,
            chainGapExpr('10m'),
            'A chain in Loki has sequence numbers missing in the last 10 minutes: run mltrail verify (the collector archive may hold the records)',
            { severity: 'critical' },
          ),
        ],
      },
    ],
  };
}

/** Every generated file: repo-relative path → content. */
export function generate() {
  const json = (d) => `${JSON.stringify(d, null, 2)}\n`;
  return {
    'grafana/dashboards/audit-trail.json': json(auditTrail()),
    'grafana/dashboards/lineage.json': json(lineage()),
    'grafana/dashboards/anomalies-drift.json': json(anomalies()),
    'grafana/dashboards/deployments.json': json(deployments()),
    'grafana/provisioning/alerting/rules.yaml': `# Generated by \`npm run dashboards\` — do not edit.\n${stringify(alertRules())}`,
  };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  for (const [path, content] of Object.entries(generate())) {
    mkdirSync(dirname(join(ROOT, path)), { recursive: true });
    writeFileSync(join(ROOT, path), content);
    process.stdout.write(`dashboards: wrote ${path}\n`);
  }
}
