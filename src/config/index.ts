export { ConfigError, configJsonSchema, EX_CONFIG, formatProblem, loadConfig, parseConfig, runConfigCheck } from './load.js';
export type { CheckOutput, ConfigProblem, LoadOptions } from './load.js';
export { applyProfileDefaults, PROFILE_DEFAULTS } from './profiles.js';
export type { ConfigOverlay } from './profiles.js';
export { configSchema } from './schema.js';
export type { Config, ConfigInput, Profile } from './schema.js';
export { Secret } from './secret.js';
export { parseBytes, parseDurationMs } from './units.js';
