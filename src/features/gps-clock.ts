import type { Logger } from 'pino';
import { type Clock, wallAt } from '../core/clock.js';
import type { ClockTrust } from '../core/extension.js';
import { errorMessage } from '../drivers/camera/source.js';
import { setSystemTimeThroughHelper } from './clock-helper-client.js';

/** How far the wall clock may be from GPS time and still count as right. */
export const CLOCK_AGREEMENT_MS = 2_000;
/**
 * A sentence describes the second that started when the fix was computed and arrives after it
 * (up to about a second later at 9600 baud with several sentences per epoch), so a correct wall
 * clock reads ahead of the GPS time by that much.
 */
export const MAX_SENTENCE_LATENCY_MS = 1_000;
/**
 * GPS times before this are a receiver bug (the week-number rollover puts some old receivers
 * 19.6 years back), never the real time: the clock is not set from them.
 */
export const MIN_PLAUSIBLE_UTC_MS = Date.UTC(2025, 0, 1);
/**
 * A GPS time this much earlier than a time the device already trusted is a spoofed or faulty
 * receiver (the real time never goes back): the clock is neither set nor marked from it.
 */
export const MAX_BEFORE_TRUSTED_MS = 60_000;
/**
 * GPS times are used only from a live stream: two dated sentences in a row that arrived as far
 * apart as their times say, within this. What a receiver sent while nobody read the port (a USB
 * receiver's buffer, a UART's FIFO and the tty's) arrives in a burst on open, seconds old, and
 * would set the clock that far behind.
 */
export const LIVE_TOLERANCE_MS = 250;
/** Sentences closer together than this (in both GPS time and arrival) say nothing about liveness. */
const MIN_LIVE_SPACING_MS = 500;
/** After a failed attempt to set the clock, the next one waits this long. */
const SET_RETRY_MS = 5 * 60_000;

export type SetSystemTime = (epochMs: number) => Promise<void>;

export interface GpsClockDeps {
  clock: Clock;
  clockTrust: ClockTrust;
  logger?: Logger;
  setSystemTime?: SetSystemTime;
}

export interface GpsClockStatus {
  synced: boolean;
  source: string | null;
  /** Wall clock minus GPS time at the last dated fix, ms (includes the sentence latency, 0-1 s). */
  offset_ms: number | null;
  set_attempts: number;
  last_set_error: string | null;
}

/** True when a wall clock `offsetMs` ahead of the GPS time of a just-received sentence is right. */
export function clockAgrees(offsetMs: number): boolean {
  return offsetMs >= -CLOCK_AGREEMENT_MS && offsetMs <= CLOCK_AGREEMENT_MS + MAX_SENTENCE_LATENCY_MS;
}

/**
 * Uses GPS time to make the wall clock trustworthy when NTP has not: if the clock already agrees
 * it is marked synced; if not, it is set from GPS and marked synced only once it reads right.
 * A clock known to be wrong is never marked synced: events then stay "unsynced" and the gateway
 * corrects them later. GPS never moves a clock that is already synced, and never takes it back
 * past a time the device already trusted (a spoofed GPS cannot choose the clock).
 */
export class GpsClock {
  readonly #clock: Clock;
  readonly #clockSync: ClockTrust;
  readonly #logger: Logger | undefined;
  readonly #setSystemTime: SetSystemTime;
  #offsetMs: number | null = null;
  #setting = false;
  #lastSetMono: number | undefined;
  #setAttempts = 0;
  #lastSetError: string | null = null;
  #warned = false;
  #previous: { utcMs: number; mono: number } | null = null;
  #live = false;

  constructor(deps: GpsClockDeps) {
    this.#clock = deps.clock;
    this.#clockSync = deps.clockTrust;
    this.#logger = deps.logger;
    // The daemon holds no capability: the privileged clock helper sets the clock for it.
    this.#setSystemTime = deps.setSystemTime ?? setSystemTimeThroughHelper();
  }

  /** A valid, dated GPS time (`utcMs`) from a sentence received at monotonic `receivedMono`. */
  offer(utcMs: number, receivedMono: number): void {
    this.#offsetMs = this.#offsetAt(utcMs, receivedMono);
    this.#updateLiveness(utcMs, receivedMono);
    if (this.#clockSync.synced() || this.#setting || !this.#live) return;
    if (utcMs < MIN_PLAUSIBLE_UTC_MS) return;
    const trusted = this.#clockSync.notBefore();
    if (trusted !== null && utcMs < trusted - MAX_BEFORE_TRUSTED_MS) {
      this.#lastSetError = `GPS time ${new Date(utcMs).toISOString()} is before ${new Date(trusted).toISOString()}, a time this device already trusted`;
      this.#warnOnce(
        { gps_time: new Date(utcMs).toISOString(), trusted: new Date(trusted).toISOString() },
        'GPS time goes back past a trusted time: ignored (spoofed or faulty receiver)',
      );
      return;
    }
    if (clockAgrees(this.#offsetMs)) {
      this.#clockSync.markSynced('gps');
      return;
    }
    const now = this.#clock.monoNow();
    if (this.#lastSetMono !== undefined && now - this.#lastSetMono < SET_RETRY_MS) return;
    void this.#set(utcMs, receivedMono);
  }

  status(): GpsClockStatus {
    return {
      synced: this.#clockSync.synced(),
      source: this.#clockSync.source() || null,
      offset_ms: this.#offsetMs === null ? null : Math.round(this.#offsetMs),
      set_attempts: this.#setAttempts,
      last_set_error: this.#lastSetError,
    };
  }

  #updateLiveness(utcMs: number, mono: number): void {
    const previous = this.#previous;
    this.#previous = { utcMs, mono };
    if (!previous) return;
    const gpsStep = utcMs - previous.utcMs;
    const arrivalStep = mono - previous.mono;
    if (Math.max(gpsStep, arrivalStep) < MIN_LIVE_SPACING_MS) return;
    this.#live = Math.abs(gpsStep - arrivalStep) <= LIVE_TOLERANCE_MS;
  }

  /** Wall clock at the moment the sentence was received, minus the GPS time it carried. */
  #offsetAt(utcMs: number, receivedMono: number): number {
    return wallAt(this.#clock, receivedMono) - utcMs;
  }

  async #set(utcMs: number, receivedMono: number): Promise<void> {
    this.#setting = true;
    this.#lastSetMono = this.#clock.monoNow();
    this.#setAttempts++;
    const before = this.#offsetMs;
    try {
      await this.#setSystemTime(utcMs + (this.#clock.monoNow() - receivedMono));
    } catch (err) {
      this.#lastSetError = errorMessage(err);
      this.#warnOnce({ offset_ms: before, error: this.#lastSetError }, 'cannot set the system clock from GPS; events stay unsynced');
      return;
    } finally {
      this.#setting = false;
    }
    const after = this.#offsetAt(utcMs, receivedMono);
    this.#offsetMs = after;
    if (!clockAgrees(after)) {
      this.#lastSetError = `clock still ${Math.round(after)} ms off after setting it`;
      this.#warnOnce({ offset_ms: after, previous_offset_ms: before }, 'system clock did not take the GPS time; events stay unsynced');
      return;
    }
    this.#lastSetError = null;
    this.#logger?.info({ previous_offset_ms: before, offset_ms: after }, 'system clock set from GPS');
    if (!this.#clockSync.synced()) this.#clockSync.markSynced('gps');
  }

  #warnOnce(fields: Record<string, unknown>, message: string): void {
    if (this.#warned) return;
    this.#warned = true;
    this.#logger?.warn(fields, message);
  }
}
