import { resolve } from 'node:path';
import type { Config } from './config/schema.js';
import { type Clock, readBootId, systemClock } from './core/clock.js';
import { ClockSync } from './core/clock-sync.js';
import { EventBus } from './core/bus.js';
import type { EventDraft, GeoStamp, VigiaEvent } from './core/event.js';
import { createLogger, type Logger } from './core/logger.js';
import { CommandRouter } from './gateway/commands.js';
import { ControlServer } from './gateway/control.js';
import { Outbox, type RecoveryReport } from './gateway/outbox.js';
import { Telemetry } from './gateway/telemetry.js';
import { topicsFor, type Topics } from './gateway/topics.js';
import { Uplink } from './gateway/uplink.js';
import { FieldIo } from './drivers/field-io.js';
import { GpsExtension } from './drivers/serial/gps.js';
import { SimDriver } from './drivers/sim.js';
import { VERSION } from './version.js';

/** A part of the daemon with an explicit lifecycle. Constructors do nothing; start() does the work. */
export interface Extension {
  readonly name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
  /** What `vigia status` shows under the extension's name, if it has anything to say. */
  status?(): unknown;
}

/** Everything an extension may use. Hardware, clock and paths are injected so each part tests alone. */
export interface Context {
  config: Config;
  logger: Logger;
  clock: Clock;
  clockSync: ClockSync;
  bus: EventBus;
  bootId: string;
  startedMono: number;
  paths: { dataDir: string; runtimeDir: string; outboxFile: string };
  topics: Topics;
  outbox: Outbox;
  uplink: Uplink;
  commands: CommandRouter;
  control: ControlServer;
  /** The one way an event enters the system: stored durably first, then announced on the bus. */
  emit<P extends Record<string, unknown>>(draft: EventDraft<P>): Promise<VigiaEvent<P>>;
  /** Accepted events per type since start. */
  acceptedByType: Record<string, number>;
  /** Where the device is now (the GPS extension sets it); every event is stamped with it. */
  location: () => GeoStamp | null;
}

export interface ControllerDeps {
  clock?: Clock;
  logger?: Logger;
  bootId?: string;
  /** Extra extensions (drivers, ANPR...) started after the gateway and stopped before it. */
  extensions?: (ctx: Context) => Extension[];
}

const EXPIRE_INTERVAL_MS = 60_000;

/** The demo broker (aedes) is loaded only when enabled: field devices never pay for it in memory. */
function lazyDemoBroker(opts: Config['demo']['embedded_broker'], logger: Logger): Extension {
  let broker: Extension | undefined;
  return {
    name: 'demo-broker',
    async start() {
      const { DemoBroker } = await import('./gateway/demo-broker.js');
      broker = new DemoBroker(opts, logger);
      await broker.start();
    },
    stop: () => broker?.stop(),
  };
}

/** Plate reading is loaded only when enabled: a pole without cameras never loads image or ONNX code. */
function lazyAnpr(ctx: Context): Extension {
  let anpr: Extension | undefined;
  return {
    name: 'anpr',
    async start() {
      const { AnprExtension } = await import('./anpr/extension.js');
      anpr = new AnprExtension(ctx);
      await anpr.start();
    },
    stop: () => anpr?.stop(),
    status: () => anpr?.status?.() ?? { state: 'starting' },
  };
}

/**
 * Wires the extensions. Start order is gateway first (outbox, uplink, commands), producers last,
 * so nothing is produced before it can be stored; stop order is the reverse.
 */
export class Controller {
  readonly ctx: Context;
  #extensions: Extension[] = [];
  #started: Extension[] = [];
  #expireTimer: NodeJS.Timeout | undefined;

  constructor(config: Config, deps: ControllerDeps = {}) {
    const clock = deps.clock ?? systemClock;
    const logger = deps.logger ?? createLogger(config.log.level);
    const bootId = deps.bootId ?? readBootId();
    const dataDir = resolve(config.paths.data_dir);
    const paths = {
      dataDir,
      runtimeDir: resolve(config.paths.runtime_dir),
      outboxFile: resolve(dataDir, config.outbox.file ?? 'outbox.db'),
    };
    const clockSync = new ClockSync(clock, {
      source: config.clock.sync_source,
      syncFile: config.clock.sync_file,
      pollIntervalMs: config.clock.poll_interval,
    });
    const topics = topicsFor(config.mqtt.topic_prefix, config.device.site, config.device.id);
    const outbox = new Outbox({
      file: paths.outboxFile,
      maxBytes: config.outbox.max_bytes,
      alarmReserveBytes: config.outbox.alarm_reserve_bytes,
      quotaBytes: config.outbox.quota_bytes,
      ttlMs: config.outbox.ttl,
      commitIntervalMs: config.outbox.commit_interval,
      commitMaxEvents: config.outbox.commit_max_events,
      synchronous: config.outbox.synchronous,
      checkpointInWorker: true,
      site: config.device.site,
      device: config.device.id,
      bootId,
      clock,
      clockSynced: () => clockSync.synced(),
      logger: logger.child({ mod: 'outbox' }),
    });
    const bus = new EventBus();
    const acceptedByType: Record<string, number> = {};
    const uplink = new Uplink({
      config: config.mqtt,
      topics,
      outbox,
      clock,
      clockSync,
      bootId,
      logger: logger.child({ mod: 'uplink' }),
      birth: { version: VERSION, profile: config.device.profile },
    });
    const ctx: Context = {
      config,
      logger,
      clock,
      clockSync,
      bus,
      bootId,
      startedMono: clock.monoNow(),
      paths,
      topics,
      outbox,
      uplink,
      commands: undefined as unknown as CommandRouter,
      control: new ControlServer(resolve(paths.runtimeDir, 'vigia.sock'), logger.child({ mod: 'control' })),
      acceptedByType,
      location: () => null,
      async emit(draft) {
        const geo = ctx.location();
        const event = await outbox.accept(geo ? { ...draft, geo } : draft);
        acceptedByType[event.type] = (acceptedByType[event.type] ?? 0) + 1;
        bus.emit('event.accepted', event as VigiaEvent);
        return event;
      },
    };
    ctx.commands = new CommandRouter(ctx);
    this.ctx = ctx;
    this.#extensions = [
      ...(config.demo.embedded_broker.enabled ? [lazyDemoBroker(config.demo.embedded_broker, logger.child({ mod: 'demo-broker' }))] : []),
      ctx.control,
      { name: 'uplink', start: () => uplink.start(), stop: () => uplink.stop() },
      ctx.commands,
      new Telemetry(ctx),
      ...(config.hardware.backend === 'sim' ? [new SimDriver(ctx)] : []),
      // Position first, so every event the inputs produce is stamped with it.
      ...(config.hardware.gps ? [new GpsExtension(ctx)] : []),
      new FieldIo(ctx),
      ...(config.anpr.enabled ? [lazyAnpr(ctx)] : []),
      ...(deps.extensions?.(ctx) ?? []),
    ];
  }

  async start(): Promise<void> {
    const { ctx } = this;
    ctx.logger.info({ device: ctx.config.device.id, site: ctx.config.device.site, profile: ctx.config.device.profile, version: VERSION }, 'starting');
    const recovery = ctx.outbox.open();
    ctx.clockSync.on('synced', (source) => {
      ctx.logger.info({ source }, 'wall clock synchronised');
      ctx.bus.emit('clock.synced', source);
    });
    ctx.clockSync.start();
    ctx.uplink.on('state', (state) => ctx.bus.emit('link.state', state));
    ctx.control.handle('status', () => this.status());
    this.#expireTimer = setInterval(() => ctx.outbox.expire(), EXPIRE_INTERVAL_MS);
    this.#expireTimer.unref();
    ctx.outbox.expire();
    for (const ext of this.#extensions) {
      await ext.start();
      this.#started.push(ext);
    }
    if (recovery) await this.#reportRecovery(recovery);
    ctx.logger.info({ outbox_depth: ctx.outbox.depth() }, 'started');
  }

  async #reportRecovery(r: RecoveryReport): Promise<void> {
    await this.ctx.emit({ type: 'system.outbox_corrupt', priority: 'hit', payload: { moved_to: r.movedTo, error: r.error } });
  }

  async stop(): Promise<void> {
    clearInterval(this.#expireTimer);
    for (const ext of this.#started.reverse()) {
      try {
        await ext.stop();
      } catch (err) {
        this.ctx.logger.error({ err, ext: ext.name }, 'error while stopping');
      }
    }
    this.#started = [];
    this.ctx.clockSync.stop();
    await this.ctx.outbox.close();
    this.ctx.logger.info('stopped');
  }

  status() {
    const { ctx } = this;
    const outbox = ctx.outbox.stats();
    const link = ctx.uplink.stats();
    const now = ctx.clock.monoNow();
    return {
      device: ctx.config.device.id,
      site: ctx.config.device.site,
      profile: ctx.config.device.profile,
      version: VERSION,
      uptime_s: Math.round((now - ctx.startedMono) / 1000),
      link: { state: link.state, for_s: Math.round((now - link.since) / 1000), protocol: link.protocol === 5 ? '5' : '3.1.1', connects: link.connects, last_error: link.lastError, inflight: link.inflight, window: link.window, published: link.published, acked: link.acked, resent: link.resent },
      clock: { synced: ctx.clockSync.synced(), source: ctx.clockSync.source() || null },
      outbox: {
        depth: outbox.depth,
        bytes: outbox.bytes,
        oldest_unsent_age_s: Math.max(0, ...Object.values(outbox.byPriority).map((p) => (p.oldestAgeMs ?? 0) / 1000)),
        by_priority: outbox.byPriority,
        evicted: outbox.evicted,
        last_seq: outbox.lastSeq,
      },
      events: { accepted_by_type: { ...ctx.acceptedByType }, published_by_type: link.publishedByType },
      commands: ctx.commands.stats(),
      ...Object.fromEntries(this.#extensions.flatMap((ext) => (ext.status ? [[ext.name, ext.status()]] : []))),
    };
  }
}

export type DaemonStatus = ReturnType<Controller['status']>;
