import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalize, parseCheckpoint, parseNote } from '../../src/integrity/index.js';
import { AuditLog, checkpointFile } from '../../src/journal/index.js';

const event = (i: number) => {
  const ts = new Date().toISOString();
  return {
    event: 'ml.prediction',
    sev: 'INFO' as const,
    ts,
    attrs: {},
    body: canonicalize({ 'event.name': 'ml.prediction', timestamp: ts, i }),
  };
};

describe('the checkpoint file', () => {
  it('holds the newest durable checkpoint after a burst of checkpoints (coalesced, written off the event loop), 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltrail-cpfile-'));
    // A checkpoint every 10 records: 200 checkpoints arrive far faster than a file can be fsync'd.
    const log = new AuditLog({ dir, checkpointEvery: 10, checkpointIntervalMs: 0 });
    for (let i = 0; i < 2000; i++) log.append(event(i));
    await log.flush();
    await log.close();
    const path = checkpointFile(dir, log.chainId);
    const note = parseNote(readFileSync(path, 'utf8'));
    const cp = parseCheckpoint(note.text);
    // 2000 events + 200 count checkpoints; the file holds the last one, signed over everything before it.
    expect(log.size).toBe(2200);
    expect(cp.size).toBe(2199);
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});
