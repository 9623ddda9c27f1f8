import type { EventIssue } from './errors.js';

/** Strings longer than this are cut (with a marker) so a record always fits Loki's 256 KB line limit. */
export const MAX_STRING_CHARS = 65_536;
const MAX_DEPTH = 32;

/**
 * Returns a JSON-safe deep copy of `value` for an audit body, recording every change as an issue instead
 * of throwing: NaN/Infinity become strings, bigint becomes a decimal string, cycles become "[Circular]",
 * functions and symbols are dropped, typed arrays become number arrays, Dates become ISO strings, and
 * strings over {@link MAX_STRING_CHARS} are truncated with a marker.
 */
export function toJsonSafe(value: unknown, path: (string | number)[], issues: EventIssue[]): unknown {
  return copy(value, path, issues, new Set(), 0);
}

function copy(
  value: unknown,
  path: (string | number)[],
  issues: EventIssue[],
  seen: Set<object>,
  depth: number,
): unknown {
  switch (typeof value) {
    case 'string':
      if (value.length > MAX_STRING_CHARS) {
        issues.push({
          code: 'too_big',
          path,
          message: `string of ${value.length} chars truncated to ${MAX_STRING_CHARS}`,
        });
        return `${value.slice(0, MAX_STRING_CHARS)}…[truncated ${value.length - MAX_STRING_CHARS} chars]`;
      }
      return value;
    case 'boolean':
      return value;
    case 'number':
      if (Number.isFinite(value)) return value;
      issues.push({
        code: 'not_serialisable',
        path,
        message: `${value} is not a JSON number; recorded as a string`,
      });
      return String(value);
    case 'bigint':
      issues.push({ code: 'not_serialisable', path, message: 'bigint recorded as a decimal string' });
      return value.toString();
    case 'undefined':
      return undefined;
    case 'function':
    case 'symbol':
      issues.push({
        code: 'not_serialisable',
        path,
        message: `a ${typeof value} cannot be recorded; dropped`,
      });
      return undefined;
  }
  if (value === null) return null;
  const obj = value as object;
  if (seen.has(obj)) {
    issues.push({ code: 'not_serialisable', path, message: 'circular reference recorded as "[Circular]"' });
    return '[Circular]';
  }
  if (depth >= MAX_DEPTH) {
    issues.push({ code: 'too_big', path, message: `nesting deeper than ${MAX_DEPTH} levels cut` });
    return '[MaxDepth]';
  }
  if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
  if (ArrayBuffer.isView(obj)) {
    if (obj instanceof DataView) return `[DataView ${obj.byteLength} bytes]`;
    // Float arrays can hold NaN and ±Infinity: each element takes the number rule (a string, with an issue).
    return Array.from(obj as unknown as ArrayLike<number | bigint>, (n, i) =>
      typeof n === 'bigint' ? n.toString() : copy(n, [...path, i], issues, seen, depth + 1),
    );
  }
  seen.add(obj);
  try {
    if (Array.isArray(obj)) {
      // Array.from visits holes of sparse arrays too (as undefined → null), which map() would skip.
      return Array.from(obj, (v, i) => {
        const c = copy(v, [...path, i], issues, seen, depth + 1);
        return c === undefined ? null : c;
      });
    }
    if (obj instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of obj) {
        let key: string;
        try {
          key = typeof k === 'string' ? k : String(k);
        } catch {
          key = '[unprintable key]';
          issues.push({
            code: 'not_serialisable',
            path,
            message: 'a Map key could not be converted to a string',
          });
        }
        const c = copy(v, [...path, key], issues, seen, depth + 1);
        if (c !== undefined) out[key] = c;
      }
      return out;
    }
    if (obj instanceof Set) {
      return copy([...obj], path, issues, seen, depth);
    }
    const out: Record<string, unknown> = {};
    // Members are copied in RFC 8785 order, so canonical JSON of the copy needs no second sorting pass.
    for (const key of Object.keys(obj).sort()) {
      let v: unknown;
      try {
        v = (obj as Record<string, unknown>)[key];
      } catch (err) {
        issues.push({
          code: 'not_serialisable',
          path: [...path, key],
          message: `getter threw: ${String(err)}`,
        });
        continue;
      }
      // Plain strings, finite numbers and booleans are kept as they are (the common case: no path array).
      const c =
        (typeof v === 'string' && v.length <= MAX_STRING_CHARS) ||
        (typeof v === 'number' && Number.isFinite(v)) ||
        typeof v === 'boolean'
          ? v
          : copy(v, [...path, key], issues, seen, depth + 1);
      if (c === undefined) continue;
      // A member named __proto__ must stay a member, not replace the copy's prototype.
      if (key === '__proto__')
        Object.defineProperty(out, key, { value: c, enumerable: true, writable: true, configurable: true });
      else out[key] = c;
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}

/** The member order of the latest flat object shape (see {@link flatCanonicalJson}). */
let flatKeys: string[] = [];
let flatSorted: string[] = [];
let flatNames: string[] = [];

/**
 * `canonicalize(toJsonSafe(value))` for the common input of a prediction — a plain object whose members
 * are all strings within the length limit, finite numbers, booleans, null or undefined (a feature map) —
 * written straight from its members; undefined for anything else, which then takes the copy and the
 * generic canonicalization. Member names are sorted once per shape (inputs of one model repeat it).
 * `test/trail/flat-canonical-json.test.ts` checks the bytes equal the two-step path's.
 */
export function flatCanonicalJson(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return undefined;
  try {
    return writeFlat(value as Record<string, unknown>);
  } catch {
    // A throwing getter or proxy trap: the copy records it as an issue.
    return undefined;
  }
}

function writeFlat(obj: Record<string, unknown>): string | undefined {
  const keys = Object.keys(obj);
  if (!sameKeys(keys, flatKeys)) {
    for (const k of keys) if (k === '__proto__' || isIndexName(k)) return undefined;
    // Array#sort without a comparator orders by UTF-16 code units, RFC 8785's order.
    const sorted = [...keys].sort();
    flatKeys = keys;
    flatSorted = sorted;
    flatNames = sorted.map((k) => `${JSON.stringify(k)}:`);
  }
  const sorted = flatSorted;
  const names = flatNames;
  let text = '{';
  let first = true;
  for (let i = 0; i < sorted.length; i++) {
    const v = obj[sorted[i]];
    let json: string;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return undefined;
      // The shortest round-trip form, as JSON.stringify writes a finite number (and -0 as 0).
      json = String(v);
    } else if (typeof v === 'string') {
      if (v.length > MAX_STRING_CHARS) return undefined;
      json = JSON.stringify(v);
    } else if (typeof v === 'boolean') json = v ? 'true' : 'false';
    else if (v === null) json = 'null';
    else if (v === undefined) continue;
    else return undefined;
    text += first ? `${names[i]}${json}` : `,${names[i]}${json}`;
    first = false;
  }
  return `${text}}`;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A name JavaScript enumerates before the others, in numeric order (an array index). */
function isIndexName(k: string): boolean {
  return /^(?:0|[1-9][0-9]*)$/.test(k) && Number(k) < 2 ** 32 - 1;
}
