/**
 * Plates as numbers: each character is a base-37 digit (0 = past the end, '0'..'9' = 1..10,
 * 'A'..'Z' = 11..36), most significant first, padded to ten positions. 37^10 < 2^53, so every code
 * is an exact double, and numeric order is the byte order of the plates. The list sorts, searches
 * and hashes these codes; text is made only for what leaves it.
 *
 * A listed plate is ASCII letters and digits; case, spaces, hyphens, dots and the middle dot of
 * Chilean plates ("BB·CL·12") are ignored, any other character makes it invalid; 1 to 10 characters
 * once normalised ("BBCL12").
 */
import { LOOKALIKE_CLASSES } from '../plate-text.js';

export const MAX_PLATE_LENGTH = 10;

const BASE = 37;
const POW: number[] = Array.from({ length: MAX_PLATE_LENGTH + 1 }, (_, i) => BASE ** i);
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const ALPHABET_BYTES = Buffer.from(ALPHABET, 'latin1');
const SEPARATOR = -2;
const INVALID = -1;
/** Digit of an ASCII character, SEPARATOR or INVALID. */
const ASCII_DIGIT = new Int8Array(128).fill(INVALID);
for (let i = 0; i < ALPHABET.length; i++) {
  ASCII_DIGIT[ALPHABET.charCodeAt(i)] = i + 1;
  ASCII_DIGIT[ALPHABET.toLowerCase().charCodeAt(i)] = i + 1;
}
for (const ch of ' -.') ASCII_DIGIT[ch.charCodeAt(0)] = SEPARATOR;
/** Non-ASCII characters ignored in plates: no-break space, middle dot, bullet, hyphens and dashes. */
const WIDE_SEPARATORS = new Set([0x00a0, 0x00b7, 0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2022, 0x2212]);

/** Class representative of each digit value (identity outside the confusable classes). */
const CLASS_OF = new Uint8Array(BASE).map((_, i) => i);
for (const cls of LOOKALIKE_CLASSES) {
  const rep = ALPHABET.indexOf(cls[0]!) + 1;
  for (const ch of cls) CLASS_OF[ALPHABET.indexOf(ch) + 1] = rep;
}

/** The plate's code, or -1 when it is empty, too long or holds a character that is not allowed. */
export function encodePlate(text: string): number {
  let code = 0;
  let len = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    const d = c < 128 ? ASCII_DIGIT[c]! : WIDE_SEPARATORS.has(c) ? SEPARATOR : INVALID;
    if (d === SEPARATOR) continue;
    if (d === INVALID || ++len > MAX_PLATE_LENGTH) return -1;
    code = code * BASE + d;
  }
  return len === 0 ? -1 : code * POW[MAX_PLATE_LENGTH - len]!;
}

// Codes are taken apart as two halves of five positions (each below 2^27), so that the digit
// arithmetic stays in small integers.
const HALF = BASE ** 5;
const splitLo = (code: number): number => code % HALF;

/** Writes the ASCII bytes of the plate into `out` at `at`; returns the number written. */
export function plateBytes(code: number, out: Uint8Array, at: number): number {
  const lo = splitLo(code);
  let n = halfBytes((code - lo) / HALF, out, at);
  n += halfBytes(lo, out, at + n);
  return n;
}

function halfBytes(x: number, out: Uint8Array, at: number): number {
  let n = 0;
  for (let p = HALF / BASE; p >= 1; p /= BASE) {
    const d = (x / p) | 0;
    x -= d * p;
    if (d === 0) return n;
    out[at + n++] = ALPHABET_BYTES[d - 1]!;
  }
  return n;
}

export function decodePlate(code: number): string {
  const lo = splitLo(code);
  return halfText((code - lo) / HALF) + halfText(lo);
}

function halfText(x: number): string {
  let out = '';
  for (let p = HALF / BASE; p >= 1; p /= BASE) {
    const d = (x / p) | 0;
    x -= d * p;
    if (d === 0) break;
    out += ALPHABET[d - 1]!;
  }
  return out;
}

/** Confusable key of every group of 3 (and 2) positions, so that a half takes two look-ups. */
const B2 = BASE * BASE;
const KEY3 = new Uint16Array(B2 * BASE).map((_, g) => CLASS_OF[(g / B2) | 0]! * B2 + CLASS_OF[((g / BASE) | 0) % BASE]! * BASE + CLASS_OF[g % BASE]!);
const KEY2 = KEY3.subarray(0, B2);

function confusableHalf(x: number): number {
  const g = (x / B2) | 0;
  return KEY3[g]! * B2 + KEY2[x - g * B2]!;
}

export function confusableKey(code: number): number {
  const lo = splitLo(code);
  return confusableHalf((code - lo) / HALF) * HALF + confusableHalf(lo);
}

function halfApart(a: number, b: number): number {
  let n = 0;
  for (let p = HALF / BASE; p >= 1; p /= BASE) {
    const da = (a / p) | 0;
    const db = (b / p) | 0;
    if (da !== db) n++;
    a -= da * p;
    b -= db * p;
  }
  return n;
}

/** Positions at which two codes differ. */
export function positionsApart(a: number, b: number): number {
  const la = splitLo(a);
  const lb = splitLo(b);
  return halfApart((a - la) / HALF, (b - lb) / HALF) + halfApart(la, lb);
}

/**
 * "bb-cl 12" → "BBCL12"; null when the text is not a plate a list may hold (see above).
 * Stricter than normalisePlateText (plate-text.ts), which normalises readings.
 */
export function normalisePlate(text: string): string | null {
  const code = encodePlate(text);
  return code < 0 ? null : decodePlate(code);
}

/** The plate with every character replaced by its confusable class representative ("BBCL1Z" → "88CL12"). */
export function confusableForm(text: string): string | null {
  const code = encodePlate(text);
  return code < 0 ? null : decodePlate(confusableKey(code));
}
