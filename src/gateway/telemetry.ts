import { readdirSync, readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { freemem, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config/schema.js';
import type { EventPayload } from '../core/events.js';
import type { Extension, ExtensionContext } from '../core/extension.js';
import { OutboxError, type Outbox } from './outbox.js';
import type { Uplink } from './uplink.js';

export type TelemetryContext = Pick<ExtensionContext<Config>, 'config' | 'logger' | 'clock' | 'clockTrust' | 'paths' | 'emit' | 'health'>;

/** What health reports on: the gateway's own state. */
export interface TelemetrySources {
  outbox: Pick<Outbox, 'stats' | 'onEvicted' | 'unreportedEvictions'>;
  uplink: Pick<Uplink, 'stats' | 'publishUnstored'>;
  startedMono: number;
}

/** Evictions are summarised at most this often, so a full disk cannot become an event storm. */
const EVICTION_REPORT_INTERVAL_MS = 10_000;

/** CPU temperature in °C from the thermal zone whose type names the CPU (or the first zone). */
export function readCpuTemperature(sysRoot = '/sys'): number | null {
  const base = join(sysRoot, 'class/thermal');
  let zones: string[];
  try {
    zones = readdirSync(base)
      .filter((z) => z.startsWith('thermal_zone'))
      .sort();
  } catch {
    return null;
  }
  const read = (zone: string, file: string) => readFileSync(join(base, zone, file), 'utf8').trim();
  const cpu = zones.find((z) => {
    try {
      return /cpu|soc|x86_pkg/i.test(read(z, 'type'));
    } catch {
      return false;
    }
  });
  for (const zone of cpu ? [cpu] : zones) {
    try {
      const milli = Number(read(zone, 'temp'));
      if (Number.isFinite(milli)) return Math.round(milli / 100) / 10;
    } catch {
      /* next zone */
    }
  }
  return null;
}

/** Periodic `health` telemetry and the `system.outbox_evicted` summaries. */
export class Telemetry implements Extension {
  readonly name = 'telemetry';
  #timer: NodeJS.Timeout | undefined;
  #evictTimer: NodeJS.Timeout | undefined;
  /** A report being stored: the next one waits for it, so no count is read (and reported) twice. */
  #reporting = false;
  #stopped = false;

  constructor(
    private readonly ctx: TelemetryContext,
    private readonly sources: TelemetrySources,
    private readonly sysRoot = '/sys',
  ) {}

  start(): void {
    this.#timer = setInterval(() => void this.report(), this.ctx.config.telemetry.interval);
    this.#timer.unref();
    // A corrupt file and a technician's purge are reported at once; routine evictions are summarised.
    this.sources.outbox.onEvicted((_priority, reason) =>
      this.#scheduleEvictionReport(reason === 'corrupt' || reason === 'purged' ? 0 : EVICTION_REPORT_INTERVAL_MS),
    );
    // Evictions recorded before a crash or a stop and not yet reported go out now.
    if (this.#hasUnreportedEvictions()) this.#scheduleEvictionReport(0);
  }

  #hasUnreportedEvictions(): boolean {
    return Object.keys(this.sources.outbox.unreportedEvictions()).length > 0;
  }

  #scheduleEvictionReport(delayMs: number): void {
    if (this.#reporting) return; // rescheduled when the report in flight is stored
    if (this.#evictTimer && delayMs > 0) return;
    clearTimeout(this.#evictTimer);
    this.#evictTimer = setTimeout(() => void this.#reportEvictions(), delayMs);
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#evictTimer);
  }

  /**
   * Reports the counts the outbox has recorded. Storing the report settles exactly those counts in
   * the same transaction (see Outbox), so a crash either keeps them pending or has the report queued.
   */
  async #reportEvictions(): Promise<void> {
    this.#evictTimer = undefined;
    const evicted = this.sources.outbox.unreportedEvictions();
    if (Object.keys(evicted).length === 0) return;
    this.#reporting = true;
    try {
      // `hit` priority: above routine reads and telemetry, which are what gets evicted.
      await this.ctx.emit('system.outbox_evicted', { evicted });
    } catch (err) {
      this.ctx.logger.error({ err }, 'could not record eviction report');
    } finally {
      this.#reporting = false;
    }
    if (!this.#stopped && this.#hasUnreportedEvictions()) this.#scheduleEvictionReport(EVICTION_REPORT_INTERVAL_MS);
  }

  async snapshot(): Promise<EventPayload<'health'>> {
    const { ctx, sources } = this;
    let diskFree: number | null = null;
    try {
      const s = await statfs(ctx.paths.dataDir);
      diskFree = s.bavail * s.bsize;
    } catch {
      /* reported as null */
    }
    const outbox = sources.outbox.stats();
    const link = sources.uplink.stats();
    const extensions = ctx.health.collect();
    return {
      uptime_s: Math.round((ctx.clock.monoNow() - sources.startedMono) / 1000),
      load: loadavg().map((l) => Math.round(l * 100) / 100),
      mem: { total_bytes: totalmem(), free_bytes: freemem(), rss_bytes: process.memoryUsage.rss() },
      disk_free_bytes: diskFree,
      cpu_temp_c: readCpuTemperature(this.sysRoot),
      outbox: {
        depth: outbox.depth,
        bytes: outbox.bytes,
        depth_by_priority: Object.fromEntries(Object.entries(outbox.byPriority).map(([p, s]) => [p, s.depth])),
        oldest_unsent_age_s: Math.max(0, ...Object.values(outbox.byPriority).map((p) => (p.oldestAgeMs ?? 0) / 1000)),
        evicted: outbox.evicted,
      },
      link: {
        state: link.state,
        connects: link.connects,
        resent: link.resent,
        refused: link.refused.total,
        refused_by_reason: link.refused.byReason,
        last_refusal: link.refused.last?.code ?? null,
        refused_waiting: link.refused.waiting,
        inbound_dropped: link.inboundDropped,
      },
      clock_synced: ctx.clockTrust.synced(),
      disk: {
        full: outbox.disk.full,
        full_for_s: outbox.disk.since === null ? null : Math.round((ctx.clock.monoNow() - outbox.disk.since) / 1000),
        locking: outbox.disk.locking,
        reserve: outbox.disk.reserve.state,
        refused: outbox.disk.refused,
        held_alarms: outbox.disk.held.events,
        direct_published: link.direct.published,
      },
      ...(Object.keys(extensions).length > 0 ? { extensions } : {}),
    };
  }

  async report(): Promise<void> {
    try {
      await this.ctx.emit('health', await this.snapshot());
    } catch (err) {
      // While the disk is full only alarms are stored: the report that says so goes out directly.
      if (err instanceof OutboxError && err.code === 'disk_full' && err.event && this.sources.uplink.publishUnstored(err.event)) return;
      this.ctx.logger.error({ err }, 'could not record health telemetry');
    }
  }
}
