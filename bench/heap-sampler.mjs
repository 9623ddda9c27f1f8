// Preloaded into a server by `BENCH_HEAP_PROF=<dir> node bench/server.mjs` (`--import` of this file): V8's
// sampling heap profiler, counting objects the garbage collector has already freed too, so the profile is
// what the process allocated, not what it still holds. The first SIGUSR2 starts sampling and counting
// requests; the second stops and writes the profile to $MLTRAIL_HEAP_PROF_OUT (with the request count as
// `requests`). `node bench/profile-summary.mjs <file>.heapprofile` sums it by component, in bytes per request.

import { writeFileSync } from 'node:fs';
import http from 'node:http';
import { Session } from 'node:inspector';

const out = process.env.MLTRAIL_HEAP_PROF_OUT;
if (out !== undefined) {
  const session = new Session();
  session.connect();
  const post = (method, params = {}) =>
    new Promise((ok, fail) => session.post(method, params, (err, r) => (err ? fail(err) : ok(r))));
  let counting = false;
  let requests = 0;
  const emit = http.Server.prototype.emit;
  http.Server.prototype.emit = function (event, ...args) {
    if (counting && event === 'request') requests++;
    return emit.call(this, event, ...args);
  };
  await post('HeapProfiler.enable');
  let state = 'idle';
  process.on('SIGUSR2', async () => {
    if (state === 'idle') {
      state = 'sampling';
      await post('HeapProfiler.startSampling', {
        samplingInterval: 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      counting = true;
    } else if (state === 'sampling') {
      state = 'done';
      counting = false;
      const { profile } = await post('HeapProfiler.stopSampling');
      writeFileSync(out, JSON.stringify({ ...profile, requests }));
    }
  });
}
