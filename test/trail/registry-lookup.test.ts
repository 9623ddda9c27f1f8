import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/journal/index.js';
import { createTrail } from '../../src/trail/index.js';

describe('registry digest lookups (cached per digest, dropped on every change)', () => {
  it('answers from models and deployments, and sees replacements, deletions and new deployments', async () => {
    const trail = await createTrail({
      serviceName: 'registry-test',
      sink: new AuditLog({ dir: mkdtempSync(join(tmpdir(), 'mltrail-reglookup-')) }),
    });
    const v1 = await trail.register({ name: 'm', version: '1', data: 'weights-1' });
    const digest = v1.digest as string;
    expect(trail.registry.modelByDigest(digest)).toBe(v1);
    expect(trail.registry.deploymentByDigest(digest)).toBeUndefined();

    const d1 = trail.deploy({ model: v1, environment: 'staging' });
    expect(trail.registry.deploymentByDigest(digest)).toBe(d1);
    const d2 = trail.deploy({ model: v1, environment: 'production' });
    expect(trail.registry.deploymentByDigest(digest)).toBe(d2);

    // Replacing an entry under the same key (what loading a registry does) is seen at once.
    trail.registry.models.set('m@1', { ...v1, digest: `sha256:${'0'.repeat(64)}` });
    expect(trail.registry.modelByDigest(digest)).toBeUndefined();
    trail.registry.deployments.delete(d2.id);
    expect(trail.registry.deploymentByDigest(digest)).toBe(d1);
    trail.registry.deployments.clear();
    expect(trail.registry.deploymentByDigest(digest)).toBeUndefined();
    await trail.shutdown();
  });
});
