import type { LineageEdge, LineageKind, LineageNode, LineageResult } from '../lineage/index.js';
import * as sc from '../semconv/index.js';
import type { Evidence, RecordEvidence } from './evidence.js';

/** Escapes text for HTML element content and attribute values: record values are untrusted. */
export function escapeHtml(v: unknown): string {
  return String(v ?? '')
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;');
}

const KIND_ORDER: LineageKind[] = [
  'source',
  'dataset',
  'transform',
  'run',
  'evaluation',
  'retraining',
  'drift',
  'model',
  'deployment',
  'prediction',
  'decision',
  'feedback',
];
const KIND_COLOR: Record<LineageKind, string> = {
  source: '#e8eef7',
  dataset: '#dbeafe',
  transform: '#e0e7ff',
  run: '#ede9fe',
  evaluation: '#fae8ff',
  retraining: '#ffedd5',
  drift: '#fee2e2',
  model: '#dcfce7',
  deployment: '#d1fae5',
  prediction: '#fef9c3',
  decision: '#fde68a',
  feedback: '#f1f5f9',
};

const MAX_PER_LAYER = 4;

/**
 * The lineage as an inline SVG, drawn top to bottom in layers: a node's layer is the length of the longest
 * path that reaches it, so every edge points down (data → run → model → deployment → prediction → decision)
 * and boxes stay legible at print size. No script, no external resource.
 */
export function lineageSvg(l: LineageResult): string {
  const W = 250;
  const H = 54;
  const gapX = 22;
  const gapY = 30;
  const kindIndex = (n: LineageNode) => KIND_ORDER.indexOf(n.kind);
  // Longest-path layering by relaxation; bounded so a cycle in hand-made records cannot loop forever.
  const rank = new Map(l.nodes.map((n) => [n.id, 0]));
  const edges = l.edges.filter((e) => rank.has(e.from) && rank.has(e.to) && e.from !== e.to);
  for (let pass = 0; pass < Math.min(l.nodes.length, 64); pass++) {
    let changed = false;
    for (const e of edges) {
      const r = rank.get(e.from)! + 1;
      if (r > rank.get(e.to)!) {
        rank.set(e.to, r);
        changed = true;
      }
    }
    if (!changed) break;
  }
  const layers: LineageNode[][] = [];
  for (const n of l.nodes) (layers[rank.get(n.id)!] ??= []).push(n);
  const dense = layers.filter((x) => x !== undefined);
  const slots = (count: number) => Math.min(count, MAX_PER_LAYER) + (count > MAX_PER_LAYER ? 1 : 0);
  const maxCols = Math.max(1, ...dense.map((x) => slots(x.length)));
  const width = maxCols * (W + gapX) - gapX + 20;
  const height = dense.length * (H + gapY) - gapY + 20;
  const pos = new Map<string, { x: number; y: number }>();
  const more: { x: number; y: number; count: number }[] = [];
  for (const [li, layer] of dense.entries()) {
    // Order by where the parents sit (fewer crossings), then by kind and id for a stable drawing.
    const parentX = (n: LineageNode) => {
      const xs = edges.filter((e) => e.to === n.id && pos.has(e.from)).map((e) => pos.get(e.from)!.x);
      return xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length;
    };
    const ordered = layer
      .map((n) => ({ n, px: parentX(n) }))
      .sort((a, b) => a.px - b.px || kindIndex(a.n) - kindIndex(b.n) || a.n.id.localeCompare(b.n.id))
      .map((x) => x.n);
    // Centered in the drawing.
    const left = 10 + ((maxCols - slots(ordered.length)) * (W + gapX)) / 2;
    const y = li * (H + gapY);
    for (const [ci, n] of ordered.slice(0, MAX_PER_LAYER).entries())
      pos.set(n.id, { x: left + ci * (W + gapX), y });
    if (ordered.length > MAX_PER_LAYER)
      more.push({ x: left + MAX_PER_LAYER * (W + gapX), y, count: ordered.length - MAX_PER_LAYER });
  }
  // Edges that skip a layer go around the right of the drawing, so they never look like they leave or enter
  // the boxes they pass behind.
  const skips = (e: LineageEdge) => {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    return a !== undefined && b !== undefined && b.y - a.y > H + gapY + 1;
  };
  const right = Math.max(0, ...[...pos.values()].map((p) => p.x + W));
  const svgWidth = edges.some(skips) ? Math.max(width, right + 190) : width;
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${svgWidth} ${height}" width="${svgWidth}" height="${height}" style="display:block;margin:0 auto;max-width:100%;height:auto" role="img" aria-label="lineage graph">`,
  );
  parts.push(
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>',
  );
  for (const e of edges) {
    const a = pos.get(e.from);
    const b = pos.get(e.to);
    if (a === undefined || b === undefined) continue;
    if (skips(e)) {
      const [x1, y1, x2, y2] = [a.x + W, a.y + 10 + H / 2, b.x + W, b.y + 10 + H / 2];
      const out = right + 70;
      parts.push(
        `<path d="M${x1},${y1} C${out},${y1} ${out},${y2} ${x2 + 1},${y2}" fill="none" stroke="#64748b" stroke-width="1.2" stroke-dasharray="5 3" marker-end="url(#arrow)"><title>${escapeHtml(e.relation)}</title></path>`,
        `<text x="${0.25 * ((x1 + x2) / 2) + 0.75 * out + 6}" y="${(y1 + y2) / 2 + 4}" class="rel">${escapeHtml(e.relation)}</text>`,
      );
      continue;
    }
    const [x1, y1, x2, y2] = [a.x + W / 2, a.y + 10 + H, b.x + W / 2, b.y + 10];
    const my = (y1 + y2) / 2;
    parts.push(
      `<path d="M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2 - 1}" fill="none" stroke="#64748b" stroke-width="1.2" marker-end="url(#arrow)"><title>${escapeHtml(e.relation)}</title></path>`,
    );
    if (a.x === b.x || edges.length <= 24)
      parts.push(`<text x="${(x1 + x2) / 2 + 6}" y="${my + 4}" class="rel">${escapeHtml(e.relation)}</text>`);
  }
  for (const n of l.nodes) {
    const p = pos.get(n.id);
    if (p === undefined) continue;
    const root = n.id === l.root.id;
    const { label, sub } = boxText(n);
    const y = p.y + 10;
    parts.push(
      `<g><rect x="${p.x}" y="${y}" width="${W}" height="${H}" rx="6" fill="${KIND_COLOR[n.kind]}" stroke="${root ? '#0f172a' : '#94a3b8'}" stroke-width="${root ? 2.4 : 1}"${n.facts.recorded === false ? ' stroke-dasharray="4 3"' : ''}/>` +
        `<text x="${p.x + 10}" y="${y + 15}" class="col">${escapeHtml(n.kind)}${root ? ' · subject of this report' : ''}</text>` +
        `<text x="${p.x + 10}" y="${y + 32}" class="n">${escapeHtml(label)}</text><text x="${p.x + 10}" y="${y + 47}" class="id">${escapeHtml(sub)}</text><title>${escapeHtml(`${n.label}\n${n.id}`)}</title></g>`,
    );
  }
  for (const m of more) {
    parts.push(
      `<g><rect x="${m.x}" y="${m.y + 10}" width="${W}" height="${H}" rx="6" fill="#fff" stroke="#94a3b8" stroke-dasharray="4 3"/><text x="${m.x + 10}" y="${m.y + 42}" class="n">… and ${m.count} more (mltrail lineage --json)</text></g>`,
    );
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Two lines per box: the name (without the kind, which the caption shows) and the id or a key fact. */
function boxText(n: LineageNode): { label: string; sub: string } {
  const cut = (t: string, max: number) => (t.length > max ? `${t.slice(0, max - 1)}…` : t);
  const name = n.label.startsWith(`${n.kind} `) ? n.label.slice(n.kind.length + 1) : n.label;
  let sub = n.id;
  if (name === n.id || name.includes(n.id)) {
    const digest = n.facts[sc.ATTR_ML_MODEL_DIGEST] ?? n.facts[sc.ATTR_ML_DATASET_DIGEST];
    const outLabel = n.facts[sc.ATTR_ML_PREDICTION_OUTPUT_LABEL];
    const score = n.facts[sc.ATTR_ML_PREDICTION_OUTPUT_SCORE];
    if (typeof digest === 'string') sub = digest;
    else if (outLabel !== undefined)
      sub = `output ${outLabel}${score !== undefined ? ` · score ${score}` : ''}`;
    else if (name.length > 38) sub = `…${name.slice(-38)}`;
    else sub = '';
  }
  return { label: cut(name, 34), sub: cut(sub, 40) };
}

function attributionSvg(attributions: Record<string, number>): string {
  const entries = Object.entries(attributions).sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const max = Math.max(...entries.map(([, v]) => Math.abs(v)), 1e-9);
  const rowH = 22;
  const mid = 330;
  const rows = entries.map(([k, v], i) => {
    const w = (Math.abs(v) / max) * 180;
    const x = v >= 0 ? mid : mid - w;
    return `<text x="4" y="${i * rowH + 15}" class="n">${escapeHtml(k)}</text><rect x="${x}" y="${i * rowH + 4}" width="${w}" height="14" fill="${v >= 0 ? '#dc2626' : '#2563eb'}"/><text x="${mid + 190}" y="${i * rowH + 15}" class="id">${escapeHtml(v.toFixed(4))}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 640 ${entries.length * rowH + 8}" width="640" role="img" aria-label="feature attributions"><line x1="${mid}" y1="0" x2="${mid}" y2="${entries.length * rowH}" stroke="#475569"/>${rows.join('')}</svg>`;
}

function table(o: Record<string, unknown> | undefined, keys?: string[]): string {
  if (o === undefined) return '<p class="muted">not recorded</p>';
  const entries = (keys ?? Object.keys(o)).filter(
    (k) => o[k] !== undefined && !['event.name', 'trace_id', 'span_id'].includes(k),
  );
  return `<table>${entries.map((k) => `<tr><th>${escapeHtml(k)}</th><td>${fmt(o[k])}</td></tr>`).join('')}</table>`;
}

function fmt(v: unknown): string {
  if (typeof v === 'string' && (v.startsWith('{') || v.startsWith('['))) {
    try {
      return `<code>${escapeHtml(JSON.stringify(JSON.parse(v), null, 1))}</code>`;
    } catch {
      // plain string
    }
  }
  if (Array.isArray(v)) return v.map((x) => `<code>${escapeHtml(x)}</code>`).join(' ');
  if (typeof v === 'string' && /^(sha256:|[0-9a-f]{8}-)/.test(v)) return `<code>${escapeHtml(v)}</code>`;
  return escapeHtml(v);
}

function rows(list: Record<string, unknown>[], cols: [string, string][]): string {
  if (list.length === 0) return '<p class="muted">none recorded</p>';
  return `<table class="grid"><tr>${cols.map(([, h]) => `<th>${escapeHtml(h)}</th>`).join('')}</tr>${list
    .map((r) => `<tr>${cols.map(([k]) => `<td>${fmt(r[k])}</td>`).join('')}</tr>`)
    .join('')}</table>`;
}

const CSS = `
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #0f172a; margin: 0; background: #f8fafc; }
main { max-width: 1080px; margin: 0 auto; padding: 28px 32px 60px; background: #fff; }
header { border-bottom: 3px solid #0f172a; padding-bottom: 12px; margin-bottom: 18px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 26px 0 8px; border-bottom: 1px solid #e2e8f0; padding-bottom: 4px; }
.muted { color: #64748b; } code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; white-space: pre-wrap; }
table { border-collapse: collapse; width: 100%; margin: 4px 0; } th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #f1f5f9; }
th { width: 240px; color: #334155; font-weight: 600; } table.grid th { width: auto; background: #f1f5f9; }
.badge { display: inline-block; padding: 3px 10px; border-radius: 999px; font-weight: 700; }
.ok { background: #dcfce7; color: #166534; } .bad { background: #fee2e2; color: #991b1b; }
svg text.col { font: 600 10px system-ui; fill: #475569; letter-spacing: .04em; } svg text.rel { font: italic 10px system-ui; fill: #64748b; } svg text.n { font: 12px system-ui; fill: #0f172a; } svg text.id { font: 10px ui-monospace, monospace; fill: #475569; }
.wrap { word-break: break-all; } details { margin: 8px 0; } pre { white-space: pre-wrap; word-break: break-all; }
.grid2 { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
@media print { body { background: #fff; } main { padding: 0; max-width: none; } h2 { break-after: avoid; } section { break-inside: avoid; } }
`;

/** One shown record with everything needed to check it without the journal. */
function recordProofHtml(r: RecordEvidence): string {
  const p = r.proof;
  return `<details${r.covered ? '' : ' open'}><summary><strong>${escapeHtml(r.role)}</strong> <code>${escapeHtml(`${r.record.chain}:${r.record.seq}`)}</code> — ${r.covered ? 'covered by the signed checkpoint below' : '<span class="badge bad">NOT covered by a trusted signed checkpoint</span>'}</summary>
<table>
<tr><th>Line as stored</th><td><code class="wrap">${escapeHtml(r.line)}</code><br><span class="muted">${escapeHtml(r.location)}</span></td></tr>
<tr><th>Body (canonical JSON)</th><td><code class="wrap">${escapeHtml(r.body === '' ? '(erased)' : r.body)}</code></td></tr>
<tr><th>Covered fields</th><td>prev <code>${escapeHtml(r.record.prev)}</code><br>digest <code>${escapeHtml(r.record.digest)}</code><br>hash <code>${escapeHtml(r.record.hash)}</code></td></tr>
${
  p === undefined
    ? '<tr><th>Inclusion proof</th><td>—</td></tr>'
    : `<tr><th>RFC 6962 inclusion</th><td>leaf ${p.leafIndex} of ${p.treeSize} · root <code>${escapeHtml(p.root)}</code> · ${p.inclusionValid ? 'verifies' : 'does NOT verify'}<br>path: ${p.path.map((h) => `<code>${escapeHtml(h)}</code>`).join('<br>') || '(empty: the only leaf)'}</td></tr>
<tr><th>Signed checkpoint</th><td><pre>${escapeHtml(p.checkpoint.note)}</pre>${escapeHtml(p.checkpoint.trust === 'pinned' ? 'pinned' : 'declared (trust on first use)')} verifier key <code>${escapeHtml(p.checkpoint.verifierKey)}</code> · signature ${p.signatureValid ? 'valid' : 'INVALID'} · ${escapeHtml(p.checkpoint.location)}</td></tr>`
}
</table></details>`;
}

/** One self-contained, printable HTML evidence report (no scripts, no network). */
export function renderEvidenceHtml(e: Evidence): string {
  const v = e.integrity;
  const decision = e.decisions[0];
  let attributions: Record<string, number> | undefined;
  try {
    const raw = decision?.[sc.ATTR_ML_DECISION_ATTRIBUTIONS];
    attributions = typeof raw === 'string' ? (JSON.parse(raw) as Record<string, number>) : undefined;
  } catch {
    attributions = undefined;
  }
  const status = `<span class="badge ${v.verified ? 'ok' : 'bad'}">${escapeHtml(v.badge)}</span>`;
  const title =
    e.subject.kind === 'prediction' ? `Prediction ${e.subject.id}` : `Model version ${e.subject.id}`;
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>mltrail evidence report — ${escapeHtml(title)}</title><style>${CSS}</style></head>
<body><main>
<header><h1>Evidence report: ${escapeHtml(title)}</h1>
<div>Integrity: ${status} <span class="muted">· generated ${escapeHtml(e.generatedAt)} from the journal ${escapeHtml(e.journal)}</span></div></header>

${
  e.subject.kind === 'prediction'
    ? `<section><h2>Decision and its reasons</h2>
${decision === undefined ? '<p class="muted">No decision was recorded for this prediction.</p>' : table(decision, [sc.ATTR_ML_DECISION_OUTCOME, sc.ATTR_ML_DECISION_REASON, sc.ATTR_ML_DECISION_THRESHOLD, sc.ATTR_ML_DECISION_AUTOMATED, sc.ATTR_ML_DECISION_REVIEWER, sc.ATTR_ML_DECISION_OVERRIDE, sc.ATTR_ML_DECISION_ID, 'timestamp'])}
${attributions !== undefined ? `<p><strong>Feature attributions</strong> <span class="muted">(contribution to the score; red raises it, blue lowers it)</span></p>${attributionSvg(attributions)}` : ''}
</section>
<section><h2>Prediction</h2>${table(e.prediction, [sc.ATTR_ML_PREDICTION_ID, 'timestamp', sc.ATTR_ML_PREDICTION_OUTPUT_LABEL, sc.ATTR_ML_PREDICTION_OUTPUT_SCORE, sc.ATTR_ML_PREDICTION_LATENCY_MS, sc.ATTR_ML_PREDICTION_INPUT_DIGEST, sc.ATTR_ML_PREDICTION_SUBJECT_ID, sc.ATTR_ML_MODEL_NAME, sc.ATTR_ML_MODEL_VERSION, sc.ATTR_ML_MODEL_DIGEST, sc.ATTR_ML_DEPLOYMENT_ID, sc.ATTR_SERVICE_NAME])}
${
  e.feedback.length > 0
    ? `<p><strong>Ground truth</strong></p>${rows(e.feedback, [
        [sc.ATTR_ML_FEEDBACK_GROUND_TRUTH, 'ground truth'],
        [sc.ATTR_ML_FEEDBACK_SOURCE, 'source'],
        ['timestamp', 'time'],
      ])}`
    : ''
}</section>`
    : ''
}

<section><h2>Lineage</h2>${lineageSvg(e.lineage)}
<p class="muted">Every box is a record in the journal; edges follow the ids the records name. Full detail: <code>mltrail lineage ${escapeHtml(e.subject.id)} --json</code></p></section>

<div class="grid2">
<section><h2>Model version</h2>${table(e.model, [sc.ATTR_ML_MODEL_NAME, sc.ATTR_ML_MODEL_VERSION, sc.ATTR_ML_MODEL_DIGEST, sc.ATTR_ML_MODEL_FORMAT, sc.ATTR_ML_MODEL_URI, sc.ATTR_ML_MODEL_APPROVED_BY, sc.ATTR_ML_RUN_ID, 'timestamp'])}</section>
<section><h2>Training configuration</h2>${table(e.training, [sc.ATTR_ML_RUN_ID, sc.ATTR_ML_RUN_TYPE, sc.ATTR_ML_TRAINING_ALGORITHM, sc.ATTR_ML_TRAINING_FRAMEWORK, sc.ATTR_ML_TRAINING_FRAMEWORK_VERSION, sc.ATTR_ML_TRAINING_HYPERPARAMETERS, sc.ATTR_ML_TRAINING_SEED, sc.ATTR_ML_TRAINING_INPUT_DATASET_IDS, sc.ATTR_ML_TRAINING_PROFILE_DIGEST, sc.ATTR_ML_RETRAINING_TRIGGER_IDS])}</section>
</div>

<section><h2>Evaluation</h2>${rows(e.evaluations, [
    [sc.ATTR_ML_EVALUATION_METRIC_NAME, 'metric'],
    [sc.ATTR_ML_EVALUATION_METRIC_VALUE, 'value'],
    [sc.ATTR_ML_EVALUATION_THRESHOLD, 'threshold'],
    [sc.ATTR_ML_EVALUATION_PASSED, 'passed'],
    [sc.ATTR_ML_EVALUATION_DATASET_ID, 'dataset'],
  ])}</section>
<section><h2>Approval and deployment history</h2>${rows(e.deployments, [
    ['timestamp', 'time'],
    [sc.ATTR_ML_MODEL_VERSION, 'version'],
    [sc.ATTR_ML_DEPLOYMENT_ENVIRONMENT, 'environment'],
    [sc.ATTR_ML_DEPLOYMENT_DEPLOYED_BY, 'deployed by'],
    [sc.ATTR_ML_DEPLOYMENT_REPLACED_VERSION, 'replaced'],
    [sc.ATTR_ML_DEPLOYMENT_ID, 'deployment'],
  ])}</section>
<section><h2>Drift alerts for this model version</h2>${rows(e.drift.slice(0, 40), [
    [sc.ATTR_ML_DRIFT_WINDOW_END, 'window end'],
    [sc.ATTR_ML_DRIFT_FEATURE, 'feature'],
    [sc.ATTR_ML_DRIFT_TEST, 'test'],
    [sc.ATTR_ML_DRIFT_STATISTIC, 'statistic'],
    [sc.ATTR_ML_DRIFT_P_VALUE, 'p-value'],
    [sc.ATTR_ML_DRIFT_THRESHOLD, 'threshold'],
  ])}${e.drift.length > 40 ? `<p class="muted">… and ${e.drift.length - 40} more (mltrail drift)</p>` : ''}</section>

<section><h2>Integrity proof</h2>
<table>
<tr><th>Result</th><td>${status} ${v.verified ? 'every record shown is included in a checkpoint signed by the pinned key, and the whole journal verifies under it' : escapeHtml(v.problems.slice(0, 5).join('; '))}</td></tr>
<tr><th>Trust basis</th><td>${escapeHtml(v.basis)}</td></tr>
<tr><th>Record (chain:seq)</th><td><code>${escapeHtml(v.record ? `${v.record.chain}:${v.record.seq}` : '—')}</code></td></tr>
<tr><th>Record hash</th><td><code>${escapeHtml(v.record?.hash ?? '—')}</code></td></tr>
<tr><th>Body digest</th><td><code>${escapeHtml(v.record?.digest ?? '—')}</code></td></tr>
<tr><th>Checkpoint</th><td>${v.checkpoint ? `<code>${escapeHtml(v.checkpoint.source)}</code> · tree size ${v.checkpoint.size} · root <code>${escapeHtml(v.checkpoint.root)}</code>` : '—'}</td></tr>
<tr><th>Signed by</th><td>${v.checkpoint ? `<code>${escapeHtml(v.checkpoint.signer)}</code> · signature ${v.checkpoint.signatureValid ? 'valid' : 'INVALID'}` : '—'}</td></tr>
<tr><th>RFC 6962 inclusion proof</th><td>${v.inclusionProof.length === 0 ? '—' : v.inclusionProof.map((p) => `<code>${escapeHtml(p)}</code>`).join('<br>')} ${v.checkpoint ? `<br><span class="muted">${v.inclusionValid ? 'verifies against the checkpoint root' : 'does NOT verify'}</span>` : ''}</td></tr>
<tr><th>Journal verification</th><td>${v.journalIntact ? 'every record, link and checkpoint verifies' : `${v.problems.length} problem(s)`}</td></tr>
</table>
<p class="muted">Check independently: <code>mltrail verify ${escapeHtml(e.journal)} --trusted-key &lt;the operator's verifier key&gt;</code> (docs/integrity.md), or with no journal at all, from the proofs below.</p>
</section>

<section><h2>Proofs of every record shown</h2>
${v.records.map(recordProofHtml).join('\n')}
<p><strong>Check them yourself</strong></p><pre>${escapeHtml(v.recipe)}</pre>
</section>

<section><h2>What this report evidences</h2>
<table class="grid"><tr><th>Requirement</th><th>What it asks</th><th>Shown here</th></tr>
<tr><td>EU AI Act Art. 12(1)</td><td>automatic recording of events over the system's lifetime</td><td>every stage is a hash-chained audit record written at the time it happened (timestamps, chain and seq above)</td></tr>
<tr><td>EU AI Act Art. 12(2)(a)</td><td>identify situations that may result in risk or a substantial modification</td><td>drift alerts for this model version, retraining triggers and the deployment history</td></tr>
<tr><td>EU AI Act Art. 12(2)(b)–(c)</td><td>facilitate post-market monitoring and monitoring of operation</td><td>prediction, decision and ground-truth records; evaluation against its threshold</td></tr>
<tr><td>EU AI Act Art. 12 (traceability)</td><td>trace the result back to the data and model</td><td>lineage from the decision to the source data set with content digests</td></tr>
<tr><td>GDPR Art. 22(3)</td><td>human intervention; contest the decision</td><td>whether the decision was automated and who reviewed it</td></tr>
<tr><td>GDPR Art. 13–15, 22</td><td>meaningful information about the logic involved</td><td>the decision's reason, threshold and feature attributions; the model's algorithm and training configuration</td></tr>
<tr><td>GDPR Art. 5(1)(f), 32</td><td>integrity of processing records</td><td>the integrity proof: inclusion in a signed checkpoint and a verified chain</td></tr>
</table>
<p class="muted">Personal data in records is redacted or pseudonymised before it is written; erased bodies (GDPR Art. 17) show as erased and still verify.</p>
</section>
</main></body></html>
`;
  return html;
}
