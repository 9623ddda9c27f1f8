// The redactor as it was before the fast paths (commit ee5b633), frozen as the oracle for
// redactor-equivalence.test.ts: a straightforward walk that copies a path array per node, runs every
// detector's hint and pattern over every string and records into plain Sets. The optimised redactor in
// src/privacy must give exactly the same value and summary for every input. Do not optimise this file.

import { diag } from '@opentelemetry/api';
import { canonicalize } from '../../src/integrity/index.js';
import {
  BUILTIN_DETECTORS,
  cardNetworkPrefix,
  type Detector,
  type DetectorName,
  luhnValid,
} from '../../src/privacy/detectors.js';
import { RedactionConfigError } from '../../src/privacy/errors.js';
import { compileKeyPath, type PathStep, renderPath } from '../../src/privacy/key-path.js';
import {
  MIN_PSEUDONYM_KEY_BYTES,
  Pseudonymizer,
  resolvePseudonymKey,
} from '../../src/privacy/pseudonymizer.js';
import type {
  Redacted,
  RedactionRule,
  RedactionSummary,
  Redactor,
  RedactorOptions,
  RuleAction,
} from '../../src/privacy/redactor.js';
import { needsNormalizing, normalizeForDetection } from '../../src/privacy/text-normalizer.js';
import { ATTR_ML_PREDICTION_SUBJECT_ID } from '../../src/semconv/index.js';

const MAX_LISTED_PATHS = 64;

/** One redaction call's bookkeeping: what changed where, counted exactly, paths listed up to a cap. */
class RedactionTally {
  readonly masked = new Set<string>();
  readonly removed = new Set<string>();
  readonly hashed = new Set<string>();
  readonly truncated = new Set<string>();
  maskedCount = 0;
  removedCount = 0;
  hashedCount = 0;
  truncatedCount = 0;
  nodes = 0;
  readonly byRule: Record<string, number> = {};
  readonly seen = new Set<object>();

  note(kind: 'masked' | 'removed' | 'hashed' | 'truncated', path: string, rule: string | undefined): void {
    const set = this[kind];
    if (set.size < MAX_LISTED_PATHS) set.add(path);
    if (kind === 'masked') this.maskedCount++;
    else if (kind === 'removed') this.removedCount++;
    else if (kind === 'hashed') this.hashedCount++;
    else this.truncatedCount++;
    if (rule !== undefined) this.byRule[rule] = (this.byRule[rule] ?? 0) + 1;
  }

  get changes(): number {
    return this.maskedCount + this.removedCount + this.hashedCount + this.truncatedCount;
  }

  summary(): RedactionSummary {
    return {
      masked: [...this.masked],
      removed: [...this.removed],
      hashed: [...this.hashed],
      truncated: [...this.truncated],
      maskedCount: this.maskedCount,
      removedCount: this.removedCount,
      hashedCount: this.hashedCount,
      byRule: { ...this.byRule },
    };
  }
}

/**
 * Rules every redactor adds after the user's (turn off with `defaultRules: false`): values under
 * secret-named keys are masked wherever they appear, and the prediction subject is pseudonymised (masked
 * when no key is set).
 */
const DEFAULT_RULES: readonly RedactionRule[] = [
  ...[
    'password',
    'passwd',
    'secret',
    'client_secret',
    'token',
    'access_token',
    'refresh_token',
    'id_token',
    'api_key',
    'apikey',
    'x-api-key',
    'authorization',
    'proxy-authorization',
    'cookie',
    'set-cookie',
    'private_key',
    'aws_secret_access_key',
    'secret_access_key',
    'session_token',
  ].map((name): RedactionRule => ({ path: `**["${name}"]`, action: 'mask', ignoreCase: true })),
  { path: `["${ATTR_ML_PREDICTION_SUBJECT_ID}"]`, action: 'hash' },
];

const DEFAULT_MAX_STRING = 1 << 20;
const NAME_RE = /^[a-z0-9_]{1,64}$/;
// Whole strings of the shapes mltrail writes (UUIDs, sha256 digests, trace/span ids with a hex letter, ISO
// timestamps) hold nothing to detect; skipping them saves most of the scanning in an audit body.
const MLTRAIL_ID =
  /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|sha256:[0-9a-f]{64}|(?=[0-9]*[a-f])[0-9a-f]{16}(?:[0-9a-f]{16})?|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d))$/;

interface CompiledRule {
  label: string;
  steps: PathStep[];
  action: RuleAction;
  censor: string;
  ignoreCase: boolean;
}

interface ActiveDetector {
  detector: Detector;
  action: 'mask' | 'hash';
  mask: string;
}

const REMOVE = Symbol('remove');
type Parts = readonly (string | number)[];

/**
 * Builds a redactor: rules compiled once, detectors chosen once, key resolved once. Throws
 * {@link RedactionConfigError} naming the rule or pattern when the options are wrong.
 *
 * @example
 * const redactor = createRedactor({
 *   rules: [{ path: 'customer.email', action: 'hash' }, { path: 'customer.address', action: 'remove' }],
 * });
 * const { value, summary } = redactor.redact({ customer: { email: 'a@b.example', address: '…' }, note: 'call +44 20 7946 0958' });
 */
export function createReferenceRedactor(options: RedactorOptions = {}): Redactor {
  return new PolicyRedactor(options);
}

class PolicyRedactor implements Redactor {
  readonly keyId: string | undefined;
  readonly #rules: CompiledRule[];
  /** Rules of the form `**.name` (most of them), matched by a map lookup per name part, not the NFA. */
  readonly #anywhere = new Map<string, number>();
  readonly #anywhereIgnoreCase = new Map<string, number>();
  readonly #nfaRoots: number[];
  readonly #detectors: ActiveDetector[];
  readonly #pseudonymizer: Pseudonymizer | undefined;
  readonly #censor: string;
  readonly #parseJson: boolean;
  readonly #maxString: number;
  readonly #maxDepth: number;
  readonly #maxNodes: number;
  readonly #protected: RegExp;
  readonly #userPatterns: boolean;
  readonly #splitCache = new Map<string, readonly string[]>();

  constructor(options: RedactorOptions) {
    this.#censor = options.censor ?? '[REDACTED]';
    this.#parseJson = options.parseJsonStrings ?? true;
    this.#maxString = positiveInt(options.maxStringChars, DEFAULT_MAX_STRING, 'maxStringChars');
    this.#maxDepth = positiveInt(options.maxDepth, 64, 'maxDepth');
    this.#maxNodes = positiveInt(options.maxNodes, 200_000, 'maxNodes');
    const strict = options.strict ?? false;

    const userRules = (options.rules ?? []).map((r, i) => this.#compileRule(r, i));
    const defaults =
      (options.defaultRules ?? true) ? DEFAULT_RULES.map((r, i) => this.#compileRule(r, i)) : [];
    if (userRules.length + defaults.length > 0xffff)
      throw new RedactionConfigError('mltrail: too many redaction rules');
    for (const r of [...userRules, ...defaults]) {
      if (r.steps.length > 255)
        throw new RedactionConfigError(`mltrail: redaction rule ${r.label} is too deep`, r.label);
    }

    this.#detectors = this.#chooseDetectors(options);
    this.#userPatterns = (options.patterns ?? []).length > 0;

    const wantsHash =
      userRules.some((r) => r.action === 'hash') || this.#detectors.some((d) => d.action === 'hash');
    const key = resolvePseudonymKey(options.key, options.env ?? process.env);
    if (key !== undefined && key.length > 0) {
      if (key.length < MIN_PSEUDONYM_KEY_BYTES) {
        const msg = `mltrail: the pseudonym key is ${key.length} bytes; use at least ${MIN_PSEUDONYM_KEY_BYTES} random bytes`;
        if (strict) throw new RedactionConfigError(msg);
        diag.warn(msg);
      }
      this.#pseudonymizer = new Pseudonymizer(key);
      this.keyId = this.#pseudonymizer.keyId;
    } else if (wantsHash) {
      const msg =
        'mltrail: redaction asks for hash pseudonyms but no key is set (option "key" or MLTRAIL_PSEUDONYM_KEY)';
      if (strict) throw new RedactionConfigError(msg);
      diag.warn(`${msg}; masking those values instead`);
    }

    this.#rules = [...userRules, ...defaults];
    const roots: number[] = [];
    this.#rules.forEach((r, i) => {
      const [first, second] = r.steps;
      if (r.steps.length === 2 && first.kind === 'any' && second.kind === 'name') {
        const map = r.ignoreCase ? this.#anywhereIgnoreCase : this.#anywhere;
        if (!map.has(second.name)) map.set(second.name, i);
      } else roots.push(i << 8);
    });
    this.#nfaRoots = roots;
    const censors = new Set([this.#censor, ...this.#rules.map((r) => r.censor)]);
    // Masks and pseudonyms already in a value are never scanned again, which makes redaction idempotent.
    this.#protected = new RegExp(
      [
        'pii:[0-9a-f]{8}:[A-Za-z0-9_-]{43}',
        '\\[REDACTED:[a-z0-9_]+\\]',
        '\\[truncated \\d+ chars\\]',
        ...[...censors].filter((c) => c !== '').map(escapeRegExp),
      ].join('|'),
      'g',
    );
  }

  redact(value: unknown): Redacted<unknown> {
    const tally = new RedactionTally();
    const out = this.#walk(value, [], this.#rootStates(), 0, tally);
    return { value: out === REMOVE ? undefined : out, summary: tally.summary() };
  }

  redactString(value: string): Redacted<string> {
    const tally = new RedactionTally();
    const out = this.#string(String(value), [], this.#rootStates(), 0, tally);
    return { value: out, summary: tally.summary() };
  }

  // ---- construction helpers

  #compileRule(rule: RedactionRule | string, index: number): CompiledRule {
    const r: RedactionRule = typeof rule === 'string' ? { path: rule, action: 'mask' } : rule;
    if (r === null || typeof r !== 'object' || typeof r.path !== 'string') {
      throw new RedactionConfigError(
        `mltrail: redaction rule #${index} must be a path string or { path, action }`,
      );
    }
    if (!['mask', 'remove', 'hash', 'allow'].includes(r.action)) {
      throw new RedactionConfigError(
        `mltrail: redaction rule ${JSON.stringify(r.path)} has action ${JSON.stringify(r.action)}; use mask, remove, hash or allow`,
        r.path,
      );
    }
    const steps = compileKeyPath(r.path);
    const ignoreCase = r.ignoreCase ?? false;
    return {
      label: r.path,
      steps: ignoreCase
        ? steps.map((s): PathStep => (s.kind === 'name' ? { kind: 'name', name: s.name.toLowerCase() } : s))
        : steps,
      action: r.action,
      censor: r.censor ?? this.#censor,
      ignoreCase,
    };
  }

  #chooseDetectors(options: RedactorOptions): ActiveDetector[] {
    const out: ActiveDetector[] = [];
    if (options.detectors !== false) {
      const chosen = options.detectors ?? {};
      for (const name of Object.keys(chosen)) {
        if (!BUILTIN_DETECTORS.some((d) => d.name === name)) {
          throw new RedactionConfigError(
            `mltrail: unknown detector ${JSON.stringify(name)}; known: ${BUILTIN_DETECTORS.map((d) => d.name).join(', ')}`,
            name,
          );
        }
      }
      for (const d of BUILTIN_DETECTORS) {
        const action = chosen[d.name as DetectorName] ?? 'mask';
        if (action === 'off') continue;
        if (action !== 'mask' && action !== 'hash') {
          throw new RedactionConfigError(
            `mltrail: detector ${d.name} has action ${JSON.stringify(action)}; use mask, hash or off`,
            d.name,
          );
        }
        out.push({ detector: d, action, mask: `[REDACTED:${d.name}]` });
      }
    }
    for (const p of options.patterns ?? []) {
      const name = p?.name;
      if (typeof name !== 'string' || !NAME_RE.test(name)) {
        throw new RedactionConfigError(
          `mltrail: redaction pattern name ${JSON.stringify(name)} must be 1-64 lower-case letters, digits or _`,
          String(name),
        );
      }
      if (out.some((d) => d.detector.name === name)) {
        throw new RedactionConfigError(`mltrail: redaction pattern ${name} is defined twice`, name);
      }
      let re: RegExp;
      try {
        re =
          p.pattern instanceof RegExp
            ? new RegExp(
                p.pattern.source,
                p.pattern.flags.includes('g') ? p.pattern.flags : `${p.pattern.flags}g`,
              )
            : new RegExp(p.pattern, 'g');
      } catch (err) {
        throw new RedactionConfigError(
          `mltrail: redaction pattern ${name} is not a valid regular expression: ${(err as Error).message}`,
          name,
        );
      }
      if (new RegExp(re.source, re.flags.replace('g', '')).test('')) {
        throw new RedactionConfigError(`mltrail: redaction pattern ${name} matches the empty string`, name);
      }
      const action = p.action ?? 'mask';
      if (action !== 'mask' && action !== 'hash') {
        throw new RedactionConfigError(
          `mltrail: redaction pattern ${name} has action ${JSON.stringify(action)}; use mask or hash`,
          name,
        );
      }
      out.push({ detector: { name, pattern: re }, action, mask: `[REDACTED:${name}]` });
    }
    return out;
  }

  // ---- rule matching (a small NFA over name parts; a state is ruleIndex << 8 | stepIndex)

  #rootStates(): number[] {
    return this.#nfaRoots.length === 0 ? [] : this.#closure(this.#nfaRoots);
  }

  #closure(states: number[]): number[] {
    const out: number[] = [];
    const stack = [...states];
    while (stack.length > 0) {
      const s = stack.pop()!;
      if (out.includes(s)) continue;
      out.push(s);
      const rule = this.#rules[s >> 8];
      const step = rule.steps[s & 0xff];
      if (step !== undefined && step.kind === 'any') stack.push(s + 1);
    }
    return out;
  }

  /** Advances through the name parts of one key; returns the new states and the winning rule, if any. */
  #advance(states: readonly number[], key: string | number): { states: number[]; rule: number } {
    const anywhere = this.#anywhere.size + this.#anywhereIgnoreCase.size > 0;
    if (states.length === 0 && !anywhere) return { states: [], rule: -1 };
    const parts = typeof key === 'number' ? [String(key)] : this.#split(key);
    let current = states as number[];
    for (const part of parts) {
      let lower: string | undefined;
      let winner = -1;
      if (anywhere) {
        const exact = this.#anywhere.get(part);
        if (exact !== undefined) winner = exact;
        if (this.#anywhereIgnoreCase.size > 0) {
          lower = part.toLowerCase();
          const folded = this.#anywhereIgnoreCase.get(lower);
          if (folded !== undefined && (winner < 0 || folded < winner)) winner = folded;
        }
      }
      if (current.length === 0) {
        if (winner >= 0) return { states: current, rule: winner };
        continue;
      }
      const next: number[] = [];
      for (const s of current) {
        const rule = this.#rules[s >> 8];
        const step = rule.steps[s & 0xff];
        if (step === undefined) continue;
        if (step.kind === 'any') next.push(s);
        else if (step.kind === 'one') next.push(s + 1);
        else if (rule.ignoreCase) {
          lower ??= part.toLowerCase();
          if (step.name === lower) next.push(s + 1);
        } else if (step.name === part) next.push(s + 1);
      }
      current = next.length === 0 ? next : this.#closure(next);
      for (const s of current) {
        const r = s >> 8;
        if ((s & 0xff) === this.#rules[r].steps.length && (winner < 0 || r < winner)) winner = r;
      }
      // A rule that matches part-way through a dotted key covers everything under it.
      if (winner >= 0) return { states: current, rule: winner };
      if (current.length === 0 && !anywhere) break;
    }
    return { states: current, rule: -1 };
  }

  #split(key: string): readonly string[] {
    let parts = this.#splitCache.get(key);
    if (parts === undefined) {
      parts = key.split('.');
      if (this.#splitCache.size >= 4096) this.#splitCache.clear();
      this.#splitCache.set(key, parts);
    }
    return parts;
  }

  // ---- traversal

  #walk(value: unknown, parts: Parts, states: number[], depth: number, tally: RedactionTally): unknown {
    if (++tally.nodes > this.#maxNodes) {
      tally.note('truncated', renderPath(parts), undefined);
      return '[Truncated]';
    }
    switch (typeof value) {
      case 'string':
        return this.#string(value, parts, states, depth, tally);
      case 'number':
        return this.#number(value, parts, tally);
      case 'boolean':
      case 'bigint':
        return value;
      case 'undefined':
      case 'function':
      case 'symbol':
        return REMOVE;
    }
    if (value === null) return null;
    const obj = value as object;
    if (depth >= this.#maxDepth) {
      tally.note('truncated', renderPath(parts), undefined);
      return '[MaxDepth]';
    }
    if (tally.seen.has(obj)) {
      tally.note('truncated', renderPath(parts), undefined);
      return '[Circular]';
    }
    if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
    // Binary payloads are copied, not scanned: there is no text to match in them.
    if (ArrayBuffer.isView(obj))
      return obj instanceof DataView ? `[DataView ${obj.byteLength} bytes]` : (obj as Uint8Array).slice();
    tally.seen.add(obj);
    try {
      if (Array.isArray(obj)) return this.#array(obj, parts, states, depth, tally);
      if (obj instanceof Map)
        return this.#entries(
          [...obj].map(([k, v]) => [String(k), v]),
          parts,
          states,
          depth,
          tally,
        );
      if (obj instanceof Set) return this.#array([...obj], parts, states, depth, tally);
      const entries: [string, unknown][] = [];
      for (const k of Object.keys(obj)) {
        try {
          entries.push([k, (obj as Record<string, unknown>)[k]]);
        } catch {
          entries.push([k, '[Unreadable]']);
        }
      }
      return this.#entries(entries, parts, states, depth, tally);
    } finally {
      tally.seen.delete(obj);
    }
  }

  #array(
    arr: readonly unknown[],
    parts: Parts,
    states: number[],
    depth: number,
    tally: RedactionTally,
  ): unknown[] {
    const out: unknown[] = [];
    for (let i = 0; i < arr.length; i++) {
      const v = this.#child(arr[i], [...parts, i], states, i, depth, tally);
      if (v !== REMOVE) out.push(v);
    }
    return out;
  }

  #entries(
    entries: [string, unknown][],
    parts: Parts,
    states: number[],
    depth: number,
    tally: RedactionTally,
  ): object {
    const out: Record<string, unknown> = {};
    for (const [key, v] of entries) {
      // Keys are redacted like values (summaries name the parent); alike redacted keys are numbered.
      let k = this.#scan(key, parts, tally);
      if (Object.hasOwn(out, k)) {
        let n = 2;
        while (Object.hasOwn(out, `${k}#${n}`)) n++;
        k = `${k}#${n}`;
      }
      const c = this.#child(v, [...parts, k], states, k, depth, tally);
      if (c === REMOVE) continue;
      if (k === '__proto__')
        Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
      else out[k] = c;
    }
    return out;
  }

  #child(
    value: unknown,
    parts: Parts,
    states: number[],
    key: string | number,
    depth: number,
    tally: RedactionTally,
  ): unknown {
    const { states: next, rule } = this.#advance(states, key);
    if (rule < 0) return this.#walk(value, parts, next, depth + 1, tally);
    return this.#apply(this.#rules[rule], value, parts, depth, tally);
  }

  #apply(rule: CompiledRule, value: unknown, parts: Parts, depth: number, tally: RedactionTally): unknown {
    const path = renderPath(parts);
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return REMOVE;
    switch (rule.action) {
      case 'allow':
        return this.#copy(value, parts, depth + 1, tally);
      case 'remove':
        tally.note('removed', path, rule.label);
        return REMOVE;
      case 'hash':
        if (this.#pseudonymizer !== undefined) {
          if (typeof value === 'string' && this.#pseudonymizer.isOwnPseudonym(value)) return value;
          tally.note('hashed', path, rule.label);
          return this.#pseudonymizer.pseudonym(
            typeof value === 'string'
              ? value
              : stableText(this.#copy(value, parts, depth + 1, new RedactionTally())),
          );
        }
        if (value === rule.censor) return value;
        tally.note('masked', path, rule.label);
        return rule.censor;
      default:
        if (value === rule.censor) return value;
        tally.note('masked', path, rule.label);
        return rule.censor;
    }
  }

  /** A bounded copy with no rules and no detectors (for `allow`, and to hash structured values). */
  #copy(value: unknown, parts: Parts, depth: number, tally: RedactionTally): unknown {
    if (++tally.nodes > this.#maxNodes) return '[Truncated]';
    if (typeof value === 'string') return this.#cut(value, parts, tally);
    if (typeof value !== 'object' || value === null)
      return typeof value === 'function' || typeof value === 'symbol' ? REMOVE : value;
    if (depth >= this.#maxDepth) return '[MaxDepth]';
    if (tally.seen.has(value)) return '[Circular]';
    if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
    if (ArrayBuffer.isView(value))
      return value instanceof DataView
        ? `[DataView ${value.byteLength} bytes]`
        : (value as Uint8Array).slice();
    tally.seen.add(value);
    try {
      if (Array.isArray(value) || value instanceof Set) {
        const out: unknown[] = [];
        let i = 0;
        for (const v of value) {
          const c = this.#copy(v, [...parts, i++], depth + 1, tally);
          if (c !== REMOVE) out.push(c);
        }
        return out;
      }
      const src = value instanceof Map ? Object.fromEntries(value) : (value as Record<string, unknown>);
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(src)) {
        let v: unknown;
        try {
          v = src[k];
        } catch {
          v = '[Unreadable]';
        }
        const c = this.#copy(v, [...parts, k], depth + 1, tally);
        if (c === REMOVE) continue;
        if (k === '__proto__')
          Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
        else out[k] = c;
      }
      return out;
    } finally {
      tally.seen.delete(value);
    }
  }

  #number(value: number, parts: Parts, tally: RedactionTally): unknown {
    // A card number stored as a number is still a card number; features are never this shape.
    if (!Number.isSafeInteger(value) || value < 1e12) return value;
    const card = this.#detectors.find((d) => d.detector.name === 'payment_card');
    if (card === undefined) return value;
    const digits = String(value);
    if (!cardNetworkPrefix(digits) || !luhnValid(digits)) return value;
    return this.#replacement(card, digits, renderPath(parts), tally);
  }

  #cut(value: string, parts: Parts, tally: RedactionTally): string {
    if (value.length <= this.#maxString) return value;
    tally.note('truncated', renderPath(parts), undefined);
    return `${value.slice(0, this.#maxString)}[truncated ${value.length - this.#maxString} chars]`;
  }

  #string(value: string, parts: Parts, states: number[], depth: number, tally: RedactionTally): string {
    const text = this.#cut(value, parts, tally);
    if (this.#parseJson && depth < this.#maxDepth) {
      const fromJson = this.#jsonString(text, parts, states, depth, tally);
      if (fromJson !== undefined) return fromJson;
    }
    return this.#scan(text, parts, tally);
  }

  /** Redacts a string holding a JSON object or array as JSON (rules continue into it); undefined if not JSON. */
  #jsonString(
    text: string,
    parts: Parts,
    states: number[],
    depth: number,
    tally: RedactionTally,
  ): string | undefined {
    const first = firstNonSpace(text);
    if (first !== '{' && first !== '[') return undefined;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return undefined;
    }
    if (parsed === null || typeof parsed !== 'object') return undefined;
    const before = tally.changes;
    const out = this.#walk(parsed, parts, states, depth + 1, tally);
    if (tally.changes === before) return text;
    try {
      return canonicalize(out);
    } catch {
      return JSON.stringify(out);
    }
  }

  /** Runs every detector over the unprotected parts of a string, replacing only what matched. */
  #scan(text: string, parts: Parts, tally: RedactionTally): string {
    if (this.#detectors.length === 0 || text.length < 3) return text;
    // Shorter than the shortest IPv4 address and without "@" or ":": no built-in detector can match.
    if (text.length < 7 && !this.#userPatterns && !text.includes('@') && !text.includes(':')) return text;
    if (text.length <= 71 && MLTRAIL_ID.test(text)) return text; // 71 = "sha256:" + 64 hex digits
    if (needsNormalizing(text)) return this.#scanNormalized(text, parts, tally);
    let current = text;
    // A replacement can expose a boundary a later detector needs; a second pass settles that, so the
    // output of redaction is already a fixed point (redacting it again changes nothing).
    for (let pass = 0; pass < 3; pass++) {
      const before = tally.changes;
      current = this.#scanOnce(current, parts, tally);
      if (tally.changes === before) break;
    }
    return current;
  }

  /** Detection on the normal form; each match replaces the original characters it came from. */
  #scanNormalized(text: string, parts: Parts, tally: RedactionTally): string {
    let current = text;
    for (let pass = 0; pass < 3; pass++) {
      if (!needsNormalizing(current)) return this.#scan(current, parts, tally);
      const norm = normalizeForDetection(current);
      const n = norm.text;
      // Pieces of the normal form: [start, end, replacement] (replacement undefined: not replaced).
      let pieces: Array<{ s: number; e: number; fixed: boolean; out?: string }> = [];
      let last = 0;
      this.#protected.lastIndex = 0;
      for (const m of n.matchAll(this.#protected)) {
        if (m.index > last) pieces.push({ s: last, e: m.index, fixed: false });
        pieces.push({ s: m.index, e: m.index + m[0].length, fixed: true });
        last = m.index + m[0].length;
      }
      if (last < n.length) pieces.push({ s: last, e: n.length, fixed: false });
      let path: string | undefined;
      for (const active of this.#detectors) {
        const { detector } = active;
        if (detector.hint !== undefined && !detector.hint(n)) continue;
        const next: typeof pieces = [];
        for (const p of pieces) {
          const piece = n.slice(p.s, p.e);
          if (p.fixed || (detector.hint !== undefined && !detector.hint(piece))) {
            next.push(p);
            continue;
          }
          let at = 0;
          const pattern = detector.normalFormPattern ?? detector.pattern;
          pattern.lastIndex = 0;
          for (const m of piece.matchAll(pattern)) {
            if (m[0] === '') continue;
            let ranges: Array<[number, number]>;
            if (detector.validate === undefined || detector.validate(m[0])) ranges = [[0, m[0].length]];
            else if (detector.locate !== undefined) ranges = detector.locate(m[0]);
            else continue;
            for (const [rs, re] of ranges) {
              const start = m.index + rs;
              if (start < at) continue;
              if (start > at) next.push({ s: p.s + at, e: p.s + start, fixed: false });
              path ??= renderPath(parts);
              const out = this.#replacement(active, piece.slice(start, m.index + re), path, tally);
              next.push({ s: p.s + start, e: p.s + m.index + re, fixed: true, out });
              at = m.index + re;
            }
          }
          if (at < piece.length) next.push({ s: p.s + at, e: p.e, fixed: false });
        }
        pieces = next;
      }
      const replaced = pieces.filter((p) => p.out !== undefined);
      if (replaced.length === 0) break;
      let out = '';
      let from = 0;
      for (const p of replaced) {
        const s = norm.starts[p.s];
        const e = norm.ends[p.e - 1];
        if (s < from) continue;
        const original = current.slice(s, e);
        out += current.slice(from, s);
        out += /%[0-9A-Fa-f]{2}|\d\+\d/.test(original) ? encodeURIComponent(p.out as string) : p.out;
        from = e;
      }
      current = out + current.slice(from);
    }
    return current;
  }

  #scanOnce(text: string, parts: Parts, tally: RedactionTally): string {
    let pieces: string[];
    let fixed: boolean[];
    if (text.includes('pii:') || text.includes('[')) {
      pieces = [];
      fixed = [];
      let last = 0;
      this.#protected.lastIndex = 0;
      for (const m of text.matchAll(this.#protected)) {
        if (m.index > last) {
          pieces.push(text.slice(last, m.index));
          fixed.push(false);
        }
        pieces.push(m[0]);
        fixed.push(true);
        last = m.index + m[0].length;
      }
      if (last < text.length) {
        pieces.push(text.slice(last));
        fixed.push(false);
      }
    } else {
      pieces = [text];
      fixed = [false];
    }
    let path: string | undefined;
    for (const active of this.#detectors) {
      const { detector } = active;
      const nextPieces: string[] = [];
      const nextFixed: boolean[] = [];
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i];
        if (fixed[i] || (detector.hint !== undefined && !detector.hint(piece))) {
          nextPieces.push(piece);
          nextFixed.push(fixed[i]);
          continue;
        }
        let last = 0;
        detector.pattern.lastIndex = 0;
        for (const m of piece.matchAll(detector.pattern)) {
          if (m[0] === '') continue;
          let ranges: Array<[number, number]>;
          if (detector.validate === undefined || detector.validate(m[0])) ranges = [[0, m[0].length]];
          else if (detector.locate !== undefined) ranges = detector.locate(m[0]);
          else continue;
          for (const [s, e] of ranges) {
            const start = m.index + s;
            if (start < last) continue;
            if (start > last) {
              nextPieces.push(piece.slice(last, start));
              nextFixed.push(false);
            }
            path ??= renderPath(parts);
            nextPieces.push(this.#replacement(active, piece.slice(start, m.index + e), path, tally));
            nextFixed.push(true);
            last = m.index + e;
          }
        }
        if (last === 0) {
          nextPieces.push(piece);
          nextFixed.push(false);
        } else if (last < piece.length) {
          nextPieces.push(piece.slice(last));
          nextFixed.push(false);
        }
      }
      pieces = nextPieces;
      fixed = nextFixed;
    }
    return pieces.length === 1 ? pieces[0] : pieces.join('');
  }

  #replacement(active: ActiveDetector, match: string, path: string, tally: RedactionTally): string {
    if (active.action === 'hash' && this.#pseudonymizer !== undefined) {
      tally.note('hashed', path, active.detector.name);
      return this.#pseudonymizer.pseudonym(active.detector.normalize?.(match) ?? match);
    }
    tally.note('masked', path, active.detector.name);
    return active.mask;
  }
}

function positiveInt(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isSafeInteger(v) || v < 1)
    throw new RedactionConfigError(`mltrail: redactor option ${name} must be a positive integer, got ${v}`);
  return v;
}

function firstNonSpace(s: string): string | undefined {
  for (let i = 0; i < s.length && i < 64; i++) {
    const c = s[i];
    if (c !== ' ' && c !== '\n' && c !== '\t' && c !== '\r') return c;
  }
  return undefined;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Non-string values are hashed as their canonical JSON so equal values give equal pseudonyms. */
function stableText(value: unknown): string {
  try {
    return canonicalize(value);
  } catch {
    return String(value);
  }
}
