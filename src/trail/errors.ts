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

/**
 * Fail-closed mode only: an audited call whose record cannot be made durable. Synchronous stages throw it
 * from the call itself; asynchronous ones reject with it. Catch it like any error of the call, e.g.
 * `try { trail.decide(spec) } catch (e) { if (e instanceof AuditWriteError) … }`.
 */
export class AuditWriteError extends Error {
  /** The event that was not recorded (`ml.decision`, …), when known. */
  readonly event: string | undefined;
  /** The journal directory, when known. */
  readonly dir: string | undefined;
  constructor(message: string, options?: { cause?: unknown; event?: string; dir?: string }) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'AuditWriteError';
    this.event = options?.event;
    this.dir = options?.dir;
  }
}
