import type { Logger } from 'pino';
import { type Clock, systemClock } from '../../core/clock.js';
import type { GeoStamp } from '../../core/event.js';
import { systemTimers, type TimerHandle, type Timers } from '../../core/timers.js';
import type { BackoffOptions } from '../../core/backoff.js';
import { LinePort, type LinePortStats, type SerialPortClass } from './line-port.js';
import { SafeListeners } from './listeners.js';
import {
  type GgaSentence,
  type GsaSentence,
  type LatLon,
  type NmeaRejectReason,
  type NmeaSentence,
  type NmeaSentenceType,
  parseNmea,
  type RmcSentence,
  type VtgSentence,
} from './nmea.js';

/** The latest position the receiver reported, fused from GGA, RMC, GSA and VTG. */
export interface GpsFix {
  lat: number;
  lon: number;
  altM: number | null;
  speedKmh: number | null;
  courseDeg: number | null;
  /** 2d/3d (GSA) when known, else the GGA quality: gps, dgps, rtk... */
  fix: string;
  satellites: number | null;
  hdop: number | null;
  pdop: number | null;
  vdop: number | null;
  /** UTC instant of the latest dated fix (RMC), null until one arrives. */
  utcMs: number | null;
  /** Monotonic time the position was received. */
  monoMs: number;
}

export type FixLostReason = 'no_fix' | 'stale';

export interface GpsReceiverEvents {
  fix_acquired: [fix: GpsFix, withoutFixMs: number];
  fix_lost: [reason: FixLostReason, last: GpsFix];
  /** A valid, dated fix: the GPS time and when its sentence was received. */
  time: [utcMs: number, receivedMono: number];
  port_lost: [error: string, wasReceiving: boolean];
  port_restored: [downMs: number];
}

export interface GpsReceiverOptions {
  port: string;
  baud: number;
  /** Fixes older than this are not a location. */
  maxFixAgeMs: number;
  /** Accept sentences without a checksum (default false). */
  allowMissingChecksum?: boolean;
  /** Reopen the port after this much silence (default 15 s; receivers talk every second). */
  idleTimeoutMs?: number;
  backoff?: BackoffOptions;
}

export interface GpsReceiverDeps {
  clock?: Clock;
  timers?: Timers;
  logger?: Logger;
  random?: () => number;
  SerialPort?: SerialPortClass;
}

export interface NmeaStats {
  sentences: Record<NmeaSentenceType, number>;
  /** Well-formed sentences of kinds not decoded (GSV, TXT, proprietary...). */
  ignored: number;
  rejected: Record<NmeaRejectReason, number>;
}

const DEFAULT_IDLE_TIMEOUT_MS = 15_000;
/** NMEA sentences are at most 82 characters; proprietary ones run longer, never this long. */
const MAX_LINE_BYTES = 512;

/** GGA quality → fix kind. 0 (no fix) and 8 (simulation) are not positions to stamp events with. */
const GGA_FIX_KIND: Record<number, string> = { 1: 'gps', 2: 'dgps', 3: 'pps', 4: 'rtk', 5: 'rtk_float', 6: 'estimated', 7: 'manual' };
const RMC_FIX_KIND: Record<string, string> = { A: 'gps', D: 'dgps', E: 'estimated', M: 'manual', R: 'rtk', F: 'rtk_float', P: 'gps' };

/**
 * A GPS receiver on a serial port: parses its NMEA, keeps the latest fix, and reports the fix
 * and the device coming and going. Every sentence updates the fix; events fire only on changes.
 */
export class GpsReceiver {
  readonly #opts: GpsReceiverOptions;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #port: LinePort;
  readonly #listeners: SafeListeners<GpsReceiverEvents>;
  readonly #nmea: NmeaStats = {
    sentences: { GGA: 0, RMC: 0, GSA: 0, VTG: 0 },
    ignored: 0,
    rejected: { garbage: 0, missing_checksum: 0, bad_checksum: 0, truncated: 0, malformed: 0 },
  };
  #fix: GpsFix | null = null;
  #valid = false;
  #ggaMono: number | null = null;
  #gsa: { mode: 1 | 2 | 3; monoMs: number } | null = null;
  #noFixSinceMono: number;
  #staleTimer: TimerHandle | undefined;

  constructor(opts: GpsReceiverOptions, deps: GpsReceiverDeps = {}) {
    this.#opts = opts;
    this.#clock = deps.clock ?? systemClock;
    this.#timers = deps.timers ?? systemTimers;
    this.#listeners = new SafeListeners(deps.logger, { gps: opts.port });
    this.#noFixSinceMono = this.#clock.monoNow();
    this.#port = new LinePort(
      {
        path: opts.port,
        baudRate: opts.baud,
        maxLineBytes: MAX_LINE_BYTES,
        idleTimeoutMs: opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
        backoff: opts.backoff,
      },
      { clock: this.#clock, timers: this.#timers, logger: deps.logger, random: deps.random, SerialPort: deps.SerialPort },
    );
    this.#port.on('line', (text, monoMs) => this.#onLine(text, monoMs));
    this.#port.on('lost', (error, wasReceiving) => this.#listeners.emit('port_lost', error, wasReceiving));
    this.#port.on('restored', (downMs) => this.#listeners.emit('port_restored', downMs));
  }

  start(): void {
    this.#noFixSinceMono = this.#clock.monoNow();
    this.#port.start();
  }

  async stop(): Promise<void> {
    this.#timers.clearTimeout(this.#staleTimer);
    this.#staleTimer = undefined;
    await this.#port.stop();
    this.#valid = false;
  }

  on<E extends keyof GpsReceiverEvents>(event: E, cb: (...args: GpsReceiverEvents[E]) => void): this {
    this.#listeners.on(event, cb);
    return this;
  }

  off<E extends keyof GpsReceiverEvents>(event: E, cb: (...args: GpsReceiverEvents[E]) => void): this {
    this.#listeners.off(event, cb);
    return this;
  }

  /** The latest valid fix, however old; null when the receiver reports no fix. */
  latest(): GpsFix | null {
    return this.#valid && this.#fix ? { ...this.#fix, fix: this.#fixKind(this.#fix) } : null;
  }

  /** Where the device is, for stamping events: null without a valid fix or when it is too old. */
  location(): GeoStamp | null {
    const fix = this.latest();
    if (!fix) return null;
    const ageMs = this.#clock.monoNow() - fix.monoMs;
    if (ageMs > this.#opts.maxFixAgeMs) return null;
    return {
      lat: round(fix.lat, 7),
      lon: round(fix.lon, 7),
      ...(fix.altM !== null && { alt_m: round(fix.altM, 1) }),
      ...(fix.speedKmh !== null && { speed_kmh: round(fix.speedKmh, 2) }),
      ...(fix.courseDeg !== null && { course_deg: round(fix.courseDeg, 1) }),
      fix: fix.fix,
      ...(fix.satellites !== null && { satellites: fix.satellites }),
      ...(fix.hdop !== null && { hdop: fix.hdop }),
      age_ms: Math.max(0, Math.round(ageMs)),
    };
  }

  port(): LinePortStats {
    return this.#port.stats();
  }

  nmea(): NmeaStats {
    return { sentences: { ...this.#nmea.sentences }, ignored: this.#nmea.ignored, rejected: { ...this.#nmea.rejected } };
  }

  #onLine(text: string, monoMs: number): void {
    const parsed = parseNmea(text, { allowMissingChecksum: this.#opts.allowMissingChecksum });
    if (parsed.kind === 'rejected') this.#nmea.rejected[parsed.reason]++;
    else if (parsed.kind === 'ignored') this.#nmea.ignored++;
    else {
      this.#nmea.sentences[parsed.sentence.type]++;
      this.#onSentence(parsed.sentence, monoMs);
    }
  }

  #onSentence(s: NmeaSentence, monoMs: number): void {
    switch (s.type) {
      case 'GGA':
        return this.#onGga(s, monoMs);
      case 'RMC':
        return this.#onRmc(s, monoMs);
      case 'GSA':
        return this.#onGsa(s, monoMs);
      case 'VTG':
        return this.#onVtg(s);
    }
  }

  #onGga(s: GgaSentence, monoMs: number): void {
    const kind = GGA_FIX_KIND[s.quality];
    if (!kind || !s.position) return this.#lose('no_fix');
    this.#ggaMono = monoMs;
    this.#position(s.position, monoMs, kind, { altM: s.altitudeM, satellites: s.satellites, hdop: s.hdop });
  }

  #onRmc(s: RmcSentence, monoMs: number): void {
    if (s.status !== 'A' || s.mode === 'N' || s.mode === 'S' || !s.position) return this.#lose('no_fix');
    // GGA's quality says more than RMC's mode; the mode stands in for receivers that send no GGA.
    const ggaFresh = this.#fix !== null && this.#ggaMono !== null && monoMs - this.#ggaMono <= this.#opts.maxFixAgeMs;
    const kind = ggaFresh ? this.#fix!.fix : (RMC_FIX_KIND[s.mode ?? 'A'] ?? 'gps');
    this.#position(s.position, monoMs, kind, { speedKmh: s.speedKmh, courseDeg: s.courseDeg, utcMs: s.utcMs });
    if (s.utcMs !== null) this.#listeners.emit('time', s.utcMs, monoMs);
  }

  #onGsa(s: GsaSentence, monoMs: number): void {
    this.#gsa = { mode: s.fixMode, monoMs };
    if (this.#fix) {
      if (s.pdop !== null) this.#fix.pdop = s.pdop;
      if (s.vdop !== null) this.#fix.vdop = s.vdop;
      if (s.hdop !== null) this.#fix.hdop = s.hdop;
    }
  }

  #onVtg(s: VtgSentence): void {
    if (!this.#valid || !this.#fix || s.mode === 'N') return;
    if (s.speedKmh !== null) this.#fix.speedKmh = s.speedKmh;
    if (s.courseDeg !== null) this.#fix.courseDeg = s.courseDeg;
  }

  #position(at: LatLon, monoMs: number, kind: string, fields: Partial<GpsFix>): void {
    // Fields other sentences of this epoch supply; nothing is carried over from before a loss.
    const previous = this.#valid ? this.#fix : null;
    this.#fix = {
      altM: previous?.altM ?? null,
      speedKmh: previous?.speedKmh ?? null,
      courseDeg: previous?.courseDeg ?? null,
      satellites: previous?.satellites ?? null,
      hdop: previous?.hdop ?? null,
      pdop: previous?.pdop ?? null,
      vdop: previous?.vdop ?? null,
      utcMs: previous?.utcMs ?? null,
      ...fields,
      fix: kind,
      lat: at.lat,
      lon: at.lon,
      monoMs,
    };
    this.#armStaleTimer();
    if (this.#valid) return;
    this.#valid = true;
    this.#listeners.emit('fix_acquired', this.latest()!, monoMs - this.#noFixSinceMono);
  }

  #lose(reason: FixLostReason): void {
    this.#timers.clearTimeout(this.#staleTimer);
    this.#staleTimer = undefined;
    if (!this.#valid) return;
    const last = this.latest()!;
    this.#valid = false;
    this.#noFixSinceMono = this.#clock.monoNow();
    this.#listeners.emit('fix_lost', reason, last);
  }

  /** A fix nobody refreshes (unplugged receiver, silent UART) is lost once it is too old. */
  #armStaleTimer(): void {
    this.#timers.clearTimeout(this.#staleTimer);
    this.#staleTimer = this.#timers.setTimeout(() => {
      this.#staleTimer = undefined;
      this.#lose('stale');
    }, this.#opts.maxFixAgeMs + 1); // location() still gives a fix exactly maxFixAgeMs old
  }

  /** GSA's 2d/3d when it is as fresh as the position, else the kind from GGA or RMC. */
  #fixKind(fix: GpsFix): string {
    const gsa = this.#gsa;
    if (gsa && gsa.mode > 1 && Math.abs(fix.monoMs - gsa.monoMs) <= this.#opts.maxFixAgeMs) return gsa.mode === 3 ? '3d' : '2d';
    return fix.fix;
  }
}

function round(value: number, decimals: number): number {
  const f = 10 ** decimals;
  return Math.round(value * f) / f;
}
