/**
 * NMEA 0183 sentences from GPS/GNSS receivers, decoded by pure functions: no I/O, no state, no
 * throwing. Every line yields a sentence, an "ignored" (well-formed but of a kind not decoded) or
 * a rejection with its reason, so a caller can count what a receiver really sends.
 */

/** GPS, multi-constellation, GLONASS, Galileo, BeiDou (new and old talker IDs). */
export const TALKERS = ['GP', 'GN', 'GL', 'GA', 'GB', 'BD'] as const;
export type Talker = (typeof TALKERS)[number];

export type NmeaRejectReason =
  /** No `$` start, or bytes that are not printable ASCII: noise, or the wrong baud rate. */
  | 'garbage'
  /** No `*hh` and the caller requires one. */
  | 'missing_checksum'
  | 'bad_checksum'
  /** Fewer fields than the sentence type has: the end of the line was lost. */
  | 'truncated'
  /** A field that cannot be what it claims (a latitude of 95°, an hour 25, a malformed address). */
  | 'malformed';

export interface LatLon {
  /** Degrees, negative south. */
  lat: number;
  /** Degrees, negative west. */
  lon: number;
}

/** GGA: fix data. */
export interface GgaSentence {
  type: 'GGA';
  talker: Talker;
  /** UTC milliseconds since midnight, null when the receiver has no time yet. */
  timeOfDayMs: number | null;
  position: LatLon | null;
  /** 0 no fix, 1 GPS, 2 DGPS, 3 PPS, 4 RTK, 5 float RTK, 6 estimated, 7 manual, 8 simulation. */
  quality: number;
  satellites: number | null;
  hdop: number | null;
  /** Above mean sea level. */
  altitudeM: number | null;
}

/** RMC: recommended minimum data, the only common sentence carrying the date. */
export interface RmcSentence {
  type: 'RMC';
  talker: Talker;
  timeOfDayMs: number | null;
  /** A valid, V warning (no fix). */
  status: 'A' | 'V';
  position: LatLon | null;
  speedKmh: number | null;
  /** Course over ground, degrees true. */
  courseDeg: number | null;
  /** The full UTC instant (epoch ms) when both time and date are present. */
  utcMs: number | null;
  /** NMEA 2.3+ mode: A autonomous, D differential, E estimated, M manual, S simulator, N not valid. */
  mode: string | null;
}

/** GSA: fix mode and dilution of precision. */
export interface GsaSentence {
  type: 'GSA';
  talker: Talker;
  /** 1 no fix, 2 2D, 3 3D. */
  fixMode: 1 | 2 | 3;
  pdop: number | null;
  hdop: number | null;
  vdop: number | null;
  /** Satellite IDs used in the fix. */
  satellites: number[];
}

/** VTG: course and speed over ground. */
export interface VtgSentence {
  type: 'VTG';
  talker: Talker;
  courseDeg: number | null;
  speedKmh: number | null;
  mode: string | null;
}

export type NmeaSentence = GgaSentence | RmcSentence | GsaSentence | VtgSentence;
export type NmeaSentenceType = NmeaSentence['type'];

export type NmeaParse =
  | { kind: 'sentence'; sentence: NmeaSentence }
  /** Well-formed, checksum right, but a type or talker not decoded (GSV, TXT, proprietary...). */
  | { kind: 'ignored'; address: string }
  | { kind: 'rejected'; reason: NmeaRejectReason };

export interface NmeaParseOptions {
  /** Accept sentences without `*hh` (some old receivers omit it). Default false. */
  allowMissingChecksum?: boolean;
}

export const KNOTS_TO_KMH = 1.852;

/** The two uppercase hex digits of the XOR of every character of `body` (between `$` and `*`). */
export function nmeaChecksum(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) sum ^= body.charCodeAt(i);
  return sum.toString(16).toUpperCase().padStart(2, '0');
}

/** A complete sentence from its body, e.g. `GPGGA,...` → `$GPGGA,...*hh`. */
export function nmeaSentence(body: string): string {
  return `$${body}*${nmeaChecksum(body)}`;
}

const PRINTABLE = /^[\x20-\x7e]*$/;
const HEX2 = /^[0-9A-Fa-f]{2}$/;
const ADDRESS = /^[A-Z]{2}[A-Z]{3}$/;
const DECIMAL = /^\d+(\.\d+)?$/;
const SIGNED_DECIMAL = /^-?\d+(\.\d+)?$/;

/** Fields (address included) up to the last one decoded, per sentence type. */
const FIELD_COUNT: Record<NmeaSentenceType, number> = { GGA: 11, RMC: 10, GSA: 18, VTG: 9 };

function fieldCount(formatter: string): number {
  return Object.hasOwn(FIELD_COUNT, formatter) ? FIELD_COUNT[formatter as NmeaSentenceType] : 0;
}

class Malformed extends Error {}
class Truncated extends Error {}

export function parseNmea(line: string, opts: NmeaParseOptions = {}): NmeaParse {
  // `$` never appears inside a sentence: text before the last one is the tail of a broken line.
  const start = line.lastIndexOf('$');
  if (start < 0) return reject('garbage');
  const text = line.slice(start + 1).trimEnd();
  if (!PRINTABLE.test(text)) return reject('garbage');

  const star = text.lastIndexOf('*');
  let body = text;
  if (star >= 0) {
    const given = text.slice(star + 1);
    if (given.length < 2) return reject('truncated');
    if (!HEX2.test(given) || given.toUpperCase() !== nmeaChecksum(text.slice(0, star))) return reject('bad_checksum');
    body = text.slice(0, star);
  }
  const fields = body.split(',');
  if (star < 0 && !opts.allowMissingChecksum) {
    // Most lines without a checksum were cut short (a reconnect, lost bytes): say so when visible.
    return reject(fields.length < fieldCount(body.slice(2, 5)) ? 'truncated' : 'missing_checksum');
  }

  const address = fields[0] ?? '';
  if (address.startsWith('P')) return { kind: 'ignored', address }; // proprietary: $PUBX, $PMTK...
  if (!ADDRESS.test(address)) return reject('malformed');
  const talker = address.slice(0, 2);
  const formatter = address.slice(2);
  if (!isTalker(talker)) return { kind: 'ignored', address };

  try {
    const sentence = decode(talker, formatter, fields);
    return sentence ? { kind: 'sentence', sentence } : { kind: 'ignored', address };
  } catch (err) {
    if (err instanceof Truncated) return reject('truncated');
    if (err instanceof Malformed) return reject('malformed');
    throw err;
  }
}

function reject(reason: NmeaRejectReason): NmeaParse {
  return { kind: 'rejected', reason };
}

function isTalker(value: string): value is Talker {
  return (TALKERS as readonly string[]).includes(value);
}

function decode(talker: Talker, formatter: string, f: string[]): NmeaSentence | null {
  switch (formatter) {
    case 'GGA':
      return decodeGga(talker, f);
    case 'RMC':
      return decodeRmc(talker, f);
    case 'GSA':
      return decodeGsa(talker, f);
    case 'VTG':
      return decodeVtg(talker, f);
    default:
      return null;
  }
}

/** $--GGA,hhmmss.ss,llll.ll,a,yyyyy.yy,a,q,nn,h.h,a.a,M,g.g,M,age,station */
function decodeGga(talker: Talker, f: string[]): GgaSentence {
  need(f, FIELD_COUNT.GGA);
  return {
    type: 'GGA',
    talker,
    timeOfDayMs: timeOfDay(f[1]!),
    position: position(f[2]!, f[3]!, f[4]!, f[5]!),
    quality: f[6] === '' ? 0 : integer(f[6]!, 0, 9)!,
    satellites: integer(f[7]!, 0, 99),
    hdop: unsigned(f[8]!),
    altitudeM: signed(f[9]!),
  };
}

/** $--RMC,hhmmss.ss,A,llll.ll,a,yyyyy.yy,a,x.x,x.x,ddmmyy,x.x,a[,m[,s]] */
function decodeRmc(talker: Talker, f: string[]): RmcSentence {
  need(f, FIELD_COUNT.RMC);
  const status = f[2];
  if (status !== 'A' && status !== 'V') throw new Malformed();
  const timeOfDayMs = timeOfDay(f[1]!);
  const day = date(f[9]!);
  const knots = unsigned(f[7]!);
  return {
    type: 'RMC',
    talker,
    timeOfDayMs,
    status,
    position: position(f[3]!, f[4]!, f[5]!, f[6]!),
    speedKmh: knots === null ? null : knots * KNOTS_TO_KMH,
    courseDeg: course(f[8]!),
    utcMs: day !== null && timeOfDayMs !== null ? day + timeOfDayMs : null,
    mode: modeIndicator(f[12]),
  };
}

/** $--GSA,a,x,xx,xx,xx,xx,xx,xx,xx,xx,xx,xx,xx,xx,p.p,h.h,v.v[,systemId] */
function decodeGsa(talker: Talker, f: string[]): GsaSentence {
  need(f, FIELD_COUNT.GSA);
  const fixMode = integer(f[2]!, 1, 3);
  if (fixMode === null) throw new Malformed();
  const satellites: number[] = [];
  for (let i = 3; i <= 14; i++) {
    const id = integer(f[i]!, 0, 999);
    if (id !== null) satellites.push(id);
  }
  return {
    type: 'GSA',
    talker,
    fixMode: fixMode as 1 | 2 | 3,
    pdop: unsigned(f[15]!),
    hdop: unsigned(f[16]!),
    vdop: unsigned(f[17]!),
    satellites,
  };
}

/** $--VTG,x.x,T,x.x,M,x.x,N,x.x,K[,m] (the NMEA 2.x layout, with unit letters). */
function decodeVtg(talker: Talker, f: string[]): VtgSentence {
  need(f, FIELD_COUNT.VTG);
  if (f[2] !== 'T' && f[2] !== '') throw new Malformed();
  if (f[8] !== 'K' && f[8] !== '') throw new Malformed();
  return { type: 'VTG', talker, courseDeg: course(f[1]!), speedKmh: unsigned(f[7]!), mode: modeIndicator(f[9]) };
}

function need(fields: string[], count: number): void {
  if (fields.length < count) throw new Truncated();
}

function unsigned(field: string): number | null {
  if (field === '') return null;
  if (!DECIMAL.test(field)) throw new Malformed();
  return Number(field);
}

function signed(field: string): number | null {
  if (field === '') return null;
  if (!SIGNED_DECIMAL.test(field)) throw new Malformed();
  return Number(field);
}

function integer(field: string, min: number, max: number): number | null {
  if (field === '') return null;
  if (!/^\d+$/.test(field)) throw new Malformed();
  const n = Number(field);
  if (n < min || n > max) throw new Malformed();
  return n;
}

function course(field: string): number | null {
  const deg = unsigned(field);
  if (deg === null) return null;
  if (deg > 360) throw new Malformed();
  return deg === 360 ? 0 : deg;
}

function modeIndicator(field: string | undefined): string | null {
  if (field === undefined || field === '') return null;
  if (!/^[A-Z]$/.test(field)) throw new Malformed();
  return field;
}

/** hhmmss[.sss] → milliseconds since UTC midnight. */
function timeOfDay(field: string): number | null {
  if (field === '') return null;
  const m = /^(\d{2})(\d{2})(\d{2}(?:\.\d+)?)$/.exec(field);
  if (!m) throw new Malformed();
  const h = Number(m[1]);
  const min = Number(m[2]);
  const s = Number(m[3]);
  // 60 allows a leap second.
  if (h > 23 || min > 59 || s >= 61) throw new Malformed();
  return Math.round((h * 3600 + min * 60 + s) * 1000);
}

/** ddmmyy → epoch milliseconds of that UTC midnight. Two-digit years: 80-99 are 19xx, else 20xx. */
function date(field: string): number | null {
  if (field === '') return null;
  const m = /^(\d{2})(\d{2})(\d{2})$/.exec(field);
  if (!m) throw new Malformed();
  const day = Number(m[1]);
  const month = Number(m[2]);
  const yy = Number(m[3]);
  const year = yy >= 80 ? 1900 + yy : 2000 + yy;
  const ms = Date.UTC(year, month - 1, day);
  const check = new Date(ms);
  if (month < 1 || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) throw new Malformed();
  return ms;
}

/** ddmm.mmmm,N|S and dddmm.mmmm,E|W → signed degrees; null when the receiver left them empty. */
function position(lat: string, ns: string, lon: string, ew: string): LatLon | null {
  if (lat === '' && lon === '') return null;
  const latDeg = angle(lat, 2, 90);
  const lonDeg = angle(lon, 3, 180);
  if (ns !== 'N' && ns !== 'S') throw new Malformed();
  if (ew !== 'E' && ew !== 'W') throw new Malformed();
  return { lat: ns === 'S' ? -latDeg : latDeg, lon: ew === 'W' ? -lonDeg : lonDeg };
}

function angle(field: string, degreeDigits: number, maxDeg: number): number {
  const m = new RegExp(`^(\\d{${degreeDigits}})(\\d{2}(?:\\.\\d+)?)$`).exec(field);
  if (!m) throw new Malformed();
  const deg = Number(m[1]);
  const min = Number(m[2]);
  if (min >= 60) throw new Malformed();
  const value = deg + min / 60;
  if (value > maxDeg) throw new Malformed();
  return value;
}
