import { RedactionConfigError } from './errors.js';

/**
 * One step of a compiled rule path: a literal name part, `*` (exactly one part) or `**` (any number of
 * parts, including none).
 */
export type PathStep = { kind: 'name'; name: string } | { kind: 'one' } | { kind: 'any' };

/**
 * Compiles a pino-style key path (`user.email`, `items[*].card`, `headers["x-api-key"]`, `a[0]`) into
 * steps matched against the dot-separated name parts of a value's location. A key that itself contains
 * dots counts as several parts, so `user.email` matches both `{ user: { email } }` and the flat attribute
 * key `'user.email'` — OTel attributes and mltrail audit bodies use flat dotted keys. Beyond pino, a
 * `**` step matches any depth, so `**.password` finds a password key anywhere.
 *
 * Throws {@link RedactionConfigError} naming the path when it does not parse.
 */
export function compileKeyPath(path: string): PathStep[] {
  const fail = (why: string): never => {
    throw new RedactionConfigError(
      `mltrail: invalid redaction rule path ${JSON.stringify(path)}: ${why}`,
      path,
    );
  };
  if (typeof path !== 'string' || path.trim() === '') fail('a rule path must be a non-empty string');
  const steps: PathStep[] = [];
  let i = 0;
  let expectName = true;
  const pushName = (raw: string) => {
    if (raw === '*') steps.push({ kind: 'one' });
    else if (raw === '**') steps.push({ kind: 'any' });
    else if (raw.includes('*')) fail(`"${raw}": a wildcard must be a whole name part (* or **)`);
    else for (const part of raw.split('.')) steps.push({ kind: 'name', name: part });
  };
  while (i < path.length) {
    const ch = path[i];
    if (ch === '[') {
      const close = bracketEnd(path, i, fail);
      const inner = path.slice(i + 1, close).trim();
      if (inner === '*') steps.push({ kind: 'one' });
      else if (/^\d+$/.test(inner)) steps.push({ kind: 'name', name: String(Number(inner)) });
      else if (/^(["']).*\1$/s.test(inner)) {
        const name = unquote(inner, fail);
        if (name === '') fail('an empty quoted key ("") matches nothing');
        for (const part of name.split('.')) steps.push({ kind: 'name', name: part });
      } else fail(`bracket at offset ${i} must hold *, an index or a quoted key`);
      i = close + 1;
      expectName = false;
      if (path[i] === '.') {
        i++;
        expectName = true;
        if (i >= path.length) fail('path ends with a dot');
      }
      continue;
    }
    if (!expectName) fail(`expected "." or "[" at offset ${i}`);
    let j = i;
    while (j < path.length && path[j] !== '.' && path[j] !== '[') j++;
    const raw = path.slice(i, j);
    if (raw === '') fail(`empty name part at offset ${i}`);
    if (!/^[^\s"'\]]+$/.test(raw)) fail(`"${raw}" needs brackets and quotes (e.g. ["${raw}"])`);
    pushName(raw);
    i = j;
    if (path[i] === '.') {
      i++;
      if (i >= path.length) fail('path ends with a dot');
    } else expectName = false;
  }
  if (steps.length === 0) fail('no name parts');
  for (const s of steps) if (s.kind === 'name' && s.name === '') fail('empty name part');
  return steps;
}

function bracketEnd(path: string, open: number, fail: (why: string) => never): number {
  const q = path[open + 1];
  if (q === '"' || q === "'") {
    for (let k = open + 2; k < path.length; k++) {
      if (path[k] === '\\') k++;
      else if (path[k] === q) {
        if (path[k + 1] !== ']') fail(`expected "]" after the quoted key at offset ${k}`);
        return k + 1;
      }
    }
    return fail(`unterminated quoted key at offset ${open}`);
  }
  const close = path.indexOf(']', open);
  if (close < 0) fail(`unterminated "[" at offset ${open}`);
  return close;
}

function unquote(inner: string, fail: (why: string) => never): string {
  if (inner[0] === '"') {
    try {
      return JSON.parse(inner) as string;
    } catch {
      return fail(`${inner} is not a valid double-quoted key`);
    }
  }
  return inner.slice(1, -1).replace(/\\(.)/g, '$1');
}

/**
 * Renders a location (object keys and array indices) the way rules are written: dotted names, and
 * brackets for indices and for keys that are not plain names (those with dots keep their flat form so the
 * rendered path names the key that exists, e.g. `["payload.input"].customer.email`).
 */
export function renderPath(parts: readonly (string | number)[]): string {
  let out = '';
  for (const p of parts) {
    if (typeof p === 'number') out += `[${p}]`;
    else if (/^[A-Za-z_$][\w$]*$/.test(p)) out += out === '' ? p : `.${p}`;
    else out += `[${JSON.stringify(p)}]`;
  }
  return out;
}
