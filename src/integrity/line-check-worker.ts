// Worker thread of `LineChecker`: checks journal lines that need no other record (see
// RecordLineScanner.check) in shared buffers, job slot after job slot, and writes what the verifier needs
// of each into shared results. Driven through Atomics only, so the reading thread stays synchronous.
import { workerData } from 'node:worker_threads';
import { BELL, Control, FIELDS, type SharedBuffers, SLOT_INTS, SLOTS, State } from './line-check-protocol.js';
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

try {
  for (;;) {
    // The next job: any slot with one (the older first); none, then wait for the bell to change.
    const bell = Atomics.load(control, BELL);
    let slot = -1;
    let exit = false;
    for (let s = 0; s < SLOTS; s++) {
      const state = Atomics.load(control, s * SLOT_INTS + Control.State);
      if (state === State.Exit) exit = true;
      else if (
        state === State.Job &&
        (slot < 0 || control[s * SLOT_INTS + Control.Seq] < control[slot * SLOT_INTS + Control.Seq])
      )
        slot = s;
    }
    if (exit) break;
    if (slot < 0) {
      Atomics.wait(control, BELL, bell);
      continue;
    }
    const at = slot * SLOT_INTS;
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
} catch {
  // Anything else that goes wrong: every waiting job fails at once, and the reading thread checks them.
  for (let s = 0; s < SLOTS; s++) Atomics.store(control, s * SLOT_INTS + Control.State, State.Failed);
  for (let s = 0; s < SLOTS; s++) Atomics.notify(control, s * SLOT_INTS + Control.State);
}
