import { resolve } from 'node:path';
import type { AnprExtension } from './anpr/extension.js';
import { type Config, parseListen } from './config/schema.js';
import { EventBus } from './core/bus.js';
import { type Clock, readBootId, systemClock } from './core/clock.js';
import { ClockSync } from './core/clock-sync.js';
import { type EventDraft, isValidEventType, type VigiaEvent } from './core/event.js';
import { checkDynamicEvent, EVENT_TYPES, type EventPayload, type EventType } from './core/events.js';
import type { Extension, ExtensionContext, HealthRegistry } from './core/extension.js';
import { LocationSlot } from './core/location.js';
import { createLogger, type Logger } from './core/logger.js';
import { CommandRouter } from './gateway/commands.js';
import { ControlServer } from './gateway/control.js';
import { Outbox, type RecoveryReport } from './gateway/outbox.js';
import { handleOutboxOps } from './gateway/outbox-control.js';
import { outboxFile, outboxOptions } from './gateway/outbox-options.js';
import { topicsFor, type Topics } from './gateway/topics.js';
import { Uplink } from './gateway/uplink.js';
import { EXTENSIONS, type ExtensionEntry, type GatewayServices } from './extensions.js';
import { registerAdminCommands } from './admin-commands.js';
import { LogLevelOverride } from './log-level.js';
import type { ServiceSummary } from './service-supervision.js';
import { type DaemonStatus, daemonStatus } from './status.js';
import { VERSION } from './version.js';

/** An extension the caller adds (tests, the demo), started after the listed ones. */
export interface ExtraExtension {
  name: string;
  create: (ctx: ExtensionContext<Config>) => Extension;
}

export interface ControllerDeps {
  clock?: Clock;
  logger?: Logger;
  bootId?: string;
  /** The extension list (default: `EXTENSIONS`); tests narrow or replace it. */
  extensions?: readonly ExtensionEntry[];
  /** Extra extensions started after the listed ones and stopped before them. */
  extra?: readonly ExtraExtension[];
  /** The file the daemon runs from, for config.get/config.set. */
  configFile?: string;
  /** Stops the daemon cleanly to be started again (restart, config.set); without it those commands are refused. */
  requestRestart?: (reason: string) => void;
  /** Test hooks on the control socket (`debug.block_loop`); never on a device. */
  debugOps?: boolean;
}

/** The longest `debug.block_loop` may stall the event loop. */
const MAX_BLOCK_LOOP_MS = 60_000;

const EXPIRE_INTERVAL_MS = 60_000;

/**
 * Wires the gateway and the extensions. Start order: outbox, clock, (demo broker), control socket,
 * uplink, commands, then the extensions in list order, so nothing is produced before it can be
 * stored. Stop order is the reverse. Each extension gets its own context: its own child logger,
 * its own bus subscriptions (dropped when it stops), and the shared services of the contract.
 */
export class Controller {
  readonly config: Config;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly bus: EventBus;
  readonly paths: { dataDir: string; runtimeDir: string; outboxFile: string };
  readonly topics: Topics;
  readonly #clockSync: ClockSync;
  readonly #outbox: Outbox;
  readonly #uplink: Uplink;
  readonly #commands: CommandRouter;
  readonly #control: ControlServer;
  readonly #location = new LocationSlot();
  readonly #healthSections = new Map<string, () => Record<string, unknown>>();
  readonly #health: HealthRegistry = {
    provide: (section, source) => {
      this.#healthSections.set(section, source);
      return () => {
        if (this.#healthSections.get(section) === source) this.#healthSections.delete(section);
      };
    },
    collect: () => {
      const out: Record<string, Record<string, unknown>> = {};
      for (const [section, source] of this.#healthSections) {
        try {
          out[section] = source();
        } catch (err) {
          out[section] = { error: (err as Error).message };
        }
      }
      return out;
    },
  };
  readonly #startedMono: number;
  readonly #deps: ControllerDeps;
  readonly #acceptedByType: Record<string, number> = {};
  #started: Array<{ ext: Extension; unsubscribe: Array<() => void> }> = [];
  #demoBroker: Extension | undefined;
  #logLevel: LogLevelOverride | undefined;
  #metrics: { stop(): void; close(): Promise<void> } | undefined;
  #expireTimer: NodeJS.Timeout | undefined;

  constructor(config: Config, deps: ControllerDeps = {}) {
    this.config = config;
    this.#deps = deps;
    const clock = (this.clock = deps.clock ?? systemClock);
    const logger = (this.logger = deps.logger ?? createLogger(config.log.level));
    const bootId = deps.bootId ?? readBootId();
    const dataDir = resolve(config.paths.data_dir);
    this.paths = { dataDir, runtimeDir: resolve(config.paths.runtime_dir), outboxFile: outboxFile(config) };
    this.#startedMono = clock.monoNow();
    const clockSync = (this.#clockSync = new ClockSync(clock, {
      source: config.clock.sync_source,
      syncFile: config.clock.sync_file,
      pollIntervalMs: config.clock.poll_interval,
      markFile: resolve(dataDir, 'trusted-time'),
    }));
    this.topics = topicsFor(config.mqtt.topic_prefix, config.device.site, config.device.id);
    this.#outbox = new Outbox({
      ...outboxOptions(config, { clock, bootId, clockSynced: () => clockSync.synced(), logger: logger.child({ mod: 'outbox' }) }),
      checkpointInWorker: true,
    });
    this.bus = new EventBus({ logger: logger.child({ mod: 'bus' }) });
    this.#uplink = new Uplink({
      config: config.mqtt,
      topics: this.topics,
      outbox: this.#outbox,
      clock,
      clockSync,
      bootId,
      logger: logger.child({ mod: 'uplink' }),
      birth: { version: VERSION, profile: config.device.profile, ...(config.device.location ? { location: config.device.location } : {}) },
    });
    this.#commands = new CommandRouter({
      config,
      outbox: this.#outbox,
      uplink: this.#uplink,
      topics: this.topics,
      clock,
      clockSync,
      logger: logger.child({ mod: 'commands' }),
      startedMono: this.#startedMono,
    });
    this.#control = new ControlServer(resolve(this.paths.runtimeDir, 'vigia.sock'), logger.child({ mod: 'control' }));
  }

  /** The one way an event enters the system: stored durably first, then announced on the bus. */
  emit<T extends EventType>(type: T, payload: EventPayload<T>): Promise<VigiaEvent<EventPayload<T>>> {
    return this.#store({ type, priority: EVENT_TYPES[type].priority, payload }) as Promise<VigiaEvent<EventPayload<T>>>;
  }

  /** An event whose type is known only at run time: checked against the catalogue before it is stored. */
  emitDynamic(draft: EventDraft): Promise<VigiaEvent> {
    if (!isValidEventType(draft.type)) return Promise.reject(new Error(`invalid event type ${JSON.stringify(draft.type)} (lowercase words separated by dots)`));
    const problem = checkDynamicEvent(draft.type, draft.priority, draft.payload);
    if (problem) return Promise.reject(new Error(problem));
    return this.#store({ type: draft.type, priority: draft.priority, payload: draft.payload });
  }

  async #store(draft: EventDraft): Promise<VigiaEvent> {
    const geo = this.#location.current();
    const event = await this.#outbox.accept(geo ? { ...draft, geo } : draft);
    this.#acceptedByType[event.type] = (this.#acceptedByType[event.type] ?? 0) + 1;
    this.bus.emit('event.accepted', event);
    return event;
  }

  /** A context for one extension: shared services, its own logger and bus subscriptions. */
  #contextFor(name: string, unsubscribe: Array<() => void>): ExtensionContext<Config> {
    const { bus } = this;
    return {
      config: this.config,
      logger: this.logger.child({ ext: name }),
      clock: this.clock,
      clockTrust: this.#clockSync,
      paths: { dataDir: this.paths.dataDir, runtimeDir: this.paths.runtimeDir },
      bus: {
        on(event, listener) {
          const off = bus.on(event, listener, name);
          unsubscribe.push(off);
          return off;
        },
      },
      commands: this.#commands,
      control: this.#control,
      location: this.#location,
      health: this.#health,
      emit: (type, payload) => this.emit(type, payload),
      emitDynamic: (draft) => this.emitDynamic(draft),
    };
  }

  async start(): Promise<void> {
    const { config, logger } = this;
    logger.info({ device: config.device.id, site: config.device.site, profile: config.device.profile, version: VERSION }, 'starting');
    // Before open(): a disk found full at start is reported too.
    this.#outbox.onDiskFull((report) => void this.emit('system.disk_full', report).catch((err) => logger.error({ err }, 'could not report the full disk')));
    this.#outbox.onDiskRecovered(
      (report) => void this.emit('system.disk_recovered', report).catch((err) => logger.error({ err }, 'could not report the disk space back')),
    );
    const recovery = this.#outbox.open();
    this.#clockSync.on('synced', (source) => {
      logger.info({ source }, 'wall clock synchronised');
      this.bus.emit('clock.synced', source);
    });
    this.#clockSync.start();
    this.#uplink.on('state', (state) => this.bus.emit('link.state', state));
    // Found corrupt while running: reported like a corrupt file found at start.
    this.#outbox.onReopened((report) => void this.#reportRecovery(report).catch((err) => logger.error({ err }, 'could not report the outbox recovery')));
    this.#control.handle('status', () => this.status());
    handleOutboxOps(this.#control, this.#outbox, this.#uplink);
    if (this.#deps.debugOps) this.#handleDebugOps();
    this.#expireTimer = setInterval(() => this.#outbox.expire(), EXPIRE_INTERVAL_MS);
    this.#expireTimer.unref();
    this.#outbox.expire();

    // Modules first, so the control socket never answers before the extensions' handlers exist.
    const entries = (this.#deps.extensions ?? EXTENSIONS).filter((e) => e.enabled(config));
    const factories = await Promise.all(entries.map(async (e) => ({ name: e.name, create: await e.load() })));
    for (const e of this.#deps.extra ?? []) factories.push({ name: e.name, create: (ctx) => e.create(ctx) });

    // The demo broker (aedes) is loaded only when enabled: field devices never pay for it in memory.
    if (config.demo.embedded_broker.enabled) {
      const { DemoBroker } = await import('./gateway/demo-broker.js');
      this.#demoBroker = new DemoBroker(config.demo.embedded_broker, logger.child({ mod: 'demo-broker' }));
      await this.#demoBroker.start();
    }
    await this.#control.start();
    this.#uplink.start();
    this.#commands.start(recovery);
    this.#logLevel = new LogLevelOverride(logger, () => this.clock.wallNow());
    registerAdminCommands({
      config,
      configFile: this.#deps.configFile,
      clock: this.clock,
      logger: logger.child({ mod: 'admin' }),
      dataDir: this.paths.dataDir,
      commands: this.#commands,
      emit: (type, payload) => this.emit(type, payload),
      status: () => this.status(),
      logLevel: this.#logLevel,
      requestRestart: this.#deps.requestRestart,
    });

    const gateway: GatewayServices = { outbox: this.#outbox, uplink: this.#uplink, startedMono: this.#startedMono };
    for (const { name, create } of factories) {
      const unsubscribe: Array<() => void> = [];
      const ext = create(this.#contextFor(name, unsubscribe), gateway);
      // Listed before it starts: `vigia status` shows an extension that is still starting (ANPR loading its models).
      this.#started.push({ ext, unsubscribe });
      await ext.start();
    }
    if (recovery) await this.#reportRecovery(recovery);
    if (config.metrics.enabled) await this.#startMetrics();
    logger.info({ outbox_depth: this.#outbox.depth() }, 'started');
  }

  /** Optional: an endpoint that cannot listen (port taken) is logged, and the daemon runs on without it. */
  async #startMetrics(): Promise<void> {
    const listen = parseListen(this.config.metrics.listen)!;
    const log = this.logger.child({ mod: 'metrics' });
    const [{ Metrics }, { serveMetrics }] = await Promise.all([import('./metrics.js'), import('./metrics-http.js')]);
    const metrics = new Metrics({
      status: () => this.status(),
      uplink: this.#uplink,
      bus: this.bus,
      anpr: this.extension<AnprExtension>('anpr'),
    });
    metrics.start();
    try {
      const endpoint = await serveMetrics(listen, metrics, log);
      this.#metrics = { stop: () => metrics.stop(), close: () => endpoint.close() };
    } catch (err) {
      metrics.stop();
      log.error({ err, listen: this.config.metrics.listen }, 'metrics endpoint could not listen; running without it');
    }
  }

  async #reportRecovery(r: RecoveryReport): Promise<void> {
    await this.emit('system.outbox_corrupt', { moved_to: r.movedTo, error: r.error });
  }

  async stop(): Promise<void> {
    clearInterval(this.#expireTimer);
    this.#logLevel?.stop();
    if (this.#metrics) {
      await this.#stopQuietly('metrics', { stop: () => this.#metrics?.close() });
      this.#metrics.stop();
      this.#metrics = undefined;
    }
    for (const { ext, unsubscribe } of this.#started.reverse()) {
      for (const off of unsubscribe) off();
      await this.#stopQuietly(ext.name, ext);
    }
    this.#started = [];
    await this.#stopQuietly('commands', this.#commands);
    await this.#stopQuietly('uplink', this.#uplink);
    await this.#stopQuietly('control', this.#control);
    if (this.#demoBroker) await this.#stopQuietly('demo-broker', this.#demoBroker);
    this.#clockSync.stop();
    await this.#outbox.close();
    this.logger.info('stopped');
  }

  async #stopQuietly(name: string, part: { stop(): unknown }): Promise<void> {
    try {
      await part.stop();
    } catch (err) {
      this.logger.error({ err, ext: name }, 'error while stopping');
    }
  }

  /**
   * The watchdog test blocks the event loop the way a runaway computation would, from inside,
   * and answers once the loop runs again.
   */
  #handleDebugOps(): void {
    this.logger.warn('debug operations are on (VIGIA_DEBUG_OPS): for tests only');
    this.#control.handle('debug.block_loop', (args) => {
      const ms = Number(args.ms);
      if (!Number.isFinite(ms) || ms <= 0 || ms > MAX_BLOCK_LOOP_MS) throw new Error(`ms must be a number of milliseconds in (0, ${MAX_BLOCK_LOOP_MS}]`);
      const end = performance.now() + ms;
      while (performance.now() < end) {
        /* the stall itself */
      }
      return { blocked_ms: ms };
    });
  }

  /** The link state and outbox depth, for systemd's status line (cheap: no extension is asked). */
  serviceSummary(): ServiceSummary {
    return { link: this.#uplink.state(), outboxDepth: this.#outbox.depth() };
  }

  /** A started extension by name (tests and the demo reach the simulated hardware through it). */
  extension<T extends Extension = Extension>(name: string): T | undefined {
    return this.#started.find(({ ext }) => ext.name === name)?.ext as T | undefined;
  }

  status(): DaemonStatus {
    return daemonStatus({
      config: this.config,
      now: this.clock.monoNow(),
      startedMono: this.#startedMono,
      outbox: this.#outbox.stats(),
      link: this.#uplink.stats(),
      clock: { synced: this.#clockSync.synced(), source: this.#clockSync.source() || null },
      acceptedByType: this.#acceptedByType,
      commands: this.#commands.stats(),
      bus: this.bus.stats(),
      extensions: this.#started.map(({ ext }) => ext),
    });
  }
}
