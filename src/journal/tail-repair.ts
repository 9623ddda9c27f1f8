import { closeSync, ftruncateSync } from 'node:fs';
import { EvidenceDir } from '../sources/evidence-files.js';
import { JournalReader, type TornTail } from '../sources/journal-reader.js';

/**
 * Cuts every torn last line found in a journal directory (what `mltrail verify --repair-tail` does: the one
 * reading command that writes). Segments are opened under the same rules as for reading. Returns what was cut.
 */
export function repairTornTails(dir: string): TornTail[] {
  const reader = new JournalReader(dir);
  for (const _ of reader.lines()) {
    // reading finds the torn tails
  }
  if (reader.torn.length === 0) return [];
  const files = new EvidenceDir(dir);
  for (const t of reader.torn) {
    const fd = files.open(t.file, true);
    try {
      ftruncateSync(fd, t.offset);
    } finally {
      closeSync(fd);
    }
  }
  return reader.torn;
}
