/** Every generated dashboard and alert-rule file: repo-relative path → content. */
export function generate(): Record<string, string>;
/** A registry metric name in its Prometheus (OTLP-translated) form. */
export function promName(metric: string, instrument: string, unit: string): string;
/** A registry key in its Loki structured-metadata form. */
export function loki(key: string): string;
