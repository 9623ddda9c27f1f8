// Bench helper (not a benchmark itself): writes a large journal fast. A real trail writes the pipeline
// (data set, training run, model version, deployment) and one prediction; that prediction's body is the
// template for N more, sealed by a ChainWriter into a second chain (an inference process's) and written
// straight to 64 MiB segments with synchronous writes: the request path (AuditLog, group commit) is what
// bench/journal.mjs measures, not what a million-record fixture needs.
import './node-check.mjs';
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import {
  ChainWriter,
  generateSigner,
  parseRecordLine,
  serializeRecord,
  uuidv7,
} from '../dist/integrity/index.js';
import { AuditLog, chainDir, checkpointFile, JournalReader, segmentName } from '../dist/journal/index.js';
import { createTrail } from '../dist/trail/index.js';

const SEGMENT_BYTES = 64 * 1024 * 1024;

/**
 * Writes the pipeline and `n` predictions into `dir`. Returns the ids a lineage bench asks about, the
 * inference chain's writer (to append more later) and a function that appends more predictions.
 */
/**
 * The pipeline every lineage bench predicts under: data set `train`, a training run, model `m@1`, a
 * deployment. Returns the data set, the registered model and the deployment.
 */
export async function benchPipeline(trail) {
  const data = await trail.dataset({ name: 'train', data: 'rows' });
  let runId = '';
  trail.train(
    { model: 'm', inputs: [data], onRecorded: (r) => (runId = r.id), artifact: () => ({ data: 'w' }) },
    () => 1,
  )();
  const model = await trail.register({ name: 'm', version: '1', run: runId, data: 'w' });
  const dep = trail.deploy({ model, environment: 'bench' });
  return { data, model, dep };
}

export async function writeScaleJournal(dir, n) {
  const { signer, privateKey } = generateSigner('bench');
  const trail = await createTrail({
    serviceName: 'bench',
    redactor: false,
    sink: new AuditLog({ dir, signingKey: { key: privateKey } }),
  });
  const { data, model, dep } = await benchPipeline(trail);
  let seedId = '';
  trail.predict({ model: dep, capture: 'none', onRecorded: (p) => (seedId = p.id) }, (x) => x)(1);
  await trail.shutdown();
  let template;
  for (const { text } of new JournalReader(dir).lines()) {
    const r = parseRecordLine(text);
    if (r.body.includes(seedId) && r.body.includes('"ml.prediction"')) template = r;
  }
  if (template === undefined) throw new Error('the seed prediction was not found in the journal');
  const body = JSON.parse(template.body);
  const idKey = Object.keys(body).find((k) => body[k] === seedId);
  // The body's keys in canonical order, with the id and the time as the only parts that change.
  const [before, after] = template.body.split(JSON.stringify(seedId));
  const tsText = JSON.stringify(body.timestamp);
  const chain = new ChainWriter({ signer, checkpointEvery: 1000 });
  const cdir = chainDir(dir, chain.chainId);
  mkdirSync(cdir, { recursive: true });
  let segment = 0;
  let fd = -1;
  let size = 0;
  const ids = {
    dataset: data.id,
    model: `${model.name}@${model.version}`,
    deployment: dep.id,
    first: '',
    last: '',
  };
  const pending = [];
  let pendingBytes = 0;
  const flush = () => {
    if (pending.length === 0) return;
    const buf = Buffer.from(pending.join(''), 'utf8');
    if (fd < 0 || size + buf.length > SEGMENT_BYTES) {
      if (fd >= 0) closeSync(fd);
      fd = openSync(join(cdir, segmentName(++segment)), 'a');
      size = 0;
    }
    writeSync(fd, buf);
    size += buf.length;
    pending.length = 0;
    pendingBytes = 0;
  };
  const append = (count) => {
    for (let i = 0; i < count; i++) {
      const id = uuidv7();
      const ts = new Date().toISOString();
      const text = (before + JSON.stringify(id) + after).replace(tsText, JSON.stringify(ts));
      if (ids.first === '') ids.first = id;
      ids.last = id;
      for (const r of chain.append({
        event: template.event,
        sev: 'INFO',
        ts,
        attrs: { [idKey]: id },
        body: text,
      })) {
        const line = `${serializeRecord(r)}\n`;
        pending.push(line);
        pendingBytes += line.length;
      }
      // Segments end between batches of about 1 MiB, so a segment is never much over 64 MiB.
      if (pendingBytes > 1 << 20) flush();
    }
    flush();
  };
  const checkpoint = () => {
    const r = chain.checkpoint();
    pending.push(`${serializeRecord(r)}\n`);
    flush();
    writeFileSync(checkpointFile(dir, chain.chainId), chain.latestCheckpoint().note);
    return chain.latestCheckpoint().note;
  };
  append(n);
  const note = checkpoint();
  const close = () => {
    if (fd >= 0) closeSync(fd);
    fd = -1;
  };
  return { ids, chainId: chain.chainId, signer, note, append, checkpoint, close, segments: () => segment };
}

// `node bench/scale-journal.mjs DIR N`: writes a journal for trying things by hand.
if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, n] = [process.argv[2], Number(process.argv[3] ?? 100_000)];
  const t = performance.now();
  const j = await writeScaleJournal(dir, n);
  j.close();
  const records = n + Math.ceil(n / 1000) + 6;
  writeFileSync(
    join(dir, 'bench-ids.json'),
    JSON.stringify({ ...j.ids, chain: j.chainId, note: j.note, records }),
  );
  console.log(JSON.stringify({ ...j.ids, seconds: (performance.now() - t) / 1000 }));
}
