import { readFileSync } from 'node:fs';
import type { DataFrame, DataTransformerConfig } from '@grafana/data';
import { beforeAll, describe, expect, it } from 'vitest';
import type { parseRecordLine } from '../../src/integrity/index.js';
import { lookupAttributes } from '../../src/integrity/record.js';
import { recordBody, recordLineage } from '../../src/lineage/record-lineage.js';
import * as sc from '../../src/semconv/index.js';
import { collectorAvailable, collectorSkipReason } from '../collector/harness.js';
import { demoInLoki } from './demo-in-loki.js';
import {
  displayValues,
  lokiFrames,
  lokiFrontend,
  nodeGraphInput,
  rows,
  transform,
} from './grafana-frames.js';
import { interpolate, type LokiEntry, lokiEntries, query } from './loki-model.js';

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  queryType?: string;
  datasource: { type: string };
}
interface Panel {
  title: string;
  type: string;
  targets: Target[];
  transformations?: DataTransformerConfig[];
  options?: { reduceOptions?: { values?: boolean; calcs: string[]; fields?: string } };
}
const dashboards = Object.fromEntries(
  ['audit-trail', 'lineage', 'anomalies-drift', 'deployments'].map((d) => [
    d,
    JSON.parse(readFileSync(`grafana/dashboards/${d}.json`, 'utf8')) as { panels: Panel[] },
  ]),
);
const panel = (dashboard: string, title: string) => {
  const p = dashboards[dashboard].panels.find((x) => x.title.startsWith(title));
  if (p === undefined) throw new Error(`no panel "${title}" in ${dashboard}`);
  return p;
};

/**
 * The frames a panel hands its visualisation: every Loki target queried, framed by the datasource's backend
 * and then its browser side, then transformed. `backendOnly` skips the browser step (the frames as the
 * backend sends them: one per series).
 */
function panelFrames(
  entries: LokiEntry[],
  p: Panel,
  vars: Record<string, string> = {},
  backendOnly = false,
): DataFrame[] {
  const targets = p.targets.filter((t) => t.datasource.type === 'loki');
  const frames = targets.flatMap((t) => lokiFrames(query(entries, interpolate(t.expr, vars)), t));
  return transform(backendOnly ? frames : lokiFrontend(frames, targets), p.transformations);
}

const PIPELINE_RELATIONS_LEFT_OUT = new Set(['served', 'decided', 'ground truth']);
const PER_REQUEST_KINDS = new Set(['prediction', 'decision', 'feedback']);

describe.skipIf(!collectorAvailable())(
  `Grafana's data logic over the collector's real output (${collectorSkipReason})`,
  () => {
    let entries: LokiEntry[] = [];
    let journal: ReturnType<typeof parseRecordLine>[] = [];

    beforeAll(async () => {
      ({ journal, entries } = await demoInLoki('mltrail-frames'));
    }, 180_000);

    /** The pipeline lineage the journal holds (recordLineage over every record), per-request kinds left out. */
    function journalLineage() {
      const nodes = new Set<string>();
      const edges = new Set<string>();
      for (const r of journal) {
        const b = recordBody(r);
        if (b === undefined) continue;
        const l = recordLineage(r, b);
        for (const n of l.nodes) if (!PER_REQUEST_KINDS.has(n.kind)) nodes.add(n.id);
        for (const e of l.edges)
          if (!PER_REQUEST_KINDS_EDGE(e.relation)) edges.add(`${e.from} -${e.relation}-> ${e.to}`);
      }
      return { nodes, edges };
    }
    const PER_REQUEST_KINDS_EDGE = (relation: string) => PIPELINE_RELATIONS_LEFT_OUT.has(relation);

    it('Loki receives every journal record, the body as the line and the lookup keys as structured metadata', () => {
      expect(entries.length).toBe(journal.length);
      const decision = entries.find((e) => e.structuredMetadata.event_name === sc.EVENT_ML_DECISION)!;
      expect(Object.keys(decision.stream).sort()).toEqual(['deployment_environment_name', 'service_name']);
      expect(decision.structuredMetadata).toEqual(
        expect.objectContaining({
          ml_decision_outcome: expect.any(String),
          ml_prediction_id: expect.any(String),
          mltrail_hash: expect.stringMatching(/^[0-9a-f]{64}$/),
          trace_id: expect.stringMatching(/^[0-9a-f]{32}$/),
        }),
      );
      expect(JSON.parse(decision.line)['event.name']).toBe(sc.EVENT_ML_DECISION);
    });

    it.each([
      ['as the Loki datasource hands them over (one table per query)', false],
      ['had it handed over one frame per series', true],
    ])(
      'the lineage node graph gets one nodes frame and one edges frame: exactly the journal’s pipeline lineage, %s',
      (_, backendOnly) => {
        const expected = journalLineage();
        const { nodes, edges } = nodeGraphInput(
          panelFrames(entries, panel('lineage', 'Lineage:'), {}, backendOnly),
        );
        expect(nodes).toHaveLength(1);
        expect(edges).toHaveLength(1);
        expect(nodes[0].fields.map((f) => f.name).sort()).toEqual(['id', 'subtitle', 'title']);
        expect(edges[0].fields.map((f) => f.name).sort()).toEqual(['id', 'mainstat', 'source', 'target']);
        const nodeRows = rows(nodes[0]);
        const edgeRows = rows(edges[0]);
        expect(new Set(nodeRows.map((n) => n.id))).toEqual(expected.nodes);
        expect(nodeRows).toHaveLength(expected.nodes.size); // one row per node
        for (const n of nodeRows) expect(n.title, String(n.id)).toMatch(/\S+ \S/);
        expect(new Set(edgeRows.map((e) => `${e.source} -${e.mainstat}-> ${e.target}`))).toEqual(
          expected.edges,
        );
        expect(new Set(edgeRows.map((e) => e.id)).size).toBe(edgeRows.length);
        // processNodes() dereferences the node of each edge end: every end is a node.
        for (const e of edgeRows) {
          expect(expected.nodes.has(String(e.source)), `source ${e.source}`).toBe(true);
          expect(expected.nodes.has(String(e.target)), `target ${e.target}`).toBe(true);
        }
        // Every kind of relation the demo records is drawn, the 18-trigger retraining included.
        expect(new Set(edgeRows.map((e) => e.mainstat))).toEqual(
          new Set([...expected.edges].map((e) => / -(.+)-> /.exec(e)![1])),
        );
      },
    );

    it('the previous lineage panel (one log query, extractFields + organize) draws no edges: its nodes are Loki row ids', () => {
      const previous: Panel = {
        title: 'Lineage (previous)',
        type: 'nodeGraph',
        targets: [
          {
            refId: 'A',
            datasource: { type: 'loki' },
            expr: '{service_name=~".+"} | event_name=~"ml.dataset.registered|ml.transform.completed|ml.training.completed|ml.model.registered|ml.deployment.completed|ml.retraining.triggered|ml.drift.detected" | ml_model_name=~"$model.*" | json | __error__=""',
          },
        ],
        transformations: [
          { id: 'extractFields', options: { source: 'Line', format: 'json', replace: false } },
          {
            id: 'organize',
            options: {
              renameByName: { ml_dataset_id: 'id', ml_run_id: 'subtitle', event_name: 'mainstat' },
            },
          },
        ],
      };
      const { nodes, edges } = nodeGraphInput(panelFrames(entries, previous));
      expect(edges).toEqual([]);
      expect(nodes).toHaveLength(1);
      const ids = new Set(rows(nodes[0]).map((n) => n.id));
      expect([...ids].every((id) => /^\d{19}_[0-9a-f]+(_\d+)?$/.test(String(id)))).toBe(true);
      expect([...ids].some((id) => journalLineage().nodes.has(String(id)))).toBe(false);
    });

    it('Decisions by outcome (pie): one slice per outcome, named by it, counting the journal’s decisions', () => {
      const p = panel('audit-trail', 'Decisions by outcome');
      const frames = panelFrames(entries, p);
      const want = new Map<string, number>();
      for (const r of journal)
        if (r.event === sc.EVENT_ML_DECISION) {
          const o = String(recordBody(r)![sc.ATTR_ML_DECISION_OUTCOME]);
          want.set(o, (want.get(o) ?? 0) + 1);
        }
      const slices = displayValues(frames, p.options!.reduceOptions!);
      expect(new Map(slices.map((x) => [x.title, x.value]))).toEqual(want);
      // The previous options (each field reduced to its last value): one slice, the count of one outcome.
      expect(displayValues(frames, { calcs: ['lastNotNull'] })).toHaveLength(1);
    });

    /** The columns a record table shows: its `filterFieldsByName` list, in order, less the names no record has. */
    const shownColumns = (p: Panel, frame: DataFrame) => {
      const listed = p.transformations!.find((t) => t.id === 'filterFieldsByName')!.options.include
        .names as string[];
      expect(frame.fields.map((f) => f.name)).toEqual(
        listed.filter((n) => frame.fields.some((f) => f.name === n)),
      );
      return frame.fields.map((f) => f.name);
    };

    it('Decisions (table): one row per decision, its outcome, reason, ids and trace id as columns', () => {
      const p = panel('audit-trail', 'Decisions');
      const frames = panelFrames(entries, p, { outcome: '.*' });
      expect(frames).toHaveLength(1);
      expect(shownColumns(p, frames[0])).toEqual([
        'Time',
        'ml_decision_outcome',
        'ml_decision_reason',
        'ml_decision_automated',
        'ml_decision_reviewer',
        'ml_decision_id',
        'ml_prediction_id',
        'trace_id',
      ]);
      expect(frames[0].length).toBe(journal.filter((r) => r.event === sc.EVENT_ML_DECISION).length);
      // Every decision has these; a reviewer only where a person reviewed it.
      for (const f of frames[0].fields.filter((x) => x.name !== 'ml_decision_reviewer'))
        expect(
          f.values.every((v) => v !== undefined && v !== ''),
          f.name,
        ).toBe(true);
    });

    it('Audit records (logs): every audit record, newest first, with its trace id for the Tempo link', () => {
      const frames = panelFrames(entries, panel('audit-trail', 'Audit records'));
      expect(frames).toHaveLength(1);
      expect(frames[0].length).toBe(journal.length);
      expect(frames[0].fields.map((f) => f.name)).toEqual([
        'labels',
        'Time',
        'Line',
        'tsNs',
        'labelTypes',
        'id',
      ]);
    });

    it('Lineage records and Deployments (tables): one row per record, the listed body fields as columns', () => {
      const lineageEvents = new Set<string>([
        sc.EVENT_ML_DATASET_REGISTERED,
        sc.EVENT_ML_TRANSFORM_COMPLETED,
        sc.EVENT_ML_TRAINING_COMPLETED,
        sc.EVENT_ML_EVALUATION_COMPLETED,
        sc.EVENT_ML_MODEL_REGISTERED,
        sc.EVENT_ML_DEPLOYMENT_COMPLETED,
        sc.EVENT_ML_RETRAINING_TRIGGERED,
        sc.EVENT_ML_DRIFT_DETECTED,
      ]);
      const lineageTable = panel('lineage', 'Lineage records');
      const lineageFrame = panelFrames(entries, lineageTable)[0];
      expect(lineageFrame.length).toBe(journal.filter((r) => lineageEvents.has(r.event)).length);
      expect(shownColumns(lineageTable, lineageFrame)).toEqual(
        expect.arrayContaining([
          'Time',
          'event_name',
          'ml_dataset_id',
          'ml_run_id',
          'ml_model_version',
          'ml_deployment_id',
          'ml_drift_id',
          'trace_id',
        ]),
      );
      const deployments = panel('deployments', 'Deployments');
      const frame = panelFrames(entries, deployments)[0];
      expect(frame.length).toBe(journal.filter((r) => r.event === sc.EVENT_ML_DEPLOYMENT_COMPLETED).length);
      expect(shownColumns(deployments, frame)).toEqual([
        'Time',
        'ml_model_name',
        'ml_model_version',
        'ml_model_digest',
        'ml_deployment_environment',
        'ml_deployment_endpoint',
        'ml_deployment_deployed_by',
        'ml_deployment_replaced_version',
        'ml_deployment_id',
        'trace_id',
      ]);
      expect(rows(frame).map((r) => r.ml_deployment_deployed_by)).toEqual(['release-bot', 'release-bot']);
    });

    it('Drift events and Model version serving (time series, state timeline): one series per feature / version, with the journal’s counts', () => {
      const count = (event: string, key: string) => {
        const m = new Map<string, number>();
        for (const r of journal)
          if (r.event === event) {
            const b = recordBody(r)!;
            const k = key
              .split(',')
              .map((x) => b[x])
              .join('/');
            m.set(k, (m.get(k) ?? 0) + 1);
          }
        return m;
      };
      const drift = panelFrames(entries, panel('anomalies-drift', 'Drift events'));
      expect(
        new Map(drift.map((f) => [f.fields[1].labels!.ml_drift_feature, f.fields[1].values[0]])),
      ).toEqual(count(sc.EVENT_ML_DRIFT_DETECTED, sc.ATTR_ML_DRIFT_FEATURE));
      const serving = panelFrames(entries, panel('deployments', 'Model version serving'));
      expect(
        new Map(
          serving.map((f) => [
            `${f.fields[1].labels!.ml_model_name}/${f.fields[1].labels!.ml_model_version}`,
            f.fields[1].values[0],
          ]),
        ),
      ).toEqual(count(sc.EVENT_ML_PREDICTION, `${sc.ATTR_ML_MODEL_NAME},${sc.ATTR_ML_MODEL_VERSION}`));
    });

    it('Prediction score distribution: a mean and a p90 series per model version, the mean equal to the journal’s', () => {
      const frames = panelFrames(entries, panel('anomalies-drift', 'Prediction score distribution'));
      const scores = new Map<string, number[]>();
      for (const r of journal)
        if (r.event === sc.EVENT_ML_PREDICTION) {
          const b = recordBody(r)!;
          const s = b[sc.ATTR_ML_PREDICTION_OUTPUT_SCORE];
          if (typeof s !== 'number') continue;
          const v = String(b[sc.ATTR_ML_MODEL_VERSION]);
          scores.set(v, [...(scores.get(v) ?? []), s]);
        }
      expect(frames.map((f) => f.name).sort()).toEqual(
        [...scores.keys()].flatMap((v) => [`mean v${v}`, `p90 v${v}`]).sort(),
      );
      for (const [v, s] of scores) {
        const mean = frames.find((f) => f.name === `mean v${v}`)!.fields[1].values[0] as number;
        expect(mean).toBeCloseTo(s.reduce((a, b) => a + b, 0) / s.length, 9);
        const p90 = frames.find((f) => f.name === `p90 v${v}`)!.fields[1].values[0] as number;
        expect(p90).toBeGreaterThanOrEqual(Math.min(...s));
        expect(p90).toBeLessThanOrEqual(Math.max(...s));
      }
    });
  },
);

/** An OTLP export request like the collector's: one resource, the body as the line, the lookup keys as attributes. */
function otlpRequest(bodies: Record<string, unknown>[]) {
  const value = (v: unknown) =>
    Array.isArray(v)
      ? { arrayValue: { values: v.map((x) => ({ stringValue: String(x) })) } }
      : { stringValue: String(v) };
  return {
    resourceLogs: [
      {
        resource: {
          attributes: [
            { key: 'service.name', value: { stringValue: 'pipeline' } },
            { key: 'deployment.environment.name', value: { stringValue: 'test' } },
          ],
        },
        scopeLogs: [
          {
            scope: { name: 'mltrail' },
            logRecords: bodies.map((b, i) => ({
              timeUnixNano: String(1_700_000_000_000_000_000n + BigInt(i) * 1_000_000n),
              body: { stringValue: JSON.stringify(b) },
              attributes: [
                { key: 'event.name', value: { stringValue: String(b['event.name']) } },
                { key: 'mltrail.chain.id', value: { stringValue: 'c' } },
                { key: 'mltrail.seq', value: { intValue: String(i) } },
                ...Object.entries(lookupAttributes(b)).map(([key, v]) => ({ key, value: value(v) })),
              ],
            })),
          },
        ],
      },
    ],
  };
}

describe('the lineage node graph on records the demo does not make', () => {
  it('draws failed stages with their inputs, a source known by its uri, and drift without a deployment id', () => {
    const bodies: Record<string, unknown>[] = [
      {
        'event.name': sc.EVENT_ML_DATASET_REGISTERED,
        [sc.ATTR_ML_DATASET_ID]: 'ds-a',
        [sc.ATTR_ML_DATASET_NAME]: 'a',
        [sc.ATTR_ML_DATASET_VERSION]: '1',
        [sc.ATTR_ML_DATASET_URI]: 's3://bucket/a.csv',
      },
      {
        'event.name': sc.EVENT_ML_DATASET_REGISTERED,
        [sc.ATTR_ML_DATASET_ID]: 'ds-b',
        [sc.ATTR_ML_DATASET_NAME]: 'b',
        [sc.ATTR_ML_DATASET_VERSION]: '1',
        [sc.ATTR_ML_DATASET_SOURCE]: 'warehouse.b',
      },
      {
        'event.name': sc.EVENT_ML_STAGE_FAILED,
        [sc.ATTR_ML_STAGE_NAME]: 'transform',
        [sc.ATTR_ML_TRANSFORM_ID]: 'tf-1',
        [sc.ATTR_ML_TRANSFORM_NAME]: 'clean',
        [sc.ATTR_ML_TRANSFORM_INPUT_IDS]: ['ds-a'],
      },
      {
        'event.name': sc.EVENT_ML_STAGE_FAILED,
        [sc.ATTR_ML_STAGE_NAME]: 'train',
        [sc.ATTR_ML_RUN_ID]: 'run-0',
        [sc.ATTR_ML_RUN_TYPE]: 'training',
        [sc.ATTR_ML_MODEL_NAME]: 'm',
        [sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS]: ['ds-a', 'ds-b'],
      },
      {
        'event.name': sc.EVENT_ML_TRAINING_COMPLETED,
        [sc.ATTR_ML_RUN_ID]: 'run-1',
        [sc.ATTR_ML_RUN_TYPE]: 'training',
        [sc.ATTR_ML_MODEL_NAME]: 'm',
        [sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS]: ['ds-a', 'ds-b'],
      },
      {
        'event.name': sc.EVENT_ML_MODEL_REGISTERED,
        [sc.ATTR_ML_RUN_ID]: 'run-1',
        [sc.ATTR_ML_MODEL_NAME]: 'm',
        [sc.ATTR_ML_MODEL_VERSION]: '1',
      },
      {
        'event.name': sc.EVENT_ML_DRIFT_DETECTED,
        [sc.ATTR_ML_DRIFT_ID]: 'dr-1',
        [sc.ATTR_ML_DRIFT_FEATURE]: 'x',
        [sc.ATTR_ML_MODEL_NAME]: 'm',
        [sc.ATTR_ML_MODEL_VERSION]: '1',
      },
    ];
    const entries = lokiEntries([otlpRequest(bodies)], ['service.name', 'deployment.environment.name']);
    const nodes = new Set<string>();
    const edges = new Set<string>();
    bodies.forEach((b, seq) => {
      const l = recordLineage({ chain: 'c', seq, event: String(b['event.name']), ts: '' } as never, b);
      for (const n of l.nodes) nodes.add(n.id);
      for (const e of l.edges) edges.add(`${e.from} -${e.relation}-> ${e.to}`);
    });
    expect(edges).toContain('source:s3://bucket/a.csv -provides-> ds-a');
    expect(edges).toContain('ds-b -trained on-> run-0');
    expect(edges).toContain('m@1 -drifted-> dr-1');
    const graph = nodeGraphInput(panelFrames(entries, panel('lineage', 'Lineage:')));
    expect(new Set(rows(graph.nodes[0]).map((n) => n.id))).toEqual(nodes);
    expect(new Set(rows(graph.edges[0]).map((e) => `${e.source} -${e.mainstat}-> ${e.target}`))).toEqual(
      edges,
    );
    expect(rows(graph.nodes[0]).find((n) => n.id === 'run-0')!.title).toBe('failed training run of m');
  });
});
