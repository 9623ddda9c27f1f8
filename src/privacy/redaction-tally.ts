import type { RedactionSummary } from './redactor.js';

const MAX_LISTED_PATHS = 64;

type Kind = 'masked' | 'removed' | 'hashed' | 'truncated';

/**
 * One redaction call's bookkeeping: what changed where, counted exactly, paths listed up to a cap. Most
 * calls change nothing, so the path lists and the per-rule counts are only allocated on the first change.
 */
export class RedactionTally {
  masked: string[] | undefined;
  removed: string[] | undefined;
  hashed: string[] | undefined;
  truncated: string[] | undefined;
  maskedCount = 0;
  removedCount = 0;
  hashedCount = 0;
  truncatedCount = 0;
  nodes = 0;
  byRule: Record<string, number> | undefined;
  readonly seen = new Set<object>();
  /** Pseudonyms made in this call, by the value hashed (so a repeated value costs one HMAC). */
  pseudonyms: Map<string, string> | undefined;
  /** The location being visited (keys and indices), pushed and popped by the walk; rendered only on a change. */
  readonly path: (string | number)[] = [];

  note(kind: Kind, path: string, rule: string | undefined): void {
    const list = this[kind];
    if (list === undefined) this[kind] = [path];
    else if (list.length < MAX_LISTED_PATHS && !list.includes(path)) list.push(path);
    if (kind === 'masked') this.maskedCount++;
    else if (kind === 'removed') this.removedCount++;
    else if (kind === 'hashed') this.hashedCount++;
    else this.truncatedCount++;
    if (rule !== undefined) {
      if (this.byRule === undefined) this.byRule = {};
      this.byRule[rule] = (this.byRule[rule] ?? 0) + 1;
    }
  }

  get changes(): number {
    return this.maskedCount + this.removedCount + this.hashedCount + this.truncatedCount;
  }

  summary(): RedactionSummary {
    return {
      masked: this.masked ?? [],
      removed: this.removed ?? [],
      hashed: this.hashed ?? [],
      truncated: this.truncated ?? [],
      maskedCount: this.maskedCount,
      removedCount: this.removedCount,
      hashedCount: this.hashedCount,
      byRule: this.byRule ?? {},
    };
  }
}
