import { existsSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

/**
 * Time as the device knows it. Pis have no RTC: until NTP or GPS syncs, the wall clock may be
 * anything. Monotonic time (since boot) is always right, so every event records both.
 */
export interface Clock {
  /** Wall clock, epoch milliseconds. */
  wallNow(): number;
  /** Monotonic milliseconds since this boot. */
  monoNow(): number;
}

export const systemClock: Clock = {
  wallNow: () => Date.now(),
  monoNow: () => performance.timeOrigin + performance.now() - bootWallOrigin,
};

/** The wall time (epoch ms) of an earlier monotonic instant, e.g. a GPIO edge or a frame, by today's wall clock. */
export function wallAt(clock: Clock, monoMs: number): number {
  return clock.wallNow() - (clock.monoNow() - monoMs);
}

/** `wallAt` as ISO 8601, the form event payloads carry. */
export function wallIsoAt(clock: Clock, monoMs: number): string {
  return new Date(wallAt(clock, monoMs)).toISOString();
}

// performance.timeOrigin is a wall-clock reading; anchoring to it once makes monoNow() monotonic
// within the process. Across processes of the same boot we use /proc/uptime so values line up.
const bootWallOrigin = (() => {
  try {
    const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    if (Number.isFinite(uptimeS)) return performance.timeOrigin + performance.now() - uptimeS * 1000;
  } catch {
    /* not Linux: process-relative monotonic time is still monotonic */
  }
  return performance.timeOrigin;
})();

/** The kernel's boot id, so monotonic timestamps from different boots are never mixed. */
export function readBootId(path = '/proc/sys/kernel/random/boot_id'): string {
  try {
    if (existsSync(path)) return readFileSync(path, 'utf8').trim();
  } catch {
    /* fall through */
  }
  return randomUUID();
}

/** A manually driven clock for tests: no sleeps, no flakiness. */
export class ManualClock implements Clock {
  constructor(
    private wall = Date.UTC(2026, 0, 1),
    private mono = 10_000,
  ) {}
  wallNow(): number {
    return this.wall;
  }
  monoNow(): number {
    return this.mono;
  }
  advance(ms: number): void {
    this.wall += ms;
    this.mono += ms;
  }
  /** Steps the wall clock only, as NTP does when it first syncs. */
  setWall(ms: number): void {
    this.wall = ms;
  }
}
