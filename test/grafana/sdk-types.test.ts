import { DataqueryBuilder as LokiQuery } from '@grafana/grafana-foundation-sdk/loki';
import { PanelBuilder as NodeGraphPanel } from '@grafana/grafana-foundation-sdk/nodegraph';
import { describe, expect, it } from 'vitest';

/**
 * The dashboards are built with the Grafana Foundation SDK so that `npm run typecheck` rejects what Grafana's
 * schema does not have. These lines keep that promise honest: each `@ts-expect-error` fails the typecheck
 * the day the SDK stops rejecting the line below it.
 */
describe('the dashboard builders are typed against Grafana’s schema', () => {
  it('a panel option or query field Grafana does not have is a type error', () => {
    const panel = new NodeGraphPanel();
    // @ts-expect-error the node graph has no "sourceField" option (its edges frame names the field)
    expect(() => panel.sourceField('from')).toThrow(TypeError);
    const query = new LokiQuery();
    // @ts-expect-error a Loki query has no "query" field (it is "expr")
    expect(() => query.query('{job="x"}')).toThrow(TypeError);
    // @ts-expect-error queryType takes a string, not a number
    query.queryType(1);
  });
});
