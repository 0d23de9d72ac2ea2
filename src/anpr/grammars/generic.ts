import { anyOfLength, buildGrammar, type FormatSpec } from './engine.js';

/**
 * Anything from 2 to 10 letters and digits, as read: no repairs, no trimming. For plates no grammar
 * describes (special series, foreign vehicles) and for checking what the recogniser really saw.
 */
export const GENERIC_FORMATS: FormatSpec[] = [2, 3, 4, 5, 6, 7, 8, 9, 10].map((n) => ({ name: `alnum${n}`, pattern: anyOfLength(n) }));

export const generic = buildGrammar({ name: 'generic', formats: GENERIC_FORMATS, correct: false, trim: false });
