// Worker thread of `LineChecker`: checks journal lines that need no other record (see
// RecordLineScanner.check) in shared buffers, job slot after job slot, and writes what the verifier needs
// of each into shared results. Driven through Atomics only, so the reading thread stays synchronous.
import { workerData } from 'node:worker_threads';
import { Control, FIELDS, type SharedBuffers, SLOT_INTS, SLOTS, State } from './line-check-protocol.js';
import { checkLines, foldRuns } from './line-checker-core.js';
import { RecordLineScanner } from './record-scanner.js';

const shared = workerData as SharedBuffers;
const control = new Int32Array(shared.control);
const data = shared.data.map((b) => Buffer.from(b));
const fields = shared.fields.map((b) => new Float64Array(b));
const sums = shared.sums.map((b) => new Uint8Array(b));
const runs = shared.runs.map((b) => new Float64Array(b));
const roots = shared.roots.map((b) => new Uint8Array(b));
const scanner = new RecordLineScanner();

for (let slot = 0; ; slot = (slot + 1) % SLOTS) {
  const at = slot * SLOT_INTS;
  // Wait for this slot's next job (a slot stays Done until the reading thread has taken its results).
  let state = Atomics.load(control, at + Control.State);
  while (state !== State.Job && state !== State.Exit) {
    Atomics.wait(control, at + Control.State, state);
    state = Atomics.load(control, at + Control.State);
  }
  if (state === State.Exit) break;
  const started = performance.now();
  try {
    const n = checkLines(
      scanner,
      data[slot],
      control[at + Control.Start],
      control[at + Control.End],
      fields[slot],
      sums[slot],
      fields[slot].length / FIELDS,
    );
    control[at + Control.Count] = n;
    control[at + Control.Runs] = foldRuns(data[slot], fields[slot], sums[slot], n, runs[slot], roots[slot]);
    control[at + Control.Elapsed] = Math.round((performance.now() - started) * 1000);
    Atomics.store(control, at + Control.State, State.Done);
  } catch {
    // The reading thread checks these lines itself.
    Atomics.store(control, at + Control.State, State.Failed);
  }
  Atomics.notify(control, at + Control.State);
}
