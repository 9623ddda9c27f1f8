// Worker thread of `LineChecker`: checks journal lines that need no other record (see
// RecordLineScanner.check) in a shared buffer, and writes what the verifier needs of each into shared
// results. Driven through Atomics only, so the reading thread stays synchronous.
import { workerData } from 'node:worker_threads';
import { Control, FIELDS, type SharedBuffers, State } from './line-check-protocol.js';
import { RecordLineScanner } from './record-scanner.js';

const shared = workerData as SharedBuffers;
const control = new Int32Array(shared.control);
const data = Buffer.from(shared.data);
const fields = new Float64Array(shared.fields);
const sums = new Uint8Array(shared.sums);
const capacity = fields.length / FIELDS;
const scanner = new RecordLineScanner();

for (;;) {
  Atomics.wait(control, Control.State, State.Idle);
  const state = Atomics.load(control, Control.State);
  if (state === State.Exit) break;
  if (state !== State.Job) continue;
  let n = 0;
  const started = performance.now();
  try {
    const end = control[Control.End];
    for (let start = 0; start < end && n < capacity; ) {
      const nl = data.indexOf(10, start);
      if (scanner.check(data, start, nl)) {
        const f = n * FIELDS;
        fields[f] = start;
        fields[f + 1] = scanner.chainStart;
        fields[f + 2] = scanner.chainEnd;
        fields[f + 3] = scanner.seq;
        fields[f + 4] = scanner.prevHex;
        sums.set(scanner.sums, n * 64);
        n++;
      }
      start = nl + 1;
    }
    control[Control.Count] = n;
    control[Control.Elapsed] = Math.round((performance.now() - started) * 1000);
    Atomics.store(control, Control.State, State.Done);
  } catch {
    // The reading thread checks these lines itself.
    Atomics.store(control, Control.State, State.Failed);
  }
  Atomics.notify(control, Control.State);
}
