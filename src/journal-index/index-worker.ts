import { parentPort } from 'node:worker_threads';
import { buildSealed } from './index-builder.js';

/** Builds segment indexes for the {@link SegmentIndexer} of the writing process, one message at a time. */
parentPort?.on('message', (job: { id: number; dir: string; segment: string }) => {
  try {
    const { file } = buildSealed(job.dir, job.segment);
    parentPort?.postMessage({ id: job.id, file });
  } catch (err) {
    parentPort?.postMessage({ id: job.id, error: (err as Error).message });
  }
});
