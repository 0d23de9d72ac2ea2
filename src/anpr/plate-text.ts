/**
 * Plate text: which characters a plate is made of, how a reading is normalised, and which glyphs
 * plate readers mistake for one another. Grammars, multi-frame voting, plate hashing and the
 * hotlist all take these from here, so they agree on what "the same plate" and "a likely misread"
 * mean.
 */

export function isDigit(ch: string): boolean {
  const c = ch.charCodeAt(0);
  return ch.length === 1 && c >= 48 && c <= 57;
}

/** Any cased letter, so European plates keep Ä, Ö, Ü, Å; ASCII takes the fast path. */
export function isLetter(ch: string): boolean {
  if (ch.length !== 1) return false;
  const c = ch.charCodeAt(0);
  if (c < 128) return (c >= 65 && c <= 90) || (c >= 97 && c <= 122);
  return ch.toUpperCase() !== ch.toLowerCase();
}

/** One character in upper case; anything that would not stay one character is returned as it is. */
export function upperCaseChar(ch: string): string {
  const c = ch.charCodeAt(0);
  if (ch.length === 1 && c >= 97 && c <= 122) return String.fromCharCode(c - 32);
  if (c < 128) return ch;
  const u = ch.toUpperCase();
  return u.length === 1 ? u : ch; // 'ß' would become "SS"; leave it alone
}

/**
 * Upper-case letters and digits only: drops spaces, dots, hyphens, the middle dot of Chilean
 * plates and anything else a recogniser or an operator types between the characters.
 *
 * This is the normalisation of readings. Listed plates follow a stricter rule (ASCII letters and
 * digits, known separators only, at most ten characters: normalisePlate in hotlist/plate-code.ts),
 * because a list entry with a stray character must be refused, not silently taken as another plate.
 */
export function normalisePlateText(text: string): string {
  let out = '';
  for (const raw of text) {
    const ch = upperCaseChar(raw);
    if (isDigit(ch) || isLetter(ch)) out += ch;
  }
  return out;
}

/**
 * Glyphs plate readers mistake for one another: each class is a digit and the letters read in its
 * place (or read as it), most frequent confusion first.
 *
 *   0 O D Q   round glyphs; 0/O are near identical in plate fonts, D and Q lose their straight edge
 *             or tail to blur, dirt and bolt heads
 *   1 I       a bar; the flag of the 1 is small and often lost
 *   2 Z       same strokes, different curvature
 *   4 A       closed/open apex, confused at low resolution and on worn paint
 *   5 S       differ only in the upper-left corner
 *   6 G       differ only in the closing stroke
 *   7 T       a top bar and one stroke; the slant is lost at an angle
 *   8 B       the most frequent confusion of all, mainly when the left edge is in shadow
 *
 * The classes have to be disjoint (the hotlist indexes each plate under one representative per
 * character), so a character sits in the class of its most frequent partner: T goes with 7, not
 * with 1 (a serif-less 1 reads as I far more often than as T), and L, J, U, C, 3 are in no class:
 * L and J keep a foot, U an open top, C and 3 an opening that a read rarely loses, and adding them
 * would merge classes ({1 I L}, {3 8 B}) and multiply false alarms.
 */
export const LOOKALIKE_CLASSES: readonly string[] = ['0ODQ', '1I', '2Z', '4A', '5S', '6G', '7T', '8B'];

/** The letters each digit is mistaken for, most likely first ('0' → 'ODQ'). */
export const DIGIT_LOOKALIKES: Readonly<Record<string, string>> = Object.fromEntries(LOOKALIKE_CLASSES.map((cls): [string, string] => [cls[0]!, cls.slice(1)]));

/** The digit each letter is mistaken for ('O' → '0'). */
export const LETTER_LOOKALIKE_DIGIT: Readonly<Record<string, string>> = Object.fromEntries(
  LOOKALIKE_CLASSES.flatMap((cls) => [...cls.slice(1)].map((letter): [string, string] => [letter, cls[0]!])),
);

/**
 * Letters a format forbids, read in place of one it allows: O for D (Chile's restricted set has
 * no O), Q for O, U for V, E for F (a lost lower bar), Ñ for N. Kept short on purpose: every entry
 * is a guess that can turn a misread into a different, valid plate.
 *
 * Only the grammars use these, and only where a format rules the letter read out. The hotlist's
 * confusable matching has no format to narrow it down and applies at every position, so it keeps
 * to LOOKALIKE_CLASSES (which already hold O, Q and D together): U/V and E/F there would multiply
 * false alarms, and a listed plate never holds Ñ.
 */
export const FORBIDDEN_LETTER_LOOKALIKES: Readonly<Record<string, string>> = {
  O: 'D',
  Q: 'OD',
  U: 'V',
  E: 'F',
  Ñ: 'N',
};
