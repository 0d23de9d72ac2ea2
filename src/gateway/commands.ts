import type { IPublishPacket } from 'mqtt';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { ClockSync } from '../core/clock-sync.js';
import { describeIssues } from '../core/events.js';
import { CommandError, type CommandRegistry, NO_ARGS } from '../core/extension.js';
import { TokenBucket } from '../core/rate-limit.js';
import { CommandVerifier, type CommandRejection } from './command-auth.js';
import { SqliteNonceStore } from './nonce-store.js';
import { isCorruptionError, type Outbox, type RecoveryReport } from './outbox.js';
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
/** Refusals of messages that did not verify: anyone can send those, so their replies are rate-limited. */
const UNVERIFIED_REPLIES_PER_SECOND = 5;
const UNVERIFIED_REPLIES_BURST = 20;
/** Correlation data echoed in a reply to a message that did not verify; longer is left out. */
const MAX_UNVERIFIED_CORRELATION_BYTES = 64;

/**
 * The one inbound entry point. Every command arrives on <base>/cmd/<name>, must carry a valid
 * signature, a fresh timestamp and an unused nonce. Nothing a sender puts in a payload can crash
 * the daemon: every failure becomes an error reply and a counter.
 *
 * Replies are published with the device's own credentials, so where they go is never up to an
 * unauthenticated sender: a message that did not verify is answered only on the fixed
 * <base>/cmd/<name>/reply, at most UNVERIFIED_REPLIES_PER_SECOND (the rest are dropped and
 * counted); a verified command's MQTT 5 response topic is honoured only inside <base>/reply/.
 */
export class CommandRouter implements CommandRegistry {
  readonly name = 'commands';
  #handlers = new Map<string, { args: z.ZodType; handler: CommandHandler }>();
  #verifier: CommandVerifier | undefined;
  #executed = 0;
  #invoked = 0;
  #rejected: Partial<Record<RejectReason, number>> = {};
  #repliesDropped = 0;
  /** Refusals logged: as many as the replies to unverified messages allow, the rest only counted. */
  #refusalLog = new TokenBucket(UNVERIFIED_REPLIES_PER_SECOND, UNVERIFIED_REPLIES_BURST);
  #refusalsNotLogged = 0;
  readonly #unverifiedReplies = new TokenBucket(UNVERIFIED_REPLIES_PER_SECOND, UNVERIFIED_REPLIES_BURST);
  #nonces: SqliteNonceStore | undefined;
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

  /** `outboxRecovery`: the outbox's report when it replaced a corrupt file at start, so the nonces in it are carried over. */
  start(outboxRecovery?: RecoveryReport): void {
    const { config, outbox, clock, clockSync, uplink, topics, logger, startedMono } = this.deps;
    const key = config.commands.key;
    if (key) {
      // The outbox replaces its database after corruption: the store asks for the live handle at each use.
      const nonces = new SqliteNonceStore(() => outbox.database(), config.commands.replay_window);
      this.#nonces = nonces;
      if (outboxRecovery) this.#carryOverNonces(outboxRecovery);
      outbox.onReopened((report) => this.#carryOverNonces(report));
      this.#verifier = new CommandVerifier(
        { auth: config.commands.auth, key: key.reveal(), replayWindowMs: config.commands.replay_window, site: config.device.site, device: config.device.id },
        nonces,
        { wallNow: () => clock.wallNow(), synced: () => clockSync.synced(), notBefore: () => clockSync.notBefore() },
      );
      // Only with a trusted clock: an unsynced clock running ahead would forget nonces early; while
      // unsynced, the nonces and the trusted-time mark are the replay defence.
      // The trusted-time mark is written first: a nonce forgotten here is older than the mark minus
      // the window, so after a restart without a synced clock the verifier still refuses its command.
      this.#pruneTimer = setInterval(() => {
        const mark = clockSync.synced() ? clockSync.mark() : null;
        try {
          if (mark !== null) nonces.prune(mark);
        } catch (err) {
          // A full disk or a damaged file: pruning can wait for the next round.
          logger.warn({ err: (err as Error).message }, 'cannot prune old command nonces');
        }
      }, NONCE_PRUNE_INTERVAL_MS);
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
    return { executed: this.#executed, rejected: { ...this.#rejected }, replies_dropped: this.#repliesDropped, local: this.#invoked };
  }

  #carryOverNonces(report: RecoveryReport): void {
    const nonces = this.#nonces;
    if (!nonces) return;
    const result = nonces.carryOver(report.movedTo, this.deps.clock.wallNow());
    if ('carried' in result) {
      this.deps.logger.warn({ carried: result.carried, from: report.movedTo }, 'command nonces carried over from the corrupt outbox');
    } else {
      this.deps.logger.error(
        { error: result.error, from: report.movedTo, refused_until: new Date(result.lostUntil).toISOString() },
        'command nonces lost with the corrupt outbox: commands signed before the recovery are refused',
      );
    }
  }

  async handleMessage(topic: string, payload: Buffer, packet: IPublishPacket): Promise<void> {
    const { topics, uplink, logger, clock } = this.deps;
    const name = topics.commandName(topic);
    if (name === undefined) return;
    const publishReply = (replyTopic: string, body: Record<string, unknown>, correlationData: Buffer | undefined) => {
      uplink.publishDirect(replyTopic, JSON.stringify({ cmd: name, ...body }), {
        qos: 1,
        properties: uplink.protocol() === 5 ? { contentType: 'application/json', ...(correlationData ? { correlationData } : {}) } : undefined,
      });
    };
    const count = (reason: RejectReason, detail: string) => {
      this.#rejected[reason] = (this.#rejected[reason] ?? 0) + 1;
      // A flood of junk must not flood the journal (and wear the SD card): the counts keep the total.
      if (!this.#refusalLog.take(clock.monoNow())) {
        this.#refusalsNotLogged++;
        return;
      }
      const notLogged = this.#refusalsNotLogged;
      this.#refusalsNotLogged = 0;
      logger.warn({ cmd: name.slice(0, 64), reason, detail, bytes: payload.length, ...(notLogged ? { not_logged: notLogged } : {}) }, 'command refused');
    };
    // Anyone can send these: never where the sender asks, and only as many as the bucket allows.
    const refuseUnverified = (reason: RejectReason, detail: string) => {
      count(reason, detail);
      if (!this.#unverifiedReplies.take(clock.monoNow())) {
        this.#repliesDropped++;
        return;
      }
      const correlationData = packet.properties?.correlationData;
      const echoed = correlationData && correlationData.length <= MAX_UNVERIFIED_CORRELATION_BYTES ? correlationData : undefined;
      publishReply(topics.reply(name), { ok: false, error: { code: reason, message: detail } }, echoed);
    };
    if (!this.#verifier) return refuseUnverified('no_key', 'this device has no command key configured');
    let verdict: ReturnType<CommandVerifier['verify']>;
    try {
      verdict = this.#verifier.verify(name, payload);
    } catch (err) {
      // The nonce store failed: refuse rather than run a command whose replay cannot be ruled out.
      logger.error({ err, cmd: name.slice(0, 64) }, 'command nonces could not be checked');
      if (isCorruptionError(err)) this.deps.outbox.recoverFromCorruption(err);
      return refuseUnverified('failed', 'the record of used nonces could not be read; sign the command again');
    }
    if (!verdict.ok) return refuseUnverified(verdict.reason, verdict.detail);

    const requested = packet.properties?.responseTopic;
    const replyTopic = requested !== undefined && topics.isResponseTopic(requested) ? requested : topics.reply(name);
    const reply = ({ ok, ...rest }: { ok: boolean } & Record<string, unknown>) =>
      publishReply(replyTopic, { ok, nonce: verdict.nonce, ...rest }, packet.properties?.correlationData);
    const refuse = (reason: RejectReason, detail: string) => {
      count(reason, detail);
      reply({ ok: false, error: { code: reason, message: detail } });
    };
    const command = this.#handlers.get(name);
    if (!command) return refuse('unknown_command', `unknown command ${name}`);
    const args = command.args.safeParse(verdict.args);
    if (!args.success) return refuse('bad_args', describeIssues(args.error));
    try {
      const result = await command.handler(args.data);
      this.#executed++;
      this.deps.logger.info({ cmd: name, nonce: verdict.nonce }, 'command executed');
      reply({ ok: true, result: result ?? null });
    } catch (err) {
      const code = err instanceof CommandError ? err.code : 'failed';
      this.#rejected.failed = (this.#rejected.failed ?? 0) + 1;
      this.deps.logger.warn({ cmd: name, err: (err as Error).message }, 'command failed');
      reply({ ok: false, error: { code, message: (err as Error).message } });
    }
  }
}
