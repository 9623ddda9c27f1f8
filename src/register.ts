/**
 * `node --import mltrail/register app.mjs` (ESM) or `node --require mltrail/register app.cjs` (CommonJS):
 * audited predictions for an inference service without touching its code. Sets up the OTel NodeSDK, the
 * trail journaling to MLTRAIL_DIR, the onnxruntime-node/tfjs/http/express instrumentations and the
 * prediction-id response header, all configured from OTEL_* and MLTRAIL_* variables (docs/instrumentation.md).
 * OTEL_SDK_DISABLED=true or MLTRAIL_DISABLED=true leaves the app untouched.
 *
 * MLTRAIL_FAIL_CLOSED=true: if the journal directory cannot take a write (not writable, not a directory,
 * full, a file size limit) or setup fails, the process exits with status 1 and a message naming the
 * directory and the cause, before the app's first line runs.
 *
 * No top-level await, so Node can `require()` this ES module for CommonJS apps.
 */
import { register as registerLoaderHook } from 'node:module';
import { resolve } from 'node:path';
import {
  type AutoInstrumentation,
  startAutoInstrumentation,
} from './instrumentation/auto-instrumentation.js';
import { readRegisterOptions } from './instrumentation/register-options.js';
import { probeJournalDir, resolveDir } from './journal/index.js';

/** How long shutdown may take before the process is let go anyway. */
const SHUTDOWN_TIMEOUT_MS = 5_000;

const options = readRegisterOptions();
let running: AutoInstrumentation | undefined;
if (!options.disabled && options.failClosed) {
  const problem = probeJournalDir(resolveDir(options.dir));
  if (problem !== undefined) refuseToStart(problem);
}
if (!options.disabled && !preloadedWithRequire()) {
  try {
    // ES modules are patched through import-in-the-middle's loader hook, registered the way the OTel docs
    // describe; it must be in place before the app's first import, which is why this runs at load time.
    registerLoaderHook('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  } catch (err) {
    process.emitWarning(
      `mltrail: the ESM loader hook could not be registered; ES module imports are not instrumented (${err instanceof Error ? err.message : String(err)})`,
      'MltrailSetupWarning',
    );
  }
}
if (!options.disabled) {
  try {
    running = startAutoInstrumentation(options);
  } catch (err) {
    // Only in fail-closed mode: otherwise setup failures are warnings and the app runs unaudited.
    refuseToStart(`setup failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

if (running !== undefined) {
  const handle = running;
  const stop = (): Promise<void> =>
    Promise.race([
      handle.shutdown(),
      new Promise<void>((resolve) => setTimeout(resolve, SHUTDOWN_TIMEOUT_MS).unref()),
    ]);
  const onSignal = (signal: NodeJS.Signals) => {
    // When the app handles the signal itself it decides when to exit; otherwise the process ends the way
    // it would have without mltrail: by the same signal, once the journal is flushed.
    const appHandles = process.listenerCount(signal) > 0;
    void stop().finally(() => {
      if (!appHandles) process.kill(process.pid, signal);
    });
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  process.once('beforeExit', () => {
    void stop();
  });
}

/** Fail-closed: the app must not run unaudited. Exits before the app's code is loaded. */
function refuseToStart(cause: string): never {
  const dir = resolve(resolveDir(options.dir));
  process.stderr.write(
    `mltrail: refusing to start: MLTRAIL_FAIL_CLOSED=true and the audit journal directory ${dir} cannot be used (${cause}). ` +
      'Set MLTRAIL_DIR to a writable directory with free space, or unset MLTRAIL_FAIL_CLOSED to run with a failing journal reported instead.\n',
  );
  process.exit(1);
}

/**
 * True under `--require mltrail/register`. A CommonJS app is patched through require hooks; registering the
 * ESM loader from a required ES module makes Node initialise import-in-the-middle twice (a warning on every
 * start), so ES modules such an app imports are not instrumented — start it with `--import` for those.
 */
function preloadedWithRequire(): boolean {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return args.some(
    (a, i) =>
      ((a === '--require' || a === '-r') && /mltrail\/register/.test(args[i + 1] ?? '')) ||
      (a.startsWith('--require=') && a.includes('mltrail/register')),
  );
}
