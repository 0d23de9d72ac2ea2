/**
 * Dates of hotlist entries: a date "2025-03-10" or a time with its offset
 * "2025-03-10T14:05:00-03:00", held as ms since the epoch plus whether it was a date, and written
 * back in canonical form (YYYY-MM-DD, or UTC with milliseconds). Lists repeat few distinct dates, so
 * both directions are cached.
 */
import { ownCopy } from './own-copy.js';

export const DAY_MS = 86_400_000;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(Z|[+-]\d{2}:\d{2})$/;

type ParsedDate = { ms: number; dateOnly: boolean };
const dateCache = new Map<string, ParsedDate | null>();

export function parseDate(text: string): ParsedDate | null {
  const hit = dateCache.get(text);
  if (hit !== undefined) return hit;
  const parsed = parseDateUncached(text);
  if (dateCache.size >= 50_000) dateCache.clear();
  dateCache.set(ownCopy(text), parsed);
  return parsed;
}

function parseDateUncached(text: string): ParsedDate | null {
  let m = DATE_ONLY.exec(text);
  if (m) {
    const ms = utc(Number(m[1]), Number(m[2]), Number(m[3]), 0, 0, 0);
    return ms === null ? null : { ms, dateOnly: true };
  }
  m = DATE_TIME.exec(text);
  if (!m) return null;
  const base = utc(Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6] ?? 0));
  if (base === null) return null;
  const frac = m[7] ? Number(m[7].slice(0, 3).padEnd(3, '0')) : 0; // milliseconds; finer digits are dropped
  const zone = m[8]!;
  let offset = 0;
  if (zone !== 'Z') {
    const h = Number(zone.slice(1, 3));
    const min = Number(zone.slice(4, 6));
    if (h > 23 || min > 59) return null;
    offset = (zone[0] === '-' ? -1 : 1) * (h * 60 + min) * 60_000;
  }
  return { ms: base + frac - offset, dateOnly: false };
}

function utc(y: number, mo: number, d: number, h: number, mi: number, s: number): number | null {
  if (y < 1900 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || s > 59) return null;
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  // Rejects 2025-02-30 and the like, which Date.UTC would roll over.
  return new Date(ms).getUTCDate() === d ? ms : null;
}

const dayText = new Map<number, string>();
export function formatDate(ms: number, dateOnly: boolean): string {
  if (!dateOnly) return new Date(ms).toISOString();
  let text = dayText.get(ms);
  if (text === undefined) {
    text = new Date(ms).toISOString().slice(0, 10);
    if (dayText.size >= 50_000) dayText.clear();
    dayText.set(ms, text);
  }
  return text;
}

/** formatDate as bytes: whole days kept by day number (a list has few distinct ones), times formatted each time. */
export function dateBytes(): (ms: number, dateOnly: boolean) => Buffer {
  const days = new Map<number, Buffer>();
  return (ms, dateOnly) => {
    if (!dateOnly) return Buffer.from(formatDate(ms, false), 'latin1');
    let b = days.get(ms);
    if (!b) days.set(ms, (b = Buffer.from(formatDate(ms, true), 'latin1')));
    return b;
  };
}
