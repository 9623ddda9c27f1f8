/** The outcome of an observed call, as the trail sees it. */
export type CallOutcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * Calls `fn` with the caller's `this` and arguments and reports the outcome to `settle` without changing
 * it: a sync function stays sync, an async one stays async and resolves to the same value, and a thrown
 * error (or rejection) is rethrown as the identical object.
 *
 * For async calls `settle` may return a promise (the trail waits for journal durability in fail-closed
 * mode); if that promise rejects, the call rejects with its error instead of the value, which is exactly
 * what fail-closed promises. `settle` never throws otherwise.
 *
 * Thenables are detected structurally so user promise libraries keep working.
 */
export function callObserved<R>(
  fn: (...args: never[]) => R,
  thisArg: unknown,
  args: unknown[],
  settle: (outcome: CallOutcome, async: boolean) => void | Promise<void>,
): R {
  let result: R;
  try {
    result = Reflect.apply(fn, thisArg, args) as R;
  } catch (error) {
    void settle({ ok: false, error }, false);
    throw error;
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(
      async (value) => {
        const wait = settle({ ok: true, value }, true);
        if (wait !== undefined) await wait;
        return value;
      },
      async (error: unknown) => {
        const wait = settle({ ok: false, error }, true);
        if (wait !== undefined) await wait.catch(() => undefined);
        throw error;
      },
    ) as R;
  }
  void settle({ ok: true, value: result }, false);
  return result;
}

/** True for anything with a callable `then` (native promises and user promise libraries). */
export function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * Set (to true) on a `trail.predict()` spec by an instrumentation whose callee runs no JavaScript on the
 * app's behalf: a native inference call such as onnxruntime's `session.run`, which calls back into no app
 * code and whose result the app reads only after the call settles. In the default mode the trail then
 * records such a prediction at the end of the event-loop turn instead of on the call's path (see
 * docs/internals.md, "Queued predictions"). Internal: not part of the public spec.
 */
export const OPAQUE_CALLEE: unique symbol = Symbol.for('mltrail:opaque-callee');
