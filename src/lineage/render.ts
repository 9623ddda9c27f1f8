import type { LineageResult } from './lineage-graph.js';

const SHOW_PER_LEVEL = 12;

// Record values reach the auditor's terminal: control characters (ANSI escapes, newlines, carriage returns)
// are shown as \uXXXX so a record cannot rewrite or hide lines of the tree.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;
const printable = (s: string) =>
  s.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** A readable terminal tree: upstream (what it came from) above, downstream (what came of it) below. */
export function renderTree(r: LineageResult): string {
  const byId = new Map(r.nodes.map((n) => [n.id, n]));
  const ins = new Map<string, { from: string; relation: string }[]>();
  const outs = new Map<string, { to: string; relation: string }[]>();
  for (const e of r.edges) {
    ins.set(e.to, [...(ins.get(e.to) ?? []), { from: e.from, relation: e.relation }]);
    outs.set(e.from, [...(outs.get(e.from) ?? []), { to: e.to, relation: e.relation }]);
  }
  const describe = (id: string) => {
    const n = byId.get(id);
    if (n === undefined) return printable(id);
    const facts = Object.entries(n.facts)
      .filter(([, v]) => typeof v !== 'object')
      .slice(0, 4)
      .map(([k, v]) => `${k.split('.').pop()}=${String(v).length > 80 ? `${String(v).slice(0, 77)}…` : v}`);
    return printable(`${n.label} [${n.id}]${facts.length > 0 ? ` ${facts.join(' ')}` : ''}`);
  };
  const lines: string[] = [describe(r.root.id)];
  const walk = (id: string, dir: 'up' | 'down', prefix: string, seen: Set<string>) => {
    const next =
      dir === 'up'
        ? (ins.get(id) ?? []).map((e) => ({ id: e.from, rel: e.relation }))
        : (outs.get(id) ?? []).map((e) => ({ id: e.to, rel: e.relation }));
    const shown = next.slice(0, SHOW_PER_LEVEL);
    shown.forEach((e, i) => {
      const last = i === shown.length - 1 && next.length <= SHOW_PER_LEVEL;
      const arrow = dir === 'up' ? '←' : '→';
      lines.push(`${prefix}${last ? '└─' : '├─'} ${arrow} ${printable(e.rel)}: ${describe(e.id)}`);
      if (!seen.has(e.id)) {
        seen.add(e.id);
        walk(e.id, dir, `${prefix}${last ? '   ' : '│  '}`, seen);
      }
    });
    if (next.length > SHOW_PER_LEVEL)
      lines.push(`${prefix}└─ … and ${next.length - SHOW_PER_LEVEL} more (use --json)`);
  };
  if ((ins.get(r.root.id) ?? []).length > 0) {
    lines.push('upstream:');
    walk(r.root.id, 'up', '  ', new Set([r.root.id]));
  }
  if ((outs.get(r.root.id) ?? []).length > 0) {
    lines.push('downstream:');
    walk(r.root.id, 'down', '  ', new Set([r.root.id]));
  }
  return `${lines.join('\n')}\n`;
}

const safeId = (id: string, index: Map<string, string>) => {
  let v = index.get(id);
  if (v === undefined) {
    v = `n${index.size}`;
    index.set(id, v);
  }
  return v;
};
const label = (s: string) => s.replaceAll('"', "'").replaceAll('\n', ' ');
// DOT strings: a record value ending in a backslash would otherwise escape the closing quote.
const dotString = (s: string) => s.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', ' ');

/** Mermaid flowchart source. */
export function renderMermaid(r: LineageResult): string {
  const idx = new Map<string, string>();
  const lines = ['flowchart LR'];
  for (const n of r.nodes) lines.push(`  ${safeId(n.id, idx)}["${label(`${n.label}\n${n.id}`)}"]`);
  for (const e of r.edges)
    lines.push(`  ${safeId(e.from, idx)} -->|${label(e.relation)}| ${safeId(e.to, idx)}`);
  return `${lines.join('\n')}\n`;
}

/** Graphviz DOT source. */
export function renderDot(r: LineageResult): string {
  const idx = new Map<string, string>();
  const lines = ['digraph lineage {', '  rankdir=LR;', '  node [shape=box, fontname="Helvetica"];'];
  for (const n of r.nodes)
    lines.push(
      `  ${safeId(n.id, idx)} [label="${dotString(n.label)}\\n${dotString(n.id)}"${n.id === r.root.id ? ', style=bold' : ''}];`,
    );
  for (const e of r.edges)
    lines.push(`  ${safeId(e.from, idx)} -> ${safeId(e.to, idx)} [label="${dotString(e.relation)}"];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
