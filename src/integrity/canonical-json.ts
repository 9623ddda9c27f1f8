/**
 * A value that cannot be represented in canonical JSON (RFC 8785), with the path where it was found.
 * The stage API never lets one reach here (it makes bodies JSON-safe first); direct callers get this.
 */
export class CanonicalJsonError extends Error {
  readonly path: string;
  constructor(message: string, path: string) {
    super(`canonical JSON: ${message} at ${path}`);
    this.name = 'CanonicalJsonError';
    this.path = path;
  }
}

/**
 * Serialises a JSON value as RFC 8785 canonical JSON (JCS): object members sorted by the UTF-16 code
 * units of their names, no whitespace, numbers in the ECMAScript shortest round-trip form, strings escaped
 * as ECMAScript `JSON.stringify` does. Object members whose value is `undefined` are omitted, as in JSON.
 *
 * Throws {@link CanonicalJsonError} for NaN, ±Infinity, BigInt, functions, symbols, `undefined` inside arrays
 * and cycles, naming the path (`$.a[2].b`).
 *
 * @example canonicalize({ b: 1, a: [true, null] }) // '{"a":[true,null],"b":1}'
 */
export function canonicalize(value: unknown): string {
  return write(value, '$', new Set());
}

function write(value: unknown, path: string, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${value} is not a JSON number`, path);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`a ${typeof value} is not a JSON value`, path);
  }
  if (value === null) return 'null';
  const obj = value as object;
  if (seen.has(obj)) throw new CanonicalJsonError('circular reference', path);
  const toJSON = (obj as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return write((toJSON as () => unknown).call(obj), path, seen);
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      const parts = new Array<string>(obj.length);
      for (let i = 0; i < obj.length; i++) {
        if (obj[i] === undefined)
          throw new CanonicalJsonError('undefined is not a JSON value', `${path}[${i}]`);
        parts[i] = write(obj[i], `${path}[${i}]`, seen);
      }
      return `[${parts.join(',')}]`;
    }
    const keys = Object.keys(obj).sort();
    const parts: string[] = [];
    for (const k of keys) {
      const v = (obj as Record<string, unknown>)[k];
      if (v === undefined) continue;
      parts.push(`${JSON.stringify(k)}:${write(v, `${path}.${k}`, seen)}`);
    }
    return `{${parts.join(',')}}`;
  } finally {
    seen.delete(obj);
  }
}
