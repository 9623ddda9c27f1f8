/** A `lineage --json` answer with its nodes and edges in one order, so two sources compare as graphs. */
export function sortedAnswer(stdout: string) {
  const a = JSON.parse(stdout) as {
    root: unknown;
    nodes: { id: string }[];
    edges: { from: string; to: string; relation: string }[];
  };
  const key = (e: { from: string; to: string; relation: string }) => `${e.from} ${e.relation} ${e.to}`;
  return {
    ...a,
    nodes: [...a.nodes].sort((x, y) => x.id.localeCompare(y.id)),
    edges: [...a.edges].sort((x, y) => key(x).localeCompare(key(y))),
  };
}
