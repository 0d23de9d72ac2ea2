import { buildGrammar, type FormatSpec } from './engine.js';

/**
 * Brazil: the grey plates LLL·NNNN issued until 2018 and the Mercosur plates LLLNLNN that replace
 * them (the fifth character became a letter). Both carry all 26 letters. The two formats differ
 * only at that fifth position, so a digit read there is kept as old and a letter as Mercosur; a
 * confused glyph there (O/0, B/8) is genuinely ambiguous and both readings come back as candidates.
 */
export const BR_FORMATS: FormatSpec[] = [
  { name: 'mercosul', pattern: 'LLLNLNN' },
  { name: 'old', pattern: 'LLLNNNN', display: (t) => `${t.slice(0, 3)}-${t.slice(3)}` },
];

export const br = buildGrammar({ name: 'br', country: 'br', formats: BR_FORMATS, correct: true, trim: true });

/**
 * The Mercosur plate an old plate becomes when a car is re-plated: the fifth digit turns into the
 * letter of the same rank (0→A … 9→J). A hotlist entered in one form still matches the other.
 */
export function brOldToMercosul(text: string): string | null {
  const t = br.normalise(text);
  if (br.formatOf(t) !== 'old') return null;
  const digit = t.charCodeAt(4) - 48;
  return t.slice(0, 4) + String.fromCharCode(65 + digit) + t.slice(5);
}
