/**
 * Grafana's side of a Loki panel, with Grafana's own data library (`@grafana/data`, Apache-2.0, the version
 * of the Grafana image in docker-compose.yml): the frames its Loki datasource makes of a query answer, the
 * panel's transformations run by `transformDataFrame` from the standard transformer registry, and the frame
 * selection of the node graph panel.
 *
 * The frame shapes follow Grafana 12.2's Loki backend (read, not copied): a log query answer with
 * categorized labels is one frame `labels` (every label of the row: index, structured metadata, parsed),
 * `Time`, `Line`, `tsNs`, `labelTypes` (I/S/P per label, hidden) and `id` (`<tsNs>_<checksum>`, unique per
 * row); a metric answer is one frame per series, `Time` and `Value`, the series labels on the value field.
 */
import { createRequire } from 'node:module';
import type { DataFrame, DataTransformerConfig } from '@grafana/data';
import { Window } from 'happy-dom';
import type { Observable } from 'rxjs';
import type { LokiResponse } from './loki-model.js';

// The ESM build imports moment-timezone by a named export Node's CJS interop does not give it; the CJS
// build loads, given a browser's `window` and `document` (its stores and styles touch them on load, and
// transformDataFrame reads `window`): a happy-dom window provides them, nothing else of Node's globals is
// replaced.
const browser = new Window();
Object.assign(globalThis, { window: browser, document: browser.document });
const load = createRequire(import.meta.url);
const grafana = load('@grafana/data') as typeof import('@grafana/data');
const { map } = load('rxjs') as typeof import('rxjs');

export { grafana };

const { FieldType, standardTransformers, standardTransformersRegistry, transformDataFrame } = grafana;

/**
 * Grafana's "Extract fields" transformation lives in Grafana's app (AGPL), not in `@grafana/data`. For the
 * panels that use it this stand-in does what its documentation and source say for `source` + `format`
 * json/auto on an object or JSON string: one field per key, keys verbatim, the other fields kept unless
 * `replace`. It is the only transformer here that is not Grafana's own code.
 */
const extractFieldsStandIn = {
  id: 'extractFields',
  name: 'Extract fields (stand-in)',
  description: 'see grafana-frames.ts',
  defaultOptions: {},
  operator: (options: { source?: string; replace?: boolean }) => (source: Observable<DataFrame[]>) =>
    source.pipe(map((frames) => frames.map((frame) => extractFields(frame, options)))),
};

function extractFields(frame: DataFrame, options: { source?: string; replace?: boolean }): DataFrame {
  const from = frame.fields.find((f) => f.name === options.source);
  if (from === undefined) return frame;
  const objects = from.values.map((v: unknown) => {
    if (typeof v !== 'string') return (v ?? {}) as Record<string, unknown>;
    try {
      return JSON.parse(v) as Record<string, unknown>;
    } catch {
      return {};
    }
  });
  const keys = [...new Set(objects.flatMap((o) => Object.keys(o)))];
  const extracted = keys.map((k) => ({
    name: k,
    type: FieldType.string,
    config: {},
    values: objects.map((o) => o[k]),
  }));
  return { ...frame, fields: [...(options.replace ? [] : frame.fields), ...extracted] };
}

// Grafana's app fills this registry at start; some transformers are exported under two names (one id).
const byId = new Map(Object.values(standardTransformers).map((t) => [t.id, t]));
standardTransformersRegistry.setInit(() => [
  ...[...byId.values()].map((t) => ({
    id: t.id,
    name: t.name,
    description: t.description ?? '',
    transformation: t,
    editor: () => null,
    imageDark: '',
    imageLight: '',
  })),
  {
    id: extractFieldsStandIn.id,
    name: extractFieldsStandIn.name,
    description: extractFieldsStandIn.description,
    transformation: extractFieldsStandIn as never,
    editor: () => null,
    imageDark: '',
    imageLight: '',
  },
]);

/** Grafana's 32-bit FNV-1 (the Go hash/fnv New32), used for the row id of log frames. */
function fnv32(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) {
    h = Math.imul(h, 0x01000193) >>> 0;
    h = (h ^ b) >>> 0;
  }
  return h;
}

/** Labels as Go's data.Labels marshal them: keys sorted. */
const labelsJson = (l: Record<string, string>) =>
  JSON.stringify(Object.fromEntries(Object.entries(l).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))));

/** The frames Grafana's Loki datasource makes of one query answer. */
export function lokiFrames(
  response: LokiResponse,
  target: { refId: string; expr: string; legendFormat?: string },
): DataFrame[] {
  if (response.resultType === 'streams') {
    const labels: Record<string, string>[] = [];
    const types: Record<string, string>[] = [];
    const time: number[] = [];
    const line: string[] = [];
    const tsNs: string[] = [];
    for (const s of response.result) {
      for (const [ts, l, cat] of s.values) {
        const merged: Record<string, string> = {};
        const type: Record<string, string> = {};
        for (const [k, v] of Object.entries(s.stream)) (merged[k] = v), (type[k] = 'I');
        for (const [k, v] of Object.entries(cat.structuredMetadata ?? {})) (merged[k] = v), (type[k] = 'S');
        for (const [k, v] of Object.entries(cat.parsed ?? {})) (merged[k] = v), (type[k] = 'P');
        labels.push(JSON.parse(labelsJson(merged)));
        types.push(JSON.parse(labelsJson(type)));
        time.push(Number(BigInt(ts) / 1_000_000n));
        line.push(l);
        tsNs.push(ts);
      }
    }
    const seen = new Map<string, number>();
    const id = tsNs.map((ts, i) => {
      const sum = `${ts}_${fnv32(new TextEncoder().encode(`${line[i]}_${labelsJson(labels[i])}`)).toString(16)}`;
      const n = seen.get(sum) ?? 0;
      seen.set(sum, n + 1);
      return n > 0 ? `${sum}_${n}` : sum;
    });
    return [
      {
        refId: target.refId,
        name: '',
        length: line.length,
        meta: { custom: { frameType: 'LabeledTimeValues' }, executedQueryString: `Expr: ${target.expr}` },
        fields: [
          { name: 'labels', type: FieldType.other, config: {}, values: labels },
          { name: 'Time', type: FieldType.time, config: {}, values: time },
          { name: 'Line', type: FieldType.string, config: {}, values: line },
          { name: 'tsNs', type: FieldType.string, config: {}, values: tsNs },
          { name: 'labelTypes', type: FieldType.other, config: { custom: { hidden: true } }, values: types },
          { name: 'id', type: FieldType.string, config: {}, values: id },
        ],
      },
    ];
  }
  return response.result.map((s) => {
    const name =
      target.legendFormat !== undefined && target.legendFormat !== ''
        ? target.legendFormat.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, l) => s.metric[l] ?? '')
        : `{${Object.entries(s.metric)
            .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
            .sort()
            .join(', ')}}`;
    return {
      refId: target.refId,
      name,
      length: 1,
      meta: { executedQueryString: `Expr: ${target.expr}` },
      fields: [
        { name: 'Time', type: FieldType.time, config: {}, values: [response.at] },
        {
          name: 'Value',
          type: FieldType.number,
          config: { displayNameFromDS: name },
          labels: s.metric,
          values: [s.value],
        },
      ],
    };
  });
}

/**
 * What Grafana's Loki datasource does in the browser with the backend's frames (`transformBackendResult`,
 * 12.2): range metric frames are kept (shown as graphs), the instant metric frames of each query become one
 * table frame (`Time`, one column per label, sorted, `Value #<refId>`: `makeTableFrames`), log frames are
 * kept (shown as logs). The order: range, instant, logs.
 */
export function lokiFrontend(
  frames: DataFrame[],
  targets: { refId: string; queryType?: string }[],
): DataFrame[] {
  const instantRefIds = new Set(targets.filter((t) => t.queryType === 'instant').map((t) => t.refId));
  const isMetric = (f: DataFrame) =>
    f.fields.every((x) => x.type === FieldType.time || x.type === FieldType.number);
  const range = frames
    .filter((f) => isMetric(f) && !instantRefIds.has(f.refId ?? ''))
    .map((f) => ({ ...f, meta: { ...f.meta, preferredVisualisationType: 'graph' as const } }));
  const byRefId = new Map<string, DataFrame[]>();
  for (const f of frames.filter((x) => isMetric(x) && instantRefIds.has(x.refId ?? '')))
    byRefId.set(f.refId!, [...(byRefId.get(f.refId!) ?? []), f]);
  const tables = [...byRefId].map(([refId, series]): DataFrame => {
    const names = [
      ...new Set(series.flatMap((f) => f.fields.flatMap((x) => Object.keys(x.labels ?? {})))),
    ].sort();
    const time: number[] = [];
    const value: number[] = [];
    const columns = names.map(() => [] as string[]);
    for (const f of series) {
      const t = f.fields.find((x) => x.type === FieldType.time)!;
      const v = f.fields.find((x) => x.type === FieldType.number)!;
      time.push(...t.values);
      value.push(...v.values);
      names.forEach((n, i) => {
        for (const _ of v.values) columns[i].push(v.labels?.[n] ?? '');
      });
    }
    return {
      refId,
      length: time.length,
      meta: { preferredVisualisationType: 'table' },
      fields: [
        { name: 'Time', type: FieldType.time, config: {}, values: time },
        ...names.map((name, i) => ({
          name,
          type: FieldType.string,
          config: { filterable: true },
          values: columns[i],
        })),
        { name: `Value #${refId}`, type: FieldType.number, config: {}, values: value },
      ],
    };
  });
  const logs = frames
    .filter((f) => !isMetric(f))
    .map((f) => ({ ...f, meta: { ...f.meta, preferredVisualisationType: 'logs' as const } }));
  return [...range, ...tables, ...logs];
}

/**
 * The values a stat-like panel (pie chart, stat, gauge) displays: Grafana's `applyFieldOverrides` then
 * `getFieldDisplayValues` with the panel's reduce options, as its panel code calls them.
 */
export function displayValues(
  frames: DataFrame[],
  reduceOptions: { values?: boolean; calcs: string[]; fields?: string; limit?: number },
): { title: string; value: number }[] {
  const theme = grafana.createTheme();
  const fieldConfig = { defaults: {}, overrides: [] };
  const replaceVariables = (v: string) => v;
  const data = grafana.applyFieldOverrides({
    data: frames,
    fieldConfig,
    replaceVariables,
    theme,
    timeZone: 'utc',
  });
  return grafana
    .getFieldDisplayValues({ data, reduceOptions, fieldConfig, replaceVariables, theme, timeZone: 'utc' })
    .map((d) => ({ title: d.display.title ?? '', value: d.display.numeric }));
}

/** A panel's transformations applied with Grafana's `transformDataFrame` (synchronous for static input). */
export function transform(frames: DataFrame[], transformations: DataTransformerConfig[] = []): DataFrame[] {
  let out: DataFrame[] | undefined;
  transformDataFrame(transformations, frames).subscribe((v) => {
    out = v;
  });
  if (out === undefined) throw new Error('transformDataFrame emitted nothing');
  return out;
}

/**
 * What Grafana's node graph panel (12.2) takes from a panel's frames: the frames it accepts (a node graph
 * visualisation hint, a `nodes`/`edges` name or refId, or an `id` field), split into edges (a `source`
 * field) and nodes (the rest). It draws the first of each; `processNodes` then requires an `id` field in
 * both and, when there is a nodes frame, a node for each edge end.
 */
export function nodeGraphInput(frames: DataFrame[]): { nodes: DataFrame[]; edges: DataFrame[] } {
  const accepted = frames.filter(
    (f) =>
      f.meta?.preferredVisualisationType === 'nodeGraph' ||
      ['nodes', 'edges'].includes(f.name ?? '') ||
      ['nodes', 'edges'].includes(f.refId ?? '') ||
      f.fields.some((x) => x.name === 'id'),
  );
  return {
    edges: accepted.filter((f) => f.fields.some((x) => x.name === 'source')),
    nodes: accepted.filter((f) => !f.fields.some((x) => x.name === 'source')),
  };
}

/** The rows of a frame as objects (field name → value). */
export function rows(frame: DataFrame): Record<string, unknown>[] {
  return Array.from({ length: frame.length }, (_, i) =>
    Object.fromEntries(frame.fields.map((f) => [f.name, f.values[i]])),
  );
}
