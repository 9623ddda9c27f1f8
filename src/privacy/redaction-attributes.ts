import type { Attributes } from '@opentelemetry/api';
import {
  ATTR_MLTRAIL_REDACTION_HASHED_COUNT,
  ATTR_MLTRAIL_REDACTION_MASKED_COUNT,
  ATTR_MLTRAIL_REDACTION_REDACTED_KEYS,
  ATTR_MLTRAIL_REDACTION_REMOVED_COUNT,
} from '../semconv/index.js';
import type { RedactionSummary } from './redactor.js';

const MAX_KEYS = 32;

/** An empty summary, the identity of {@link mergeSummaries}. */
export function emptySummary(): RedactionSummary {
  return {
    masked: [],
    removed: [],
    hashed: [],
    truncated: [],
    maskedCount: 0,
    removedCount: 0,
    hashedCount: 0,
    byRule: {},
  };
}

/** Adds `b` into `a` (paths optionally prefixed, e.g. with the span event they came from). */
export function mergeSummaries(a: RedactionSummary, b: RedactionSummary, prefix = ''): RedactionSummary {
  const add = (into: string[], from: string[]) => {
    for (const p of from) if (into.length < 64) into.push(prefix + p);
  };
  add(a.masked, b.masked);
  add(a.removed, b.removed);
  add(a.hashed, b.hashed);
  add(a.truncated, b.truncated);
  a.maskedCount += b.maskedCount;
  a.removedCount += b.removedCount;
  a.hashedCount += b.hashedCount;
  for (const [k, n] of Object.entries(b.byRule)) a.byRule[k] = (a.byRule[k] ?? 0) + n;
  return a;
}

/** True when the redaction changed anything. */
export function summaryChanged(s: RedactionSummary): boolean {
  return s.maskedCount + s.removedCount + s.hashedCount + s.truncated.length > 0;
}

/**
 * The `mltrail.redaction.*` attributes for a summary, the way the collector's redaction processor reports
 * what it did: counts, and the redacted paths (at most 32, values never). Empty when nothing changed, so
 * clean telemetry carries no extra attributes.
 */
export function redactionAttributes(s: RedactionSummary): Attributes {
  if (s.maskedCount + s.removedCount + s.hashedCount === 0) return {};
  const keys = [...new Set([...s.masked, ...s.removed, ...s.hashed])].slice(0, MAX_KEYS);
  return {
    [ATTR_MLTRAIL_REDACTION_MASKED_COUNT]: s.maskedCount,
    [ATTR_MLTRAIL_REDACTION_REMOVED_COUNT]: s.removedCount,
    [ATTR_MLTRAIL_REDACTION_HASHED_COUNT]: s.hashedCount,
    [ATTR_MLTRAIL_REDACTION_REDACTED_KEYS]: keys,
  };
}
