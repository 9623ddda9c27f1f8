/** The version instrumentations report as their instrumentation scope version (kept equal to package.json). */
export const MLTRAIL_VERSION = '0.1.0';
