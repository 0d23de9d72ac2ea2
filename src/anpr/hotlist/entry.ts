/**
 * A hotlist entry is { plate, reason, source, added, expires }:
 *
 *   plate    letters and digits; case, spaces, hyphens, dots and the middle dot of Chilean plates
 *            ("BB·CL·12") are ignored, any other character makes the entry invalid; 1 to 10
 *            characters once normalised ("BBCL12")
 *   reason   why the plate is listed ("robo", "encargo por robo con violencia"), 1 to 200 characters
 *   source   who listed it ("carabineros", "pdi", "municipal"), 1 to 200 characters
 *            (reason and source are trimmed and may not contain control characters)
 *   added    when it was listed: a date "2025-03-10" or a time with its offset "2025-03-10T14:05:00-03:00"
 *   expires  when the entry stops matching, in the same forms, or null/empty for never. A date means
 *            the end of that day in UTC (the entry still matches on 2025-03-10T23:59:59.999Z); give a
 *            time with its offset when the hour matters.
 *
 * This module checks an entry's fields and turns them into what the list stores.
 */
import { DAY_MS, formatDate, parseDate } from './dates.js';
import { encodePlate, MAX_PLATE_LENGTH } from './plate-code.js';

export type HotlistEntryInput = {
  plate: string;
  reason: string;
  source: string;
  added: string;
  expires?: string | null;
};

/** An entry as stored: plate normalised, dates in canonical form. */
export type HotlistEntry = {
  plate: string;
  reason: string;
  source: string;
  added: string;
  expires: string | null;
};

/** A row that could not be used; `line` is 1-based (for fromEntries/applyDelta: the item's position). */
export type HotlistRowError = { line: number; message: string };

export const MAX_TEXT_LENGTH = 200;
/** Row errors kept for a file or a call; further ones are only counted. */
export const MAX_REPORTED_ERRORS = 1000;

/** Flags of a stored entry: whether `added` and `expires` were given as dates rather than times. */
export const F_ADDED_DATE = 1;
export const F_EXPIRES_DATE = 2;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what a listed field must not contain.
const BAD_TEXT = /[\u0000-\u001f\u007f]|\p{Surrogate}/u;

/** An entry's fields as the list stores them: plate code, trimmed texts, times in ms and the date flags. */
export type Validated = { code: number; reason: string; source: string; added: number; until: number; flags: number };
/** Shared record for validate() results, so that checking a row allocates nothing. */
export const SCRATCH: Validated = { code: 0, reason: '', source: '', added: 0, until: 0, flags: 0 };

/** Checks one entry's fields into `out`; returns the problem instead when it is invalid. */
export function validate(plate: unknown, reason: unknown, source: unknown, added: unknown, expires: unknown, out: Validated): string | undefined {
  if (typeof plate !== 'string') return 'plate must be a string';
  const code = encodePlate(plate);
  if (code < 0) return `plate ${JSON.stringify(plate.slice(0, 40))} is not 1 to ${MAX_PLATE_LENGTH} letters and digits`;
  const reasonText = checkText('reason', reason);
  if (typeof reasonText !== 'object') return reasonText;
  const sourceText = checkText('source', source);
  if (typeof sourceText !== 'object') return sourceText;
  if (typeof added !== 'string') return 'added must be a date string';
  const a = parseDate(added.trim());
  if (!a) return `added ${JSON.stringify(added.slice(0, 40))} is not a date (YYYY-MM-DD) or a time with offset (YYYY-MM-DDTHH:MM:SSZ)`;
  let until = Infinity;
  let flags = a.dateOnly ? F_ADDED_DATE : 0;
  const exp = typeof expires === 'string' ? expires.trim() : expires;
  if (exp !== null && exp !== undefined && exp !== '') {
    if (typeof exp !== 'string') return 'expires must be a date string or null';
    const e = parseDate(exp);
    if (!e) return `expires ${JSON.stringify(exp.slice(0, 40))} is not a date (YYYY-MM-DD) or a time with offset, nor empty`;
    until = e.dateOnly ? e.ms + DAY_MS - 1 : e.ms;
    if (e.dateOnly) flags |= F_EXPIRES_DATE;
  }
  out.code = code;
  out.reason = reasonText[0];
  out.source = sourceText[0];
  out.added = a.ms;
  out.until = until;
  out.flags = flags;
  return undefined;
}

/** [trimmed text] or the problem. */
function checkText(name: string, value: unknown): [string] | string {
  if (typeof value !== 'string') return `${name} must be a string`;
  const text = value.trim();
  if (text === '') return `${name} is empty`;
  if (text.length > MAX_TEXT_LENGTH) return `${name} is longer than ${MAX_TEXT_LENGTH} characters`;
  if (BAD_TEXT.test(text)) return `${name} contains a control character or an unpaired surrogate`;
  return [text];
}

export function expiresText(until: number, flags: number): string | null {
  if (until === Infinity) return null;
  return flags & F_EXPIRES_DATE ? formatDate(until - (DAY_MS - 1), true) : formatDate(until, false);
}
