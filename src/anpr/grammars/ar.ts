import { buildGrammar, type FormatSpec, grouped } from './engine.js';

/**
 * Argentina: the plates of the national registry (DNRPA). What we rely on, and what we assume:
 *
 * - `mercosur` LL·NNN·LL, issued since April 2016 (the common Mercosur plate, white with the blue
 *   band), printed `AA 123 BC`. The series started at AA 000 AA and runs letter pairs first.
 * - `old` LLL·NNN, issued from 1995 to 2016 (black plate, white characters), printed `ABC 123`.
 *   Still the most common Argentine plate on Chilean roads.
 * - `moto_mercosur` L·NNN·LLL, the Mercosur motorcycle plate (since 2016), printed `A123BCD`, and
 *   `moto_old` NNN·LLL, the 1995–2016 motorcycle plate, printed `123 ABC`. Both are well attested
 *   (the motorcycle plate puts the digits first, unlike the car plate of the same years), so they
 *   are included; the printed spacing of the old motorcycle plate is assumed, not checked.
 *
 * Letters: all 26 at every letter position. Ñ is not used; whether some letters (I, O, Q) were
 * skipped in some series we could not check, and a letter wrongly forbidden would turn a real
 * plate into a different one, so none is left out. Pre-1995 provincial plates (a province letter
 * and up to seven digits), diplomatic, official and trailer series are not modelled.
 */
export const AR_FORMATS: FormatSpec[] = [
  { name: 'mercosur', pattern: 'LLNNNLL', display: grouped(' ', 2, 3, 2) },
  { name: 'old', pattern: 'LLLNNN', display: grouped(' ', 3, 3) },
  { name: 'moto_mercosur', pattern: 'LNNNLLL' },
  { name: 'moto_old', pattern: 'NNNLLL', display: grouped(' ', 3, 3) },
];

export const ar = buildGrammar({ name: 'ar', country: 'ar', formats: AR_FORMATS, correct: true, trim: true });
