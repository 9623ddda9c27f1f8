/** One problem found while validating an audit event, shaped like a zod issue. */
export interface EventIssue {
  /** A zod issue code (`invalid_type`, `too_big`, ...) or `not_serialisable`. */
  code: string;
  /** Where in the event body, e.g. `["a.dotted.attribute.key"]` (a semconv key). */
  path: (string | number)[];
  message: string;
}

/**
 * Thrown in strict mode when an event does not match its schema. The message names the event, each field
 * path and what was expected, e.g.
 * `mltrail: invalid ml.training.completed event: ml.training.seed: expected int, received string`.
 */
export class TrailValidationError extends Error {
  readonly event: string;
  readonly issues: readonly EventIssue[];
  constructor(event: string, issues: readonly EventIssue[]) {
    const detail = issues
      .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(body)'}: ${i.message}`)
      .join('; ');
    super(`mltrail: invalid ${event} event: ${detail}`);
    this.name = 'TrailValidationError';
    this.event = event;
    this.issues = issues;
  }
}

/** Thrown (fail-closed mode only) when an audited call's record could not be made durable. */
export class AuditWriteError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AuditWriteError';
  }
}
