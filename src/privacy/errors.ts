/**
 * Thrown by {@link createRedactor} when its options cannot be honoured: a rule path that does not parse, a
 * user pattern that is not a valid regular expression, or (strict mode) `hash` rules without a key. The
 * message names the offending rule so a configuration error points at its own line.
 */
export class RedactionConfigError extends Error {
  /** The rule path or pattern name the problem is about, when there is one. */
  readonly rule: string | undefined;
  constructor(message: string, rule?: string) {
    super(message);
    this.name = 'RedactionConfigError';
    this.rule = rule;
  }
}
