import { diag } from '@opentelemetry/api';
import { canonicalize } from '../integrity/index.js';
import { ATTR_ML_PREDICTION_SUBJECT_ID } from '../semconv/index.js';
import {
  BUILTIN_DETECTORS,
  cardNetworkPrefix,
  type Detector,
  type DetectorName,
  luhnValid,
  mayHoldBuiltinMatch,
} from './detectors.js';
import { RedactionConfigError } from './errors.js';
import { compileKeyPath, type PathStep, renderPath } from './key-path.js';
import { MIN_PSEUDONYM_KEY_BYTES, Pseudonymizer, resolvePseudonymKey } from './pseudonymizer.js';
import { RedactionTally } from './redaction-tally.js';
import { needsNormalizing, normalizeForDetection } from './text-normalizer.js';

/** What a rule does with the value at its path. */
export type RuleAction = 'mask' | 'remove' | 'hash' | 'allow';

/** What a detector or user pattern does with the part of a string it matched. */
export type DetectorAction = 'mask' | 'hash' | 'off';

/**
 * A key-path rule. `mask` replaces the value with the censor, `remove` deletes it, `hash` replaces it with
 * a keyed pseudonym (`pii:<keyId>:<base64url>`), `allow` passes it through untouched (no detectors either).
 * The outermost location a rule matches decides; at one location the first rule listed wins.
 */
export interface RedactionRule {
  /** pino-style path: `user.email`, `items[*].card`, `["dotted.key.name"]`, `**.password`. */
  path: string;
  action: RuleAction;
  /** Censor for `mask`; defaults to the redactor's censor. */
  censor?: string;
  /** Match name parts case-insensitively (for header-like keys such as `Authorization`). */
  ignoreCase?: boolean;
}

/** A user-supplied detector: every match inside any string is masked (or hashed). */
export interface RedactionPattern {
  /** Name used in the summary and in the mask (`[REDACTED:<name>]`); lower case, digits and `_`. */
  name: string;
  pattern: RegExp | string;
  action?: 'mask' | 'hash';
}

/** Options of {@link createRedactor}. */
export interface RedactorOptions {
  /** Key-path rules; a bare string is a `mask` rule. */
  rules?: ReadonlyArray<RedactionRule | string>;
  /**
   * Per-detector action (default `mask` for every built-in detector), or `false` to turn the built-in
   * detectors off (rules and user patterns still apply).
   */
  detectors?: Partial<Record<DetectorName, DetectorAction>> | false;
  /** Extra detectors. */
  patterns?: readonly RedactionPattern[];
  /** Censor for masked rule values; default `[REDACTED]`. */
  censor?: string;
  /** HMAC key for `hash`; default `MLTRAIL_PSEUDONYM_KEY`. */
  key?: string | Uint8Array;
  /**
   * Strict mode: `hash` without a key, or a key under 16 bytes, throws at construction instead of
   * warning and masking.
   */
  strict?: boolean;
  /**
   * Include {@link DEFAULT_RULES} (secret-named keys masked anywhere, the prediction subject hashed) after
   * the user's rules; default true.
   */
  defaultRules?: boolean;
  /** Parse strings that hold a JSON object or array and apply rules inside them; default true. */
  parseJsonStrings?: boolean;
  /** Longest string scanned (UTF-16 units); the rest is cut with a marker. Default 1 MiB. */
  maxStringChars?: number;
  /** Deepest nesting copied; deeper values become `[MaxDepth]`. Default 64. */
  maxDepth?: number;
  /** Most values visited per call; later values become `[Truncated]`. Default 200 000. */
  maxNodes?: number;
  /** Where `MLTRAIL_PSEUDONYM_KEY` is read; default `process.env`. */
  env?: Record<string, string | undefined>;
}

/** What one redaction did. Paths are rendered like rule paths; counts are exact, path lists capped. */
export interface RedactionSummary {
  /** Paths whose value (or part of it) was masked. */
  masked: string[];
  /** Paths that were removed. */
  removed: string[];
  /** Paths whose value (or part of it) was replaced by a pseudonym. */
  hashed: string[];
  /** Paths cut by a limit (string length, depth, node count, cycles). */
  truncated: string[];
  maskedCount: number;
  removedCount: number;
  hashedCount: number;
  /** Replacements per rule path or detector name. */
  byRule: Record<string, number>;
}

/** The result of a redaction: a redacted copy and what was done. */
export interface Redacted<T> {
  value: T;
  summary: RedactionSummary;
}

/** A compiled redaction policy. Never mutates its input; safe to share between calls and processors. */
export interface Redactor {
  /** A redacted deep copy of `value` (objects, arrays, strings, numbers; cycles and depth bounded). */
  redact(value: unknown): Redacted<unknown>;
  /** Runs the detectors (and JSON-in-string rules) over one string. */
  redactString(value: string): Redacted<string>;
  /**
   * True only when `redact(body)` would return a copy with exactly the members `keys` of `body`, each key
   * and each value unchanged (strings, numbers, booleans and arrays of them compared by value), so a caller
   * may write `body` as it is. False means "call `redact`": it also covers every case this check does not
   * settle. Optional: a redactor without it is always asked to `redact`. `alsoKept` (default 0) counts
   * further members of `body` the caller already knows are kept strings, numbers or booleans: they are
   * not visited, but count towards `maxNodes` as `redact` would count them.
   */
  keepsMembers?(body: Record<string, unknown>, keys: readonly string[], alsoKept?: number): boolean;
  /**
   * True when `keepsMembers`' answer for a member depends only on its name and value, so a caller that
   * saw a member kept may skip it next time it holds the same value (and count it in `alsoKept`).
   */
  readonly memberwise?: boolean;
  /** The key id of the pseudonym key, when one is set. */
  readonly keyId: string | undefined;
}

/**
 * Rules every redactor adds after the user's (turn off with `defaultRules: false`): values under
 * secret-named keys are masked wherever they appear, and the prediction subject is pseudonymised (masked
 * when no key is set).
 */
export const DEFAULT_RULES: readonly RedactionRule[] = [
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
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
const HEX_ID_RE = /^(?=[0-9]*[a-f])[0-9a-f]{16}(?:[0-9a-f]{16})?$/;
const TIMESTAMP_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:\d\d)$/;
/** Longer keys are matched every time instead of remembered. */
const MAX_REMEMBERED_KEY_CHARS = 256;
/** Distinct keys whose rule transitions are remembered before the memory starts again. */
const MAX_REMEMBERED_KEYS = 8192;
/** Longer values are scanned every time instead of remembered as clean. */
const MAX_REMEMBERED_VALUE_CHARS = 128;
/** Distinct clean values remembered before the memory starts again. */
const MAX_REMEMBERED_VALUES = 4096;

interface CompiledRule {
  label: string;
  steps: PathStep[];
  action: RuleAction;
  censor: string;
  ignoreCase: boolean;
}

interface ActiveDetector {
  detector: Detector;
  /** This redactor's own copy of the detector's pattern (its `lastIndex` is scanning state). */
  pattern: RegExp;
  /** This redactor's copy of the pattern for normal forms (the detector's `normalFormPattern`, else `pattern`). */
  normalFormPattern: RegExp;
  /** `u` or `v` flag: an empty match advances by a code point, as `matchAll` does. */
  fullUnicode: boolean;
  action: 'mask' | 'hash';
  mask: string;
}

/** A set of NFA states, with where each key seen so far leads from it. */
interface StateSet {
  readonly states: number[];
  readonly next: Map<string | number, Transition>;
}

/**
 * Where one key leads: the next state set, or the rule that matched there (-1: none). `clean` is false for
 * a key a detector finds something in; such keys are never remembered (no personal data is kept between
 * calls), they are redacted on every visit and the rules run on their redacted form.
 */
interface Transition {
  readonly set: StateSet;
  readonly rule: number;
  readonly clean: boolean;
}

const REMOVE = Symbol('remove');
/** Text that was URL-escaped: a replacement of it is escaped too. */
const ESCAPED = /%[0-9A-Fa-f]{2}|\d\+\d/;

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
export function createRedactor(options: RedactorOptions = {}): Redactor {
  return new PolicyRedactor(options);
}

class PolicyRedactor implements Redactor {
  readonly keyId: string | undefined;
  readonly #rules: CompiledRule[];
  /** Rules of the form `**.name` (most of them), matched by a map lookup per name part, not the NFA. */
  readonly #anywhere = new Map<string, number>();
  readonly #anywhereIgnoreCase = new Map<string, number>();
  readonly #hasAnywhere: boolean;
  /** Whether some `**.name` rule names a digit-only part, i.e. could match an array index. */
  readonly #numericAnywhere: boolean;
  readonly #nfaRoots: number[];
  readonly #empty: StateSet = { states: [], next: new Map() };
  readonly #nowhere: Transition = { set: this.#empty, rule: -1, clean: true };
  /** Answer of {@link #step} for a key that must be redacted before rules are matched on it. */
  readonly #dirtyKey: Transition = { set: this.#empty, rule: -1, clean: false };
  /** Keys known to hold nothing to detect, for walks that need no rule lookup (bounded like the NFA memory). */
  readonly #cleanKeys = new Set<string>();
  /**
   * Short values the detectors were run on and found nothing in (a service name, a tensor shape, a dtype,
   * a decision reason): most of an audit body repeats from record to record, and detection depends on the
   * text alone. Only values written unchanged are kept, i.e. what the journal holds anyway; never a value
   * a detector matched.
   */
  readonly #cleanValues = new Set<string>();
  readonly #interned = new Map<string, StateSet>();
  #root: StateSet;
  #transitions = 0;
  readonly #detectors: ActiveDetector[];
  readonly #cardDetector: ActiveDetector | undefined;
  readonly #pseudonymizer: Pseudonymizer | undefined;
  readonly #censor: string;
  readonly #parseJson: boolean;
  readonly #maxString: number;
  readonly #maxDepth: number;
  readonly #maxNodes: number;
  readonly #protected: RegExp;
  readonly #userPatterns: boolean;

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
    this.#cardDetector = this.#detectors.find((d) => d.detector.name === 'payment_card');
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
    this.#hasAnywhere = this.#anywhere.size + this.#anywhereIgnoreCase.size > 0;
    this.#numericAnywhere = [...this.#anywhere.keys(), ...this.#anywhereIgnoreCase.keys()].some((k) =>
      /^\d+$/.test(k),
    );
    this.#root = roots.length === 0 ? this.#empty : this.#stateSet(this.#closure(roots));
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
    const out = this.#walk(value, this.#root, 0, tally);
    return { value: out === REMOVE ? undefined : out, summary: tally.summary() };
  }

  /** Rules, detectors and the pseudonym key are fixed at construction; nothing else decides a member. */
  readonly memberwise = true;

  keepsMembers(body: Record<string, unknown>, keys: readonly string[], alsoKept = 0): boolean {
    // The same walk as redact() over a flat object (the root counts one node, its members sit at depth 1),
    // stopping at the first member it would change, and building no copy of the members it keeps. Members
    // the caller already knows are kept scalars count one node each, as the walk would count them.
    const tally = new RedactionTally();
    tally.nodes = 1 + alsoKept;
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      const t = this.#step(this.#root, key);
      if (!t.clean) return false;
      const v = body[key];
      const c = this.#visit(v, t, key, 0, tally);
      if (c === v) continue;
      if (!Array.isArray(v) || !Array.isArray(c) || c.length !== v.length) return false;
      for (let j = 0; j < v.length; j++) if (c[j] !== v[j]) return false;
    }
    return true;
  }

  redactString(value: string): Redacted<string> {
    const tally = new RedactionTally();
    const out = this.#string(String(value), this.#root, 0, tally);
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
        out.push({
          detector: d,
          pattern: new RegExp(d.pattern.source, d.pattern.flags),
          normalFormPattern: new RegExp(
            (d.normalFormPattern ?? d.pattern).source,
            (d.normalFormPattern ?? d.pattern).flags,
          ),
          fullUnicode: /[uv]/.test(d.pattern.flags),
          action,
          mask: `[REDACTED:${d.name}]`,
        });
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
      out.push({
        detector: { name, pattern: re },
        pattern: re,
        normalFormPattern: new RegExp(re.source, re.flags),
        fullUnicode: /[uv]/.test(re.flags),
        action,
        mask: `[REDACTED:${name}]`,
      });
    }
    return out;
  }

  // ---- rule matching (a small NFA over name parts; a state is ruleIndex << 8 | stepIndex)
  //
  // The NFA runs once per (state set, key): each state set remembers where every key it has seen leads,
  // and state sets are interned, so walking a body of keys seen before is one map lookup per key.

  #stateSet(states: number[]): StateSet {
    if (states.length === 0) return this.#empty;
    const id = states.length === 1 ? String(states[0]) : [...states].sort((a, b) => a - b).join(',');
    let set = this.#interned.get(id);
    if (set === undefined) {
      set = { states, next: new Map() };
      this.#interned.set(id, set);
    }
    return set;
  }

  #step(from: StateSet, key: string | number): Transition {
    if (from === this.#empty) {
      if (typeof key === 'number') {
        if (!this.#numericAnywhere) return this.#nowhere;
      } else if (!this.#hasAnywhere) return this.#keyIsClean(key) ? this.#nowhere : this.#dirtyKey;
    }
    if (typeof key === 'string' && key.length > MAX_REMEMBERED_KEY_CHARS) {
      // A long key (data used as a key) is matched afresh, not kept.
      if (!this.#detectsNothing(key)) return this.#dirtyKey;
      const { states, rule } = this.#advance(from.states, key);
      return {
        set: rule >= 0 || states.length === 0 ? this.#empty : { states, next: new Map() },
        rule,
        clean: true,
      };
    }
    let t = from.next.get(key);
    if (t === undefined) {
      if (typeof key === 'string' && !this.#detectsNothing(key)) return this.#dirtyKey;
      // Keys come from data: bound what is remembered (and start again from scratch, never grow).
      if (this.#transitions >= MAX_REMEMBERED_KEYS) this.#forget();
      const { states, rule } = this.#advance(from.states, key);
      t = { set: rule >= 0 ? this.#empty : this.#stateSet(states), rule, clean: true };
      from.next.set(key, t);
      this.#transitions++;
    }
    return t;
  }

  /** Whether the detectors leave `key` as it is (remembered for keys that are). */
  #keyIsClean(key: string): boolean {
    if (this.#cleanKeys.has(key)) return true;
    if (!this.#detectsNothing(key)) return false;
    if (key.length <= MAX_REMEMBERED_KEY_CHARS) {
      if (this.#cleanKeys.size >= MAX_REMEMBERED_KEYS) this.#cleanKeys.clear();
      this.#cleanKeys.add(key);
    }
    return true;
  }

  #detectsNothing(text: string): boolean {
    return this.#scan(text, new RedactionTally()) === text;
  }

  #forget(): void {
    this.#cleanKeys.clear();
    this.#interned.clear();
    this.#empty.next.clear();
    this.#root = this.#nfaRoots.length === 0 ? this.#empty : this.#stateSet(this.#closure(this.#nfaRoots));
    this.#root.next.clear();
    this.#transitions = 0;
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
    const anywhere = this.#hasAnywhere;
    if (states.length === 0 && !anywhere) return { states: [], rule: -1 };
    const parts = typeof key === 'number' ? [String(key)] : key.split('.');
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

  // ---- traversal (the current location is tally.path; it is rendered only when something changes)

  #walk(value: unknown, states: StateSet, depth: number, tally: RedactionTally): unknown {
    if (++tally.nodes > this.#maxNodes) {
      tally.note('truncated', renderPath(tally.path), undefined);
      return '[Truncated]';
    }
    switch (typeof value) {
      case 'string':
        return this.#string(value, states, depth, tally);
      case 'number':
        return this.#number(value, tally);
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
      tally.note('truncated', renderPath(tally.path), undefined);
      return '[MaxDepth]';
    }
    if (tally.seen.has(obj)) {
      tally.note('truncated', renderPath(tally.path), undefined);
      return '[Circular]';
    }
    if (obj instanceof Date) return Number.isNaN(obj.getTime()) ? 'Invalid Date' : obj.toISOString();
    // Binary payloads are copied, not scanned: there is no text to match in them.
    if (ArrayBuffer.isView(obj))
      return obj instanceof DataView ? `[DataView ${obj.byteLength} bytes]` : (obj as Uint8Array).slice();
    tally.seen.add(obj);
    try {
      if (Array.isArray(obj)) return this.#array(obj, states, depth, tally);
      if (obj instanceof Map)
        return this.#entries(
          [...obj].map(([k, v]) => [mapKey(k), v]),
          states,
          depth,
          tally,
        );
      if (obj instanceof Set) return this.#array([...obj], states, depth, tally);
      return this.#object(obj as Record<string, unknown>, states, depth, tally);
    } finally {
      tally.seen.delete(obj);
    }
  }

  #array(arr: readonly unknown[], states: StateSet, depth: number, tally: RedactionTally): unknown[] {
    const out: unknown[] = [];
    for (let i = 0; i < arr.length; i++) {
      const v = this.#child(arr[i], states, i, depth, tally);
      if (v !== REMOVE) out.push(v);
    }
    return out;
  }

  #object(obj: Record<string, unknown>, states: StateSet, depth: number, tally: RedactionTally): object {
    const keys = Object.keys(obj);
    // Every value is read before any is visited, as a getter may change its siblings.
    const values = new Array<unknown>(keys.length);
    for (let i = 0; i < keys.length; i++) {
      try {
        values[i] = obj[keys[i]];
      } catch {
        values[i] = '[Unreadable]';
      }
    }
    const out: Record<string, unknown> = {};
    let renamed = false;
    for (let i = 0; i < keys.length; i++)
      renamed = this.#member(out, keys[i], values[i], states, depth, tally, renamed);
    return out;
  }

  #entries(entries: [string, unknown][], states: StateSet, depth: number, tally: RedactionTally): object {
    const out: Record<string, unknown> = {};
    let renamed = false;
    for (const [k, v] of entries) renamed = this.#member(out, k, v, states, depth, tally, renamed);
    return out;
  }

  /**
   * Copies one member into `out`. A key holding personal data is redacted like a value (the rules then see
   * the redacted key); two keys redacted alike both stay, the later one numbered (`[REDACTED:email]#2`), so
   * a map of attributions keeps every entry and still adds up. Returns whether a key of `out` has been
   * renamed so far (only then can a later key collide).
   */
  #member(
    out: Record<string, unknown>,
    key: string,
    value: unknown,
    states: StateSet,
    depth: number,
    tally: RedactionTally,
    renamedBefore: boolean,
  ): boolean {
    let t = this.#step(states, key);
    let k = key;
    let renamed = renamedBefore;
    if (!t.clean) {
      k = this.#scan(key, tally);
      t = this.#step(states, k);
      renamed = true;
    }
    if (renamed && Object.hasOwn(out, k)) {
      let n = 2;
      while (Object.hasOwn(out, `${k}#${n}`)) n++;
      k = `${k}#${n}`;
    }
    const c = this.#visit(value, t, k, depth, tally);
    if (c === REMOVE) return renamed;
    if (k === '__proto__')
      Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
    else out[k] = c;
    return renamed;
  }

  #child(value: unknown, states: StateSet, key: number, depth: number, tally: RedactionTally): unknown {
    return this.#visit(value, this.#step(states, key), key, depth, tally);
  }

  #visit(
    value: unknown,
    { set, rule }: Transition,
    key: string | number,
    depth: number,
    tally: RedactionTally,
  ): unknown {
    tally.path.push(key);
    const out =
      rule < 0
        ? this.#walk(value, set, depth + 1, tally)
        : this.#apply(this.#rules[rule], value, depth, tally);
    tally.path.pop();
    return out;
  }

  #apply(rule: CompiledRule, value: unknown, depth: number, tally: RedactionTally): unknown {
    if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return REMOVE;
    switch (rule.action) {
      case 'allow':
        return this.#copy(value, depth + 1, tally);
      case 'remove':
        tally.note('removed', renderPath(tally.path), rule.label);
        return REMOVE;
      case 'hash':
        if (this.#pseudonymizer !== undefined) {
          if (typeof value === 'string' && this.#pseudonymizer.isOwnPseudonym(value)) return value;
          tally.note('hashed', renderPath(tally.path), rule.label);
          return this.#pseudonym(
            typeof value === 'string'
              ? value
              : stableText(this.#copy(value, depth + 1, new RedactionTally())),
            tally,
          );
        }
        if (value === rule.censor) return value;
        tally.note('masked', renderPath(tally.path), rule.label);
        return rule.censor;
      default:
        if (value === rule.censor) return value;
        tally.note('masked', renderPath(tally.path), rule.label);
        return rule.censor;
    }
  }

  /** A bounded copy with no rules and no detectors (for `allow`, and to hash structured values). */
  #copy(value: unknown, depth: number, tally: RedactionTally): unknown {
    if (++tally.nodes > this.#maxNodes) return '[Truncated]';
    if (typeof value === 'string') return this.#cut(value, tally);
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
          tally.path.push(i++);
          const c = this.#copy(v, depth + 1, tally);
          tally.path.pop();
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
        tally.path.push(k);
        const c = this.#copy(v, depth + 1, tally);
        tally.path.pop();
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

  #number(value: number, tally: RedactionTally): unknown {
    // A card number stored as a number is still a card number; features are never this shape.
    if (value < 1e12 || !Number.isSafeInteger(value)) return value;
    const card = this.#cardDetector;
    if (card === undefined) return value;
    const digits = String(value);
    if (!cardNetworkPrefix(digits) || !luhnValid(digits)) return value;
    return this.#replacement(card, digits, renderPath(tally.path), tally);
  }

  #cut(value: string, tally: RedactionTally): string {
    if (value.length <= this.#maxString) return value;
    tally.note('truncated', renderPath(tally.path), undefined);
    return `${value.slice(0, this.#maxString)}[truncated ${value.length - this.#maxString} chars]`;
  }

  #string(value: string, states: StateSet, depth: number, tally: RedactionTally): string {
    const text = this.#cut(value, tally);
    if (this.#parseJson && depth < this.#maxDepth) {
      const fromJson = this.#jsonString(text, states, depth, tally);
      if (fromJson !== undefined) return fromJson;
    }
    return this.#scan(text, tally);
  }

  /** Redacts a string holding a JSON object or array as JSON (rules continue into it); undefined if not JSON. */
  #jsonString(text: string, states: StateSet, depth: number, tally: RedactionTally): string | undefined {
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
    const out = this.#walk(parsed, states, depth + 1, tally);
    if (tally.changes === before) return text;
    try {
      return canonicalize(out);
    } catch {
      return JSON.stringify(out);
    }
  }

  /** Runs every detector over the unprotected parts of a string, replacing only what matched. */
  #scan(text: string, tally: RedactionTally): string {
    const n = text.length;
    if (this.#detectors.length === 0 || n < 3) return text;
    if (!this.#userPatterns) {
      // Values no built-in detector can match (short names, labels, versions without a digit run) and
      // the ids mltrail writes itself are settled here, before any detector runs.
      if (!mayHoldBuiltinMatch(text)) return text;
      if (n < 7 && !text.includes('@') && !text.includes(':')) return text;
    }
    if (n <= 71 && isMltrailId(text)) return text;
    const remember = n <= MAX_REMEMBERED_VALUE_CHARS;
    if (remember && this.#cleanValues.has(text)) return text;
    if (needsNormalizing(text)) return this.#scanNormalized(text, tally);
    const changesBefore = tally.changes;
    let current = text;
    // A replacement can expose a boundary a later detector needs; a second pass settles that, so the
    // output of redaction is already a fixed point (redacting it again changes nothing).
    for (let pass = 0; pass < 3; pass++) {
      const before = tally.changes;
      current = this.#scanOnce(current, tally);
      if (tally.changes === before) break;
    }
    if (remember && tally.changes === changesBefore) {
      if (this.#cleanValues.size >= MAX_REMEMBERED_VALUES) this.#cleanValues.clear();
      this.#cleanValues.add(text);
    }
    return current;
  }

  /**
   * The detectors run on the normal form (URL escapes decoded, NFKC, invisible characters removed); each
   * match replaces the original characters it came from, the rest of the string stays as written. A
   * replacement of URL-escaped text is escaped the same way, so a query string stays a query string.
   */
  #scanNormalized(text: string, tally: RedactionTally): string {
    let current = text;
    for (let pass = 0; pass < 3; pass++) {
      if (!needsNormalizing(current)) return this.#scan(current, tally);
      const norm = normalizeForDetection(current);
      const found = this.#findReplacements(norm.text, tally);
      if (found.length === 0) break;
      const parts: string[] = [];
      let last = 0;
      for (const [start, end, replacement] of found) {
        const from = norm.starts[start];
        const to = norm.ends[end - 1];
        if (from < last) continue;
        parts.push(current.slice(last, from));
        const original = current.slice(from, to);
        parts.push(ESCAPED.test(original) ? encodeURIComponent(replacement) : replacement);
        last = to;
      }
      parts.push(current.slice(last));
      current = parts.join('');
    }
    return current;
  }

  /**
   * The replacements the detectors make in `text`, as sorted `[start, end, replacement]`: like
   * {@link #scanOnce}, each detector in turn over the parts no earlier detector (or protected mask) took.
   */
  #findReplacements(text: string, tally: RedactionTally): Array<[number, number, string]> {
    const taken: Array<[number, number, string | undefined]> = [];
    const re = this.#protected;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text))
      taken.push([m.index, m.index + m[0].length, undefined]);
    let path: string | undefined;
    for (const active of this.#detectors) {
      const { detector, normalFormPattern: pattern } = active;
      if (detector.hint !== undefined && !detector.hint(text)) continue;
      const fullUnicode = /[uv]/.test(pattern.flags);
      const gaps: Array<[number, number]> = [];
      let from = 0;
      for (const [s, e] of taken) {
        if (s > from) gaps.push([from, s]);
        from = Math.max(from, e);
      }
      if (from < text.length) gaps.push([from, text.length]);
      const added: Array<[number, number, string]> = [];
      for (const [gs, ge] of gaps) {
        const piece = text.slice(gs, ge);
        if (detector.hint !== undefined && !detector.hint(piece)) continue;
        let last = 0;
        pattern.lastIndex = 0;
        for (let m = pattern.exec(piece); m !== null; m = pattern.exec(piece)) {
          const match = m[0];
          if (match === '') {
            pattern.lastIndex = advanceIndex(piece, pattern.lastIndex, fullUnicode);
            continue;
          }
          const at = m.index;
          let ranges: Array<[number, number]>;
          if (detector.validate === undefined || detector.validate(match)) ranges = [[0, match.length]];
          else if (detector.locate !== undefined) ranges = detector.locate(match);
          else continue;
          for (const [s, e] of ranges) {
            if (at + s < last) continue;
            path ??= renderPath(tally.path);
            added.push([
              gs + at + s,
              gs + at + e,
              this.#replacement(active, piece.slice(at + s, at + e), path, tally),
            ]);
            last = at + e;
          }
        }
      }
      if (added.length > 0) {
        taken.push(...added);
        taken.sort((a, b) => a[0] - b[0]);
      }
    }
    return taken.filter((t): t is [number, number, string] => t[2] !== undefined);
  }

  #scanOnce(text: string, tally: RedactionTally): string {
    // Hints are substring tests, so a detector whose hint fails on the whole text fails on every piece.
    let candidates: ActiveDetector[] | undefined;
    for (const active of this.#detectors) {
      const hint = active.detector.hint;
      if (hint !== undefined && !hint(text)) continue;
      if (candidates === undefined) candidates = [active];
      else candidates.push(active);
    }
    if (candidates === undefined) return text;
    let pieces: string[];
    let fixed: boolean[];
    if (text.includes('pii:') || text.includes('[')) {
      pieces = [];
      fixed = [];
      let last = 0;
      const re = this.#protected;
      re.lastIndex = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
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
    for (const active of candidates) {
      const { detector, pattern } = active;
      // Built lazily: most detectors find nothing, and then the pieces stay as they are.
      let nextPieces: string[] | undefined;
      let nextFixed: boolean[] | undefined;
      for (let i = 0; i < pieces.length; i++) {
        const piece = pieces[i];
        let last = 0;
        if (!fixed[i] && (detector.hint === undefined || detector.hint(piece))) {
          pattern.lastIndex = 0;
          for (let m = pattern.exec(piece); m !== null; m = pattern.exec(piece)) {
            const match = m[0];
            if (match === '') {
              pattern.lastIndex = advanceIndex(piece, pattern.lastIndex, active.fullUnicode);
              continue;
            }
            const at = m.index;
            let ranges: Array<[number, number]>;
            if (detector.validate === undefined || detector.validate(match)) ranges = [[0, match.length]];
            else if (detector.locate !== undefined) ranges = detector.locate(match);
            else continue;
            for (const [s, e] of ranges) {
              const start = at + s;
              if (start < last) continue;
              if (nextPieces === undefined || nextFixed === undefined) {
                nextPieces = pieces.slice(0, i);
                nextFixed = fixed.slice(0, i);
              }
              if (start > last) {
                nextPieces.push(piece.slice(last, start));
                nextFixed.push(false);
              }
              path ??= renderPath(tally.path);
              nextPieces.push(this.#replacement(active, piece.slice(start, at + e), path, tally));
              nextFixed.push(true);
              last = at + e;
            }
          }
        }
        if (nextPieces === undefined || nextFixed === undefined) continue;
        if (last === 0) {
          nextPieces.push(piece);
          nextFixed.push(fixed[i]);
        } else if (last < piece.length) {
          nextPieces.push(piece.slice(last));
          nextFixed.push(false);
        }
      }
      if (nextPieces !== undefined && nextFixed !== undefined) {
        pieces = nextPieces;
        fixed = nextFixed;
      }
    }
    return pieces.length === 1 ? pieces[0] : pieces.join('');
  }

  #replacement(active: ActiveDetector, match: string, path: string, tally: RedactionTally): string {
    if (active.action === 'hash' && this.#pseudonymizer !== undefined) {
      tally.note('hashed', path, active.detector.name);
      return this.#pseudonym(active.detector.normalize?.(match) ?? match, tally);
    }
    tally.note('masked', path, active.detector.name);
    return active.mask;
  }

  /**
   * One HMAC per distinct value in a call (a subject id is often also in the captured input). The memory
   * lives as long as the call: raw values are never kept across calls.
   */
  #pseudonym(value: string, tally: RedactionTally): string {
    const known = tally.pseudonyms?.get(value);
    if (known !== undefined) return known;
    const out = (this.#pseudonymizer as Pseudonymizer).pseudonym(value);
    if (tally.pseudonyms === undefined) tally.pseudonyms = new Map();
    tally.pseudonyms.set(value, out);
    return out;
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

function isMltrailId(s: string): boolean {
  // Dispatched on length, so each string meets at most two anchored patterns.
  switch (s.length) {
    case 16:
      return HEX_ID_RE.test(s);
    case 32:
      return HEX_ID_RE.test(s) || TIMESTAMP_RE.test(s);
    case 36:
      return UUID_RE.test(s);
    case 71: // "sha256:" + 64 hex digits
      return DIGEST_RE.test(s);
    default:
      return s.length >= 20 && s.length <= 35 && TIMESTAMP_RE.test(s);
  }
}

/** Where a global pattern resumes after an empty match (ECMAScript AdvanceStringIndex). */
function advanceIndex(s: string, index: number, fullUnicode: boolean): number {
  if (!fullUnicode || index + 1 >= s.length) return index + 1;
  const c = s.charCodeAt(index);
  if (c < 0xd800 || c > 0xdbff) return index + 1;
  const d = s.charCodeAt(index + 1);
  return d >= 0xdc00 && d <= 0xdfff ? index + 2 : index + 1;
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

/** A Map key as an object member name; a key that cannot become a string (no prototype, a throwing toString) must not throw into the caller. */
function mapKey(k: unknown): string {
  if (typeof k === 'string') return k;
  try {
    return String(k);
  } catch {
    return '[unprintable key]';
  }
}
