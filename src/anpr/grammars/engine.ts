import type { PlateCandidate, PlateFormat, PlateGrammar, RecognisedChar } from './types.js';
import { DIGIT_LOOKALIKES, FORBIDDEN_LETTER_LOOKALIKES, isDigit, isLetter, LETTER_LOOKALIKE_DIGIT, normalisePlateText, upperCaseChar } from '../plate-text.js';

/**
 * The shared machinery behind every grammar: formats are compiled once at module load into class
 * arrays and letter tables, so `interpret` (called per frame, per plate candidate) does no regex
 * work and allocates little.
 */

const LETTER = 0;
const DIGIT = 1;
/** Letter or digit: where a grammar cannot say which (eu, generic), so no look-alike is repaired. */
const ANY = 2;

/** Probabilities are clamped so one zero does not erase a candidate's whole score. */
const PROB_FLOOR = 1e-3;
/** Replacing a character by the recogniser's own alternative: its probability already counts. */
const ALT_PENALTY = 0.9;
/** Replacing it by a classic glyph confusion: a guess the recogniser did not offer. */
const CONFUSION_PENALTY = 0.6;
/**
 * Dropping one character at either end. Only a glyph that plate frames and bolts look like, or
 * one the recogniser itself doubted, may go: dropping confident letters would invent other plates
 * (BBCL12 would also yield the motorcycle BCL12, a false hit waiting to happen).
 */
const TRIM_PENALTY = 0.7;
const BORDER_GLYPHS = 'I1|';
const TRIM_MAX_PROB = 0.5;
/** Readings beyond this are noise to every caller. */
const MAX_CANDIDATES = 8;

/** Optional knobs a grammar module adds to its formats. */
export interface FormatSpec extends PlateFormat {
  /** Multiplies the score: below 1 for formats that exist but should lose ties (not yet issued). */
  prior?: number;
  /** A whole-text rule the position classes cannot express (eu: at least one letter and one digit). */
  check?: (text: string) => boolean;
}

interface CompiledFormat {
  spec: FormatSpec;
  classes: Uint8Array;
  allows: (ch: string) => boolean;
  prior: number;
  order: number;
}

export interface GrammarSpec {
  name: string;
  /** The country whose plates these are: every candidate is tagged with it. */
  country?: string;
  formats: FormatSpec[];
  /** Repair characters of the wrong class or outside the allowed letters. */
  correct: boolean;
  /** Consider dropping one leading or trailing character. */
  trim: boolean;
}

function letterTest(letters: string | undefined): (ch: string) => boolean {
  if (letters === undefined) return isLetter;
  const ascii = new Uint8Array(128);
  const other = new Set<string>();
  for (const ch of letters) {
    if (!isLetter(ch) || upperCaseChar(ch) !== ch) throw new Error(`format letters must be upper-case letters, got ${JSON.stringify(ch)}`);
    const c = ch.charCodeAt(0);
    if (c < 128) ascii[c] = 1;
    else other.add(ch);
  }
  return (ch) => {
    const c = ch.charCodeAt(0);
    return ch.length === 1 && (c < 128 ? ascii[c] === 1 : other.has(ch));
  };
}

function compile(spec: FormatSpec, order: number): CompiledFormat {
  const classes = new Uint8Array(spec.pattern.length);
  for (let i = 0; i < spec.pattern.length; i++) {
    const p = spec.pattern[i];
    if (p === 'L') classes[i] = LETTER;
    else if (p === 'N') classes[i] = DIGIT;
    else if (p === 'A') classes[i] = ANY;
    else throw new Error(`format ${spec.name}: pattern ${JSON.stringify(spec.pattern)} may only hold L, N and A`);
  }
  return { spec, classes, allows: letterTest(spec.letters), prior: spec.prior ?? 1, order };
}

function fits(f: CompiledFormat, cls: number, ch: string): boolean {
  if (cls === DIGIT) return isDigit(ch);
  if (cls === LETTER) return f.allows(ch);
  return isDigit(ch) || f.allows(ch);
}

function clampProb(p: number): number {
  return Number.isFinite(p) ? Math.min(1, Math.max(PROB_FLOOR, p)) : PROB_FLOOR;
}

// One position's choice, written into these instead of a fresh object per character.
let pickChar = '';
let pickProb = 0;
let pickPenalty = 1;

/** The character a format position takes from a recognised one, or false when none fits. */
function pick(f: CompiledFormat, cls: number, rc: RecognisedChar, correct: boolean): boolean {
  const best = upperCaseChar(rc.best);
  if (fits(f, cls, best)) {
    pickChar = best;
    pickProb = clampProb(rc.prob);
    pickPenalty = 1;
    return true;
  }
  if (!correct) return false;
  for (const alt of rc.alternatives) {
    const ch = upperCaseChar(alt.char);
    if (ch !== best && fits(f, cls, ch)) {
      pickChar = ch;
      pickProb = clampProb(alt.prob);
      pickPenalty = ALT_PENALTY;
      return true;
    }
  }
  if (cls === ANY) return false; // the class is ambiguous: no confusion to repair towards
  // No alternative fits: try the glyphs readers confuse with this one (plate-text.ts), a guess the recogniser did not offer.
  const confusions = isDigit(best) ? DIGIT_LOOKALIKES[best] : cls === DIGIT ? LETTER_LOOKALIKE_DIGIT[best] : FORBIDDEN_LETTER_LOOKALIKES[best];
  if (confusions !== undefined) {
    for (const ch of confusions) {
      if (fits(f, cls, ch)) {
        pickChar = ch;
        pickProb = clampProb(rc.prob);
        pickPenalty = CONFUSION_PENALTY;
        return true;
      }
    }
  }
  return false;
}

interface Scored extends PlateCandidate {
  order: number;
}

function better(a: Scored, b: Scored): number {
  return b.score - a.score || a.corrected - b.corrected || a.order - b.order || (a.text < b.text ? -1 : a.text > b.text ? 1 : 0);
}

export function buildGrammar(g: GrammarSpec): PlateGrammar {
  const compiled = g.formats.map(compile);
  const byLength = new Map<number, CompiledFormat[]>();
  for (const f of compiled) {
    const list = byLength.get(f.classes.length) ?? [];
    list.push(f);
    byLength.set(f.classes.length, list);
  }

  /** Exact match of normalised text against one format, without repairs. */
  const matches = (f: CompiledFormat, text: string): boolean => {
    if (text.length !== f.classes.length) return false;
    for (let i = 0; i < text.length; i++) if (!fits(f, f.classes[i]!, text[i]!)) return false;
    return f.spec.check === undefined || f.spec.check(text);
  };

  const formatFor = (text: string): CompiledFormat | undefined => {
    const t = normalisePlateText(text);
    return byLength.get(t.length)?.find((f) => matches(f, t));
  };

  const tryWindow = (chars: RecognisedChar[], start: number, end: number, windowPenalty: number, out: Map<string, Scored>): void => {
    const formats = byLength.get(end - start);
    if (formats === undefined) return;
    for (const f of formats) {
      let text = '';
      let logSum = 0;
      let penalty = windowPenalty * f.prior;
      let corrected = start > 0 || end < chars.length ? 1 : 0; // a dropped character is a change
      let ok = true;
      for (let i = start; i < end; i++) {
        if (!pick(f, f.classes[i - start]!, chars[i]!, g.correct)) {
          ok = false;
          break;
        }
        text += pickChar;
        logSum += Math.log(pickProb);
        if (pickPenalty !== 1) {
          penalty *= pickPenalty;
          corrected++;
        }
      }
      if (!ok || (f.spec.check !== undefined && !f.spec.check(text))) continue;
      // Geometric mean keeps formats of different lengths comparable; penalties are per change.
      const score = Math.exp(logSum / (end - start)) * penalty;
      const seen = out.get(text);
      const cand: Scored = { text, format: f.spec.name, score, corrected, order: f.order };
      if (seen === undefined || better(cand, seen) < 0) out.set(text, cand);
    }
  };

  const trimmable = (rc: RecognisedChar): boolean => BORDER_GLYPHS.includes(upperCaseChar(rc.best)) || !(rc.prob >= TRIM_MAX_PROB);

  const country = g.country;
  return {
    name: g.name,
    ...(country !== undefined ? { country } : {}),
    formats: g.formats,
    interpret(chars) {
      const n = chars.length;
      if (n === 0) return [];
      const found = new Map<string, Scored>();
      tryWindow(chars, 0, n, 1, found);
      if (g.trim && n >= 2) {
        if (trimmable(chars[0]!)) tryWindow(chars, 1, n, TRIM_PENALTY, found);
        if (trimmable(chars[n - 1]!)) tryWindow(chars, 0, n - 1, TRIM_PENALTY, found);
      }
      return [...found.values()]
        .sort(better)
        .slice(0, MAX_CANDIDATES)
        .map(({ text, format, score, corrected }) =>
          country !== undefined ? { text, format, score, corrected, country } : { text, format, score, corrected },
        );
    },
    normalise: normalisePlateText,
    isValid: (text) => formatFor(text) !== undefined,
    formatOf: (text) => formatFor(text)?.spec.name ?? null,
    display(text) {
      const t = normalisePlateText(text);
      const f = formatFor(t);
      return f?.spec.display ? f.spec.display(t) : t;
    },
  };
}

/** A format pattern of `n` ambiguous positions, for grammars that only know lengths. */
export const anyOfLength = (n: number): string => 'A'.repeat(n);

/** A display that splits the text into groups of `sizes` characters joined by `separator` (`grouped(' ', 3, 3)`: `ABC 123`). */
export const grouped =
  (separator: string, ...sizes: number[]) =>
  (text: string): string => {
    const parts: string[] = [];
    let at = 0;
    for (const n of sizes) {
      parts.push(text.slice(at, at + n));
      at += n;
    }
    return parts.join(separator);
  };
