// Bench helper: one lineage query in a fresh process, timed inside it (modules loaded first, as the
// command does before it reads anything): open the journal index, look the id up, read the records on the
// way. Prints {"ms": …, "open_ms": …, "nodes": …, "notes": …}, open_ms being the part spent opening the
// index. Usage: node bench/scale-probe.mjs DIR ID [upstream|downstream|both]
import './node-check.mjs';
import { JournalIndex } from '../dist/journal-index/journal-index.js';
import { queryIndexed } from '../dist/lineage/indexed-lineage.js';

const [dir, id, direction = 'upstream'] = process.argv.slice(2);
const t = performance.now();
const ix = JournalIndex.open(dir);
const opened = performance.now();
const answer = queryIndexed(ix, id, direction)?.collect();
const ms = performance.now() - t;
ix.close();
if (answer === undefined) throw new Error(`${id}: not found`);
console.log(JSON.stringify({ ms, open_ms: opened - t, nodes: answer.nodes.length, notes: ix.notes.length }));
