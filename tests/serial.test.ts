import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type Clock, ManualClock, systemClock } from '../src/core/clock.js';
import { ClockSync } from '../src/core/clock-sync.js';
import type { EventDraft, GeoStamp } from '../src/core/event.js';
import { EVENT_TYPES, type EventPayload, type EventType } from '../src/core/events.js';
import { LocationSlot } from '../src/core/location.js';
import { createLogger } from '../src/core/logger.js';
import { ManualScheduler, systemTimers, type Timers } from '../src/core/timers.js';
import { type FixLostReason, type GpsFix, GpsReceiver } from '../src/drivers/serial/gps.js';
import { type GpsContext, GpsExtension } from '../src/features/gps.js';
import { GpsClock } from '../src/features/gps-clock.js';
import { LinePort, type LinePortState } from '../src/drivers/serial/line-port.js';
import { LineSplitter } from '../src/drivers/serial/line-splitter.js';
import { nmeaChecksum, type NmeaParse, parseNmea } from '../src/drivers/serial/nmea.js';
import { gga, LA_SERENA, MUNICH, rmc } from './helpers/nmea.js';
import { mulberry32 } from './helpers/random.js';
import { type PtyLink, startPtyLink } from './helpers/socat.js';

const tmp = mkdtempSync(join(tmpdir(), 'vigia-serial-'));
const cleanups: Array<() => unknown> = [];

afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const FAST_BACKOFF = { minDelayMs: 20, maxDelayMs: 200, jitter: 0.2, resetAfterMs: 10_000 };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Fails (never skips) with the install command when socat is missing. */
async function ptyLink(name = 'gps'): Promise<PtyLink> {
  const link = await startPtyLink(mkdtempSync(join(tmp, 'pty-')), name);
  cleanups.push(() => link.close());
  return link;
}

// --- NMEA composed here, with checksums computed here ----------------------------------------

/** XOR of the characters between `$` and `*`, written independently of the module under test. */
function checksum(body: string): string {
  let x = 0;
  for (const ch of Buffer.from(body, 'latin1')) x ^= ch;
  return x.toString(16).toUpperCase().padStart(2, '0');
}
const sentence = (body: string): string => `$${body}*${checksum(body)}`;
const wire = (...bodies: string[]): string => bodies.map((b) => `${sentence(b)}\r\n`).join('');

function gsa(mode: 1 | 2 | 3, dop: [number, number, number] = [1.5, 0.8, 1.2], talker = 'GN'): string {
  const prns = ['04', '05', '09', '12', '24', '', '', '', '', '', '', ''];
  return [`${talker}GSA`, 'A', String(mode), ...prns, ...dop.map(String)].join(',');
}

const vtg = (course: number, knots: number, kmh: number): string => `GPVTG,${course},T,,M,${knots},N,${kmh},K,A`;

function parsed(line: string, opts?: { allowMissingChecksum?: boolean }): NmeaParse {
  return parseNmea(line, opts);
}

function decoded(line: string): Record<string, unknown> {
  const r = parseNmea(line);
  if (r.kind !== 'sentence') throw new Error(`expected a sentence, got ${JSON.stringify(r)} for ${line}`);
  return r.sentence as unknown as Record<string, unknown>;
}

// ---------------------------------------------------------------------------------------------

describe('NMEA parser', () => {
  it('computes checksums as the XOR between $ and *', () => {
    for (const body of [gga(), rmc(), gsa(3), 'GPTXT,01,01,02,hello', '']) expect(nmeaChecksum(body)).toBe(checksum(body));
  });

  const table: Array<[string, string, Record<string, unknown>]> = [
    [
      'GGA south/west (Chile)',
      sentence(gga({ pos: LA_SERENA, quality: 1, sats: 9, hdop: 0.8, alt: 28.3 })),
      { type: 'GGA', talker: 'GP', quality: 1, satellites: 9, hdop: 0.8, altitudeM: 28.3, timeOfDayMs: (12 * 3600 + 35 * 60 + 19) * 1000 },
    ],
    [
      'GGA north/east, GN talker, DGPS',
      sentence(gga({ pos: MUNICH, quality: 2, talker: 'GN', alt: -12.5 })),
      { type: 'GGA', talker: 'GN', quality: 2, altitudeM: -12.5 },
    ],
    ['GGA without a fix', sentence(gga({ pos: null, quality: 0, sats: 0 })), { type: 'GGA', quality: 0, position: null, satellites: 0 }],
    [
      'RMC valid, knots to km/h, full UTC instant',
      sentence(rmc({ time: '123519.50', knots: 22.4, course: 84.4, date: '300126' })),
      { type: 'RMC', status: 'A', speedKmh: 22.4 * 1.852, courseDeg: 84.4, utcMs: Date.UTC(2026, 0, 30, 12, 35, 19, 500), mode: 'A' },
    ],
    [
      'RMC void, no position',
      sentence(rmc({ status: 'V', pos: null, knots: '', course: '', mode: 'N' })),
      { type: 'RMC', status: 'V', position: null, speedKmh: null, courseDeg: null, mode: 'N' },
    ],
    ['RMC two-digit year 99 is 1999', sentence(rmc({ date: '311299', time: '235959.00' })), { utcMs: Date.UTC(1999, 11, 31, 23, 59, 59) }],
    ['RMC GLONASS talker', sentence(rmc({ talker: 'GL' })), { talker: 'GL' }],
    ['GSA 3D', sentence(gsa(3, [1.9, 1.0, 1.6])), { type: 'GSA', fixMode: 3, pdop: 1.9, hdop: 1.0, vdop: 1.6, satellites: [4, 5, 9, 12, 24] }],
    ['GSA 2D, Galileo', sentence(gsa(2, [2.5, 2.1, 1.3], 'GA')), { type: 'GSA', talker: 'GA', fixMode: 2 }],
    ['GSA no fix, BeiDou (GB)', sentence(gsa(1, [99.9, 99.9, 99.9], 'GB')), { type: 'GSA', talker: 'GB', fixMode: 1 }],
    ['GGA BeiDou (BD)', sentence(gga({ talker: 'BD' })), { talker: 'BD' }],
    ['VTG', sentence(vtg(54.7, 5.5, 10.2)), { type: 'VTG', courseDeg: 54.7, speedKmh: 10.2, mode: 'A' }],
    ['lowercase checksum digits', `$${gga()}*${checksum(gga()).toLowerCase()}`, { type: 'GGA' }],
    ['junk before the $ (tail of a broken line)', `\x00\xffA,4807.0$${gga()}*${checksum(gga())}`, { type: 'GGA' }],
  ];

  it.each(table)('%s', (_name, line, expected) => {
    expect(decoded(line)).toMatchObject(expected);
  });

  it('gets hemispheres right: south and west are negative', () => {
    const south = decoded(sentence(gga({ pos: LA_SERENA }))).position as { lat: number; lon: number };
    expect(south.lat).toBeCloseTo(-29.9027, 6);
    expect(south.lon).toBeCloseTo(-71.2519, 6);
    const north = decoded(sentence(rmc({ pos: MUNICH }))).position as { lat: number; lon: number };
    expect(north.lat).toBeCloseTo(48.1173, 6);
    expect(north.lon).toBeCloseTo(11.5167, 6);
    const mixed = decoded(sentence(gga({ pos: { lat: 33.8688, lon: -151.2093 } }))).position as { lat: number; lon: number };
    expect(mixed.lat).toBeCloseTo(33.8688, 6);
    expect(mixed.lon).toBeCloseTo(-151.2093, 6);
  });

  const rejects: Array<[string, string, string]> = [
    ['no $ at all', 'hello world', 'garbage'],
    ['binary noise (wrong baud rate)', '$\x8f\x12\xfe\x00GPGGA', 'garbage'],
    ['checksum does not match', `$${gga()}*${checksum(gga()) === '00' ? '01' : '00'}`, 'bad_checksum'],
    ['a field changed in transit', `$${gga().replace('2954', '2955')}*${checksum(gga())}`, 'bad_checksum'],
    ['checksum not hex', `$${gga()}*ZZ`, 'bad_checksum'],
    ['cut inside the checksum', `$${gga()}*${checksum(gga())[0]}`, 'truncated'],
    ['cut in the middle', `$${gga()}`.slice(0, 30), 'truncated'],
    ['no checksum', `$${gga()}`, 'missing_checksum'],
    ['latitude minutes over 60', sentence(gga().replace('2954.1620', '2961.0000')), 'malformed'],
    ['hemisphere not N/S', sentence(gga().replace(',S,', ',X,')), 'malformed'],
    ['hour 25', sentence(gga({ time: '253519.00' })), 'malformed'],
    ['RMC status neither A nor V', sentence(rmc().replace(',A,', ',Z,')), 'malformed'],
    ['February 30th', sentence(rmc({ date: '300226' })), 'malformed'],
    ['GSA mode 4', sentence(gsa(3).replace(',A,3,', ',A,4,')), 'malformed'],
    ['address too short', sentence('GPG,1,2'), 'malformed'],
    ['GGA with too few fields even with a checksum', sentence('GPGGA,123519.00,2954.1620,S'), 'truncated'],
  ];

  it.each(rejects)('rejects %s', (_name, line, reason) => {
    expect(parsed(line)).toEqual({ kind: 'rejected', reason });
  });

  it('accepts sentences without a checksum only when configured', () => {
    const line = `$${gga({ pos: LA_SERENA })}`;
    expect(parsed(line)).toEqual({ kind: 'rejected', reason: 'missing_checksum' });
    expect(parsed(line, { allowMissingChecksum: true })).toMatchObject({ kind: 'sentence', sentence: { type: 'GGA', quality: 1 } });
    // A wrong checksum is still wrong when missing ones are allowed.
    expect(parsed(`$${gga()}*00`, { allowMissingChecksum: true }).kind).toBe(checksum(gga()) === '00' ? 'sentence' : 'rejected');
  });

  it('ignores well-formed sentences it does not decode', () => {
    expect(parsed(sentence('GPGSV,3,1,11,03,03,111,00,04,15,270,00,06,01,010,00,13,06,292,00'))).toEqual({ kind: 'ignored', address: 'GPGSV' });
    expect(parsed(sentence('GPTXT,01,01,02,ANTENNA OK'))).toEqual({ kind: 'ignored', address: 'GPTXT' });
    expect(parsed(sentence('PUBX,00,081350.00,4717.113210,N'))).toEqual({ kind: 'ignored', address: 'PUBX' });
    expect(parsed(sentence(gga().replace(/^GP/, 'GQ')))).toEqual({ kind: 'ignored', address: 'GQGGA' });
  });

  it('never throws, whatever the input', () => {
    const rng = mulberry32(29);
    const valid = [sentence(gga()), sentence(rmc()), sentence(gsa(3)), sentence(vtg(1, 2, 3.7))];
    for (let i = 0; i < 20_000; i++) {
      const base = valid[i % valid.length]!;
      let line: string;
      if (i % 3 === 0) {
        line = Array.from({ length: Math.floor(rng() * 90) }, () => String.fromCharCode(Math.floor(rng() * 256))).join('');
      } else {
        // Flip, drop or cut characters of a valid sentence, then give it a correct checksum half the time.
        const chars = [...base.slice(1, base.lastIndexOf('*'))];
        const edits = 1 + Math.floor(rng() * 4);
        for (let e = 0; e < edits; e++) {
          const at = Math.floor(rng() * chars.length);
          if (rng() < 0.5) chars[at] = String.fromCharCode(32 + Math.floor(rng() * 95));
          else chars.splice(at, 1);
        }
        const body = chars.join('');
        line = rng() < 0.5 ? sentence(body) : `$${body}*${checksum(gga())}`;
      }
      expect(() => parseNmea(line)).not.toThrow();
      expect(() => parseNmea(line, { allowMissingChecksum: true })).not.toThrow();
    }
  });
});

describe('LineSplitter', () => {
  function split(max: number, chunks: Array<string | Buffer>) {
    const lines: string[] = [];
    const overlong: number[] = [];
    const s = new LineSplitter(max, { line: (b) => lines.push(b.toString('latin1')), overlong: (n) => overlong.push(n) });
    for (const c of chunks) s.push(typeof c === 'string' ? Buffer.from(c, 'latin1') : c);
    return { lines, overlong, pending: s.pendingBytes };
  }

  it('splits on CR, LF and CRLF across chunk boundaries, without empty lines', () => {
    expect(split(100, ['a\r', '\nb', 'c\nd\r\r\n\n', 'e']).lines).toEqual(['a', 'bc', 'd']);
    expect(split(100, ['a\r', '\nb', 'c\nd\r\r\n\n', 'e']).pending).toBe(1);
  });

  it('caps a line: reports it once when it passes the cap and drops it up to the next terminator', () => {
    const r = split(8, ['12345', '6789', 'abcdef', 'gh\nok\n']);
    expect(r.lines).toEqual(['ok']);
    expect(r.overlong).toEqual([9]);
    expect(r.pending).toBe(0);
    expect(split(8, ['12345678\n']).lines).toEqual(['12345678']);
  });
});

describe('LinePort over a pseudo-terminal', () => {
  function watch(port: LinePort) {
    const lines: Array<[string, number]> = [];
    const states: LinePortState[] = [];
    const errors: string[] = [];
    const lost: Array<[string, boolean]> = [];
    const restored: number[] = [];
    const overlong: number[] = [];
    port.on('line', (text, mono) => lines.push([text, mono]));
    port.on('state', (s) => states.push(s));
    port.on('error', (e) => errors.push(e.message));
    port.on('lost', (e, was) => lost.push([e, was]));
    port.on('restored', (ms) => restored.push(ms));
    port.on('overlong', (n) => overlong.push(n));
    cleanups.push(() => port.stop());
    port.start();
    return { lines, states, errors, lost, restored, overlong, texts: () => lines.map(([t]) => t) };
  }

  it('emits complete lines with their monotonic receive time, whatever the chunking', async () => {
    const link = await ptyLink();
    const clock = new ManualClock(Date.UTC(2026, 0, 1), 50_000);
    const port = new LinePort({ path: link.devicePath, baudRate: 9600, backoff: FAST_BACKOFF }, { clock });
    const w = watch(port);
    await until(() => port.stats().state === 'open', 'port open');
    await link.write('first\r\nsec');
    await until(() => w.lines.length === 1, 'first line');
    clock.advance(250);
    await link.write('ond\nthird\r\r\n');
    await until(() => w.lines.length === 3, 'three lines');
    expect(w.lines).toEqual([
      ['first', 50_000],
      ['second', 50_250],
      ['third', 50_250],
    ]);
    expect(port.stats()).toMatchObject({ state: 'open', lines: 3, bytes: 22, overlong: 0, errors: 0, reconnects: 0, lastLineMono: 50_250 });
    expect(w.states).toEqual(['opening', 'open']);
  });

  it('cuts and counts a 100 kB line without newline, and reads on', async () => {
    const link = await ptyLink();
    const port = new LinePort({ path: link.devicePath, baudRate: 9600, maxLineBytes: 256, backoff: FAST_BACKOFF });
    const w = watch(port);
    await until(() => port.stats().state === 'open', 'port open');
    await link.write('before\n');
    const junk = Buffer.alloc(100 * 1024, 'A');
    for (let i = 0; i < junk.length; i += 4096) await link.write(junk.subarray(i, i + 4096));
    await until(() => port.stats().overlong === 1, 'overlong counted');
    await link.write(`\r\n${sentence(gga())}\r\n`);
    await until(() => w.lines.length === 2, 'line after the junk');
    expect(w.texts()).toEqual(['before', sentence(gga())]);
    expect(w.overlong).toEqual([expect.any(Number)]);
    expect(w.overlong[0]).toBeGreaterThan(256);
    expect(port.stats()).toMatchObject({ overlong: 1, lines: 2, errors: 0 });
    expect(port.stats().bytes).toBe(7 + junk.length + 4 + sentence(gga()).length);
  });

  it('survives the device going away and coming back: reconnects with backoff and reads on', async () => {
    const link = await ptyLink();
    const port = new LinePort({ path: link.devicePath, baudRate: 9600, backoff: FAST_BACKOFF });
    const w = watch(port);
    await until(() => port.stats().state === 'open', 'port open');
    await link.write('before\n');
    await until(() => w.lines.length === 1, 'first line');

    await link.unplug();
    // The hang-up, then reopen attempts that fail because the device path is gone.
    await until(() => port.stats().errors >= 3, 'failed reopen attempts');
    expect(w.states).toContain('backoff');
    expect(w.errors.slice(1).every((e) => /ENOENT|No such file/i.test(e))).toBe(true);
    expect(w.lost).toEqual([[w.errors[0], true]]); // once per outage, not per attempt

    await link.replug();
    await until(() => port.stats().state === 'open', 'port reopened');
    await link.write('after\n');
    await until(() => w.lines.length === 2, 'line after replug');
    expect(w.texts()).toEqual(['before', 'after']);
    expect(w.restored).toHaveLength(1);
    expect(w.restored[0]).toBeGreaterThan(0);
    const stats = port.stats();
    expect(stats.reconnects).toBeGreaterThanOrEqual(3);
    expect(stats.errors).toBe(stats.reconnects);
    expect(w.lost).toHaveLength(1);
  });

  it('backs off exponentially with jitter while the device is missing', async () => {
    const dir = mkdtempSync(join(tmp, 'missing-'));
    const delays: number[] = [];
    // Record the requested delays but wait only a moment, so the test is quick.
    const timers: Timers = {
      setTimeout: (fn, ms) => {
        delays.push(ms);
        return systemTimers.setTimeout(fn, 2);
      },
      clearTimeout: (h) => systemTimers.clearTimeout(h),
    };
    const steady = new LinePort(
      { path: join(dir, 'gps'), baudRate: 9600, backoff: { minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 } },
      { timers, random: () => 0.5 },
    );
    const w = watch(steady);
    await until(() => delays.length >= 6, 'six retries');
    await steady.stop();
    expect(delays.slice(0, 6)).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(w.lost).toEqual([[expect.stringMatching(/ENOENT|No such file/), false]]); // never heard from
    expect(steady.stats().state).toBe('stopped');

    delays.length = 0;
    let flip = 0;
    const jittery = new LinePort(
      { path: join(dir, 'gps'), baudRate: 9600, backoff: { minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 } },
      { timers, random: () => (flip++ % 2 === 0 ? 0 : 0.999) },
    );
    watch(jittery);
    await until(() => delays.length >= 4, 'four retries');
    await jittery.stop();
    expect(delays.slice(0, 4)).toEqual([80, 240, 320, 960]);
  });

  it('stop() releases the device: nothing more is read and another port can open it', async () => {
    const link = await ptyLink();
    const first = new LinePort({ path: link.devicePath, baudRate: 9600, backoff: FAST_BACKOFF });
    const w1 = watch(first);
    await until(() => first.stats().state === 'open', 'first open');
    await first.stop();
    expect(first.stats().state).toBe('stopped');
    expect(w1.states.at(-1)).toBe('stopped');

    const second = new LinePort({ path: link.devicePath, baudRate: 9600, backoff: FAST_BACKOFF });
    const w2 = watch(second);
    await until(() => second.stats().state === 'open', 'second open');
    await link.write('hello\n');
    await until(() => w2.lines.length === 1, 'line on the second port');
    await sleep(50);
    expect(w1.lines).toEqual([]);
    expect(first.stats()).toMatchObject({ state: 'stopped', errors: 0, reconnects: 0 });
    await second.stop();
    await second.stop(); // idempotent
  });
});

// ---------------------------------------------------------------------------------------------

describe('GpsReceiver over a pseudo-terminal', () => {
  function receiver(link: PtyLink, deps: { clock?: Clock; timers?: Timers } = {}, maxFixAgeMs = 10_000) {
    const rx = new GpsReceiver({ port: link.devicePath, baud: 9600, maxFixAgeMs, backoff: FAST_BACKOFF }, deps);
    const acquired: Array<[GpsFix, number]> = [];
    const lost: Array<[FixLostReason, GpsFix]> = [];
    rx.on('fix_acquired', (fix, ms) => acquired.push([fix, ms]));
    rx.on('fix_lost', (reason, last) => lost.push([reason, last]));
    cleanups.push(() => rx.stop());
    rx.start();
    return { rx, acquired, lost };
  }

  it('decodes a fix: position signs, speed, course, satellites, 2D/3D', async () => {
    const link = await ptyLink();
    const { rx, acquired } = receiver(link);
    await until(() => rx.port().state === 'open', 'port open');
    expect(rx.location()).toBeNull();

    await link.write(
      wire(
        gga({ pos: LA_SERENA, sats: 9, hdop: 0.8, alt: 28.3 }),
        gsa(3, [1.5, 0.8, 1.2]),
        rmc({ pos: LA_SERENA, knots: 22.4, course: 84.4, time: '123519.00', date: '300126' }),
      ),
    );
    await until(() => rx.nmea().sentences.RMC === 1, 'RMC parsed');
    const fix = rx.latest()!;
    expect(fix.lat).toBeCloseTo(-29.9027, 6);
    expect(fix.lon).toBeCloseTo(-71.2519, 6);
    expect(fix.speedKmh).toBeCloseTo(41.4848, 4);
    expect(fix).toMatchObject({
      courseDeg: 84.4,
      satellites: 9,
      hdop: 0.8,
      pdop: 1.5,
      vdop: 1.2,
      altM: 28.3,
      fix: '3d',
      utcMs: Date.UTC(2026, 0, 30, 12, 35, 19),
    });
    const geo = rx.location()!;
    expect(geo).toMatchObject({ lat: -29.9027, lon: -71.2519, alt_m: 28.3, speed_kmh: 41.48, course_deg: 84.4, fix: '3d', satellites: 9, hdop: 0.8 });
    expect(geo.age_ms).toBeGreaterThanOrEqual(0);
    expect(geo.age_ms).toBeLessThan(5_000);

    // 2D from GSA; then a northern/eastern fix from a multi-constellation receiver.
    await link.write(wire(gsa(2), gga({ pos: MUNICH, talker: 'GN', quality: 2 }), rmc({ pos: MUNICH, talker: 'GN', knots: 0, course: '' })));
    await until(() => rx.nmea().sentences.RMC === 2, 'second RMC');
    expect(rx.location()).toMatchObject({ lat: 48.1173, lon: 11.5167, fix: '2d', speed_kmh: 0 });
    expect(rx.latest()!.courseDeg).toBeNull();
    expect(acquired).toHaveLength(1); // a transition, not every sentence
    expect(acquired[0]![0]).toMatchObject({ fix: 'gps' });
  });

  it('counts and skips bad checksums, truncated lines and garbage', async () => {
    const link = await ptyLink();
    const { rx } = receiver(link);
    await until(() => rx.port().state === 'open', 'port open');
    const good = sentence(gga({ pos: LA_SERENA }));
    const tampered = `$${gga({ pos: MUNICH })}*${checksum(gga({ pos: LA_SERENA }))}`;
    const lines = [
      good,
      tampered,
      good.slice(0, 30),
      good.slice(0, -1),
      '\x13\x8f\xfe\x02\x7f\x81garbage',
      `$${gga({ pos: MUNICH })}`,
      sentence('GPGSV,1,1,02,03,03,111,00,04,15,270,00'),
      sentence(gga({ pos: MUNICH }).replace(',N,', ',Q,')),
    ];
    await link.write(lines.map((l) => `${l}\r\n`).join(''));
    await until(() => rx.port().lines === lines.length, 'all lines read');
    expect(rx.nmea()).toEqual({
      sentences: { GGA: 1, RMC: 0, GSA: 0, VTG: 0 },
      ignored: 1,
      rejected: { bad_checksum: 1, truncated: 2, garbage: 1, missing_checksum: 1, malformed: 1 },
    });
    expect(rx.location()).toMatchObject({ lat: -29.9027, lon: -71.2519 });
  });

  it('reports fix loss and recovery once per transition, and ages the location out', async () => {
    const link = await ptyLink();
    const s = new ManualScheduler(Date.UTC(2026, 0, 30, 12), 100_000);
    const { rx, acquired, lost } = receiver(link, { clock: s, timers: s }, 10_000);
    await until(() => rx.port().state === 'open', 'port open');

    for (let i = 0; i < 3; i++) await link.write(wire(gga(), rmc()));
    await until(() => rx.nmea().sentences.RMC === 3, 'three epochs');
    expect(acquired).toHaveLength(1);
    expect(rx.location()!.age_ms).toBe(0);
    s.advance(4_000);
    expect(rx.location()!.age_ms).toBe(4_000);
    s.advance(6_000);
    expect(rx.location()!.age_ms).toBe(10_000);
    s.advance(1);
    expect(rx.location()).toBeNull();
    expect(lost.map(([r]) => r)).toEqual(['stale']);

    await link.write(wire(gga(), rmc()));
    await until(() => acquired.length === 2, 'fix again');
    expect(acquired[1]![1]).toBe(0); // went stale and came back at the same (manual) instant
    expect(rx.location()!.age_ms).toBe(0);

    // The receiver itself says it lost the fix (tunnel): one event for several sentences.
    for (let i = 0; i < 3; i++)
      await link.write(wire(gga({ pos: null, quality: 0, sats: 0 }), rmc({ pos: null, status: 'V', knots: '', course: '', mode: 'N' })));
    await until(() => rx.nmea().sentences.RMC === 7, 'no-fix epochs');
    expect(lost.map(([r]) => r)).toEqual(['stale', 'no_fix']);
    expect(lost[1]![1].lat).toBeCloseTo(-29.9027, 6);
    expect(rx.location()).toBeNull();
    s.advance(11_000); // past the age limit: no stale loss on top of the reported one
    expect(lost).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------------------------

interface Recorded extends EventDraft {
  geo?: GeoStamp;
}

function fakeContext(opts: { port: string; syncClock?: boolean; clock?: Clock; maxFixAgeMs?: number }) {
  const logs: Array<Record<string, unknown>> = [];
  const logger = createLogger('debug', { write: (msg: string) => void logs.push(JSON.parse(msg) as Record<string, unknown>) });
  const clock = opts.clock ?? systemClock;
  const clockSync = new ClockSync(clock, { source: 'never', syncFile: join(tmp, 'never-synced'), pollIntervalMs: 60_000 });
  const events: Recorded[] = [];
  const location = new LocationSlot();
  const ctx = {
    config: { hardware: { gps: { port: opts.port, baud: 9600, sync_clock: opts.syncClock ?? false, max_fix_age: opts.maxFixAgeMs ?? 10_000 } } },
    logger,
    clock,
    clockTrust: clockSync,
    location,
    emit<T extends EventType>(type: T, payload: EventPayload<T>) {
      const geo = location.current();
      const draft: Recorded = { type, priority: EVENT_TYPES[type].priority, payload };
      const event = geo ? { ...draft, geo } : draft;
      events.push(event);
      return Promise.resolve(event);
    },
  } as unknown as GpsContext;
  return { ctx, events, logs, clockSync, location, warnings: () => logs.filter((l) => l.level === 40) };
}

describe('GpsExtension', () => {
  it('stamps events with the location and reports fix and device changes as events', async () => {
    const link = await ptyLink();
    const { ctx, events, location } = fakeContext({ port: link.devicePath });
    const ext = new GpsExtension(ctx, { backoff: FAST_BACKOFF });
    expect(ext.name).toBe('gps');
    expect(ext.status().state).toBe('stopped'); // the constructor did nothing
    expect(location.current()).toBeNull();

    cleanups.push(() => ext.stop());
    await ext.start();
    await until(() => ext.status().port?.state === 'open', 'port open');
    for (let i = 0; i < 3; i++) await link.write(wire(gga(), gsa(3), rmc()));
    await until(() => ext.receiver!.nmea().sentences.RMC === 3, 'three epochs');

    expect(events.map((e) => e.type)).toEqual(['gps.fix_acquired']);
    expect(events[0]).toMatchObject({ priority: 'telemetry', payload: { fix: 'gps', satellites: 9, hdop: 0.8 }, geo: { lat: -29.9027, lon: -71.2519 } });
    const panic = { input: 'panic', pressed_at: new Date().toISOString(), line_mono_ms: 1, alarm_id: null, press: 1, snapshot: null };
    expect(await ctx.emit('alarm.panic', panic)).toMatchObject({ geo: { lat: -29.9027, lon: -71.2519, fix: '3d' } });

    await link.unplug();
    await until(() => events.some((e) => e.type === 'gps.port_lost'), 'port_lost');
    await sleep(100); // more failed reopen attempts: still one event
    expect(events.filter((e) => e.type === 'gps.port_lost')).toEqual([
      expect.objectContaining({ priority: 'hit', payload: { port: link.devicePath, error: expect.any(String), was_receiving: true } }),
    ]);

    await link.replug();
    await until(() => ext.status().port?.state === 'open', 'port reopened');
    await link.write(wire(gga(), rmc()));
    await until(() => events.some((e) => e.type === 'gps.port_restored'), 'port_restored');
    expect(events.find((e) => e.type === 'gps.port_restored')).toMatchObject({
      priority: 'hit',
      payload: { port: link.devicePath, down_ms: expect.any(Number) },
    });
    expect(ext.status()).toMatchObject({
      state: 'running',
      port: { lines: 11 },
      nmea: { sentences: { GGA: 4, GSA: 3, RMC: 4 } },
      fix: { fix: '3d' },
      clock: null,
    });

    await ext.stop();
    expect(location.current()).toBeNull();
    expect(ext.status().state).toBe('stopped');
  });

  it('sets a wrong system clock from GPS time, then marks it synced', async () => {
    const link = await ptyLink();
    const clock = new ManualClock(Date.UTC(2001, 0, 1), 5_000);
    const { ctx, clockSync } = fakeContext({ port: link.devicePath, syncClock: true, clock });
    const calls: number[] = [];
    const ext = new GpsExtension(ctx, {
      backoff: FAST_BACKOFF,
      setSystemTime: (ms) => {
        calls.push(ms);
        clock.setWall(ms);
        return Promise.resolve();
      },
    });
    cleanups.push(() => ext.stop());
    await ext.start();
    await until(() => ext.status().port?.state === 'open', 'port open');
    // Two sentences a second apart: a live receiver, not a backlog read on open.
    await link.write(wire(gga(), rmc({ time: '123518.00', date: '300126' })));
    await until(() => (ext.status().port?.lines ?? 0) >= 2, 'the first second received');
    clock.advance(1_000);
    await link.write(wire(rmc({ time: '123519.00', date: '300126' })));
    await until(() => clockSync.synced(), 'clock synced');
    expect(calls).toEqual([Date.UTC(2026, 0, 30, 12, 35, 19)]);
    expect(clockSync.source()).toBe('gps');
    expect(ext.status().clock).toMatchObject({ synced: true, source: 'gps', offset_ms: 0, set_attempts: 1, last_set_error: null });
  });

  it('never opens anything when no GPS is configured', async () => {
    const { ctx } = fakeContext({ port: '/dev/null' });
    (ctx.config.hardware as { gps?: unknown }).gps = undefined;
    const ext = new GpsExtension(ctx);
    await ext.start();
    expect(ext.status()).toEqual({ state: 'disabled', port: null, nmea: null, fix: null, clock: null });
    await ext.stop();
  });
});

describe('GPS clock sync', () => {
  const GPS = Date.UTC(2026, 0, 30, 12, 35, 19);

  function setup(wallOffsetMs: number, setSystemTime?: (ms: number) => Promise<void>) {
    const clock = new ManualClock(GPS + wallOffsetMs, 7_000);
    const { ctx, clockSync, warnings } = fakeContext({ port: '/dev/null', clock });
    const calls: number[] = [];
    const gpsClock = new GpsClock({
      clock,
      clockTrust: clockSync,
      logger: ctx.logger,
      setSystemTime: async (ms) => {
        calls.push(ms);
        await (setSystemTime ?? ((t: number) => Promise.resolve(clock.setWall(t))))(ms);
      },
    });
    return { clock, clockSync, gpsClock, calls, warnings };
  }

  /** A live receiver: the sentence a second before `utcMs`, then `utcMs` at `mono` (a second later). */
  const offerLive = (gpsClock: GpsClock, utcMs: number, mono: number) => {
    gpsClock.offer(utcMs - 1_000, mono - 1_000);
    gpsClock.offer(utcMs, mono);
  };

  it.each([
    ['exactly right', 0],
    ['ahead by the sentence latency', 900],
    ['ahead by 2 s plus the latency', 2_900],
    ['behind by 1.5 s', -1_500],
  ])('marks an agreeing clock synced without touching it (%s)', (_name, offset) => {
    const { clockSync, gpsClock, calls } = setup(offset);
    offerLive(gpsClock, GPS, 7_000);
    expect(clockSync.synced()).toBe(true);
    expect(clockSync.source()).toBe('gps');
    expect(calls).toEqual([]);
    expect(gpsClock.status().offset_ms).toBe(offset);
  });

  it('sets a wrong clock to the GPS time (plus the time since the sentence arrived), then marks it synced', async () => {
    const { clock, clockSync, gpsClock, calls } = setup(-3 * 365 * 86_400_000);
    clock.advance(300); // the sentence arrived 300 ms ago
    offerLive(gpsClock, GPS, 7_000);
    expect(calls).toEqual([GPS + 300]);
    await until(() => clockSync.synced(), 'synced');
    expect(clockSync.source()).toBe('gps');
    expect(clock.wallNow()).toBe(GPS + 300);
    expect(gpsClock.status()).toMatchObject({ synced: true, offset_ms: 0, set_attempts: 1 });
  });

  it('stays unsynced when the clock cannot be set, with one warning', async () => {
    const { clock, clockSync, gpsClock, calls, warnings } = setup(4_000, () => Promise.reject(new Error('date: cannot set date: Operation not permitted')));
    offerLive(gpsClock, GPS, 7_000);
    await until(() => gpsClock.status().last_set_error !== null, 'attempt failed');
    for (let i = 1; i <= 5; i++) {
      clock.advance(1_000);
      gpsClock.offer(GPS + i * 1_000, clock.monoNow());
    }
    clock.advance(10 * 60_000); // a later retry, still failing
    gpsClock.offer(GPS + 605_000, clock.monoNow());
    await sleep(20);
    expect(calls).toHaveLength(2);
    expect(clockSync.synced()).toBe(false);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ offset_ms: 4_000, error: 'date: cannot set date: Operation not permitted' });
    expect(gpsClock.status()).toMatchObject({
      synced: false,
      offset_ms: 4_000,
      set_attempts: 2,
      last_set_error: 'date: cannot set date: Operation not permitted',
    });
  });

  it('does not mark synced a clock that did not take the new time', async () => {
    const { clockSync, gpsClock, calls, warnings } = setup(-60_000, () => Promise.resolve());
    offerLive(gpsClock, GPS, 7_000);
    await until(() => calls.length === 1 && gpsClock.status().last_set_error !== null, 'attempt checked');
    expect(clockSync.synced()).toBe(false);
    expect(warnings()).toHaveLength(1);
  });

  it('never takes the clock back past a time the device already trusted (a spoofed GPS cannot choose the clock)', async () => {
    // The clock reads a year ago (no RTC); an earlier run trusted GPS + 1 day; a spoofed GPS says GPS.
    const { clockSync, gpsClock, calls, warnings } = setup(-365 * 86_400_000);
    (clockSync as unknown as { notBefore: () => number }).notBefore = () => GPS + 86_400_000;
    offerLive(gpsClock, GPS, 7_000);
    await sleep(20);
    expect(calls).toEqual([]);
    expect(clockSync.synced()).toBe(false);
    expect(gpsClock.status().last_set_error).toMatch(/a time this device already trusted/);
    expect(warnings()).toHaveLength(1);
    // A time after the mark is taken as before.
    offerLive(gpsClock, GPS + 2 * 86_400_000, 7_000);
    await until(() => clockSync.synced(), 'synced from a plausible GPS time');
  });

  it('leaves a clock already synced by NTP alone, and never trusts an implausible GPS date', () => {
    const synced = setup(-60_000);
    synced.clockSync.markSynced('system');
    offerLive(synced.gpsClock, GPS, 7_000);
    expect(synced.calls).toEqual([]);
    expect(synced.clockSync.source()).toBe('system');
    expect(synced.gpsClock.status().offset_ms).toBe(-60_000);

    // A receiver hit by the week-number rollover reports a date 1024 weeks back.
    const rollover = GPS - 1024 * 7 * 86_400_000;
    const old = setup(-(1024 * 7 * 86_400_000));
    offerLive(old.gpsClock, rollover, 7_000);
    expect(old.calls).toEqual([]);
    expect(old.clockSync.synced()).toBe(false);
  });

  it('takes no time from a backlog that arrives in a burst on open, only from the live stream after it', async () => {
    const { clock, clockSync, gpsClock, calls } = setup(-3 * 365 * 86_400_000);
    // Six seconds of sentences buffered while the port was closed, read within 60 ms.
    for (let i = 0; i < 6; i++) gpsClock.offer(GPS - 6_000 + i * 1_000, 7_000 + i * 10);
    expect(calls).toEqual([]);
    expect(clockSync.synced()).toBe(false);
    // The burst's last sentence was the current one; the next comes a second later, at the
    // receiver's own pace: the stream is live, and the clock is set from it.
    clock.advance(1_000);
    gpsClock.offer(GPS, 8_000);
    expect(calls).toEqual([GPS]);
    await until(() => clockSync.synced(), 'synced');
  });

  it('stops trusting the stream when sentences stop matching their pace, and trusts it again when they do', () => {
    const { clockSync, gpsClock, calls } = setup(-60_000, () => Promise.resolve());
    gpsClock.offer(GPS, 7_000);
    gpsClock.offer(GPS + 1_000, 7_020); // a burst
    gpsClock.offer(GPS + 2_000, 8_020); // live again
    expect(calls).toHaveLength(1);
    expect(clockSync.synced()).toBe(false);
  });
});
