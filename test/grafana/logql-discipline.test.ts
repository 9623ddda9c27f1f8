import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parser } from '@grafana/lezer-logql';
import type { SyntaxNode } from '@lezer/common';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import {
  ATTR_MLTRAIL_CHAIN_ID,
  ATTR_MLTRAIL_HASH,
  ATTR_MLTRAIL_PREV_HASH,
  ATTR_MLTRAIL_SEQ,
  ATTRIBUTE_TYPES,
  EVENT_NAMES,
  EVENT_SCHEMAS,
  INDEX_LABEL_ATTRIBUTES,
  LOOKUP_ATTRIBUTES,
} from '../../src/semconv/index.js';

/**
 * LogQL discipline, for every Loki query the dashboards and alert rules send:
 * - every label or structured-metadata name a query reads exists for at least one event it targets (and is
 *   stored as metadata when it is read before any parser);
 * - every metric query aggregates to low-cardinality labels: each range aggregation is grouped `by (...)`
 *   or sits inside a vector aggregation (`sum`, `sum by`), never `without` — structured metadata holds
 *   per-record ids and hashes, so an ungrouped one makes a series per record;
 * - `| __error__=""` follows every parser and every unwrap;
 * - `unwrap` names a numeric field that exists where it reads it.
 */

interface LokiQuery {
  where: string;
  expr: string;
}

function lokiQueries(
  dashboards = readdirSync('grafana/dashboards').map((f) => ({
    file: f,
    json: JSON.parse(readFileSync(join('grafana/dashboards', f), 'utf8')),
  })),
  rules = parse(readFileSync('grafana/provisioning/alerting/rules.yaml', 'utf8')),
): LokiQuery[] {
  const out: LokiQuery[] = [];
  for (const d of dashboards) {
    for (const p of d.json.panels)
      for (const t of p.targets ?? [])
        if (t.datasource?.type === 'loki') out.push({ where: `${d.file} › ${p.title}`, expr: t.expr });
    for (const a of d.json.annotations?.list ?? [])
      if (a.datasource?.type === 'loki')
        out.push({ where: `${d.file} › annotation ${a.name}`, expr: a.expr });
  }
  for (const g of rules.groups)
    for (const r of g.rules) {
      const a = r.data.find((x: { refId: string }) => x.refId === 'A');
      if (a.datasourceUid === 'mltrail-loki') out.push({ where: `alert ${r.title}`, expr: a.model.expr });
    }
  return out;
}

const substitute = (expr: string) =>
  expr
    .replaceAll('$__auto', '5m')
    .replaceAll('$__range', '1h')
    .replace(/\$[a-z_]+/g, 'x');

/** Registry keys by their Loki form (dots → underscores). */
const byLokiName = new Map(Object.keys(ATTRIBUTE_TYPES).map((k) => [k.replaceAll('.', '_'), k]));
/** On every record whatever its event: OTLP resource/index labels, the chain fields, trace context. */
const ON_EVERY_RECORD = new Set([
  'service_name',
  'event_name',
  'trace_id',
  'span_id',
  ...[...INDEX_LABEL_ATTRIBUTES].map((k) => k.replaceAll('.', '_')),
  ...[ATTR_MLTRAIL_CHAIN_ID, ATTR_MLTRAIL_SEQ, ATTR_MLTRAIL_PREV_HASH, ATTR_MLTRAIL_HASH].map((k) =>
    k.replaceAll('.', '_'),
  ),
]);

const eventKeys = (event: string): string[] => {
  const schema = EVENT_SCHEMAS[event] as unknown as { shape?: Record<string, unknown> };
  return Object.keys(schema?.shape ?? {});
};

/** The events a query's `event_name` filters select (every event for a pattern that is not a list). */
function targetedEvents(expr: string): string[] {
  const m = /event_name(=~|=)"([^"]+)"/.exec(expr);
  if (m === null) return [...EVENT_NAMES];
  if (m[1] === '=') return [m[2]];
  const alternatives = m[2].split('|');
  if (alternatives.every((e) => (EVENT_NAMES as readonly string[]).includes(e))) return alternatives;
  const re = new RegExp(`^(?:${m[2]})$`);
  return EVENT_NAMES.filter((e) => re.test(e));
}

interface Finding {
  where: string;
  problem: string;
}

function children(n: SyntaxNode): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  for (let c = n.firstChild; c !== null; c = c.nextSibling) out.push(c);
  return out;
}

function descendants(n: SyntaxNode, name: string): SyntaxNode[] {
  const out: SyntaxNode[] = [];
  const walk = (x: SyntaxNode) => {
    for (const c of children(x)) {
      if (c.name === name) out.push(c);
      walk(c);
    }
  };
  walk(n);
  return out;
}

/** Every discipline problem of one query (empty when it is clean). */
function logqlProblems(q: LokiQuery): Finding[] {
  const text = substitute(q.expr);
  const tree = parser.parse(text);
  const at = (n: SyntaxNode) => text.slice(n.from, n.to);
  const found: Finding[] = [];
  const problem = (p: string) => found.push({ where: q.where, problem: p });
  const events = targetedEvents(text);
  // Labels the query makes itself (`| json name="path"`, `| label_format name=...`) exist by construction.
  const made = new Set(
    [
      ...descendants(tree.topNode, 'LabelExtractionExpression'),
      ...descendants(tree.topNode, 'LabelFormatMatcher'),
    ].map((n) => at(children(n)[0])),
  );
  const keysOfEvents = new Set(events.flatMap(eventKeys).map((k) => k.replaceAll('.', '_')));

  // Aggregation: each range aggregation grouped by itself or inside a vector aggregation (not `without`).
  for (const range of descendants(tree.topNode, 'RangeAggregationExpr')) {
    const grouping = children(range).find((c) => c.name === 'Grouping');
    if (grouping !== undefined) {
      if (at(grouping).trimStart().startsWith('without')) problem(`${at(range)} is grouped "without"`);
      continue;
    }
    let ok = false;
    for (let p = range.parent; p !== null; p = p.parent) {
      if (p.name !== 'VectorAggregationExpr') continue;
      const g = children(p).find((c) => c.name === 'Grouping');
      ok = g === undefined || !at(g).trimStart().startsWith('without');
      break;
    }
    if (!ok) problem(`metric query "${at(range).slice(0, 60)}…" is not aggregated by low-cardinality labels`);
  }

  // Pipeline stages in order: parsers and unwraps must be followed by | __error__="".
  for (const pipeline of descendants(tree.topNode, 'PipelineExpr').filter(
    (p) => p.parent?.name !== 'PipelineExpr',
  )) {
    const stages = descendants(pipeline, 'PipelineStage');
    let parsed = false;
    stages.forEach((s, i) => {
      const isParser = children(s).some((c) =>
        ['LabelParser', 'JsonExpressionParser', 'LogfmtParser', 'LogfmtExpressionParser'].includes(c.name),
      );
      if (isParser) {
        parsed = true;
        const next = stages[i + 1];
        if (next === undefined || at(next).replace(/\s+/g, '') !== '|__error__=""')
          problem(`"${at(s).trim()}" is not followed by | __error__=""`);
      }
      for (const f of descendants(s, 'Matcher').concat(descendants(s, 'LabelFilter'))) {
        const name = /^\s*\|?\s*([A-Za-z_][A-Za-z0-9_]*)/.exec(at(f))?.[1];
        if (name === undefined || name === '__error__' || name === 'event_name') continue;
        checkName(name, parsed ? 'parsed' : 'metadata');
      }
    });
  }

  // Grouping labels exist for the targeted events (from metadata: groupings precede no parser state).
  for (const g of descendants(tree.topNode, 'Grouping'))
    for (const l of descendants(g, 'Identifier')) checkName(at(l), 'metadata');

  // unwrap: a numeric field that is where it is read; followed by | __error__="".
  // The grammar nests `| unwrap x | filter` as UnwrapExpr(UnwrapExpr, LabelFilter): take the outermost.
  for (const u of descendants(tree.topNode, 'UnwrapExpr').filter((x) => x.parent?.name !== 'UnwrapExpr')) {
    const name = descendants(u, 'Identifier').map(at)[0];
    const filters = children(u)
      .filter((c) => c.name === 'LabelFilter')
      .map((c) => at(c).replace(/\s+/g, ''));
    if (!filters.includes('__error__=""')) problem(`unwrap ${name} is not followed by | __error__=""`);
    const key = byLokiName.get(name);
    if (key === undefined) {
      problem(`unwrap ${name}: no such registry attribute`);
      continue;
    }
    if (!['int', 'double'].includes(ATTRIBUTE_TYPES[key])) problem(`unwrap ${name}: ${key} is not numeric`);
    const pipelineText = text.slice(0, u.from);
    const viaParser = /\|\s*json\b/.test(pipelineText);
    if (!viaParser && !LOOKUP_ATTRIBUTES.has(key) && !ON_EVERY_RECORD.has(name))
      problem(`unwrap ${name}: ${key} is not structured metadata and no json parser extracts it`);
    if (!ON_EVERY_RECORD.has(name) && !keysOfEvents.has(name))
      problem(`unwrap ${name}: none of ${events.join(', ')} has ${key}`);
  }
  return found;

  function checkName(name: string, from: 'metadata' | 'parsed') {
    if (ON_EVERY_RECORD.has(name) || made.has(name)) return;
    const key = byLokiName.get(name);
    if (key === undefined) return problem(`${name} is neither a label nor a registry attribute`);
    if (from === 'metadata' && !LOOKUP_ATTRIBUTES.has(key))
      problem(`${name} is read before any parser, but ${key} is not structured metadata (not a lookup key)`);
    if (!keysOfEvents.has(name)) problem(`${name}: none of ${events.join(', ')} has ${key}`);
  }
}

describe('LogQL discipline of every Loki query in the dashboards and alert rules', () => {
  const queries = lokiQueries();

  it('finds the queries', () => {
    expect(queries.length).toBeGreaterThan(10);
  });

  it('every query is clean', () => {
    expect(queries.flatMap(logqlProblems)).toEqual([]);
  });

  it('catches the broken versions of the panels it guards', () => {
    const broken = [
      // The old score panel: no grouping (one series per record), no __error__ after json or unwrap.
      'avg_over_time({service_name=~".+"} | event_name="ml.prediction" | json | unwrap ml_prediction_output_score [5m])',
      // Grouped by a per-record id.
      'sum without (ml_model_version) (count_over_time({service_name=~".+"} | event_name="ml.prediction" [5m]))',
      // A label the event does not have.
      'sum by (ml_decision_outcome) (count_over_time({service_name=~".+"} | event_name="ml.prediction" [5m]))',
      // A body-only field read as metadata, and unwrap of a field that is not numeric.
      'sum by (ml_model_name) (sum_over_time({service_name=~".+"} | event_name="ml.prediction" | ml_prediction_output_score > 0 | unwrap ml_model_version | __error__="" [5m]))',
    ].map((expr, i) => logqlProblems({ where: `broken ${i}`, expr }).map((f) => f.problem));
    expect(broken[0]).toEqual([
      expect.stringContaining('is not aggregated by low-cardinality labels'),
      '"| json" is not followed by | __error__=""',
      'unwrap ml_prediction_output_score is not followed by | __error__=""',
    ]);
    expect(broken[1]).toEqual([expect.stringContaining('is not aggregated by low-cardinality labels')]);
    expect(broken[2]).toEqual(['ml_decision_outcome: none of ml.prediction has ml.decision.outcome']);
    expect(broken[3]).toEqual([
      'ml_prediction_output_score is read before any parser, but ml.prediction.output_score is not structured metadata (not a lookup key)',
      'unwrap ml_model_version: ml.model.version is not numeric',
    ]);
  });
});
