import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { expect } from 'vitest';
import { sharedTestdata } from '../shared-data.js';

type Facets = Record<string, unknown> | undefined;

/** The parts of an exported RunEvent this check walks (JSON.parse output). */
interface RunEventJson {
  run: { facets?: Facets };
  job: { facets?: Facets };
  inputs: { facets?: Facets }[];
  outputs: { facets?: Facets }[];
}

/**
 * Asserts that every event validates against the OpenLineage RunEvent schema (../shared/testdata, read in
 * place), and every facet against its own schema or mltrail's custom facet schema. Returns how many facets
 * were checked.
 */
export function expectValidOpenLineage(events: RunEventJson[]): number {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  const core = JSON.parse(readFileSync(join(sharedTestdata, 'openlineage/OpenLineage.json'), 'utf8'));
  ajv.addSchema(core);
  const facetSchemas = readdirSync(join(sharedTestdata, 'openlineage/facets')).map((f) =>
    JSON.parse(readFileSync(join(sharedTestdata, 'openlineage/facets', f), 'utf8')),
  );
  for (const s of facetSchemas) ajv.addSchema(s);
  const custom = JSON.parse(readFileSync('schemas/openlineage/MltrailMlRunFacet.json', 'utf8'));
  ajv.addSchema(custom);
  const runEvent = ajv.getSchema(`${core.$id}#/$defs/RunEvent`)!;
  const facetValidator = (key: string) => {
    const s = [...facetSchemas, custom].find((x) => x.properties?.[key] !== undefined);
    return s === undefined ? undefined : ajv.getSchema(s.$id)!;
  };
  let checked = 0;
  for (const e of events) {
    expect(runEvent(e), JSON.stringify(runEvent.errors)).toBe(true);
    for (const facets of [
      e.run.facets,
      e.job.facets,
      ...e.inputs.map((d) => d.facets),
      ...e.outputs.map((d) => d.facets),
    ]) {
      for (const [key, value] of Object.entries(facets ?? {})) {
        const v = facetValidator(key);
        expect(v, `a schema for facet "${key}"`).toBeDefined();
        expect(v!({ [key]: value }), `${key}: ${JSON.stringify(v!.errors)}`).toBe(true);
        checked++;
      }
    }
  }
  return checked;
}
