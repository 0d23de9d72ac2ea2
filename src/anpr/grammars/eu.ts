import { isDigit, isLetter } from '../plate-text.js';
import { anyOfLength, buildGrammar, type FormatSpec } from './engine.js';

/**
 * A permissive grammar for roads with plates of several European countries: 4 to 8 letters and
 * digits, at least one of each. Formats vary so much between (and within) countries that no
 * position has a known class, and a repair needs one: eu therefore repairs almost nothing. It only
 * drops a border character (as a lower-ranked alternative) and replaces a position whose best glyph
 * is not a letter or digit at all by the recogniser's best alternative that is. Letters are any
 * cased letters, so German Ä, Ö, Ü and Nordic Å survive.
 */
const hasLetterAndDigit = (t: string): boolean => {
  let letter = false;
  let digit = false;
  for (const ch of t) {
    if (isDigit(ch)) digit = true;
    else if (isLetter(ch)) letter = true;
    if (letter && digit) return true;
  }
  return false;
};

export const EU_FORMATS: FormatSpec[] = [4, 5, 6, 7, 8].map((n) => ({ name: `eu${n}`, pattern: anyOfLength(n), check: hasLetterAndDigit }));

export const eu = buildGrammar({ name: 'eu', formats: EU_FORMATS, correct: true, trim: true });
