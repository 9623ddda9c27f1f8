// The prediction journals the verify benchmarks read: `n` records of one chain, written through the real
// chain writer and journal writer, a signed checkpoint every 10 000 records.
import './node-check.mjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChainWriter, canonicalize, generateSigner, serializeRecord } from '../dist/integrity/index.js';
import { JournalWriter } from '../dist/journal/index.js';
import { EVENT_ML_PREDICTION } from '../dist/semconv/index.js';

const { signer } = generateSigner('bench');

/**
 * Writes a journal into a new temporary directory and returns it. `small`: the smallest records the trail
 * writes (event name and timestamp, no attrs) instead of typical predictions (a prediction id, a latency,
 * one lookup attribute). `version`: the record format (default: the one the package writes); format 2
 * bodies carry severity_text, as the trail writes them.
 */
export async function writePredictionJournal(n, { small = false, version } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'mltrail-bench-verify-'));
  const chain = new ChainWriter({ signer, checkpointEvery: 10_000, version });
  const writer = new JournalWriter({
    dir,
    chainId: chain.chainId,
    groupCommitMs: 50,
    segmentBytes: 256 * 1024 * 1024,
  });
  for (let i = 0; i < n; i++) {
    const ts = new Date(1_764_000_000_000 + i).toISOString();
    const event = {
      'event.name': EVENT_ML_PREDICTION,
      timestamp: ts,
      ...(version === 2 ? { severity_text: 'INFO' } : {}),
      ...(small ? {} : { 'ml.prediction.id': `p-${i}`, 'ml.prediction.latency_ms': 1.25 }),
    };
    const attrs = small ? {} : { 'ml.prediction.id': `p-${i}` };
    for (const r of chain.append({
      event: EVENT_ML_PREDICTION,
      sev: 'INFO',
      ts,
      attrs,
      body: canonicalize(event),
    }))
      writer.append(serializeRecord(r));
    if (i % 100_000 === 99_999) await writer.flush();
  }
  await writer.close();
  return dir;
}
