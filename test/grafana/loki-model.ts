/**
 * What Loki 3.5 stores for the collector's OTLP output and what its query API answers, for the LogQL the
 * dashboards send. Loki is AGPL and runs only as an image, so this follows its documented OTLP mapping and
 * its source (read, not copied): resource attributes become index labels only when configured
 * (`otlp_config`, here `ignore_defaults` + three index labels), every other resource, scope and log
 * attribute becomes structured metadata, names normalised like Prometheus labels (dots → `_`), values as
 * pdata's AsString (arrays as JSON); trace_id, span_id, severity_*, observed_timestamp and scope_* join
 * them; the body is the line. Queries are evaluated over every entry at one instant whose range covers them
 * all (`$__range`, `$__auto`), which is what a dashboard over the demo's time range shows in one step.
 */
import { parser } from '@grafana/lezer-logql';
import type { SyntaxNode } from '@lezer/common';

/** One stored log entry. */
export interface LokiEntry {
  /** Index (stream) labels. */
  stream: Record<string, string>;
  structuredMetadata: Record<string, string>;
  line: string;
  /** Nanoseconds since the epoch, as Loki's API writes them. */
  tsNs: string;
}

type AnyValue = {
  stringValue?: string;
  intValue?: string | number;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: AnyValue[] };
  kvlistValue?: { values?: { key: string; value: AnyValue }[] };
  bytesValue?: string;
};
type KeyValue = { key: string; value: AnyValue };

/** Prometheus label normalisation as Loki applies it to OTLP attribute names. */
export function normalizeLabel(name: string): string {
  let n = name.replace(/[^a-zA-Z0-9_]/g, '_');
  if (/^[0-9]/.test(n)) n = `key_${n}`;
  return n;
}

/** pdata's AsString: strings as they are, numbers and booleans as text, arrays and maps as JSON. */
function asString(v: AnyValue): string {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return String(v.intValue);
  if (v.doubleValue !== undefined) return String(v.doubleValue);
  if (v.boolValue !== undefined) return String(v.boolValue);
  if (v.bytesValue !== undefined) return v.bytesValue;
  return JSON.stringify(raw(v));
}
function raw(v: AnyValue): unknown {
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(raw);
  if (v.kvlistValue !== undefined)
    return Object.fromEntries((v.kvlistValue.values ?? []).map((kv) => [kv.key, raw(kv.value)]));
  if (v.intValue !== undefined) return Number(v.intValue);
  return v.stringValue ?? v.doubleValue ?? v.boolValue ?? v.bytesValue ?? null;
}

/** A map attribute is flattened into one label per leaf (`parent_child`), everything else is one label. */
function attributeLabels(kv: KeyValue, prefix = ''): [string, string][] {
  const name = normalizeLabel(prefix === '' ? kv.key : `${prefix}_${kv.key}`);
  if (kv.value.kvlistValue !== undefined)
    return (kv.value.kvlistValue.values ?? []).flatMap((c) => attributeLabels(c, name));
  return [[name, asString(kv.value)]];
}

/** OTLP JSON trace/span ids are hex already (the collector's JSON encoding); Loki writes lowercase hex. */
const hexId = (id: string | undefined) =>
  id === undefined || /^0*$/.test(id) ? undefined : id.toLowerCase();

/**
 * The entries Loki stores for OTLP/HTTP JSON export requests (as the collector's Loki exporter sends
 * them), given the resource attributes configured as index labels.
 */
export function lokiEntries(requests: unknown[], indexLabelAttributes: readonly string[]): LokiEntry[] {
  const index = new Set(indexLabelAttributes);
  const out: LokiEntry[] = [];
  for (const req of requests as {
    resourceLogs?: {
      resource?: { attributes?: KeyValue[] };
      scopeLogs?: {
        scope?: { name?: string; version?: string; attributes?: KeyValue[] };
        logRecords?: {
          timeUnixNano?: string;
          observedTimeUnixNano?: string;
          severityNumber?: number;
          severityText?: string;
          body?: AnyValue;
          attributes?: KeyValue[];
          traceId?: string;
          spanId?: string;
          flags?: number;
        }[];
      }[];
    }[];
  }[]) {
    for (const rl of req.resourceLogs ?? []) {
      const stream: Record<string, string> = {};
      const resourceMetadata: [string, string][] = [];
      for (const kv of rl.resource?.attributes ?? []) {
        const labels = attributeLabels(kv);
        if (index.has(kv.key)) for (const [k, v] of labels) stream[k] = v;
        else resourceMetadata.push(...labels);
      }
      for (const sl of rl.scopeLogs ?? []) {
        const scopeMetadata: [string, string][] = (sl.scope?.attributes ?? []).flatMap((kv) =>
          attributeLabels(kv),
        );
        if (sl.scope?.name) scopeMetadata.push(['scope_name', sl.scope.name]);
        if (sl.scope?.version) scopeMetadata.push(['scope_version', sl.scope.version]);
        for (const lr of sl.logRecords ?? []) {
          const md: [string, string][] = (lr.attributes ?? []).flatMap((kv) => attributeLabels(kv));
          const ts = lr.timeUnixNano ?? '0';
          if (ts !== '0' && lr.observedTimeUnixNano !== undefined && lr.observedTimeUnixNano !== '0')
            md.push(['observed_timestamp', lr.observedTimeUnixNano]);
          if (lr.severityNumber) md.push(['severity_number', String(lr.severityNumber)]);
          if (lr.severityText) md.push(['severity_text', lr.severityText]);
          if (lr.flags) md.push(['flags', String(lr.flags)]);
          const trace = hexId(lr.traceId);
          const span = hexId(lr.spanId);
          if (trace !== undefined) md.push(['trace_id', trace]);
          if (span !== undefined) md.push(['span_id', span]);
          out.push({
            stream: { ...stream },
            structuredMetadata: Object.fromEntries([...md, ...resourceMetadata, ...scopeMetadata]),
            line: lr.body === undefined ? '' : asString(lr.body),
            tsNs: ts !== '0' ? ts : (lr.observedTimeUnixNano ?? '0'),
          });
        }
      }
    }
  }
  return out;
}

/** One entry as a query pipeline sees it: every label by category, and the pipeline's error. */
interface Row {
  entry: LokiEntry;
  parsed: Record<string, string>;
  error?: string;
  value?: number;
}

const allLabels = (r: Row): Record<string, string> => ({
  ...r.entry.stream,
  ...r.entry.structuredMetadata,
  ...r.parsed,
  ...(r.error !== undefined ? { __error__: r.error } : {}),
});

/** Loki's full `| json`: nested objects flattened with `_`, keys sanitised, arrays skipped. */
function jsonLabels(line: string, stream: Record<string, string>): Record<string, string> | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const out: Record<string, string> = {};
  const walk = (o: Record<string, unknown>, prefix: string) => {
    for (const [k, v] of Object.entries(o)) {
      const key = prefix === '' ? k : `${prefix}_${k}`;
      if (v !== null && typeof v === 'object') {
        if (!Array.isArray(v)) walk(v as Record<string, unknown>, key);
        continue;
      }
      let name = key.replace(/[^a-zA-Z0-9_]/g, '_');
      if (name in stream) name = `${name}_extracted`;
      out[name] = v === null ? '' : String(v);
    }
  };
  walk(doc as Record<string, unknown>, '');
  return out;
}

/** A `| json label="path"` expression path: `["key"]`, `key`, `[0]`, in sequence. */
function jsonPath(expr: string): (string | number)[] {
  const out: (string | number)[] = [];
  const re = /\["((?:[^"\\]|\\.)*)"\]|\[(\d+)\]|\.?([A-Za-z_][A-Za-z0-9_]*)/gy;
  for (let m = re.exec(expr); m !== null && m[0] !== ''; m = re.exec(expr)) {
    if (m[1] !== undefined) out.push(m[1]);
    else if (m[2] !== undefined) out.push(Number(m[2]));
    else out.push(m[3]);
  }
  return out;
}

/** A LogQL string literal's value ("…" with escapes, or `…` raw). */
function stringValue(text: string): string {
  return text.startsWith('`') ? text.slice(1, -1) : (JSON.parse(text) as string);
}

/** Loki's label_format templates as the dashboards use them: `{{.label}}` and literal text. */
function renderTemplate(template: string, labels: Record<string, string>): string {
  return template.replace(/\{\{\s*\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, name) => labels[name] ?? '');
}

const kids = (n: SyntaxNode): SyntaxNode[] => {
  const out: SyntaxNode[] = [];
  for (let c = n.firstChild; c !== null; c = c.nextSibling) out.push(c);
  return out;
};
const kid = (n: SyntaxNode, name: string) => kids(n).find((c) => c.name === name);
function deep(n: SyntaxNode, name: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const walk = (x: SyntaxNode) => {
    for (const c of kids(x)) {
      if (c.name === name) out.push(c);
      walk(c);
    }
  };
  walk(n);
  return out;
}

function matches(labels: Record<string, string>, name: string, op: string, value: string): boolean {
  const v = labels[name] ?? '';
  switch (op) {
    case 'Eq':
      return v === value;
    case 'Neq':
      return v !== value;
    case 'Re':
      return new RegExp(`^(?:${value})$`).test(v);
    case 'Nre':
      return !new RegExp(`^(?:${value})$`).test(v);
    default:
      throw new Error(`loki-model: matcher operator ${op} is not modelled`);
  }
}

/** A series of a metric answer. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** The answer of Loki's query API (`/loki/api/v1/query` or `query_range`), with categorized labels. */
export type LokiResponse =
  | {
      resultType: 'streams';
      result: {
        stream: Record<string, string>;
        values: [
          string,
          string,
          { structuredMetadata?: Record<string, string>; parsed?: Record<string, string> },
        ][];
      }[];
    }
  | { resultType: 'vector' | 'matrix'; result: Sample[]; at: number };

/** Grafana's variables as a dashboard over the whole demo sends them. */
export function interpolate(expr: string, vars: Record<string, string> = {}): string {
  return expr
    .replaceAll('$__auto', '100d')
    .replaceAll('$__range', '100d')
    .replace(/\$([a-z_]+)/g, (_, name) => vars[name] ?? '');
}

/** Runs one LogQL query over the entries, as Loki's query API answers it. */
export function query(entries: LokiEntry[], logql: string): LokiResponse {
  const tree = parser.parse(logql);
  const text = (n: SyntaxNode) => logql.slice(n.from, n.to);
  const errors: number[] = [];
  tree.iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(n.from);
    },
  });
  if (errors.length > 0) throw new Error(`loki-model: "${logql}" does not parse (at ${errors.join(', ')})`);
  const expr = kid(tree.topNode, 'Expr')!;
  const end = entries.reduce((m, e) => Math.max(m, Number(BigInt(e.tsNs) / 1_000_000n)), 0) + 1;

  const logRows = (selector: SyntaxNode, pipeline: SyntaxNode | undefined): Row[] => {
    let rows: Row[] = entries
      .filter((e) =>
        deep(selector, 'Matcher').every((m) => {
          const [id, op, str] = kids(m);
          return matches(e.stream, text(id), op.name, stringValue(text(str)));
        }),
      )
      .map((entry) => ({ entry, parsed: {} }));
    const stages = pipeline === undefined ? [] : deep(pipeline, 'PipelineStage');
    for (const stage of stages) rows = applyStage(rows, stage);
    return rows;
  };

  const applyStage = (rows: Row[], stage: SyntaxNode): Row[] => {
    const body = kids(stage).find((c) => c.name !== 'Pipe')!;
    switch (body.name) {
      case 'LabelFilter': {
        const m = kid(body, 'Matcher');
        if (m === undefined) throw new Error(`loki-model: label filter ${text(body)} is not modelled`);
        const [id, op, str] = kids(m);
        return rows.filter((r) => matches(allLabels(r), text(id), op.name, stringValue(text(str))));
      }
      case 'LabelParser': {
        if (text(body) !== 'json') throw new Error(`loki-model: parser ${text(body)} is not modelled`);
        return rows.map((r) => {
          const parsed = jsonLabels(r.entry.line, r.entry.stream);
          return parsed === undefined
            ? { ...r, error: 'JSONParserErr' }
            : { ...r, parsed: { ...r.parsed, ...parsed } };
        });
      }
      case 'JsonExpressionParser': {
        const exprs = deep(body, 'LabelExtractionExpression').map((e) => {
          const [id, , str] = kids(e);
          return [text(id), jsonPath(stringValue(text(str)))] as const;
        });
        return rows.map((r) => {
          let doc: unknown;
          try {
            doc = JSON.parse(r.entry.line);
          } catch {
            return { ...r, error: 'JSONParserErr' };
          }
          const parsed = { ...r.parsed };
          for (const [label, path] of exprs) {
            let v: unknown = doc;
            for (const p of path) v = v !== null && typeof v === 'object' ? (v as never)[p] : undefined;
            const name = label in r.entry.stream ? `${label}_extracted` : label;
            parsed[name] =
              v === undefined || v === null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
          }
          return { ...r, parsed };
        });
      }
      case 'LabelFormatExpr': {
        const formats = deep(body, 'LabelFormatMatcher').map((f) => {
          const [id, , str] = kids(f);
          return [text(id), stringValue(text(str))] as const;
        });
        return rows.map((r) => {
          const before = allLabels(r);
          const parsed = { ...r.parsed };
          for (const [label, template] of formats) parsed[label] = renderTemplate(template, before);
          return { ...r, parsed };
        });
      }
      default:
        throw new Error(`loki-model: pipeline stage ${text(stage)} is not modelled`);
    }
  };

  const grouped = (samples: Sample[], grouping: SyntaxNode, reduce: (v: number[]) => number) => {
    const by = deep(grouping, 'Identifier').map(text);
    const groups = new Map<string, { metric: Record<string, string>; values: number[] }>();
    for (const s of samples) {
      const metric = Object.fromEntries(
        by.filter((l) => s.metric[l] !== undefined && s.metric[l] !== '').map((l) => [l, s.metric[l]]),
      );
      const key = JSON.stringify(Object.entries(metric).sort());
      const g = groups.get(key) ?? { metric, values: [] };
      g.values.push(s.value);
      groups.set(key, g);
    }
    return [...groups.values()].map((g) => ({ metric: g.metric, value: reduce(g.values) }));
  };

  const rangeAggregation = (node: SyntaxNode): Sample[] => {
    const op = text(kid(node, 'RangeOp')!);
    const range = kid(node, 'LogRangeExpr')!;
    let rows = logRows(kid(range, 'Selector')!, kid(range, 'PipelineExpr'));
    const unwrap = kid(range, 'UnwrapExpr');
    if (unwrap !== undefined) {
      const inner = deep(unwrap, 'UnwrapExpr').at(-1) ?? unwrap;
      const label = text(deep(inner, 'Identifier')[0]);
      rows = rows.map((r) => {
        const v = Number(allLabels(r)[label]);
        return Number.isFinite(v) && allLabels(r)[label] !== undefined
          ? { ...r, value: v }
          : { ...r, error: r.error ?? 'SampleExtractionErr' };
      });
      for (const f of kids(unwrap).filter((c) => c.name === 'LabelFilter')) {
        const [id, o, str] = kids(kid(f, 'Matcher')!);
        rows = rows.filter((r) => matches(allLabels(r), text(id), o.name, stringValue(text(str))));
      }
      // Unwrapped samples drop the __error__ label and the unwrapped label from their series.
    }
    if (rows.some((r) => r.error !== undefined))
      throw new Error(`loki-model: ${text(node)} keeps records with a pipeline error (Loki fails the query)`);
    const bySeries = new Map<string, { metric: Record<string, string>; values: number[] }>();
    for (const r of rows) {
      const metric = allLabels(r);
      if (unwrap !== undefined) delete metric[text(deep(unwrap, 'Identifier')[0])];
      const key = JSON.stringify(Object.entries(metric).sort());
      const s = bySeries.get(key) ?? { metric, values: [] };
      s.values.push(r.value ?? 1);
      bySeries.set(key, s);
    }
    const reducer = rangeReducer(op, node);
    const samples = [...bySeries.values()].map((s) => ({ metric: s.metric, values: s.values }));
    const grouping = kid(node, 'Grouping');
    if (grouping === undefined) return samples.map((s) => ({ metric: s.metric, value: reducer(s.values) }));
    // `op(...) by (l)` reduces the samples of each group together (not a sum of per-series results).
    const by = deep(grouping, 'Identifier').map(text);
    const groups = new Map<string, { metric: Record<string, string>; values: number[] }>();
    for (const s of samples) {
      const metric = Object.fromEntries(
        by.filter((l) => (s.metric[l] ?? '') !== '').map((l) => [l, s.metric[l]]),
      );
      const key = JSON.stringify(Object.entries(metric).sort());
      const g = groups.get(key) ?? { metric, values: [] };
      g.values.push(...s.values);
      groups.set(key, g);
    }
    return [...groups.values()].map((g) => ({ metric: g.metric, value: reducer(g.values) }));
  };

  const rangeReducer = (op: string, node: SyntaxNode): ((v: number[]) => number) => {
    switch (op) {
      case 'count_over_time':
        return (v) => v.length;
      case 'sum_over_time':
        return (v) => v.reduce((a, b) => a + b, 0);
      case 'avg_over_time':
        return (v) => v.reduce((a, b) => a + b, 0) / v.length;
      case 'max_over_time':
        return (v) => Math.max(...v);
      case 'min_over_time':
        return (v) => Math.min(...v);
      case 'quantile_over_time': {
        const q = Number(text(kid(node, 'Number')!));
        // Prometheus' quantile (Loki uses the same): linear interpolation between the closest ranks.
        return (v) => {
          const s = [...v].sort((a, b) => a - b);
          const rank = q * (s.length - 1);
          const lo = Math.floor(rank);
          const hi = Math.min(lo + 1, s.length - 1);
          return s[lo] + (s[hi] - s[lo]) * (rank - lo);
        };
      }
      default:
        throw new Error(`loki-model: range aggregation ${op} is not modelled`);
    }
  };

  const metric = (node: SyntaxNode): Sample[] => {
    const inner = kids(node)[0];
    switch (inner.name) {
      case 'RangeAggregationExpr':
        return rangeAggregation(inner);
      case 'VectorAggregationExpr': {
        const op = text(kid(inner, 'VectorOp')!);
        if (op !== 'sum') throw new Error(`loki-model: vector aggregation ${op} is not modelled`);
        const samples = metric(kid(inner, 'MetricExpr')!);
        const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
        const grouping = kid(inner, 'Grouping');
        if (grouping === undefined)
          return samples.length === 0 ? [] : [{ metric: {}, value: sum(samples.map((x) => x.value)) }];
        return grouped(samples, grouping, sum);
      }
      case 'BinOpExpr': {
        const [left, op, , right] = kids(inner);
        if (op.name !== 'Or') throw new Error(`loki-model: binary operator ${text(op)} is not modelled`);
        const l = metric(kid(left, 'MetricExpr')!);
        const seen = new Set(l.map((s) => JSON.stringify(Object.entries(s.metric).sort())));
        return [
          ...l,
          ...metric(kid(right, 'MetricExpr')!).filter(
            (s) => !seen.has(JSON.stringify(Object.entries(s.metric).sort())),
          ),
        ];
      }
      case 'ParenExpr':
        return metric(kid(inner, 'MetricExpr')!);
      default:
        throw new Error(`loki-model: ${inner.name} is not modelled`);
    }
  };

  const top = kids(expr)[0];
  if (top.name === 'MetricExpr') return { resultType: 'vector', result: metric(top), at: end };
  // A log query: entries grouped by stream, each with its structured metadata and parsed labels.
  const rows = logRows(kid(top, 'Selector')!, kid(top, 'PipelineExpr'));
  const result: (LokiResponse & { resultType: 'streams' })['result'] = [];
  for (const r of rows) {
    const key = JSON.stringify(Object.entries(r.entry.stream).sort());
    let s = result.find((x) => JSON.stringify(Object.entries(x.stream).sort()) === key);
    if (s === undefined) {
      s = { stream: r.entry.stream, values: [] };
      result.push(s);
    }
    const parsed = { ...r.parsed, ...(r.error !== undefined ? { __error__: r.error } : {}) };
    s.values.push([
      r.entry.tsNs,
      r.entry.line,
      {
        ...(Object.keys(r.entry.structuredMetadata).length > 0
          ? { structuredMetadata: r.entry.structuredMetadata }
          : {}),
        ...(Object.keys(parsed).length > 0 ? { parsed } : {}),
      },
    ]);
  }
  // Loki answers newest first (direction backward, the default).
  for (const s of result) s.values.sort((a, b) => (BigInt(b[0]) > BigInt(a[0]) ? 1 : -1));
  return { resultType: 'streams', result };
}
