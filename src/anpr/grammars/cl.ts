import { buildGrammar, type FormatSpec, grouped } from './engine.js';

/**
 * Chile: the Placa Patente Única (PPU), national since 1985. What we rely on, and what we assume:
 *
 * - `car_old` LL·NNNN (1985–2007). Letters: A–Z without Ñ and Q. Published histories of the PPU
 *   say I, Ñ and Q were left out for looking like other glyphs "except in specific cases", and that
 *   M and W were added late (2006). We drop Q (its look-alike O takes its place when repairing) and
 *   keep I, because the exceptions exist and a letter wrongly forbidden turns a real plate into a
 *   different one. Heavy trailers registered before 2007 (Law 19.872) used the JA–JP series of this
 *   format, so they need no format of their own.
 * - `car_2007` LLLL·NN (since September 2007), letters BCDFGHJKLPRSTVWXYZ: no vowels, no M, N, Ñ,
 *   Q. Displayed as two letter pairs and a digit pair (BB·CL·12). Heavy trailers and semi-trailers
 *   registered since then are in this series too.
 * - `moto_2007` LLL·NN, same restricted letters: the motorcycle series being used up now.
 * - `moto_old` LL·NNN: the pre-2007 motorcycle layout. Assumed by analogy with `car_old` (same
 *   letter set); not checked against a primary source.
 * - `car_next` LLLLL·N and `moto_next` LLLL·N: announced by the Ministry of Transport in October
 *   2025 (amendment to MTT Supreme Decree 53, published January 2026), first series BBBBB-0 and
 *   BBBB-0, to start when the current series run out (about 2027 for motorcycles, 2029 for cars).
 *   Not yet issued. We assume the 2007 letter set; the published combination counts ("more than
 *   40 million") would fit all 21 consonants, so the set may turn out wider. Until these plates
 *   are on the road they carry a low prior, so a reading that fits a current format with one
 *   repair still beats one that fits an announced format untouched; raise it to 1 then.
 *
 * Not modelled, for want of a source we can check: diplomatic, police, armed-forces and provisional
 * series, and municipal plates of light trailers (outside the PPU, LLL NNN in red, which would
 * otherwise compete with car plates of the same length). Use the `generic` grammar to see them.
 */

/** Letters of plates issued before September 2007: A–Z without Q (Ñ is not in A–Z). */
export const CL_OLD_LETTERS = 'ABCDEFGHIJKLMNOPRSTUVWXYZ';
/** Letters of plates issued since September 2007: consonants without M, N, Ñ, Q. */
export const CL_NEW_LETTERS = 'BCDFGHJKLPRSTVWXYZ';
/** Score multiplier for announced formats that are not issued yet. */
const NOT_YET_ISSUED = 0.5;

const groups = (...sizes: number[]) => grouped('·', ...sizes);

export const CL_FORMATS: FormatSpec[] = [
  { name: 'car_2007', pattern: 'LLLLNN', letters: CL_NEW_LETTERS, display: groups(2, 2, 2) },
  { name: 'car_old', pattern: 'LLNNNN', letters: CL_OLD_LETTERS, display: groups(2, 4) },
  { name: 'moto_2007', pattern: 'LLLNN', letters: CL_NEW_LETTERS, display: groups(3, 2) },
  { name: 'moto_old', pattern: 'LLNNN', letters: CL_OLD_LETTERS, display: groups(2, 3) },
  { name: 'car_next', pattern: 'LLLLLN', letters: CL_NEW_LETTERS, display: groups(5, 1), prior: NOT_YET_ISSUED },
  { name: 'moto_next', pattern: 'LLLLN', letters: CL_NEW_LETTERS, display: groups(4, 1), prior: NOT_YET_ISSUED },
];

export const cl = buildGrammar({ name: 'cl', country: 'cl', formats: CL_FORMATS, correct: true, trim: true });
