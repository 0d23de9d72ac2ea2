import type { IPublishPacket } from 'mqtt';
import type { Context } from '../controller.js';
import { CommandVerifier, type CommandRejection } from './command-auth.js';
import { SqliteNonceStore } from './nonce-store.js';

export type CommandHandler = (args: Record<string, unknown>) => unknown;

export class CommandError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type RejectReason = CommandRejection['reason'] | 'unknown_command' | 'no_key' | 'failed';

const NONCE_PRUNE_INTERVAL_MS = 10 * 60_000;

/**
 * The one inbound entry point. Every command arrives on <base>/cmd/<name>, must carry a valid
 * signature, a fresh timestamp and an unused nonce, and is answered on the MQTT 5 response topic
 * (with its correlation data) or on <base>/cmd/<name>/reply. Nothing a sender puts in a payload
 * can crash the daemon: every failure becomes an error reply and a counter.
 */
export class CommandRouter {
  readonly name = 'commands';
  #handlers = new Map<string, CommandHandler>();
  #verifier: CommandVerifier | undefined;
  #executed = 0;
  #rejected: Partial<Record<RejectReason, number>> = {};
  #pruneTimer: NodeJS.Timeout | undefined;
  #onMessage = (topic: string, payload: Buffer, packet: IPublishPacket) => void this.handleMessage(topic, payload, packet);

  constructor(private readonly ctx: Context) {}

  /** Later capabilities add their commands here (alarm.ack, output.set, hotlist.delta...). */
  register(name: string, handler: CommandHandler): void {
    if (this.#handlers.has(name)) throw new Error(`command ${name} is already registered`);
    this.#handlers.set(name, handler);
  }

  start(): void {
    const { config, outbox, clock, clockSync, uplink, topics, logger } = this.ctx;
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
    this.register('ping', () => ({ pong: true, time: new Date(clock.wallNow()).toISOString(), uptime_s: Math.round((clock.monoNow() - this.ctx.startedMono) / 1000) }));
    this.register('outbox.stats', () => outbox.stats());
    uplink.on('message', this.#onMessage);
    uplink.subscribe(topics.commands);
  }

  stop(): void {
    clearInterval(this.#pruneTimer);
    this.ctx.uplink.off('message', this.#onMessage);
    this.#handlers.clear();
  }

  stats() {
    return { executed: this.#executed, rejected: { ...this.#rejected } };
  }

  async handleMessage(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
    const name = this.ctx.topics.commandName(topic);
    if (name === undefined) return;
    const reply = (body: Record<string, unknown>) => {
      const responseTopic = packet.properties?.responseTopic;
      const correlationData = packet.properties?.correlationData;
      this.ctx.uplink.publishDirect(responseTopic ?? this.ctx.topics.reply(name), JSON.stringify({ cmd: name, ...body }), {
        qos: 1,
        properties: this.ctx.uplink.protocol() === 5 ? { contentType: 'application/json', ...(correlationData ? { correlationData } : {}) } : undefined,
      });
    };
    const refuse = (reason: RejectReason, detail: string) => {
      this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1;
      this.ctx.logger.warn({ cmd: name.slice(0, 64), reason, detail, bytes: payload.length }, 'command refused');
      reply({ ok: false, error: { code: reason, message: detail } });
    };
    if (!this.#verifier) return refuse('no_key', 'this device has no command key configured');
    const verdict = this.#verifier.verify(name, payload);
    if (!verdict.ok) return refuse(verdict.reason, verdict.detail);
    const handler = this.#handlers.get(name);
    if (!handler) return refuse('unknown_command', `unknown command ${name}`);
    try {
      const result = await handler(verdict.args);
      this.#executed++;
      this.ctx.logger.info({ cmd: name, nonce: verdict.nonce }, 'command executed');
      reply({ ok: true, nonce: verdict.nonce, result: result ?? null });
    } catch (err) {
      const code = err instanceof CommandError ? err.code : 'failed';
      this.#rejected.failed = (this.#rejected.failed ?? 0) + 1;
      this.ctx.logger.warn({ cmd: name, err: (err as Error).message }, 'command failed');
      reply({ ok: false, nonce: verdict.nonce, error: { code, message: (err as Error).message } });
    }
  }
}
