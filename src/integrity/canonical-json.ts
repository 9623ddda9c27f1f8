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
  // Fast path: plain data whose members are already in canonical order (or can be put in order in a copy)
  // goes through the native JSON.stringify, which emits exactly the RFC 8785 form for such data. Anything
  // else — invalid values, toJSON, class instances, integer-like member names, deep or cyclic data — takes
  // the explicit writer, which also produces the precise error.
  const ready = prepare(value, 0);
  if (ready !== IRREGULAR) return JSON.stringify(ready);
  try {
    return write(value, '$', new Set());
  } catch (err) {
    // Nesting deeper than the call stack, or an output longer than a string can be: the caller's value,
    // so the same typed error as every other value that has no canonical form.
    if (err instanceof RangeError)
      throw new CanonicalJsonError(`value cannot be written (${err.message})`, '$');
    throw err;
  }
}

const IRREGULAR: unique symbol = Symbol('irregular');
const MAX_FAST_DEPTH = 64;

/**
 * Returns `value` itself when JSON.stringify(value) is already its canonical form, a copy with members
 * sorted when only the order differs, or IRREGULAR when only the explicit writer can decide.
 */
function prepare(value: unknown, depth: number): unknown {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : IRREGULAR;
    case 'object':
      break;
    default:
      return IRREGULAR;
  }
  if (value === null) return null;
  if (depth >= MAX_FAST_DEPTH) return IRREGULAR;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return IRREGULAR;
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      if (v === undefined) return IRREGULAR;
      const p = prepare(v, depth + 1);
      if (p === IRREGULAR) return IRREGULAR;
      if (p !== v) out ??= value.slice(0, i);
      if (out !== undefined) out[i] = p;
    }
    return out ?? value;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return IRREGULAR;
  const obj = value as Record<string, unknown>;
  if (typeof obj.toJSON === 'function') return IRREGULAR;
  const keys = Object.keys(obj);
  let sorted = true;
  for (let i = 1; i < keys.length; i++) {
    if (keys[i - 1] >= keys[i]) {
      sorted = false;
      break;
    }
  }
  // Array#sort without a comparator orders strings by UTF-16 code units: exactly RFC 8785's order.
  if (!sorted) keys.sort();
  // A null-prototype copy, so a member named __proto__ stays an ordinary member.
  let out = sorted ? undefined : (Object.create(null) as Record<string, unknown>);
  for (let i = 0; i < keys.length; i++) {
    const v = obj[keys[i]];
    // Members holding undefined are omitted by both writers; functions and symbols are errors.
    if (v === undefined) continue;
    const p = prepare(v, depth + 1);
    if (p === IRREGULAR) return IRREGULAR;
    if (out === undefined && p !== v) {
      out = Object.create(null) as Record<string, unknown>;
      for (let j = 0; j < i; j++) if (obj[keys[j]] !== undefined) out[keys[j]] = obj[keys[j]];
    }
    if (out !== undefined) out[keys[i]] = p;
  }
  if (out === undefined) return obj;
  if (!sorted) {
    // Integer-like names are enumerated in numeric order whatever the insertion order: not expressible here.
    const check = Object.keys(out);
    for (let i = 1; i < check.length; i++) if (check[i - 1] >= check[i]) return IRREGULAR;
  }
  return out;
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
