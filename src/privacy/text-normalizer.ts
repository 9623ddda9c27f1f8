/**
 * Detection runs on a normal form of a string, so personal data cannot hide from the detectors behind an
 * encoding: URL escapes (`jane.doe%40example.com`, `%2B44+7700+900123`), full-width or other compatibility
 * characters (`４１１１…`, NFKC), zero-width and other invisible format characters inside a value, and
 * unusual separators (non-breaking and thin spaces, Unicode dashes). Each character of the normal form
 * remembers the range of the original it came from, so a match found in the normal form replaces exactly
 * that range of the original and everything around it stays as written.
 */

/** A normal form of a string and, per normal-form character, where it came from in the original. */
export interface NormalizedText {
  readonly text: string;
  /** `starts[i]`, `ends[i]`: the original range of normal-form character `i` (UTF-16 offsets). */
  readonly starts: Int32Array;
  readonly ends: Int32Array;
}

// Anything outside printable ASCII, a URL escape, or a "+" used as a space between digits (query strings).
const NEEDS_NORMALIZING = /[^\t\n\r\x20-\x7e]|%[0-9A-Fa-f]{2}|\d\+\d/;
const INVISIBLE = /^\p{Cf}$/u;
const SPACE = /^\p{Zs}$/u;
const DASH = /^\p{Pd}$/u;

/** True when {@link normalizeForDetection} could change `s` (a cheap test run before it). */
export function needsNormalizing(s: string): boolean {
  return NEEDS_NORMALIZING.test(s);
}

/**
 * The normal form detectors run on: URL escapes decoded (runs of `%XX` as UTF-8; `+` between digits as a
 * space), format characters (zero-width spaces and joiners, soft hyphens, bidi controls, BOM) removed,
 * every other character in NFKC (full-width digits and `＠` become ASCII), Unicode spaces a space and
 * Unicode dashes `-`.
 */
export function normalizeForDetection(s: string): NormalizedText {
  const out: string[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  const push = (text: string, start: number, end: number) => {
    for (let j = 0; j < text.length; j++) {
      out.push(text[j]);
      starts.push(start);
      ends.push(end);
    }
  };
  const n = s.length;
  let i = 0;
  while (i < n) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */ && isEscape(s, i)) {
      let j = i;
      const bytes: number[] = [];
      while (j < n && isEscape(s, j)) {
        bytes.push(Number.parseInt(s.slice(j + 1, j + 3), 16));
        j += 3;
      }
      // Each decoded character maps to the whole escaped run: a match in it replaces the run.
      const decoded = Buffer.from(bytes).toString('utf8');
      pushNormalized(decoded, i, j, push);
      i = j;
      continue;
    }
    if (
      c === 43 /* + */ &&
      i > 0 &&
      i + 1 < n &&
      isDigit(s.charCodeAt(i - 1)) &&
      isDigit(s.charCodeAt(i + 1))
    ) {
      push(' ', i, i + 1);
      i++;
      continue;
    }
    if (c < 0x80) {
      push(s[i], i, i + 1);
      i++;
      continue;
    }
    const cp = s.codePointAt(i) as number;
    const width = cp > 0xffff ? 2 : 1;
    pushNormalized(String.fromCodePoint(cp), i, i + width, push);
    i += width;
  }
  return { text: out.join(''), starts: Int32Array.from(starts), ends: Int32Array.from(ends) };
}

function pushNormalized(
  text: string,
  start: number,
  end: number,
  push: (text: string, start: number, end: number) => void,
): void {
  for (const ch of text) {
    if (ch.charCodeAt(0) < 0x80) push(ch, start, end);
    else if (INVISIBLE.test(ch)) continue;
    else if (SPACE.test(ch)) push(' ', start, end);
    else if (DASH.test(ch)) push('-', start, end);
    else {
      const nf = ch.normalize('NFKC');
      push(SPACE.test(nf) ? ' ' : DASH.test(nf) ? '-' : nf, start, end);
    }
  }
}

function isEscape(s: string, i: number): boolean {
  return (
    s.charCodeAt(i) === 37 && i + 2 < s.length && isHex(s.charCodeAt(i + 1)) && isHex(s.charCodeAt(i + 2))
  );
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function isDigit(c: number): boolean {
  return c >= 48 && c <= 57;
}
