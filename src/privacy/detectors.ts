import { isIPv6 } from 'node:net';

/** Names of the built-in value detectors. */
export type DetectorName =
  | 'private_key'
  | 'jwt'
  | 'api_key'
  | 'bearer_token'
  | 'url_password'
  | 'email'
  | 'iban'
  | 'payment_card'
  | 'us_ssn'
  | 'phone'
  | 'ipv6'
  | 'ipv4';

/**
 * A value detector: a JavaScript pattern that finds candidates in any string, an optional check that
 * confirms a candidate (Luhn, mod-97, address parsing), and the normal form a `hash` action pseudonymises so
 * that `Alice@Example.com` and `alice@example.com` map to the same token.
 */
export interface Detector {
  readonly name: string;
  /** Global (`g`) pattern; lookarounds keep it from firing inside longer tokens. */
  readonly pattern: RegExp;
  /**
   * The pattern used on a string's normal form when it differs (it may hold any script, e.g. an
   * internationalised e-mail address); ASCII text, the common case, keeps the faster `pattern`.
   */
  readonly normalFormPattern?: RegExp;
  /** Cheap test run first; when it fails the pattern is not run at all. */
  readonly hint?: (s: string) => boolean;
  /** Confirms a candidate match (checksums, address syntax). */
  readonly validate?: (match: string) => boolean;
  /**
   * Finds the valid parts of a candidate that failed as a whole (a card number followed by another
   * number); returns `[start, end)` ranges within the candidate.
   */
  readonly locate?: (match: string) => Array<[number, number]>;
  /** The form hashed by a `hash` action. */
  readonly normalize?: (match: string) => string;
}

// Characters that make a digit run part of a longer token (ids, hex, decimals, versions, base64url).
const NOT_AFTER_TOKEN = '(?<![A-Za-z0-9_.+\\-/])';
const NOT_BEFORE_TOKEN = '(?![A-Za-z0-9_\\-]|[.,]\\d)';

const digitsOnly = (s: string) => s.replace(/\D/g, '');
const DIGIT_RUN_13 = /\d(?:[ .-]?\d){12}/;
const BEARER_HINT = /earer|asic|oken|EARER|ASIC|OKEN/;

/** Luhn checksum over the digits of `s` (separators ignored). */
export function luhnValid(s: string): boolean {
  const d = digitsOnly(s);
  let sum = 0;
  let double = false;
  for (let i = d.length - 1; i >= 0; i--) {
    let n = d.charCodeAt(i) - 48;
    if (double) {
      n *= 2;
      if (n > 9) n -= 9;
    }
    sum += n;
    double = !double;
  }
  return d.length > 0 && sum % 10 === 0;
}

/** True when `digits` starts with a prefix a major card network issues at that length. */
export function cardNetworkPrefix(digits: string): boolean {
  const len = digits.length;
  const p2 = Number(digits.slice(0, 2));
  const p3 = Number(digits.slice(0, 3));
  const p4 = Number(digits.slice(0, 4));
  if (digits[0] === '4') return len === 13 || len === 16 || len === 19; // Visa
  if (p2 >= 51 && p2 <= 55) return len === 16; // Mastercard
  if (p4 >= 2221 && p4 <= 2720) return len === 16; // Mastercard 2-series
  if (p2 === 34 || p2 === 37) return len === 15; // American Express
  if (p4 === 6011 || p2 === 65 || (p3 >= 644 && p3 <= 649)) return len >= 16 && len <= 19; // Discover
  if (p2 === 62) return len >= 16 && len <= 19; // UnionPay
  if ((p3 >= 300 && p3 <= 305) || p2 === 36 || p2 === 38 || p2 === 39) return len >= 14 && len <= 19; // Diners
  if (p4 >= 3528 && p4 <= 3589) return len >= 16 && len <= 19; // JCB
  if (p2 === 50 || (p2 >= 56 && p2 <= 69)) return len >= 13 && len <= 19; // Maestro
  return false;
}

function cardValid(match: string): boolean {
  const seps = match.replace(/\d/g, '');
  // Mixed separators ("4111 1111-1111") are not how cards are written; rejecting them avoids number lists.
  // Dots only come from the pattern's strict 4-4-4-4 / 4-6-5 alternative (never a decimal number).
  if (seps !== '' && !/^( +|-+|\.+)$/.test(seps)) return false;
  const d = digitsOnly(match);
  return d.length >= 13 && d.length <= 19 && cardNetworkPrefix(d) && luhnValid(d);
}

/** Sub-ranges of a separated digit run that are valid card numbers (e.g. `4111 1111 1111 1111 2`). */
function cardRanges(match: string): Array<[number, number]> {
  const groups: Array<[number, number]> = [];
  for (const g of match.matchAll(/\d+/g)) groups.push([g.index, g.index + g[0].length]);
  const out: Array<[number, number]> = [];
  let start = 0;
  while (start < groups.length) {
    let found = -1;
    for (let end = groups.length - 1; end >= start; end--) {
      if (cardValid(match.slice(groups[start][0], groups[end][1]))) {
        found = end;
        break;
      }
    }
    if (found >= 0) {
      out.push([groups[start][0], groups[found][1]]);
      start = found + 1;
    } else start++;
  }
  return out;
}

// ISO 13616 lengths by country; a candidate from an unlisted country is rejected.
const IBAN_LENGTHS: Record<string, number> = {
  AD: 24,
  AE: 23,
  AL: 28,
  AT: 20,
  AZ: 28,
  BA: 20,
  BE: 16,
  BG: 22,
  BH: 22,
  BR: 29,
  BY: 28,
  CH: 21,
  CR: 22,
  CY: 28,
  CZ: 24,
  DE: 22,
  DK: 18,
  DO: 28,
  EE: 20,
  EG: 29,
  ES: 24,
  FI: 18,
  FO: 18,
  FR: 27,
  GB: 22,
  GE: 22,
  GI: 23,
  GL: 18,
  GR: 27,
  GT: 28,
  HR: 21,
  HU: 28,
  IE: 22,
  IL: 23,
  IQ: 23,
  IS: 26,
  IT: 27,
  JO: 30,
  KW: 30,
  KZ: 20,
  LB: 28,
  LC: 32,
  LI: 21,
  LT: 20,
  LU: 20,
  LV: 21,
  MC: 27,
  MD: 24,
  ME: 22,
  MK: 19,
  MR: 27,
  MT: 31,
  MU: 30,
  NL: 18,
  NO: 15,
  PK: 24,
  PL: 28,
  PS: 29,
  PT: 25,
  QA: 29,
  RO: 24,
  RS: 22,
  SA: 24,
  SC: 31,
  SE: 24,
  SI: 19,
  SK: 24,
  SM: 27,
  ST: 25,
  SV: 28,
  TL: 23,
  TN: 24,
  TR: 26,
  UA: 29,
  VA: 22,
  VG: 24,
  XK: 20,
};

/** ISO 7064 mod-97-10 check of an IBAN (spaces ignored), including its per-country length. */
export function ibanValid(s: string): boolean {
  const iban = s.replace(/ /g, '').toUpperCase();
  if (!/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(iban)) return false;
  if (IBAN_LENGTHS[iban.slice(0, 2)] !== iban.length) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let rem = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const v = code >= 65 ? String(code - 55) : ch;
    for (const digit of v) rem = (rem * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return rem === 1;
}

function phoneValid(match: string): boolean {
  const d = digitsOnly(match);
  if (match.startsWith('+')) return d.length >= 8 && d.length <= 15 && !/^\+0/.test(match);
  // National formats must carry a separator so zero-padded ids and plain numbers stay untouched.
  if (!/[ ().-]/.test(match)) return false;
  // "00" is the international prefix outside North America: 0044 7700 900123.
  if (match.startsWith('00')) return d.length >= 10 && d.length <= 17;
  if (match.startsWith('0')) return d.length >= 9 && d.length <= 11;
  return d.length === 10 && /^[2-9]/.test(d);
}

/**
 * The built-in detector set, in the order it runs (credentials first, so a key inside a URL or header is
 * removed whole before narrower detectors look at its pieces).
 */
export const BUILTIN_DETECTORS: readonly Detector[] = [
  {
    name: 'private_key',
    pattern:
      /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|[\s\S]*$)/g,
    hint: (s) => s.includes('PRIVATE KEY-----'),
  },
  {
    name: 'jwt',
    pattern:
      /(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}(?![A-Za-z0-9_-])/g,
    hint: (s) => s.includes('eyJ'),
  },
  {
    name: 'api_key',
    hint: (s) => s.length >= 20,
    pattern: new RegExp(
      '(?<![A-Za-z0-9_-])(?:' +
        [
          '(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}', // AWS access key id
          'gh[pousr]_[A-Za-z0-9]{36,255}', // GitHub tokens
          'github_pat_[A-Za-z0-9_]{22,255}', // GitHub fine-grained tokens
          'xox[abposre]-[A-Za-z0-9-]{10,250}', // Slack tokens
          'sk-(?:proj-|ant-[a-z]+\\d{2}-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}', // OpenAI, Anthropic
          'AIza[0-9A-Za-z_-]{35}', // Google API key
          '[rs]k_(?:live|test)_[0-9A-Za-z]{16,250}', // Stripe
          'glpat-[0-9A-Za-z_-]{20,250}', // GitLab
          'hf_[A-Za-z0-9]{30,250}', // Hugging Face
          'https://hooks\\.slack\\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/-]{10,250}', // Slack webhook
          // AWS secret access key: 40 base64 characters, only where the text names it (alone it is any token).
          '(?<=(?:[Aa][Ww][Ss]|[Ss]ecret|SECRET)[A-Za-z0-9_ .-]{0,40}["\']?\\s{0,3}[:=]\\s{0,3}["\']?)(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])',
        ].join('|') +
        ')(?![A-Za-z0-9_-])',
      'g',
    ),
  },
  {
    name: 'bearer_token',
    // A credential has a digit or punctuation in it, or is at least 20 letters long, which keeps "basic
    // features" or "token validation" intact.
    pattern:
      /(?<![A-Za-z0-9_-])(?:[Bb]earer|BEARER|[Bb]asic|BASIC|[Tt]oken|TOKEN)[ \t]+(?:(?=[A-Za-z0-9._~+/-]*[0-9._~+/=])[A-Za-z0-9._~+/-]{8,4096}|[A-Za-z]{20,4096}(?![A-Za-z0-9._~+/-]))=*/g,
    hint: (s) => BEARER_HINT.test(s),
  },
  {
    name: 'url_password',
    // The password of a URL's user information (postgres://admin:<password>@host): only the password goes.
    pattern: /(?<=[A-Za-z][A-Za-z0-9+.-]{0,30}:\/\/[^\s/?#@:]{0,256}:)[^\s/?#@]{1,256}(?=@)/g,
    hint: (s) => s.includes('://'),
  },
  {
    name: 'email',
    // Internationalised addresses too (jörg@bücher.de, RFC 6531): letters and marks of any script.
    pattern:
      /(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}(?:[A-Za-z]{2,24}|xn--[A-Za-z0-9-]{1,59})(?![A-Za-z0-9-]|\.[A-Za-z0-9])/g,
    normalFormPattern:
      /(?<![\p{L}\p{M}\p{N}._%+-])[\p{L}\p{M}\p{N}._%+-]{1,64}@(?:[\p{L}\p{N}](?:[\p{L}\p{M}\p{N}-]{0,61}[\p{L}\p{M}\p{N}])?\.){1,8}(?:\p{L}[\p{L}\p{M}]{1,23}|xn--[A-Za-z0-9-]{1,59})(?![\p{L}\p{M}\p{N}-]|\.[\p{L}\p{N}])/gu,
    hint: (s) => s.includes('@'),
    normalize: (m) => m.toLowerCase(),
  },
  {
    name: 'iban',
    hint: (s) => /[A-Za-z]{2}\d\d/.test(s),
    // Either case (an IBAN typed in lower case is still one); mod-97 and the country's length decide.
    pattern:
      /(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?![A-Za-z0-9])/g,
    validate: ibanValid,
    normalize: (m) => m.replace(/ /g, '').toUpperCase(),
  },
  {
    name: 'payment_card',
    pattern: new RegExp(
      `${NOT_AFTER_TOKEN}(?:\\d(?:[ -]{0,2}\\d){12,18}|\\d{4}\\.\\d{4}\\.\\d{4}\\.\\d{4}(?:\\.\\d{3})?|\\d{4}\\.\\d{6}\\.\\d{5})${NOT_BEFORE_TOKEN}`,
      'g',
    ),
    hint: (s) => DIGIT_RUN_13.test(s),
    validate: cardValid,
    locate: cardRanges,
    normalize: digitsOnly,
  },
  {
    name: 'us_ssn',
    pattern: new RegExp(
      `${NOT_AFTER_TOKEN}(?!000|666|9\\d\\d)\\d{3}-(?!00)\\d{2}-(?!0000)\\d{4}${NOT_BEFORE_TOKEN}`,
      'g',
    ),
    hint: (s) => /\d-\d/.test(s),
  },
  {
    name: 'phone',
    hint: (s) => /\d\d/.test(s),
    pattern: new RegExp(
      `(?:(?<![A-Za-z0-9_+])\\+[1-9](?:[ .-]?\\(?\\d\\)?){6,16}|${NOT_AFTER_TOKEN}(?:\\(\\d{3}\\) ?|\\d{3}[ .-])\\d{3}[ .-]\\d{4}|${NOT_AFTER_TOKEN}00[1-9](?:[ .-]?\\d){7,14}|${NOT_AFTER_TOKEN}0[1-9]\\d{0,4}(?:[ -]\\d{2,8}){1,4})${NOT_BEFORE_TOKEN}`,
      'g',
    ),
    validate: phoneValid,
    normalize: (m) => (m.startsWith('+') ? '+' : '') + digitsOnly(m),
  },
  {
    name: 'ipv6',
    pattern:
      /(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?<=:)\d{1,3}(?:\.\d{1,3}){3})?(?![A-Za-z0-9_:]|\.\d)/g,
    hint: (s) => s.includes(':'),
    // The candidate pattern is loose; the address parser decides. Bare "::" and clock times are not addresses.
    validate: (m) =>
      /[0-9A-Fa-f]/.test(m) &&
      (m.includes('::') || (m.match(/:/g)?.length ?? 0) === 7 || m.includes('.')) &&
      isIPv6(m),
    normalize: (m) => m.toLowerCase(),
  },
  {
    name: 'ipv4',
    hint: (s) => /\d\.\d/.test(s),
    pattern:
      /(?<![A-Za-z0-9_.-])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![A-Za-z0-9_-]|\.\d)/g,
  },
];

/**
 * False only when no built-in detector can find anything in `s` (used before any detector runs, so a clean
 * short value costs one pass over its characters). It must stay a necessary condition of every detector
 * above: e-mail needs "@", IPv6 ":", IBAN, card, SSN, phone and IPv4 a digit; the rest need length — a
 * bearer credential at least 14 characters ("Token " and 8), an API key 20 (its hint), a JWT 26 and a PEM
 * block 27. `test/privacy/redactor-equivalence.test.ts` checks it against every detector's samples.
 */
export function mayHoldBuiltinMatch(s: string): boolean {
  const n = s.length;
  if (n >= 20) return true;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if ((c >= 48 && c <= 57) || c === 64 || c === 58) return true; // digit, "@", ":"
    // "%" (a URL escape) and non-ASCII (full-width digits, "＠", invisible characters): the normal form decides.
    if (c === 37 || c >= 0x80) return true;
  }
  return n >= 14 && BEARER_HINT.test(s);
}

/**
 * The detector set as Go RE2 patterns (no lookarounds, no backreferences) for the collector's redaction
 * processor `blocked_values`: the second line of defence for records that bypassed the SDK. RE2 cannot run
 * the checksums, so these are written to be narrow (network prefixes for cards, country-shaped IBANs) and
 * never match the ids mltrail writes (UUIDs, `sha256:` digests, trace and span ids, ISO timestamps).
 * `collector/config.yaml` mirrors these; `test/privacy/collector-mirror.test.ts` checks that it does.
 */
export const DETECTOR_PATTERNS: Readonly<Record<DetectorName, string>> = {
  private_key:
    '-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----(?:[\\s\\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----|[\\s\\S]*)',
  jwt: 'eyJ[A-Za-z0-9_-]{5,}\\.eyJ[A-Za-z0-9_-]{5,}\\.[A-Za-z0-9_-]{8,}',
  api_key:
    '\\b(?:(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}|xox[abposre]-[A-Za-z0-9-]{10,250}|sk-(?:proj-|ant-[a-z]+[0-9]{2}-|svcacct-|admin-)?[A-Za-z0-9_-]{20,250}|AIza[0-9A-Za-z_-]{35}|[rs]k_(?:live|test)_[0-9A-Za-z]{16,250}|glpat-[0-9A-Za-z_-]{20,250}|hf_[A-Za-z0-9]{30,250})\\b',
  url_password: '[A-Za-z][A-Za-z0-9+.-]*://[^\\s/?#@:]*:[^\\s/?#@]+@',
  bearer_token: '\\b(?:[Bb]earer|[Bb]asic|[Tt]oken)[ \\t]+[A-Za-z0-9._~+/-]*[0-9._~+/=][A-Za-z0-9._~+/-]*=*',
  email: '[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.){1,8}[A-Za-z]{2,24}\\b',
  iban: '\\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\\b',
  // Contiguous digits with a network prefix, or 4-4-4-4 / Amex 4-6-5 groups with one kind of separator:
  // never the 8-4-4-4-12 groups of a UUID.
  payment_card:
    '\\b(?:4[0-9]{12}(?:[0-9]{3}){0,2}|5[1-5][0-9]{14}|2[2-7][0-9]{14}|3[47][0-9]{13}|3(?:0[0-5]|[689][0-9])[0-9]{11,16}|6(?:011|5[0-9]{2}|4[4-9][0-9])[0-9]{12,15}|62[0-9]{14,17}|35[0-9]{14,17}|(?:4[0-9]{3}|5[1-5][0-9]{2}|2[2-7][0-9]{2}|6[0-9]{3}|3[5-9][0-9]{2})(?:(?: [0-9]{4}){3}|(?:-[0-9]{4}){3})|3[47][0-9]{2}(?: [0-9]{6} [0-9]{5}|-[0-9]{6}-[0-9]{5}))\\b',
  us_ssn: '\\b[0-8][0-9]{2}-[0-9]{2}-[0-9]{4}\\b',
  phone: '\\+[1-9][0-9 ().-]{6,20}[0-9]|\\(?\\b[2-9][0-9]{2}\\)?[ .-][0-9]{3}[ .-][0-9]{4}\\b',
  ipv4: '\\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\b',
  ipv6: '\\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\\b|\\b(?:[0-9A-Fa-f]{1,4}:){1,6}:(?:[0-9A-Fa-f]{1,4}:){0,5}[0-9A-Fa-f]{1,4}\\b|::(?:[0-9A-Fa-f]{1,4}:){0,6}[0-9A-Fa-f]{1,4}\\b',
};
