#!/usr/bin/env node
// Dashboards and alert rules as code, built with the Grafana Foundation SDK (its builders are typed against
// Grafana's own schema, so a panel option or query field Grafana does not have fails `npm run typecheck`).
// `npm run dashboards` writes grafana/dashboards/*.json and grafana/provisioning/alerting/rules.yaml
// (provisioning reads them); `generate()` returns them so a test can prove the committed files are this
// generator's output. Every query uses names from model/ (Loki form: dots → underscores; Prometheus form:
// see promName()).
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RuleBuilder, QueryBuilder as RuleQueryBuilder } from '@grafana/grafana-foundation-sdk/alerting';
import type * as cog from '@grafana/grafana-foundation-sdk/cog';
import { ReduceDataOptionsBuilder } from '@grafana/grafana-foundation-sdk/common';
import {
  type AnnotationQuery,
  AnnotationQueryBuilder,
  CustomVariableBuilder,
  type Dashboard,
  DashboardBuilder,
  type DataTransformerConfig,
  type GridPos,
  type Panel as PanelModel,
  TextBoxVariableBuilder,
  type VariableModel,
} from '@grafana/grafana-foundation-sdk/dashboard';
import { TypeReduceBuilder, TypeThresholdBuilder } from '@grafana/grafana-foundation-sdk/expr';
import { PanelBuilder as LogsPanel } from '@grafana/grafana-foundation-sdk/logs';
import { DataqueryBuilder as LokiQuery } from '@grafana/grafana-foundation-sdk/loki';
import { PanelBuilder as NodeGraphPanel } from '@grafana/grafana-foundation-sdk/nodegraph';
import {
  PieChartLabels,
  PieChartLegendOptionsBuilder,
  PanelBuilder as PieChartPanel,
} from '@grafana/grafana-foundation-sdk/piechart';
import { DataqueryBuilder as PromQuery } from '@grafana/grafana-foundation-sdk/prometheus';
import { PanelBuilder as StateTimelinePanel } from '@grafana/grafana-foundation-sdk/statetimeline';
import { PanelBuilder as TablePanel } from '@grafana/grafana-foundation-sdk/table';
import { DataqueryBuilder as TempoQuery } from '@grafana/grafana-foundation-sdk/tempo';
import { PanelBuilder as TimeseriesPanel } from '@grafana/grafana-foundation-sdk/timeseries';
import { stringify } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const LOKI = { type: 'loki', uid: 'mltrail-loki' };
const TEMPO = { type: 'tempo', uid: 'mltrail-tempo' };
const PROM = { type: 'prometheus', uid: 'mltrail-prometheus' };
/** Every stream mltrail writes (service_name is an index label on every OTLP stream in Loki). */
const ALL = '{service_name=~".+"}';

/** A registry key in its Loki structured-metadata form. */
export const loki = (key: string): string => key.replaceAll('.', '_');

/**
 * A registry metric in its Prometheus form (OTLP translation with suffixes): dots → underscores, unit
 * suffix (s → _seconds, "1" on gauges → _ratio), counters end in _total, histograms expose _bucket.
 */
export function promName(metric: string, instrument: string, unit: string): string {
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

/** Any panel builder of the SDK (each visualisation has its own, typed with its options). */
type Panel = cog.Builder<PanelModel> & {
  id(id: number): unknown;
  title(title: string): unknown;
  gridPos(gridPos: GridPos): unknown;
  withTarget(target: cog.Builder<cog.Dataquery>): unknown;
};

/** A panel: its builder, title, place on the grid and queries (refIds A, B, … unless a query names one). */
function panel<P extends Panel>(
  builder: P,
  title: string,
  gridPos: GridPos,
  targets: cog.Builder<cog.Dataquery>[],
): P {
  builder.title(title);
  builder.gridPos(gridPos);
  targets.forEach((t, i) => {
    const q = t as unknown as { refId(refId: string): unknown; build(): { refId?: string } };
    if (q.build().refId === undefined) q.refId(String.fromCharCode(65 + i));
    builder.withTarget(t);
  });
  return builder;
}
const lokiQ = (expr: string, queryType: 'range' | 'instant' = 'range') =>
  new LokiQuery().datasource(LOKI).expr(expr).queryType(queryType);
const promQ = (expr: string, legendFormat: string) =>
  new PromQuery().datasource(PROM).expr(expr).legendFormat(legendFormat);
const traceQ = (query: string) =>
  new TempoQuery().datasource(TEMPO).queryType('traceql').query(query).limit(20);

function dashboardOf(
  uid: string,
  title: string,
  panels: Panel[],
  variables: cog.Builder<VariableModel>[] = [],
  annotations: cog.Builder<AnnotationQuery>[] = [],
): Dashboard {
  const d = new DashboardBuilder(title)
    .uid(uid)
    .tags(['mltrail', 'audit'])
    .timezone('utc')
    .readonly()
    .version(1)
    .time({ from: 'now-7d', to: 'now' });
  panels.forEach((p, i) => {
    p.id(i + 1);
    d.withPanel(p);
  });
  for (const v of variables) d.withVariable(v);
  for (const a of annotations) d.annotation(a);
  return d.build();
}

const textVar = (name: string, label: string) =>
  new TextBoxVariableBuilder(name).label(label).defaultValue('');
const customVar = (name: string, label: string, values: string[]) =>
  new CustomVariableBuilder(name)
    .label(label)
    .values(values.join(','))
    .includeAll(true)
    .allValue('.*')
    .current({ text: 'All', value: '$__all' });

/**
 * A table of log records: each row's labels (index labels, structured metadata and the body fields `| json`
 * parsed) become columns; the named ones are shown, in this order (a name no record has is no column).
 */
function recordColumns(keys: string[]): DataTransformerConfig[] {
  const names = ['Time', ...keys.map(loki), 'trace_id'];
  return [
    { id: 'extractFields', options: { source: 'labels' } },
    { id: 'filterFieldsByName', options: { include: { names } } },
    { id: 'organize', options: { indexByName: Object.fromEntries(names.map((n, i) => [n, i])) } },
  ];
}

function auditTrail(): Dashboard {
  return dashboardOf(
    'mltrail-audit-trail',
    'mltrail · Audit trail',
    [
      panel(
        new LogsPanel(),
        'Audit records (filter by prediction id, model version, decision outcome)',
        { x: 0, y: 0, w: 24, h: 10 },
        [
          lokiQ(
            `${ALL} | event_name=~"(ml|mltrail)[.].+" | ${loki('ml.prediction.id')}=~"$prediction_id.*" | ${loki('ml.model.version')}=~"$model_version.*"`,
          ),
        ],
      ),
      panel(new TablePanel(), 'Decisions', { x: 0, y: 10, w: 16, h: 10 }, [
        lokiQ(
          `${ALL} | event_name="ml.decision" | ${loki('ml.decision.outcome')}=~"$outcome" | ${loki('ml.prediction.id')}=~"$prediction_id.*" | json | __error__=""`,
        ),
      ]).transformations(
        recordColumns([
          'ml.decision.outcome',
          'ml.decision.reason',
          'ml.decision.automated',
          'ml.decision.reviewer',
          'ml.decision.override',
          'ml.decision.id',
          'ml.prediction.id',
        ]),
      ),
      // The instant query arrives as one table (a row per outcome): one slice per row, named by its outcome.
      panel(new PieChartPanel(), 'Decisions by outcome', { x: 16, y: 10, w: 8, h: 10 }, [
        lokiQ(
          `sum by (${loki('ml.decision.outcome')}) (count_over_time(${ALL} | event_name="ml.decision" [$__range]))`,
          'instant',
        ),
      ])
        .reduceOptions(new ReduceDataOptionsBuilder().values(true).calcs(['lastNotNull']).fields(''))
        .displayLabels([PieChartLabels.Name, PieChartLabels.Percent])
        .legend(new PieChartLegendOptionsBuilder().showLegend(true)),
      panel(new TablePanel(), 'Traces of this prediction (jump to trace)', { x: 0, y: 20, w: 24, h: 8 }, [
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
const bodyPath = (key: string, index?: number) => `\`["${key}"]${index === undefined ? '' : `[${index}]`}\``;

/**
 * One term of a lineage query: the records of `event`, the labels `extract` reads from the body (each
 * required non-empty unless named `opt_…` or given a value in `where`), then `format` (label → template)
 * and the grouping labels.
 */
function lineageTerm(
  event: string,
  extract: Record<string, string>,
  format: Record<string, string>[],
  by: string[],
  where: Record<string, string> = {},
): string {
  const json = Object.entries(extract)
    .map(([label, path]) => `${label}=${path}`)
    .join(', ');
  const required = Object.keys(extract)
    .filter((l) => !l.startsWith('opt_') && !(l in where))
    .map((l) => ` | ${l}!=""`)
    .concat(Object.entries(where).map(([l, v]) => ` | ${l}="${v}"`))
    .join('');
  const stages = format.map((f) =>
    Object.entries(f)
      .map(([label, template]) => `${label}=\`${template}\``)
      .join(', '),
  );
  const formats = stages.map((f) => ` | label_format ${f}`).join('');
  return `sum by (${by.join(', ')}) (count_over_time(${ALL} | event_name="${event}" | json ${json} | __error__=""${required}${formats} [$__range]))`;
}

const nodeTerm = (
  event: string,
  extract: Record<string, string>,
  title: string,
  kind: string,
  where: Record<string, string> = {},
) => lineageTerm(event, extract, [{ title, subtitle: kind }], ['id', 'title', 'subtitle'], where);
const edgeTerm = (
  event: string,
  extract: Record<string, string>,
  relation: string,
  format: Record<string, string> = {},
  where: Record<string, string> = {},
) =>
  lineageTerm(
    event,
    extract,
    [{ ...format, mainstat: relation }, { id: '{{.source}} → {{.target}}' }],
    ['id', 'source', 'target', 'mainstat'],
    where,
  );
const positions = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The nodes query: every node a pipeline record defines, with a title and its kind. */
export function lineageNodesQuery(): string {
  const k = (key: string) => bodyPath(key);
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
    // A dataset without a source names its uri as the source.
    lineageTerm(
      'ml.dataset.registered',
      { s: k('ml.dataset.source'), u: k('ml.dataset.uri') },
      [{ id: 'source:{{.u}}', title: 'source {{.u}}', subtitle: 'source' }],
      ['id', 'title', 'subtitle'],
      { s: '' },
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
    // A failed transform or training run is part of the lineage: what was attempted on the data.
    nodeTerm(
      'ml.stage.failed',
      { id: k('ml.transform.id'), st: k('ml.stage.name'), opt_n: k('ml.transform.name') },
      'failed transform {{.opt_n}}',
      'transform',
      { st: 'transform' },
    ),
    nodeTerm(
      'ml.stage.failed',
      { id: k('ml.run.id'), st: k('ml.stage.name'), opt_t: k('ml.run.type'), opt_m: k('ml.model.name') },
      'failed {{.opt_t}} run of {{.opt_m}}',
      'run',
      { st: 'train' },
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
export function lineageEdgesQuery(): string {
  const k = (key: string, i?: number) => bodyPath(key, i);
  const list = (
    event: string,
    key: string,
    target: Record<string, string>,
    relation: string,
    format?: Record<string, string>,
    where?: Record<string, string>,
  ) =>
    positions(
      key === 'ml.retraining.trigger_ids' ? LINEAGE_LIST_LIMITS.triggers : LINEAGE_LIST_LIMITS.inputs,
    ).map((i) => edgeTerm(event, { source: k(key, i), ...target }, relation, format, where));
  const stage = k('ml.stage.name');
  return [
    edgeTerm('ml.dataset.registered', { s: k('ml.dataset.source'), target: k('ml.dataset.id') }, 'provides', {
      source: 'source:{{.s}}',
    }),
    edgeTerm(
      'ml.dataset.registered',
      { s: k('ml.dataset.source'), u: k('ml.dataset.uri'), target: k('ml.dataset.id') },
      'provides',
      { source: 'source:{{.u}}' },
      { s: '' },
    ),
    ...list(
      'ml.stage.failed',
      'ml.transform.input_ids',
      { target: k('ml.transform.id'), st: stage },
      'input',
      {},
      { st: 'transform' },
    ),
    ...list(
      'ml.stage.failed',
      'ml.training.input_dataset_ids',
      { target: k('ml.run.id'), st: stage },
      'trained on',
      {},
      { st: 'train' },
    ),
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
    // Drift recorded without a deployment id hangs off the model version.
    edgeTerm(
      'ml.drift.detected',
      { d: k('ml.deployment.id'), n: k('ml.model.name'), v: k('ml.model.version'), target: k('ml.drift.id') },
      'drifted',
      { source: '{{.n}}@{{.v}}' },
      { d: '' },
    ),
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
 * Grafana's transformations for the node graph. Grafana's Loki datasource already hands an instant query's
 * series over as one table per query (a column per label, then `Value #<refId>`); should it hand over one
 * frame per series instead, the labels become fields and the series of each query are merged, so either
 * way the node graph (which reads the first nodes frame and the first edges frame only) gets one of each.
 * The sample time and count are dropped.
 */
export const LINEAGE_TRANSFORMATIONS: DataTransformerConfig[] = [
  { id: 'labelsToFields', options: { mode: 'columns' } },
  {
    id: 'organize',
    options: { excludeByName: { Time: true, Value: true, 'Value #nodes': true, 'Value #edges': true } },
  },
  { id: 'merge', options: {}, filter: { id: 'byRefId', options: 'nodes' } },
  { id: 'merge', options: {}, filter: { id: 'byRefId', options: 'edges' } },
];

function lineage(): Dashboard {
  const lineageEvents =
    'ml.dataset.registered|ml.transform.completed|ml.training.completed|ml.evaluation.completed|ml.model.registered|ml.deployment.completed|ml.retraining.triggered|ml.drift.detected';
  return dashboardOf(
    'mltrail-lineage',
    'mltrail · Lineage',
    [
      panel(
        new NodeGraphPanel(),
        'Lineage: source → dataset → transform → run → model → deployment → drift → retraining',
        { x: 0, y: 0, w: 24, h: 14 },
        [
          lokiQ(lineageNodesQuery(), 'instant').refId('nodes'),
          lokiQ(lineageEdgesQuery(), 'instant').refId('edges'),
        ],
      )
        .description(
          `The pipeline lineage of the records in the time range: nodes are the ids records define (datasets, transforms, runs, evaluations, models, deployments, drift records, retraining), edges the relations they name (at most ${LINEAGE_LIST_LIMITS.inputs} input datasets and ${LINEAGE_LIST_LIMITS.triggers} drift records per record). Predictions are not drawn; for the lineage of one prediction, or a graph of any size, run "mltrail lineage <id>".`,
        )
        .transformations(LINEAGE_TRANSFORMATIONS),
      panel(new TablePanel(), 'Lineage records', { x: 0, y: 14, w: 24, h: 10 }, [
        lokiQ(
          `${ALL} | event_name=~"${lineageEvents}" | ${loki('ml.model.name')}=~"$model.*" | json | __error__=""`,
        ),
      ]).transformations(
        recordColumns([
          'event.name',
          'ml.dataset.id',
          'ml.transform.id',
          'ml.run.id',
          'ml.evaluation.id',
          'ml.model.name',
          'ml.model.version',
          'ml.model.digest',
          'ml.deployment.id',
          'ml.drift.id',
          'ml.actor.id',
        ]),
      ),
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

const lokiAnnotation = (name: string, iconColor: string, expr: string) =>
  new AnnotationQueryBuilder().name(name).datasource(LOKI).enable(true).iconColor(iconColor).expr(expr);

function anomalies(): Dashboard {
  return dashboardOf(
    'mltrail-anomalies-drift',
    'mltrail · Anomalies and drift',
    [
      panel(new TimeseriesPanel(), 'Drift score per feature', { x: 0, y: 0, w: 12, h: 9 }, [
        promQ(
          `max by (${loki('ml.drift.feature')}, ${loki('ml.model.version')}) (${M.driftScore})`,
          '{{ml_drift_feature}} v{{ml_model_version}}',
        ),
      ]),
      panel(new TimeseriesPanel(), 'Drift events', { x: 12, y: 0, w: 12, h: 9 }, [
        lokiQ(
          `sum by (${loki('ml.drift.feature')}) (count_over_time(${ALL} | event_name="ml.drift.detected" [$__auto]))`,
        ),
      ]),
      panel(new TimeseriesPanel(), 'Prediction score distribution (mean, p90)', { x: 0, y: 9, w: 12, h: 9 }, [
        lokiQ(`avg_over_time(${scores} [$__auto]) by (${byModel})`).legendFormat(
          'mean v{{ml_model_version}}',
        ),
        lokiQ(`quantile_over_time(0.9, ${scores} [$__auto]) by (${byModel})`).legendFormat(
          'p90 v{{ml_model_version}}',
        ),
      ]),
      panel(new TimeseriesPanel(), 'Error rate', { x: 12, y: 9, w: 6, h: 9 }, [
        promQ(`sum(rate(${M.errors}[5m])) / clamp_min(sum(rate(${M.predictions}[5m])), 1e-9)`, 'error rate'),
      ]),
      panel(new TimeseriesPanel(), 'Latency p50 / p99', { x: 18, y: 9, w: 6, h: 9 }, [
        promQ(`histogram_quantile(0.5, sum by (le) (rate(${M.duration}_bucket[5m])))`, 'p50'),
        promQ(`histogram_quantile(0.99, sum by (le) (rate(${M.duration}_bucket[5m])))`, 'p99'),
      ]),
      panel(new LogsPanel(), 'Failed stages and predictions', { x: 0, y: 18, w: 24, h: 8 }, [
        lokiQ(`${ALL} | event_name="ml.stage.failed"`),
      ]),
    ],
    [],
    [
      lokiAnnotation('Deployments', 'green', `${ALL} | event_name="ml.deployment.completed"`),
      lokiAnnotation('Retraining', 'orange', `${ALL} | event_name="ml.retraining.triggered"`),
    ],
  );
}

function deployments(): Dashboard {
  return dashboardOf('mltrail-deployments', 'mltrail · Deployments', [
    panel(
      new TablePanel(),
      'Deployments (which model version, where, by whom)',
      { x: 0, y: 0, w: 24, h: 10 },
      [lokiQ(`${ALL} | event_name="ml.deployment.completed" | json | __error__=""`)],
    ).transformations(
      recordColumns([
        'ml.model.name',
        'ml.model.version',
        'ml.model.digest',
        'ml.deployment.environment',
        'ml.deployment.endpoint',
        'ml.deployment.deployed_by',
        'ml.deployment.replaced_version',
        'ml.deployment.id',
      ]),
    ),
    panel(new StateTimelinePanel(), 'Model version serving predictions', { x: 0, y: 10, w: 24, h: 8 }, [
      lokiQ(
        `sum by (${loki('ml.model.name')}, ${loki('ml.model.version')}) (count_over_time(${ALL} | event_name="ml.prediction" [$__auto]))`,
      ),
    ]),
    panel(new LogsPanel(), 'Unregistered models serving traffic', { x: 0, y: 18, w: 24, h: 6 }, [
      lokiQ(`${ALL} | event_name="ml.model.unregistered"`),
    ]),
  ]);
}

/**
 * One alert rule: query A (Loki or Prometheus, instant), B = its last value, C = B > 0. Built with the
 * SDK's alerting builders; provisioning takes the rule's fields inside a group of the file format.
 */
function rule(
  uid: string,
  title: string,
  datasource: { type: string; uid: string },
  expr: string,
  summary: string,
  labels: Record<string, string>,
) {
  const model =
    datasource.type === 'loki'
      ? new LokiQuery().expr(expr).queryType('instant').refId('A')
      : new PromQuery().expr(expr).instant().refId('A');
  const r = new RuleBuilder(title)
    .uid(uid)
    .condition('C')
    .withQuery(
      new RuleQueryBuilder('A')
        .datasourceUid(datasource.uid)
        .relativeTimeRange({ from: 600, to: 0 })
        .model(model),
    )
    .withQuery(
      new RuleQueryBuilder('B')
        .datasourceUid('__expr__')
        .model(new TypeReduceBuilder().expression('A').reducer('last').refId('B')),
    )
    .withQuery(
      new RuleQueryBuilder('C').datasourceUid('__expr__').model(
        new TypeThresholdBuilder()
          .expression('B')
          .conditions([{ evaluator: { type: 'gt', params: [0] } }])
          .refId('C'),
      ),
    )
    .forDuration('0m')
    .noDataState('OK')
    .execErrState('Error')
    .annotations({ summary })
    .labels(labels)
    .build();
  // Plain data (the built queries carry builder-class values YAML cannot write).
  return JSON.parse(
    JSON.stringify({
      uid: r.uid,
      title: r.title,
      condition: r.condition,
      data: r.data,
      for: r.for,
      noDataState: r.noDataState,
      execErrState: r.execErrState,
      annotations: r.annotations,
      labels: r.labels,
    }),
  ) as Record<string, unknown>;
}

/**
 * Missing records per chain within a window: (max seq - min seq + 1) - records seen. A chain is written in
 * seq order with non-decreasing timestamps and shipped in that order, so the records of any time window (even
 * one the shipper has not finished) form a contiguous run unless some are missing. A heuristic alarm: a
 * duplicate delivery in the same window can hide a gap; `mltrail verify` is the definitive check.
 */
function chainGapExpr(window: string): string {
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
export function generate(): Record<string, string> {
  const json = (d: unknown) => `${JSON.stringify(d, null, 2)}\n`;
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
