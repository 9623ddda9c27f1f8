import { AsyncResource } from 'node:async_hooks';
import http, { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import { diag } from '@opentelemetry/api';
import type { Trail } from '../trail/index.js';

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
type Listener = (...args: unknown[]) => unknown;
type AddListener = (this: object, event: string | symbol, listener: Listener) => unknown;
type WriteHead = (this: ServerResponse, ...args: unknown[]) => ServerResponse;

/** Marks a request or response with its scope's prediction ids (see {@link scopeMarks}). */
interface ScopeMarks {
  /** Marks `message` (again, if it was marked before). */
  mark(message: object, ids: readonly string[]): void;
  /** The ids `message` is marked with: the trail's live array, so later predictions show up. */
  idsOf(message: object): readonly string[] | undefined;
  has(message: object): boolean;
}

/** A base class whose constructor returns the object it is given, so a subclass stamps its fields on it. */
class Stamp {
  constructor(target: object) {
    // biome-ignore lint/correctness/noConstructorReturn: the point: fields are stamped on `target`
    return target as Stamp;
  }
}

/**
 * Scope marks stored as a private field stamped on the request and response objects. A WeakMap entry per
 * object cost more than the rest of the glue together (each `set` on a new key may grow and rehash the
 * ephemeron table, and every collection must process it); a private field is one hidden-class transition,
 * invisible to the app (no property, no symbol a `{ ...req }` or `Reflect.ownKeys` would see). One class
 * per glue, so two glues never read each other's marks.
 */
function scopeMarks(): ScopeMarks {
  return class Marked extends Stamp {
    #ids: readonly string[];

    private constructor(target: object, ids: readonly string[]) {
      super(target);
      this.#ids = ids;
    }

    static mark(message: object, ids: readonly string[]): void {
      if (#ids in message) (message as Marked).#ids = ids;
      else new Marked(message, ids);
    }

    static idsOf(message: object): readonly string[] | undefined {
      return isObject(message) && #ids in message ? (message as Marked).#ids : undefined;
    }

    static has(message: object): boolean {
      return isObject(message) && #ids in message;
    }
  };
}

/** What a WeakMap accepts as a key (the marks answer like the WeakMap they replace). */
function isObject(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

const ADDERS = ['on', 'addListener', 'prependListener'] as const;
const ONCE_ADDERS = [
  ['once', 'on'],
  ['prependOnceListener', 'prependListener'],
] as const;

/**
 * The HTTP glue: every incoming request runs in a prediction scope of the trail, and the ids of the
 * predictions made while handling it are returned in a response header (comma-separated when several) and
 * offered to the HTTP server span through {@link PredictionHeaderGlue.idsOf}. The header is set at the last
 * moment headers can still change: when the response writes its head (explicitly or implicitly on the
 * first write/end).
 *
 * Everything is patched once on the prototypes (the servers' `emit`, and the listener adders and
 * `writeHead` of `IncomingMessage`/`ServerResponse`), never per request: a request costs one prediction
 * scope, a private mark on its request and response, and one async resource per listener added to them.
 */
export class PredictionHeaderGlue {
  readonly #trail: () => Trail | undefined;
  readonly #header: string;
  readonly #marks = scopeMarks();
  readonly #patched: {
    target: Record<string, unknown>;
    name: string;
    had: boolean;
    original: unknown;
    wrapped: unknown;
  }[] = [];
  #enabled = false;

  constructor(options: { trail: () => Trail | undefined; header: string }) {
    this.#trail = options.trail;
    this.#header = options.header;
  }

  /** The prediction ids recorded while handling the request of `response` (or of `request`). */
  idsOf(message: IncomingMessage | ServerResponse): readonly string[] {
    return this.#marks.idsOf(message) ?? [];
  }

  /** Patches the http and https servers and the request/response prototypes. Idempotent. */
  enable(): void {
    this.#enabled = true;
    if (this.#patched.length > 0) return;
    for (const proto of [http.Server.prototype, https.Server.prototype]) {
      this.#patch(proto, 'emit', (original) => this.#wrapEmit(original as Emit));
    }
    for (const proto of [IncomingMessage.prototype, ServerResponse.prototype]) {
      // The once-wrappers add through the unwrapped adders, so a listener is bound once.
      const adders = proto as unknown as Record<string, AddListener>;
      const unwrapped = { on: adders.on, prependListener: adders.prependListener };
      for (const name of ADDERS) {
        this.#patch(proto, name, (original) => this.#wrapAdd(original as AddListener));
      }
      for (const [name, adder] of ONCE_ADDERS) {
        const add = unwrapped[adder];
        if (typeof add !== 'function') continue;
        this.#patch(proto, name, (original) => this.#wrapAddOnce(original as AddListener, add));
      }
    }
    this.#patch(ServerResponse.prototype, 'writeHead', (original) =>
      this.#wrapWriteHead(original as WriteHead),
    );
  }

  /**
   * Stops the glue: restores what {@link enable} patched where nobody patched over it since; where someone
   * did (the HTTP instrumentation wraps the same `emit`), the wrapper stays and passes calls through.
   */
  disable(): void {
    this.#enabled = false;
    for (const { target, name, had, original, wrapped } of this.#patched.splice(0).reverse()) {
      if (target[name] !== wrapped) continue;
      if (had) target[name] = original;
      else delete target[name];
    }
  }

  #patch(proto: object, name: string, wrap: (original: unknown) => unknown): void {
    const target = proto as Record<string, unknown>;
    const original = target[name];
    if (typeof original !== 'function') return;
    const had = Object.hasOwn(target, name);
    const wrapped = wrap(original);
    this.#patched.push({ target, name, had, original, wrapped });
    target[name] = wrapped;
  }

  #wrapEmit(original: Emit): Emit {
    const glue = this;
    const marks = this.#marks;
    // `arguments` is passed on as it is: every event a server emits goes through here, and a rest array
    // and a spread copy per call were most of this wrapper's allocation.
    return function emit(this: unknown, event: string | symbol): boolean {
      // biome-ignore lint/complexity/noArguments: passed on without a copy
      const args = arguments;
      if (event !== 'request') return Reflect.apply(original, this, args) as boolean;
      const trail = glue.#enabled ? glue.#trail() : undefined;
      if (trail === undefined) return Reflect.apply(original, this, args) as boolean;
      return trail.withPredictionScope(() => {
        try {
          const ids = trail.currentPredictionIds();
          marks.mark(args[1] as object, ids);
          marks.mark(args[2] as object, ids);
        } catch (err) {
          diag.error('mltrail: could not attach the prediction header hook', err);
        }
        return Reflect.apply(original, this, args) as boolean;
      });
    };
  }

  /**
   * Event listeners run in the async context of whoever emits the event (the socket), not of whoever added
   * them; a handler that reads the body in `req.on('end')` would lose the prediction scope. Listeners added
   * to a scoped request/response are bound to the context they were added in. The bound function carries
   * the original as `listener` (as Node's own `once` wrappers do), so `removeListener(original)` and
   * `listeners()` work unchanged.
   */
  #wrapAdd(original: AddListener): AddListener {
    const marks = this.#marks;
    return function addListener(this: object, event: string | symbol, listener: Listener) {
      if (typeof listener !== 'function' || !marks.has(this)) {
        return Reflect.apply(original, this, [event, listener]);
      }
      return Reflect.apply(original, this, [event, bindToCurrentContext(listener)]);
    };
  }

  /** `once` for scoped emitters: one wrapper that removes itself, runs in context and names the original. */
  #wrapAddOnce(original: AddListener, add: AddListener): AddListener {
    const marks = this.#marks;
    return function addOnceListener(this: object, event: string | symbol, listener: Listener) {
      if (typeof listener !== 'function' || !marks.has(this)) {
        return Reflect.apply(original, this, [event, listener]);
      }
      const resource = new AsyncResource('MltrailPredictionScope');
      let fired = false;
      const once = function (
        this: { removeListener(e: string | symbol, l: Listener): unknown },
        ...a: unknown[]
      ) {
        if (fired) return undefined;
        fired = true;
        this.removeListener(event, once);
        return resource.runInAsyncScope(listener, this, ...a);
      };
      (once as { listener?: Listener }).listener = listener;
      return Reflect.apply(add, this, [event, once]);
    };
  }

  #wrapWriteHead(original: WriteHead): WriteHead {
    const marks = this.#marks;
    const header = this.#header;
    return function writeHead(this: ServerResponse) {
      // biome-ignore lint/complexity/noArguments: passed on without a copy
      const args = arguments;
      try {
        const ids = marks.idsOf(this);
        if (ids !== undefined && ids.length > 0 && !this.headersSent) {
          // Node merges setHeader() headers into writeHead(status, headers) objects; a raw header array
          // cannot be merged, so such a response is left as the app wrote it.
          if (!Array.isArray(args[args.length - 1])) this.setHeader(header, ids.join(','));
        }
      } catch (err) {
        diag.error('mltrail: could not set the prediction header', err);
      }
      return Reflect.apply(original, this, args);
    };
  }
}

/**
 * A listener that runs in the async context current now. One AsyncResource per listener: cheap, unlike
 * `AsyncLocalStorage.bind`, whose bound functions carry a deprecated accessor built on every call.
 */
function bindToCurrentContext(listener: Listener): Listener {
  const resource = new AsyncResource('MltrailPredictionScope');
  const bound = function (this: unknown, ...args: unknown[]) {
    return resource.runInAsyncScope(listener, this, ...args);
  };
  (bound as { listener?: Listener }).listener = listener;
  return bound;
}
