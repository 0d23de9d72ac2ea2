import { isDigit } from './plate-text.js';

/**
 * How much a piece of text read in a street scene looks like a licence plate rather than the other
 * text a gantry sees: brand badges and words (JEEP, CHEVROLET), dealer names on plate frames,
 * street signs, bus route boards, phone numbers, camera timestamp overlays. The detector finds all
 * of them and the recogniser reads them as confidently as a plate, so the ranking multiplies each
 * reading's confidence by this prior. A grammar's formats say which texts are valid; this says,
 * for every grammar and above all for `generic`, which of the valid ones is the plate.
 *
 * Plates worldwide mix letters and digits in short runs: at most four letters in a row (Chile's
 * BBCL12, Bolivia's 1234ABC, Argentina's AB123CD) and at most six digits (old series; the
 * formats read here have four at most). Words are long letter runs, phone numbers and timestamps
 * long digit runs. A plate of one line is 4 to 10 characters, mostly 6 or 7.
 */

/** Weight by length: 6 to 8 characters are the norm; 5 is common (motorcycles); 4 and 9 rare. */
const LENGTH_PRIOR: Readonly<Record<number, number>> = { 1: 0.2, 2: 0.3, 3: 0.5, 4: 0.8, 5: 0.95, 6: 1, 7: 1, 8: 1, 9: 0.85, 10: 0.7 };

/** Penalties, each a factor, for what plates do not have. */
export const TEXT_PENALTY = {
  /** Letters only: a word, a brand, a name (vanity plates exist, but are rare). */
  lettersOnly: 0.4,
  /** Digits only: a phone number, a date, a route or house number. */
  digitsOnly: 0.45,
  /** A run of five or more letters: a word inside the text (SALIDA12, AUTOMOTORA2000). */
  longLetterRun: 0.5,
  /** A run of seven or more digits: a phone number, a date or a timestamp (some old plates have six). */
  longDigitRun: 0.5,
  /** More than four runs (A1B2C3): plates switch between letters and digits at most three times. */
  manyRuns: 0.7,
  /**
   * A run of four letters holding two vowels or more: a word (RUTA 68, AUTO 2000). Random plate
   * letters do that about one time in six, and the formats with four-letter runs (Chile's since
   * 2007) use no vowels at all.
   */
  wordLikeRun: 0.6,
} as const;

export interface TextShape {
  length: number;
  letters: number;
  digits: number;
  /** Maximal runs of letters or of digits. */
  runs: number;
  longestLetterRun: number;
  longestDigitRun: number;
  /** Whether a run of four or more letters holds two vowels or more. */
  wordLikeRun: boolean;
}

const VOWELS = 'AEIOU';

export function textShape(text: string): TextShape {
  let letters = 0;
  let digits = 0;
  let runs = 0;
  let run = 0;
  let prevDigit: boolean | null = null;
  let longestLetterRun = 0;
  let longestDigitRun = 0;
  let vowelsInRun = 0;
  let wordLikeRun = false;
  for (const ch of text) {
    const digit = isDigit(ch);
    if (digit) digits++;
    else letters++;
    if (digit === prevDigit) run++;
    else {
      runs++;
      run = 1;
      vowelsInRun = 0;
    }
    if (!digit && VOWELS.includes(ch)) vowelsInRun++;
    if (!digit && run >= 4 && vowelsInRun >= 2) wordLikeRun = true;
    prevDigit = digit;
    if (digit) longestDigitRun = Math.max(longestDigitRun, run);
    else longestLetterRun = Math.max(longestLetterRun, run);
  }
  return { length: letters + digits, letters, digits, runs, longestLetterRun, longestDigitRun, wordLikeRun };
}

/** Text prior in [0, 1]: 1 for a plate-shaped text (AB123CD, BBCL12), down to about 0.05 for a timestamp. */
export function textLikeness(text: string): number {
  const s = textShape(text);
  if (s.length === 0) return 0;
  let p = LENGTH_PRIOR[s.length] ?? 0.5;
  if (s.digits === 0) p *= TEXT_PENALTY.lettersOnly;
  else if (s.letters === 0) p *= TEXT_PENALTY.digitsOnly;
  if (s.longestLetterRun >= 5) p *= TEXT_PENALTY.longLetterRun;
  if (s.longestDigitRun >= 7) p *= TEXT_PENALTY.longDigitRun;
  if (s.runs > 4) p *= TEXT_PENALTY.manyRuns;
  if (s.wordLikeRun && s.longestLetterRun < 5) p *= TEXT_PENALTY.wordLikeRun;
  return p;
}
