// One device of the fleet simulator: the daemon's own gateway (outbox on its own SQLite file,
// uplink, signed command router) and its own hotlist store taking signed deltas, without hardware
// or extensions. Many of them run in one process (fleet-child.ts); each has its own MQTT link.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { HotlistStore } from '../../src/anpr/hotlist/source.js';
import { type Config, configSchema } from '../../src/config/schema.js';
import { systemClock } from '../../src/core/clock.js';
import { ClockSync } from '../../src/core/clock-sync.js';
import { decodeCanonicalBase64 } from '../../src/core/keys.js';
import type { Priority } from '../../src/core/event.js';
import { CommandError } from '../../src/core/extension.js';
import { CommandRouter } from '../../src/gateway/commands.js';
import { Outbox } from '../../src/gateway/outbox.js';
import { outboxOptions } from '../../src/gateway/outbox-options.js';
import { topicsFor } from '../../src/gateway/topics.js';
import { Uplink } from '../../src/gateway/uplink.js';

export interface FleetDeviceOptions {
  id: string;
  site: string;
  dir: string;
  /** The `mqtt` section of the device's configuration (url, servers, reconnect...). */
  mqtt: Record<string, unknown>;
  /** HMAC key the call center signs commands with. */
  commandKey: string;
  /** The list publisher's Ed25519 public key (PEM). */
  hotlistKey: string;
  /** `outbox.synchronous` (default full, the daemon's default). */
  outboxSync?: 'full' | 'normal';
  logger: Logger;
}

/** A link state change: when (ms since the epoch) and to what. */
export interface LinkChange {
  at: number;
  state: string;
  server: string;
}

const DELTA_ARGS = z.object({ delta: z.string(), signature: z.string() });

export class FleetDevice {
  readonly id: string;
  readonly config: Config;
  readonly #outbox: Outbox;
  readonly #uplink: Uplink;
  readonly #commands: CommandRouter;
  readonly #hotlist: HotlistStore;
  readonly #clockSync: ClockSync;
  /** Ids of every event the outbox accepted: each must reach the call center. */
  readonly accepted: string[] = [];
  readonly links: LinkChange[] = [];
  /** Alarms acknowledged by the broker: when, and how long after the outbox accepted them (ms). */
  alarmAcks: Array<{ at: number; ms: number }> = [];
  /** The hotlist version installed and when (ms since the epoch). */
  hotlist: { version: string; at: number } | null = null;

  constructor(readonly opts: FleetDeviceOptions) {
    this.id = opts.id;
    mkdirSync(opts.dir, { recursive: true });
    this.config = configSchema.parse({
      device: { id: opts.id, site: opts.site, profile: 'pole' },
      paths: { data_dir: opts.dir, runtime_dir: opts.dir },
      mqtt: opts.mqtt,
      outbox: { synchronous: opts.outboxSync ?? 'full' },
      commands: { key: opts.commandKey },
      anpr: { hotlist: { public_key: opts.hotlistKey } },
    });
    const logger = opts.logger.child({ device: opts.id });
    this.#clockSync = new ClockSync(systemClock, {
      source: 'assume-synced',
      syncFile: join(opts.dir, 'synced'),
      pollIntervalMs: 60_000,
      markFile: join(opts.dir, 'trusted-time'),
    });
    const bootId = '00000000-0000-4000-8000-000000000000';
    // The checkpointer runs inline: a worker thread per device would not fit hundreds in one process.
    this.#outbox = new Outbox({
      ...outboxOptions(this.config, { clock: systemClock, bootId, clockSynced: () => true, logger: logger.child({ mod: 'outbox' }) }),
      checkpointInWorker: false,
    });
    const topics = topicsFor(this.config.mqtt.topic_prefix, opts.site, opts.id);
    this.#uplink = new Uplink({
      config: this.config.mqtt,
      topics,
      outbox: this.#outbox,
      clock: systemClock,
      clockSync: this.#clockSync,
      bootId,
      logger: logger.child({ mod: 'uplink' }),
      birth: { version: 'fleet', profile: 'pole' },
    });
    this.#commands = new CommandRouter({
      config: this.config,
      outbox: this.#outbox,
      uplink: this.#uplink,
      topics,
      clock: systemClock,
      clockSync: this.#clockSync,
      logger: logger.child({ mod: 'commands' }),
      startedMono: systemClock.monoNow(),
    });
    // Built inline: a small list, and no worker thread per device.
    this.#hotlist = new HotlistStore({
      dataDir: opts.dir,
      publicKey: opts.hotlistKey,
      site: opts.site,
      build: 'inline',
      logger: logger.child({ mod: 'hotlist' }),
    });
  }

  async start(): Promise<void> {
    const recovery = this.#outbox.open();
    this.#clockSync.start();
    await this.#hotlist.open();
    // As the ANPR extension takes a delta: checked against the publisher's key, applied, announced.
    this.#commands.register('hotlist.delta', DELTA_ARGS, async ({ delta, signature }) => {
      const sig = decodeCanonicalBase64(signature);
      if (!sig) throw new CommandError('bad_args', '"signature" is not canonical base64');
      const update = await this.#hotlist.applySignedDelta(Buffer.from(delta, 'utf8'), sig);
      if (!update.ok) throw new CommandError(`hotlist_${update.reason}`, update.detail);
      this.hotlist = { version: update.version, at: Date.now() };
      await this.emit('hotlist.updated', 'telemetry', { source: 'delta', version: update.version, size: update.size });
      return { version: update.version, size: update.size };
    });
    this.#uplink.on('state', (state) => this.links.push({ at: Date.now(), state, server: this.#uplink.stats().server }));
    this.#uplink.onDelivered((priority, ms) => {
      if (priority === 'alarm') this.alarmAcks.push({ at: Date.now(), ms });
    });
    this.#uplink.start();
    this.#commands.start(recovery);
  }

  /** Stores an event (durably, as the daemon does) and remembers its id. */
  async emit(type: string, priority: Priority, payload: Record<string, unknown>): Promise<string> {
    const event = await this.#outbox.accept({ type, priority, payload });
    this.accepted.push(event.id);
    return event.id;
  }

  depth(): number {
    return this.#outbox.depth();
  }

  online(): boolean {
    return this.#uplink.state() === 'online';
  }

  uplinkStats() {
    return this.#uplink.stats();
  }

  commandStats() {
    return this.#commands.stats();
  }

  async stop(): Promise<void> {
    await this.#commands.stop();
    await this.#uplink.stop();
    this.#clockSync.stop();
    await this.#hotlist.close();
    await this.#outbox.close();
  }
}
