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

  /** Patches a loaded module (its CJS exports or ESM namespace); must be safe to call twice. */
  protected abstract patchModule(moduleExports: unknown): void;

  /** Undoes {@link patchModule}. */
  protected abstract unpatchModule(moduleExports: unknown): void;

  protected init() {
    const { module, versions } = this.target();
    return new InstrumentationNodeModuleDefinition(
      module,
      versions,
      (moduleExports) => {
        this.patchModule(moduleExports);
        return moduleExports;
      },
      (moduleExports) => this.unpatchModule(moduleExports),
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
