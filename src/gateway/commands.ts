import type { IPublishPacket } from 'mqtt';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { ClockSync } from '../core/clock-sync.js';
import { describeIssues } from '../core/events.js';
import { CommandError, type CommandRegistry, NO_ARGS } from '../core/extension.js';
import { CommandVerifier, type CommandRejection } from './command-auth.js';
import { SqliteNonceStore } from './nonce-store.js';
import type { Outbox } from './outbox.js';
import type { Topics } from './topics.js';
import type { Uplink } from './uplink.js';

type CommandHandler = (args: unknown) => unknown;

export interface CommandRouterDeps {
  config: Pick<Config, 'commands' | 'device'>;
  outbox: Outbox;
  uplink: Uplink;
  topics: Topics;
  clock: Clock;
  clockSync: ClockSync;
  logger: Logger;
  /** Monotonic time the daemon started, for `ping`'s uptime. */
  startedMono: number;
}

type RejectReason = CommandRejection['reason'] | 'unknown_command' | 'no_key' | 'bad_args' | 'failed';

const NONCE_PRUNE_INTERVAL_MS = 10 * 60_000;

/**
 * The one inbound entry point. Every command arrives on <base>/cmd/<name>, must carry a valid
 * signature, a fresh timestamp and an unused nonce, and is answered on the MQTT 5 response topic
 * (with its correlation data) or on <base>/cmd/<name>/reply. Nothing a sender puts in a payload
 * can crash the daemon: every failure becomes an error reply and a counter.
 */
export class CommandRouter implements CommandRegistry {
  readonly name = 'commands';
  #handlers = new Map<string, { args: z.ZodType; handler: CommandHandler }>();
  #verifier: CommandVerifier | undefined;
  #executed = 0;
  #invoked = 0;
  #rejected: Partial<Record<RejectReason, number>> = {};
  #pruneTimer: NodeJS.Timeout | undefined;
  #onMessage = (topic: string, payload: Buffer, packet: IPublishPacket) => void this.handleMessage(topic, payload, packet);

  constructor(private readonly deps: CommandRouterDeps) {}

  /** Extensions add their commands here (alarm.ack, output.set, hotlist.delta...), each with the schema of its arguments. */
  register<S extends z.ZodType>(name: string, args: S, handler: (args: z.output<S>) => unknown): void {
    if (this.#handlers.has(name)) throw new Error(`command ${name} is already registered`);
    this.#handlers.set(name, { args, handler: handler as CommandHandler });
  }

  async invoke(name: string, args: unknown): Promise<unknown> {
    const command = this.#handlers.get(name);
    if (!command) throw new CommandError('unknown_command', `unknown command ${name}`);
    const parsed = command.args.safeParse(args ?? {});
    if (!parsed.success) throw new CommandError('bad_args', describeIssues(parsed.error));
    this.#invoked++;
    return command.handler(parsed.data);
  }

  start(): void {
    const { config, outbox, clock, clockSync, uplink, topics, logger, startedMono } = this.deps;
    const key = config.commands.key;
    if (key) {
      const nonces = new SqliteNonceStore(outbox.database());
      this.#verifier = new CommandVerifier(
        { auth: config.commands.auth, key: key.reveal(), replayWindowMs: config.commands.replay_window, site: config.device.site, device: config.device.id },
        nonces,
        { wallNow: () => clock.wallNow(), synced: () => clockSync.synced() },
      );
      // Only with a trusted clock: an unsynced clock running ahead would forget nonces early, and
      // while unsynced the age check is off, so the nonce is the only replay defence.
      this.#pruneTimer = setInterval(() => clockSync.synced() && nonces.prune(clock.wallNow()), NONCE_PRUNE_INTERVAL_MS);
      this.#pruneTimer.unref();
    } else {
      logger.warn('commands.key is not set: every command will be refused');
    }
    this.register('ping', NO_ARGS, () => ({
      pong: true,
      time: new Date(clock.wallNow()).toISOString(),
      uptime_s: Math.round((clock.monoNow() - startedMono) / 1000),
    }));
    this.register('outbox.stats', NO_ARGS, () => outbox.stats());
    uplink.on('message', this.#onMessage);
    uplink.subscribe(topics.commands);
  }

  stop(): void {
    clearInterval(this.#pruneTimer);
    this.deps.uplink.off('message', this.#onMessage);
    this.#handlers.clear();
  }

  stats() {
    return { executed: this.#executed, rejected: { ...this.#rejected }, local: this.#invoked };
  }

  async handleMessage(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
    const name = this.deps.topics.commandName(topic);
    if (name === undefined) return;
    const reply = (body: Record<string, unknown>) => {
      const responseTopic = packet.properties?.responseTopic;
      const correlationData = packet.properties?.correlationData;
      this.deps.uplink.publishDirect(responseTopic ?? this.deps.topics.reply(name), JSON.stringify({ cmd: name, ...body }), {
        qos: 1,
        properties: this.deps.uplink.protocol() === 5 ? { contentType: 'application/json', ...(correlationData ? { correlationData } : {}) } : undefined,
      });
    };
    const refuse = (reason: RejectReason, detail: string) => {
      this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1;
      this.deps.logger.warn({ cmd: name.slice(0, 64), reason, detail, bytes: payload.length }, 'command refused');
      reply({ ok: false, error: { code: reason, message: detail } });
    };
    if (!this.#verifier) return refuse('no_key', 'this device has no command key configured');
    const verdict = this.#verifier.verify(name, payload);
    if (!verdict.ok) return refuse(verdict.reason, verdict.detail);
    const command = this.#handlers.get(name);
    if (!command) return refuse('unknown_command', `unknown command ${name}`);
    const args = command.args.safeParse(verdict.args);
    if (!args.success) return refuse('bad_args', describeIssues(args.error));
    try {
      const result = await command.handler(args.data);
      this.#executed++;
      this.deps.logger.info({ cmd: name, nonce: verdict.nonce }, 'command executed');
      reply({ ok: true, nonce: verdict.nonce, result: result ?? null });
    } catch (err) {
      const code = err instanceof CommandError ? err.code : 'failed';
      this.#rejected.failed = (this.#rejected.failed ?? 0) + 1;
      this.deps.logger.warn({ cmd: name, err: (err as Error).message }, 'command failed');
      reply({ ok: false, nonce: verdict.nonce, error: { code, message: (err as Error).message } });
    }
  }
}
