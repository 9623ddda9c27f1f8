/** Generates every semconv output file: repo-relative path → content. */
export function generate(root?: string): Record<string, string>;
