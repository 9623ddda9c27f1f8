import {
  InstrumentationBase,
  type InstrumentationConfig,
  InstrumentationNodeModuleDefinition,
} from '@opentelemetry/instrumentation';

/**
 * An instrumentation of one npm module: the require/import hooks patch the module when it loads,
 * {@link manuallyInstrument} patches a module object handed over directly (bundled apps, which the hooks
 * never see), and {@link disable} undoes both. Subclasses say which module and versions, and how to patch.
 */
export abstract class ModuleInstrumentation<C extends InstrumentationConfig> extends InstrumentationBase<C> {
  /** Modules patched through {@link manuallyInstrument}; the hooks do not know them, so disable() does. */
  readonly #manual = new Set<unknown>();

  /** The module name and the semver ranges supported. Called while the base class constructs. */
  protected abstract target(): { module: string; versions: string[] };

  /**
   * Patches a loaded module (its CJS exports or ESM namespace); must be safe to call twice.
   *
   * It may run before the subclass is constructed: `InstrumentationBase`'s constructor enables the hooks,
   * and under the ESM loader hook (`node --import mltrail/register`) import-in-the-middle patches a module
   * that is already imported at once, from inside `super()`. The subclass's ES private members (`#x`) and
   * field initialisers do not exist yet then (`TypeError: Receiver must be an instance of class …`), so
   * the patching path uses only prototype methods and the base class; `#` state is for the patched
   * functions, which run later.
   */
  protected abstract patchModule(moduleExports: unknown): void;

  /** Undoes {@link patchModule}. */
  protected abstract unpatchModule(moduleExports: unknown): void;

  protected init() {
    const { module, versions } = this.target();
    return new InstrumentationNodeModuleDefinition(
      module,
      versions,
      (moduleExports) => {
        // The hooks call this from the host's import, require or from this constructor: never throw there.
        try {
          this.patchModule(moduleExports);
        } catch (err) {
          this._diag.error(`could not patch ${module}; it runs unobserved`, err);
        }
        return moduleExports;
      },
      (moduleExports) => {
        try {
          this.unpatchModule(moduleExports);
        } catch (err) {
          this._diag.error(`could not unpatch ${module}`, err);
        }
      },
    );
  }

  /**
   * Patches a module object directly, for bundled apps where the require/import hooks never see the module
   * (pass the imported namespace or the `require()` result).
   */
  manuallyInstrument(moduleExports: unknown): void {
    this.#manual.add(moduleExports);
    this.patchModule(moduleExports);
  }

  override disable(): void {
    super.disable();
    for (const m of this.#manual) this.unpatchModule(m);
    this.#manual.clear();
  }
}
