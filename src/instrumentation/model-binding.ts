import * as sc from '../semconv/index.js';
import type { Deployment, ModelVersion, PredictSpec, Trail } from '../trail/index.js';

/** What an instrumentation knows about the model object it saw being loaded. */
export interface LoadedModel {
  /** `sha256:<hex>` of the artifact bytes; undefined when they could not be read. */
  digest: string | undefined;
  /** `onnx`, `tfjs-layers`, `tfjs-graph`. */
  format: string;
  /** Where it was loaded from (a path or URL), when known. */
  uri?: string;
}

/**
 * Ties a loaded model to the trail's registry for one prediction: the latest deployment of a version with
 * the same digest, else the registered version, else an unregistered model (recorded once per digest as
 * an `ml.model.unregistered` warning). Looked up per call, so a model registered after it was loaded is
 * named from then on.
 */
export function bindModel(
  trail: Trail,
  loaded: LoadedModel | undefined,
): Pick<PredictSpec<unknown[], unknown>, 'model' | 'modelDigest' | 'fields'> {
  return bindingOf(loaded, registeredModel(trail, loaded));
}

/**
 * The half of {@link bindModel} that depends on the registry: the deployment or version the loaded model
 * is, or undefined (then reported once per digest as unregistered). Cheap enough for every call, so an
 * instrumentation can look it up per call and rebuild what it derives from it only when it changes.
 */
export function registeredModel(
  trail: Trail,
  loaded: LoadedModel | undefined,
): Deployment | ModelVersion | undefined {
  if (loaded?.digest === undefined) return undefined;
  const model =
    trail.registry.deploymentByDigest(loaded.digest) ?? trail.registry.modelByDigest(loaded.digest);
  if (model === undefined)
    trail.reportUnregisteredModel({ digest: loaded.digest, format: loaded.format, uri: loaded.uri });
  return model;
}

/** {@link bindModel} for a model already looked up with {@link registeredModel}. */
export function bindingOf(
  loaded: LoadedModel | undefined,
  model: Deployment | ModelVersion | undefined,
): Pick<PredictSpec<unknown[], unknown>, 'model' | 'modelDigest' | 'fields'> {
  if (loaded === undefined) return { fields: {} };
  const fields: Record<string, unknown> = { [sc.ATTR_ML_MODEL_FORMAT]: loaded.format };
  if (loaded.digest === undefined) return { fields };
  fields[sc.ATTR_ML_PREDICTION_REGISTERED] = model !== undefined;
  if (model !== undefined) return { model, fields };
  return { modelDigest: loaded.digest, fields };
}
