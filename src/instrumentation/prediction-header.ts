import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import { diag } from '@opentelemetry/api';
import type { Trail } from '../trail/index.js';

type Emit = (this: unknown, event: string | symbol, ...args: unknown[]) => boolean;
type WriteHead = ServerResponse['writeHead'];

/**
 * The HTTP glue: every incoming request runs in a prediction scope of the trail, and the ids of the
 * predictions made while handling it are returned in a response header (comma-separated when several) and
 * offered to the HTTP server span through {@link PredictionHeaderGlue.idsOf}. The header is set at the last
 * moment headers can still change: when the response writes its head (explicitly or implicitly on the
 * first write/end).
 */
export class PredictionHeaderGlue {
  readonly #trail: () => Trail | undefined;
  readonly #header: string;
  readonly #ids = new WeakMap<object, readonly string[]>();
  readonly #patched: { proto: { emit: Emit }; original: Emit }[] = [];

  constructor(options: { trail: () => Trail | undefined; header: string }) {
    this.#trail = options.trail;
    this.#header = options.header;
  }

  /** The prediction ids recorded while handling the request of `response` (or of `request`). */
  idsOf(message: IncomingMessage | ServerResponse): readonly string[] {
    return this.#ids.get(message) ?? [];
  }

  /** Wraps `emit('request')` of the http and https servers. Idempotent. */
  enable(): void {
    if (this.#patched.length > 0) return;
    for (const proto of [http.Server.prototype, https.Server.prototype] as unknown as { emit: Emit }[]) {
      const original = proto.emit;
      proto.emit = this.#wrapEmit(original);
      this.#patched.push({ proto, original });
    }
  }

  /** Restores the servers' `emit`. */
  disable(): void {
    for (const { proto, original } of this.#patched.splice(0)) proto.emit = original;
  }

  #wrapEmit(original: Emit): Emit {
    const glue = this;
    return function emit(this: unknown, event: string | symbol, ...args: unknown[]): boolean {
      if (event !== 'request') return Reflect.apply(original, this, [event, ...args]) as boolean;
      const trail = glue.#trail();
      if (trail === undefined) return Reflect.apply(original, this, [event, ...args]) as boolean;
      return trail.withPredictionScope(() => {
        try {
          const ids = trail.currentPredictionIds();
          const [request, response] = args as [IncomingMessage, ServerResponse];
          glue.#ids.set(request, ids);
          glue.#ids.set(response, ids);
          glue.#hookResponse(response, ids);
          bindListeners(request);
          bindListeners(response);
        } catch (err) {
          diag.error('mltrail: could not attach the prediction header hook', err);
        }
        return Reflect.apply(original, this, [event, ...args]) as boolean;
      });
    };
  }

  #hookResponse(response: ServerResponse, ids: readonly string[]): void {
    const header = this.#header;
    const originalWriteHead = response.writeHead;
    // An own property on this response only; the prototype stays untouched.
    response.writeHead = function writeHead(this: ServerResponse, ...args: unknown[]) {
      try {
        if (ids.length > 0 && !this.headersSent) {
          // Node merges setHeader() headers into writeHead(status, headers) objects; a raw header array
          // cannot be merged, so such a response is left as the app wrote it.
          if (!Array.isArray(args[args.length - 1])) this.setHeader(header, ids.join(','));
        }
      } catch (err) {
        diag.error('mltrail: could not set the prediction header', err);
      }
      return Reflect.apply(originalWriteHead, this, args) as ServerResponse;
    } as WriteHead;
  }
}

const ADDERS = ['on', 'addListener', 'once', 'prependListener', 'prependOnceListener'] as const;
const REMOVERS = ['off', 'removeListener'] as const;

/**
 * Event listeners run in the async context of whoever emits the event (the socket), not of whoever added
 * them; a handler that reads the body in `req.on('end')` would lose the prediction scope. Listeners added
 * to this request/response while the scope is active are bound to the context they were added in.
 */
function bindListeners(emitter: EventEmitter): void {
  const bound = new WeakMap<(...a: unknown[]) => unknown, (...a: unknown[]) => unknown>();
  const target = emitter as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of ADDERS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = function add(this: unknown, event: unknown, listener: unknown) {
      if (typeof listener !== 'function') return Reflect.apply(original, this, [event, listener]);
      const fn = listener as (...a: unknown[]) => unknown;
      let b = bound.get(fn);
      if (b === undefined) {
        b = AsyncLocalStorage.bind(fn);
        bound.set(fn, b);
      }
      return Reflect.apply(original, this, [event, b]);
    };
  }
  for (const name of REMOVERS) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = function remove(this: unknown, event: unknown, listener: unknown) {
      const b =
        typeof listener === 'function' ? bound.get(listener as (...a: unknown[]) => unknown) : undefined;
      return Reflect.apply(original, this, [event, b ?? listener]);
    };
  }
}
