import { nmeaSentence } from '../../src/drivers/serial/nmea.js';

// NMEA 0183 sentences as a GPS receiver sends them (bodies without $ and checksum, unless said).

/** Signed degrees → NMEA `ddmm.mmmm,H` (latitude) or `dddmm.mmmm,H` (longitude). */
function coord(deg: number, kind: 'lat' | 'lon'): string {
  const abs = Math.abs(deg);
  const whole = Math.floor(abs);
  const minutes = ((abs - whole) * 60).toFixed(4).padStart(7, '0');
  const hemisphere = kind === 'lat' ? (deg < 0 ? 'S' : 'N') : deg < 0 ? 'W' : 'E';
  return `${String(whole).padStart(kind === 'lat' ? 2 : 3, '0')}${minutes},${hemisphere}`;
}

export interface Pos {
  lat: number;
  lon: number;
}
/** La Serena, Chile: southern and western hemispheres. */
export const LA_SERENA: Pos = { lat: -29.9027, lon: -71.2519 };
/** Munich: northern and eastern. */
export const MUNICH: Pos = { lat: 48.1173, lon: 11.5167 };

export function gga(o: { pos?: Pos | null; time?: string; quality?: number; sats?: number; hdop?: number; alt?: number; talker?: string } = {}): string {
  const pos = o.pos === undefined ? LA_SERENA : o.pos;
  const where = pos ? `${coord(pos.lat, 'lat')},${coord(pos.lon, 'lon')}` : ',,,';
  return `${o.talker ?? 'GP'}GGA,${o.time ?? '123519.00'},${where},${o.quality ?? 1},${String(o.sats ?? 9).padStart(2, '0')},${o.hdop ?? 0.8},${o.alt ?? 28.3},M,22.1,M,,`;
}

export function rmc(
  o: { pos?: Pos | null; time?: string; status?: 'A' | 'V'; knots?: number | ''; course?: number | ''; date?: string; mode?: string; talker?: string } = {},
): string {
  const pos = o.pos === undefined ? LA_SERENA : o.pos;
  const where = pos ? `${coord(pos.lat, 'lat')},${coord(pos.lon, 'lon')}` : ',,,';
  return `${o.talker ?? 'GP'}RMC,${o.time ?? '123519.00'},${o.status ?? 'A'},${where},${o.knots ?? 22.4},${o.course ?? 84.4},${o.date ?? '300126'},,,${o.mode ?? 'A'}`;
}

/** `hhmmss.ss` and `ddmmyy` of a UTC time, as GGA and RMC carry it. */
export function nmeaTime(at: Date): { time: string; date: string } {
  const two = (n: number) => String(n).padStart(2, '0');
  return {
    time: `${two(at.getUTCHours())}${two(at.getUTCMinutes())}${two(at.getUTCSeconds())}.${two(Math.floor(at.getUTCMilliseconds() / 10))}`,
    date: `${two(at.getUTCDate())}${two(at.getUTCMonth() + 1)}${two(at.getUTCFullYear() % 100)}`,
  };
}

/** One second of a receiver with a 3D fix at `pos`: GGA then RMC, framed and checksummed, CRLF-ended. */
export function fixLines(at: Date, pos: Pos = LA_SERENA): string {
  const { time, date } = nmeaTime(at);
  return `${nmeaSentence(gga({ pos, time }))}\r\n${nmeaSentence(rmc({ pos, time, date, knots: 0, course: '' }))}\r\n`;
}
