import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { EventPayload, EventType } from '../core/events.js';
import type { Extension, ExtensionContext } from '../core/extension.js';
import type { Timers } from '../core/timers.js';
import type { BackoffOptions } from '../core/backoff.js';
import { GpsReceiver, type GpsFix, type NmeaStats } from '../drivers/serial/gps.js';
import type { LinePortStats, SerialPortClass } from '../drivers/serial/line-port.js';
import { GpsClock, type GpsClockStatus, type SetSystemTime } from './gps-clock.js';

export type GpsContext = Pick<ExtensionContext<Config>, 'config' | 'logger' | 'clock' | 'clockTrust' | 'location' | 'emit'>;

export interface GpsExtensionDeps {
  timers?: Timers;
  random?: () => number;
  SerialPort?: SerialPortClass;
  /** Sets the system clock (default: date -u -s, which needs CAP_SYS_TIME). */
  setSystemTime?: SetSystemTime;
  idleTimeoutMs?: number;
  backoff?: BackoffOptions;
  allowMissingChecksum?: boolean;
}

export interface GpsStatus {
  state: 'disabled' | 'stopped' | 'running';
  port: LinePortStats | null;
  nmea: NmeaStats | null;
  fix: (GpsFix & { age_ms: number }) | null;
  clock: GpsClockStatus | null;
}

/**
 * The GPS as a daemon extension: runs the receiver on `hardware.gps`, provides the location that
 * stamps every event, reports fix and device changes as events, and syncs the clock from GPS.
 */
export class GpsExtension implements Extension {
  readonly name = 'gps';
  #receiver: GpsReceiver | undefined;
  #gpsClock: GpsClock | undefined;
  #removeLocation: (() => void) | undefined;
  #logger: Logger | undefined;

  constructor(
    private readonly ctx: GpsContext,
    private readonly deps: GpsExtensionDeps = {},
  ) {}

  start(): void {
    const cfg = this.ctx.config.hardware.gps;
    if (!cfg || this.#receiver) return;
    const { ctx, deps } = this;
    const logger = (this.#logger = ctx.logger);
    const receiver = new GpsReceiver(
      {
        port: cfg.port,
        baud: cfg.baud,
        maxFixAgeMs: cfg.max_fix_age,
        allowMissingChecksum: deps.allowMissingChecksum,
        idleTimeoutMs: deps.idleTimeoutMs,
        backoff: deps.backoff,
      },
      { clock: ctx.clock, timers: deps.timers, logger, random: deps.random, SerialPort: deps.SerialPort },
    );
    this.#receiver = receiver;

    receiver.on('fix_acquired', (fix, withoutFixMs) => {
      logger.info({ fix: fix.fix, satellites: fix.satellites, hdop: fix.hdop }, 'GPS fix acquired');
      this.#emit('gps.fix_acquired', { fix: fix.fix, satellites: fix.satellites, hdop: fix.hdop, without_fix_ms: Math.round(withoutFixMs) });
    });
    receiver.on('fix_lost', (reason, last) => {
      logger.info({ reason }, 'GPS fix lost');
      this.#emit('gps.fix_lost', {
        reason,
        last_lat: round7(last.lat),
        last_lon: round7(last.lon),
        last_fix: last.fix,
        last_fix_age_ms: Math.round(ctx.clock.monoNow() - last.monoMs),
      });
    });
    receiver.on('port_lost', (error, wasReceiving) => {
      this.#emit('gps.port_lost', { port: cfg.port, error, was_receiving: wasReceiving });
    });
    receiver.on('port_restored', (downMs) => {
      logger.info({ port: cfg.port, down_ms: Math.round(downMs) }, 'GPS receiver back');
      this.#emit('gps.port_restored', { port: cfg.port, down_ms: Math.round(downMs) });
    });
    if (cfg.sync_clock) {
      const gpsClock = (this.#gpsClock = new GpsClock({ clock: ctx.clock, clockTrust: ctx.clockTrust, logger, setSystemTime: deps.setSystemTime }));
      receiver.on('time', (utcMs, receivedMono) => gpsClock.offer(utcMs, receivedMono));
    }

    this.#removeLocation = ctx.location.provide(() => receiver.location());
    receiver.start();
  }

  async stop(): Promise<void> {
    const receiver = this.#receiver;
    if (!receiver) return;
    this.#receiver = undefined;
    this.#removeLocation?.();
    this.#removeLocation = undefined;
    await receiver.stop();
  }

  /** The receiver while running (tests and other drivers may read the fix directly). */
  get receiver(): GpsReceiver | undefined {
    return this.#receiver;
  }

  status(): GpsStatus {
    const receiver = this.#receiver;
    if (!this.ctx.config.hardware.gps) return { state: 'disabled', port: null, nmea: null, fix: null, clock: null };
    if (!receiver) return { state: 'stopped', port: null, nmea: null, fix: null, clock: null };
    const fix = receiver.latest();
    return {
      state: 'running',
      port: receiver.port(),
      nmea: receiver.nmea(),
      fix: fix && { ...fix, age_ms: Math.round(this.ctx.clock.monoNow() - fix.monoMs) },
      clock: this.#gpsClock?.status() ?? null,
    };
  }

  #emit<T extends EventType>(type: T, payload: EventPayload<T>): void {
    this.ctx.emit(type, payload).catch((err: unknown) => this.#logger?.error({ err, type }, 'could not store GPS event'));
  }
}

const round7 = (degrees: number): number => Math.round(degrees * 1e7) / 1e7;
