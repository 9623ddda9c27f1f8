/** An attribute as declared in a registry group of model/. */
export interface RegistryAttribute {
  id: string;
  type: string | { members: { id: string; value: string | number; brief?: string }[] };
  brief: string;
  stability: string;
  examples?: unknown;
  note?: string;
  annotations?: { mltrail?: { lookup?: boolean; index_label?: boolean; json?: boolean } };
  /** The id of the registry group that declares it. */
  group: string;
}

/** A reference from an event, span or metric group to a registry attribute. */
export interface RegistryRef {
  ref: string;
  requirement_level?: 'required' | 'recommended' | 'opt_in' | { conditionally_required: string };
}

/** An event, span or metric group of model/. */
export interface RegistryGroup {
  id: string;
  type: 'event' | 'span' | 'metric';
  brief: string;
  name?: string;
  metric_name?: string;
  instrument?: string;
  unit?: string;
  span_kind?: string;
  attributes?: RegistryRef[];
  annotations?: { mltrail?: { span_name?: string; stage?: string; event?: string } };
}

/** The registry in model/, checked for consistency (throws on unknown or duplicate references). */
export interface Registry {
  attributes: RegistryAttribute[];
  attributeMap: Map<string, RegistryAttribute>;
  events: RegistryGroup[];
  spans: RegistryGroup[];
  metrics: RegistryGroup[];
}

/** Reads every YAML file under `<root>/model` except the manifest. */
export function loadRegistry(root?: string): Registry;

/** Generates every semconv output file: repo-relative path → content. */
export function generate(root?: string): Record<string, string>;
