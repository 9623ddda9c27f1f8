import type { RedactionSummary } from './redactor.js';

const MAX_LISTED_PATHS = 64;

/** One redaction call's bookkeeping: what changed where, counted exactly, paths listed up to a cap. */
export class RedactionTally {
  readonly masked = new Set<string>();
  readonly removed = new Set<string>();
  readonly hashed = new Set<string>();
  readonly truncated = new Set<string>();
  maskedCount = 0;
  removedCount = 0;
  hashedCount = 0;
  truncatedCount = 0;
  nodes = 0;
  readonly byRule: Record<string, number> = {};
  readonly seen = new Set<object>();

  note(kind: 'masked' | 'removed' | 'hashed' | 'truncated', path: string, rule: string | undefined): void {
    const set = this[kind];
    if (set.size < MAX_LISTED_PATHS) set.add(path);
    if (kind === 'masked') this.maskedCount++;
    else if (kind === 'removed') this.removedCount++;
    else if (kind === 'hashed') this.hashedCount++;
    else this.truncatedCount++;
    if (rule !== undefined) this.byRule[rule] = (this.byRule[rule] ?? 0) + 1;
  }

  get changes(): number {
    return this.maskedCount + this.removedCount + this.hashedCount + this.truncatedCount;
  }

  summary(): RedactionSummary {
    return {
      masked: [...this.masked],
      removed: [...this.removed],
      hashed: [...this.hashed],
      truncated: [...this.truncated],
      maskedCount: this.maskedCount,
      removedCount: this.removedCount,
      hashedCount: this.hashedCount,
      byRule: { ...this.byRule },
    };
  }
}
