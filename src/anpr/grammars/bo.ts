import { buildGrammar, type FormatSpec, grouped } from './engine.js';

/**
 * Bolivia. What we rely on, and what we assume:
 *
 * - `current` NNNN·LLL: four digits and three letters (e.g. 1234ABC), the national plate issued
 *   through the RUAT register; the letters advance as the digits run out. Printed here `1234 ABC`;
 *   the plates show the two groups side by side under the country name, and the separator is our
 *   choice, not checked.
 * - `old` NNN·LLL: three digits and three letters, the earlier national series. Assumed from
 *   descriptions of older plates, not checked against a primary source; it has the same layout as
 *   Argentina's old motorcycle plate (`ar` `moto_old`), so with both grammars active the same text
 *   is read as whichever is listed first.
 *
 * Letters: all 26. Some series are said to avoid vowels (and Ñ and Q); that is not checked, and a
 * letter wrongly forbidden would turn a real plate into a different one, so none is left out.
 * The Mercosur plate Bolivia announced is not modelled: its layout on the road is not confirmed.
 */
export const BO_FORMATS: FormatSpec[] = [
  { name: 'current', pattern: 'NNNNLLL', display: grouped(' ', 4, 3) },
  { name: 'old', pattern: 'NNNLLL', display: grouped(' ', 3, 3) },
];

export const bo = buildGrammar({ name: 'bo', country: 'bo', formats: BO_FORMATS, correct: true, trim: true });
