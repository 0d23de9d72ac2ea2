import { readFileSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type IClientPublishOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { Backoff, type BackoffOptions, backoffDelay } from '../core/backoff.js';
import type { LinkState } from '../core/bus.js';
import type { Clock } from '../core/clock.js';
import { redactUrl } from '../core/redact.js';
import type { ClockSync } from '../core/clock-sync.js';
import { PRIORITIES, type Priority, priorityRank, type VigiaEvent } from '../core/event.js';
import type { HeldEvent, Outbox, StoredEvent } from './outbox.js';
import type { Topics } from './topics.js';

export interface UplinkStats {
  state: LinkState;
  since: number;
  protocol: 4 | 5;
  connects: number;
  lastError: string | null;
  inflight: number;
  window: number;
  published: number;
  acked: number;
  /** Events published but not acknowledged when a link dropped: sent again, maybe duplicated. */
  resent: number;
  publishedByType: Record<string, number>;
  refused: RefusalStats;
  /** Inbound messages larger than `max_inbound_bytes` dropped before anyone parsed them. */
  inboundDropped: number;
  /** Alarms the outbox could not store yet (disk full), published straight from memory; stored and sent again later, same id. */
  direct: { published: number; acked: number };
  /** The broker this link is on (or last tried), of `url` and `servers`. */
  server: string;
  /** Links moved to another server: failovers after a drop or a failed attempt, and the broker's redirections. */
  failovers: number;
  redirects: number;
  /** MQTT 5: the keep-alive the broker imposed (seconds), when it did. */
  serverKeepAlive: number | null;
  /** Subscriptions the broker refused (each subscribed again later, with backoff). */
  subscribeRefusals: number;
  /**
   * Online with every subscription granted: commands can reach the device. A broker may take long
   * to grant one (RabbitMQ declares a replicated queue), and hold the link's publishes behind it.
   */
  subscribed: boolean;
}

/** Publishes the broker refused with an MQTT 5 PUBACK reason code >= 0x80. */
export interface RefusalStats {
  total: number;
  /** Per reason code, keyed `0x87`. */
  byReason: Record<string, number>;
  /** The latest refusal: its reason code (`0x87`), the broker's reason and the event type refused. */
  last: { code: string; message: string; type: string } | null;
  /** Refused events kept in the outbox and waiting for their retry. */
  waiting: number;
  /** Reconnects made because refusals went on. */
  reconnects: number;
}

/** A refused event, out of the window until its retry is due. */
interface Waiting {
  event: StoredEvent;
  refusals: number;
  dueAt: number;
  /** When its time to live was computed (monotonic), to age it while it waits. */
  readAt: number;
}

interface InFlight {
  event: StoredEvent;
  /** Times the broker had refused it before this attempt. */
  refusals: number;
}

/**
 * Refused events the uplink keeps in memory per priority; beyond it that priority is not read
 * from the outbox until some are accepted (the rest wait on disk, never deleted).
 */
const MAX_WAITING_PER_PRIORITY = 1024;
/** Refusals in a row, none accepted in between, after which the link is re-established. */
const REFUSALS_BEFORE_RECONNECT = 32;
const REFUSAL_LOG_INTERVAL_MS = 10_000;

export interface UplinkDeps {
  config: Config['mqtt'];
  topics: Topics;
  outbox: Outbox;
  clock: Clock;
  clockSync: ClockSync;
  bootId: string;
  logger: Logger;
  /** Birth payload fields (version, profile...). */
  birth: Record<string, unknown>;
  /** Randomness for backoff jitter; injectable for tests. */
  random?: () => number;
}

type MessageHandler = (topic: string, payload: Buffer, packet: mqtt.IPublishPacket) => void;

export type MqttTlsOptions = Pick<IClientOptions, 'ca' | 'cert' | 'key' | 'servername' | 'rejectUnauthorized'>;

/** The TLS options of the broker connection, its files read now (the uplink, `vigia doctor`). */
export function mqttTlsOptions(tls: NonNullable<Config['mqtt']['tls']>): MqttTlsOptions {
  return {
    ca: tls.ca ? readFileSync(tls.ca) : undefined,
    cert: tls.cert ? readFileSync(tls.cert) : undefined,
    key: tls.key ? Buffer.from(tls.key.reveal()) : undefined,
    servername: tls.servername,
    rejectUnauthorized: tls.reject_unauthorized,
  };
}

/**
 * Drains the outbox to the central broker over MQTT QoS 1. Events leave the outbox only when the
 * broker acknowledges them (PUBACK), so a dropped link or a crash can only cause a resend, never a
 * loss. A bounded window of unacknowledged publishes keeps memory flat; a lane within it is kept
 * for alarms so one never waits behind a backlog of telemetry.
 */
export class Uplink extends EventEmitter<{ state: [LinkState]; message: Parameters<MessageHandler> }> {
  #client: MqttClient | undefined;
  #state: LinkState = 'offline';
  #since: number;
  #protocol: 4 | 5;
  #inflight = new Map<number, InFlight>();
  #waiting = new Map<number, Waiting>();
  #waitingByRank = PRIORITIES.map(() => 0);
  #retryTimer: NodeJS.Timeout | undefined;
  /** Refusals since the last accepted publish or reconnect. */
  #refusalStreak = 0;
  #refused: Omit<RefusalStats, 'waiting'> = { total: 0, byReason: {}, last: null, reconnects: 0 };
  #inboundDropped = 0;
  /** Spaces out the reconnects refusals cause; reset once a refused event is accepted. */
  readonly #refusalBackoff: Backoff;
  #refusalReconnectAt = 0;
  #refusalLoggedAt = -Infinity;
  #window = 1;
  readonly #retryDelays: BackoffOptions;
  readonly #backoff: Backoff;
  #reconnectTimer: NodeJS.Timeout | undefined;
  #rateTimer: NodeJS.Timeout | undefined;
  #tokens = 0;
  #tokensAt = 0;
  #pumping = false;
  #subscriptions = new Set<string>();
  #stats = { connects: 0, published: 0, acked: 0, resent: 0, lastError: null as string | null, publishedByType: {} as Record<string, number> };
  /** Held alarms published directly on this link, by id: 'sent' until the PUBACK, then 'acked'. */
  #direct = new Map<string, 'sent' | 'acked'>();
  #directStats = { published: 0, acked: 0 };
  #onDelivered: ((priority: Priority, ms: number) => void) | undefined;
  #tls: MqttTlsOptions = {};
  /** `url` then `servers`: the nodes of the central broker, tried in turn. */
  readonly #servers: string[];
  #serverIndex = 0;
  /** Where the broker said to go (MQTT 5 Server Reference with "use another server" or "server moved"). */
  #redirect: string | null = null;
  #server: string;
  /** Attempts that failed since the link was last up. */
  #outageFailures = 0;
  /** The next attempt goes to the same server at once (the protocol fell back to 3.1.1). */
  #sameServer = false;
  #earlyAttemptAt = -Infinity;
  #failovers = 0;
  #redirects = 0;
  #redirectStreak = 0;
  #serverKeepAlive: number | null = null;
  #subscribeRefusals = 0;
  /** Topics the broker granted in the current session (kept across links when the session is). */
  #granted = new Set<string>();

  constructor(private readonly deps: UplinkDeps) {
    super();
    this.#since = deps.clock.monoNow();
    this.#protocol = deps.config.protocol === '3.1.1' ? 4 : 5;
    const { min_delay, max_delay, jitter } = deps.config.reconnect;
    // Reconnects and retries of refused events share the reconnect settings.
    this.#retryDelays = { minDelayMs: min_delay, maxDelayMs: max_delay, factor: 2, jitter };
    this.#backoff = new Backoff(this.#retryDelays, deps.random);
    this.#refusalBackoff = new Backoff(this.#retryDelays, deps.random);
    this.#servers = [deps.config.url, ...deps.config.servers];
    this.#server = deps.config.url;
  }

  start(): void {
    const { tls } = this.deps.config;
    // Read certificate files once at start: a missing file is a startup error, not a reconnect loop.
    if (tls) this.#tls = mqttTlsOptions(tls);
    this.deps.outbox.onCommitted(() => {
      if (this.#direct.size > 0) this.#publishHeld(); // forgets the alarms stored since
      this.#pump();
      this.#alarmWhileOffline();
    });
    this.deps.outbox.onHeld(() => this.#publishHeld());
    this.#connect();
  }

  async stop(): Promise<void> {
    clearTimeout(this.#reconnectTimer);
    clearTimeout(this.#rateTimer);
    clearTimeout(this.#retryTimer);
    const client = this.#client;
    this.#setState('stopped');
    if (!client) return;
    if (client.connected) {
      // A clean goodbye: retained "offline" with the reason, instead of the broker's Last Will.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        client.publish(this.deps.topics.status, this.#statusPayload('offline', 'shutdown'), { qos: 1, retain: true }, () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    await new Promise<void>((resolve) => client.end(false, {}, () => resolve()));
    this.#client = undefined;
  }

  /** Called at each PUBACK with the event's priority and its time from acceptance to the acknowledgement (ms). */
  onDelivered(listener: ((priority: Priority, ms: number) => void) | undefined): void {
    this.#onDelivered = listener;
  }

  /** Subscribed on every (re)connect. */
  subscribe(topic: string): void {
    this.#subscriptions.add(topic);
    if (this.#client?.connected) this.#subscribe(this.#client, [topic]);
  }

  /** A direct publish that is not stored (command replies): lost if the link is down, by design. */
  publishDirect(topic: string, payload: string | Buffer, opts: IClientPublishOptions = { qos: 1 }): void {
    if (this.#client?.connected) this.#client.publish(topic, payload, opts);
  }

  /** An event the outbox refused because the disk is full, sent once if the link is up: never kept, never retried. */
  publishUnstored(event: VigiaEvent): boolean {
    const client = this.#client;
    if (!client?.connected || this.#state !== 'online') return false;
    client.publish(this.deps.topics.event(event.priority, event.type), JSON.stringify(event), this.#publishOptions(undefined));
    return true;
  }

  /**
   * `vigia outbox retry`: the refused events waiting for their retry are due now, and a link
   * waiting out its reconnect backoff reconnects now. Returns what was waiting.
   */
  retryNow(): { waiting: number; reconnecting: boolean } {
    const now = this.deps.clock.monoNow();
    for (const w of this.#waiting.values()) w.dueAt = now;
    const reconnecting = this.#state === 'offline' && this.#reconnectTimer !== undefined;
    if (reconnecting) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
      this.#backoff.reset();
      this.#connect();
    }
    const waiting = this.#waiting.size;
    this.#pump();
    return { waiting, reconnecting };
  }

  /** Forgets the refused events of a class waiting for a retry (they were purged from the outbox). */
  forgetWaiting(priority: Priority): void {
    for (const w of [...this.#waiting.values()]) if (w.event.priority === priority) this.#release(w);
  }

  protocol(): 4 | 5 {
    return this.#protocol;
  }

  state(): LinkState {
    return this.#state;
  }

  stats(): UplinkStats {
    return {
      state: this.#state,
      since: this.#since,
      protocol: this.#protocol,
      inflight: this.#inflight.size,
      window: this.#window,
      ...structuredClone(this.#stats),
      refused: { ...structuredClone(this.#refused), waiting: this.#waiting.size },
      inboundDropped: this.#inboundDropped,
      direct: { ...this.#directStats },
      server: redactUrl(this.#server),
      failovers: this.#failovers,
      redirects: this.#redirects,
      serverKeepAlive: this.#serverKeepAlive,
      subscribeRefusals: this.#subscribeRefusals,
      subscribed: this.#state === 'online' && [...this.#subscriptions].every((t) => this.#granted.has(t)),
    };
  }

  #setState(state: LinkState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#since = this.deps.clock.monoNow();
    this.deps.logger.info({ link: state, protocol: this.#protocol }, `uplink ${state}`);
    this.emit('state', state);
  }

  #statusPayload(state: 'online' | 'offline', reason?: string): string {
    return JSON.stringify({ state, reason, time: new Date(this.deps.clock.wallNow()).toISOString(), boot_id: this.deps.bootId, ...this.deps.birth });
  }

  #connect(): void {
    if (this.#state === 'stopped') return;
    const cfg = this.deps.config;
    this.#setState('connecting');
    const url = this.#redirect ?? this.#servers[this.#serverIndex]!;
    this.#redirect = null;
    this.#server = url;
    const client = mqtt.connect(url, {
      protocolVersion: this.#protocol,
      clientId: cfg.client_id ?? `vigia-${this.deps.topics.site}-${this.deps.topics.device}`,
      // A kept session (session_expiry > 0): commands sent while the link is down wait on the broker.
      clean: cfg.session_expiry === 0,
      keepalive: Math.round(cfg.keepalive / 1000),
      connectTimeout: cfg.connect_timeout,
      reconnectPeriod: 0, // we reconnect ourselves, with backoff and jitter
      queueQoSZero: false,
      username: cfg.username,
      password: cfg.password?.reveal(),
      // Commands are the only inbound traffic: the broker drops anything larger instead of sending it.
      properties:
        this.#protocol === 5
          ? { maximumPacketSize: cfg.max_inbound_bytes, ...(cfg.session_expiry > 0 ? { sessionExpiryInterval: Math.ceil(cfg.session_expiry / 1000) } : {}) }
          : undefined,
      will: { topic: this.deps.topics.status, payload: Buffer.from(this.#statusPayload('offline', 'lost')), qos: 1, retain: true },
      ...this.#tls,
    });
    this.#client = client;
    client.on('connect', (connack) => {
      // A CONNACK that arrives after this client was ended (a stop, a switch to another server)
      // finds its packet store closed: publishing on it would throw out of MQTT.js's handler.
      if (this.#client !== client || client.disconnecting || client.disconnected) return;
      this.#backoff.reset();
      this.#outageFailures = 0;
      this.#redirectStreak = 0;
      this.#stats.connects++;
      // MQTT.js keeps the broker's keep-alive itself; it is shown in the status.
      this.#serverKeepAlive = connack.properties?.serverKeepAlive ?? null;
      this.#stats.lastError = null; // `vigia status` shows the current trouble; the log keeps the history
      const receiveMax = connack.properties?.receiveMaximum ?? 65535;
      this.#window = Math.max(1, Math.min(cfg.inflight_window, receiveMax));
      client.publish(this.deps.topics.status, this.#statusPayload('online'), { qos: 1, retain: true });
      this.#setState('online');
      this.#publishHeld();
      this.#pump();
      // After the waiting alarms: a broker handles a connection's packets in order, and a
      // subscription can be slow (RabbitMQ declares and binds a replicated queue). A kept session
      // still has what this process subscribed in it (after a restart, everything is subscribed once).
      if (!connack.sessionPresent) this.#granted.clear();
      const missing = [...this.#subscriptions].filter((t) => !this.#granted.has(t));
      if (missing.length > 0) this.#subscribe(client, missing);
    });
    client.on('message', (topic, payload, packet) => {
      // MQTT 3.1.1 has no maximum packet size to announce (and a broker may ignore it): drop before anyone parses.
      if (payload.length > cfg.max_inbound_bytes) {
        this.#inboundDropped++;
        this.deps.logger.warn({ topic: topic.slice(0, 128), bytes: payload.length, max: cfg.max_inbound_bytes }, 'oversized inbound message dropped');
        return;
      }
      this.emit('message', topic, payload, packet);
    });
    // A broker that sends the device elsewhere (a cluster balancing, a node going down) names the
    // server in the CONNACK or DISCONNECT: the next attempt goes there, at once.
    client.on('packetreceive', (packet) => {
      if (packet.cmd !== 'connack' && packet.cmd !== 'disconnect') return;
      const code = packet.reasonCode;
      const reference = packet.properties?.serverReference;
      if ((code !== 0x9c && code !== 0x9d) || !reference) return;
      const to = referencedServer(reference, url);
      // Followed a few times in a row at most: brokers that send each other back and forth are not followed for ever.
      if (!to || this.#redirectStreak >= MAX_REDIRECTS) return;
      this.#redirectStreak++;
      this.#redirect = to;
      this.#redirects++;
      this.deps.logger.warn({ from: redactUrl(url), to: redactUrl(to), code }, 'broker redirects the link to another server');
    });
    client.on('error', (err) => {
      const code = (err as { code?: number }).code;
      this.#stats.lastError = err.message;
      // 132 (MQTT 5 "unsupported protocol version") or a 3.1.1 broker's refusal code 1.
      if (cfg.protocol === 'auto' && this.#protocol === 5 && (code === 132 || code === 1)) {
        this.deps.logger.warn('broker refused MQTT 5, falling back to MQTT 3.1.1');
        this.#protocol = 4;
        this.#sameServer = true;
        this.#backoff.reset();
      } else {
        this.deps.logger.warn({ err: err.message, code }, 'uplink error');
      }
      client.end(true);
    });
    client.on('close', () => this.#onClose(client));
  }

  /**
   * Subscribes, and subscribes again to what the broker refused (a SUBACK failure code): a
   * cluster node that has just lost a peer may refuse new subscriptions for a while, and a device
   * that never hears its commands would look healthy all the same.
   */
  #subscribe(client: MqttClient, topics: string[], attempt = 0): void {
    // No Local (MQTT 5): the device's own replies, below its command topics, are not sent back to it.
    client.subscribe(topics, { qos: 1, ...(this.#protocol === 5 ? { nl: true } : {}) }, (err, granted) => {
      if (client !== this.#client || !client.connected) return; // a new link subscribes again anyway
      const refused = err ? topics : (granted ?? []).filter((g) => g.qos >= 0x80).map((g) => g.topic);
      for (const g of err ? [] : (granted ?? [])) if (g.qos < 0x80) this.#granted.add(g.topic);
      if (refused.length === 0) return;
      this.#subscribeRefusals += refused.length;
      const delay = backoffDelay(attempt, this.#retryDelays, this.deps.random);
      this.deps.logger.warn({ topics: refused, err: err?.message, retry_ms: delay }, 'broker refused a subscription; retrying');
      const timer = setTimeout(() => {
        if (client === this.#client && client.connected)
          this.#subscribe(
            client,
            refused.filter((t) => this.#subscriptions.has(t)),
            attempt + 1,
          );
      }, delay);
      timer.unref();
    });
  }

  #onClose(client: MqttClient): void {
    if (client !== this.#client) return;
    client.removeAllListeners();
    client.on('error', () => {}); // late socket errors from a client we have left
    client.end(true);
    this.#client = undefined;
    if (this.#inflight.size > 0) this.#stats.resent += this.#inflight.size;
    // A refused event caught in flight keeps its refusal count: it is retried first thing on the next link.
    for (const { event, refusals } of this.#inflight.values()) {
      if (refusals > 0) this.#hold(event, refusals, this.deps.clock.monoNow());
    }
    this.#inflight.clear();
    for (const [id, state] of this.#direct) if (state === 'sent') this.#direct.delete(id); // published again on the next link
    this.#refusalStreak = 0;
    this.deps.outbox.rewind();
    if (this.#state === 'stopped') return;
    const wasOnline = this.#state === 'online';
    this.#setState('offline');
    const delay = this.#nextDelay(wasOnline);
    this.deps.logger.debug({ delay_ms: delay, next: redactUrl(this.#redirect ?? this.#servers[this.#serverIndex]!) }, 'uplink reconnect scheduled');
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      this.#connect();
    }, delay);
  }

  /**
   * Where and when the next attempt goes. A link that was up and dropped tries the next server at
   * once (a node of the cluster died: move to another); if that fails too, the central side is
   * down for everyone, and the next attempt is at a random time within `reconnect.spread`, then
   * with exponential backoff and jitter: a city's devices come back spread out, not in one second.
   */
  #nextDelay(wasOnline: boolean): number {
    const cfg = this.deps.config.reconnect;
    const random = this.deps.random ?? Math.random;
    if (this.#redirect) return Math.round(random() * Math.min(cfg.min_delay, 1000));
    if (this.#sameServer) {
      this.#sameServer = false;
      return this.#backoff.next();
    }
    if (this.#servers.length > 1) {
      this.#serverIndex = (this.#serverIndex + 1) % this.#servers.length;
      this.#failovers++;
    }
    if (wasOnline) return Math.round(random() * cfg.min_delay);
    this.#outageFailures++;
    // An alarm waiting is not spread out nor backed off: retried every min_delay (jittered) until
    // the center answers. Alarms are rare, so this is a few devices, never the whole fleet.
    if (this.deps.outbox.depthOf('alarm') > 0) return Math.round(cfg.min_delay * (0.5 + random()));
    const spread = cfg.spread ?? cfg.max_delay / 2;
    if (this.#outageFailures === 1 && spread > 0) return Math.round(random() * spread);
    return this.#backoff.next();
  }

  /** An alarm stored while the link waits out its spread or backoff: try now (at most every min_delay). */
  #alarmWhileOffline(): void {
    if (this.#state !== 'offline' || this.#reconnectTimer === undefined) return;
    if (this.deps.outbox.depthOf('alarm') === 0) return;
    const now = this.deps.clock.monoNow();
    if (now - this.#earlyAttemptAt < this.deps.config.reconnect.min_delay) return;
    this.#earlyAttemptAt = now;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    this.deps.logger.info('alarm waiting: reconnecting now');
    this.#connect();
  }

  /** Whole events the drain-rate token bucket allows now (alarms bypass it). */
  #allowance(): number {
    const rate = this.deps.config.drain_rate;
    if (rate <= 0) return Infinity;
    const now = this.deps.clock.monoNow();
    this.#tokens = Math.min(rate, this.#tokens + ((now - this.#tokensAt) / 1000) * rate);
    this.#tokensAt = now;
    return Math.floor(this.#tokens);
  }

  #pump(): void {
    const client = this.#client;
    if (this.#pumping || !client?.connected || this.#state !== 'online') return;
    this.#pumping = true;
    try {
      const alarmLane = Math.max(1, Math.floor(this.#window / 8));
      const nonAlarmLimit = Math.max(1, this.#window - alarmLane);
      while (this.#inflight.size < this.#window) {
        const allowance = this.#allowance();
        const alarmsOnly = this.#inflight.size >= nonAlarmLimit || allowance < 1;
        const room = Math.min(64, alarmsOnly ? this.#window - this.#inflight.size : Math.min(nonAlarmLimit - this.#inflight.size, allowance));
        const maxRank = alarmsOnly ? 0 : PRIORITIES.length - 1;
        // Retries that are due compete by priority with new events: nothing waits behind a refused lower class.
        const due = this.#dueRetries(maxRank);
        const fresh = this.deps.outbox.next(room, due.length > 0 ? priorityRank(due[0]!.event.priority) : maxRank, (rank) => this.#waitingFull(rank));
        const retries = due.slice(0, room - fresh.length);
        for (const event of fresh) {
          if (this.#waiting.has(event.rowid)) continue; // read again after a rewind; its retry is due later
          this.#send(client, event, 0);
        }
        const now = this.deps.clock.monoNow();
        for (const w of retries) {
          this.#release(w);
          this.#send(client, { ...w.event, ttlLeftMs: w.event.ttlLeftMs === undefined ? undefined : w.event.ttlLeftMs - (now - w.readAt) }, w.refusals);
        }
        if (fresh.length === 0 && retries.length === 0) {
          // Rate-limited with a backlog left: come back when the bucket has refilled a little.
          if (allowance < 1 && this.deps.outbox.depth() > this.#inflight.size) {
            this.#rateTimer ??= setTimeout(
              () => {
                this.#rateTimer = undefined;
                this.#pump();
              },
              Math.ceil(1000 / this.deps.config.drain_rate),
            );
          }
          break;
        }
      }
    } finally {
      this.#pumping = false;
      this.#scheduleRetry();
    }
  }

  #send(client: MqttClient, event: StoredEvent, refusals: number): void {
    if (event.priority !== 'alarm' && this.deps.config.drain_rate > 0) this.#tokens -= 1;
    this.#publish(client, event, refusals);
  }

  /** Refused events whose retry is due, highest priority first, then oldest; expired ones are let go (the outbox's sweep deletes them). */
  #dueRetries(maxRank: number): Waiting[] {
    if (this.#waiting.size === 0) return [];
    const now = this.deps.clock.monoNow();
    const due: Waiting[] = [];
    for (const w of this.#waiting.values()) {
      if (w.event.ttlLeftMs !== undefined && w.event.ttlLeftMs - (now - w.readAt) <= 0) this.#release(w);
      else if (w.dueAt <= now && priorityRank(w.event.priority) <= maxRank) due.push(w);
    }
    return due.sort((a, b) => priorityRank(a.event.priority) - priorityRank(b.event.priority) || a.event.rowid - b.event.rowid);
  }

  /** Alarms are rare and never held back: only the lower classes stop being read when many of theirs are refused. */
  #waitingFull(rank: number): boolean {
    return rank > 0 && this.#waitingByRank[rank]! >= MAX_WAITING_PER_PRIORITY;
  }

  #hold(event: StoredEvent, refusals: number, now: number): void {
    if (this.#waiting.has(event.rowid)) return;
    const delay = backoffDelay(refusals - 1, this.#retryDelays, this.deps.random);
    this.#waiting.set(event.rowid, { event, refusals, dueAt: now + delay, readAt: now });
    this.#waitingByRank[priorityRank(event.priority)]!++;
  }

  #release(w: Waiting): void {
    if (this.#waiting.delete(w.event.rowid)) this.#waitingByRank[priorityRank(w.event.priority)]!--;
  }

  #scheduleRetry(): void {
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#waiting.size === 0 || this.#state === 'stopped') return;
    let next = Infinity;
    for (const w of this.#waiting.values()) next = Math.min(next, w.dueAt);
    this.#retryTimer = setTimeout(
      () => {
        this.#retryTimer = undefined;
        this.#pump();
      },
      Math.max(0, next - this.deps.clock.monoNow()),
    );
  }

  /**
   * The broker refused the event (MQTT 5 PUBACK >= 0x80: quota exceeded, not authorized, topic or
   * payload invalid...). It stays in the outbox, never deleted; its slot is freed and it is retried
   * with backoff. Refusals that go on re-establish the link: a session quota or a stale
   * authorisation may clear with a new one.
   */
  #onRefused(client: MqttClient, event: StoredEvent, refusals: number, code: number, message: string): void {
    this.#inflight.delete(event.rowid);
    const key = `0x${code.toString(16).padStart(2, '0')}`;
    this.#refused.total++;
    this.#refused.byReason[key] = (this.#refused.byReason[key] ?? 0) + 1;
    const now = this.deps.clock.monoNow();
    // A broker refusing a backlog refuses thousands: log a new reason at once, the same one at most every 10 s.
    if (this.#refused.last?.code !== key || now - this.#refusalLoggedAt >= REFUSAL_LOG_INTERVAL_MS) {
      this.#refusalLoggedAt = now;
      this.deps.logger.warn(
        { code: key, reason: message, type: event.type, priority: event.priority, refused: this.#refused.total },
        'broker refused an event: kept, will retry',
      );
    }
    this.#refused.last = { code: key, message, type: event.type };
    this.#hold(event, refusals + 1, now);
    // Only when nothing gets through, and less and less often while the refusals last.
    if (++this.#refusalStreak >= REFUSALS_BEFORE_RECONNECT && now >= this.#refusalReconnectAt) {
      this.#refusalReconnectAt = now + this.#refusalBackoff.next();
      this.#refused.reconnects++;
      this.deps.logger.warn({ refusals: this.#refusalStreak, code: key }, 'broker keeps refusing events: reconnecting');
      client.end(true); // close → #onClose: rewind, reconnect with backoff
      return;
    }
    this.#pump();
  }

  /**
   * The last resort for alarms the outbox holds in memory because the disk is full: each goes out
   * once per link, QoS 1, as it will be stored. When it is stored it is sent again with the same
   * id (the central side deduplicates); until then a restart would lose it, this copy would not.
   */
  #publishHeld(): void {
    const held = this.deps.outbox.held();
    const ids = new Set(held.map((e) => e.id));
    for (const id of this.#direct.keys()) if (!ids.has(id)) this.#direct.delete(id); // stored since
    const client = this.#client;
    if (!client?.connected || this.#state !== 'online') return;
    for (const event of held) {
      if (this.#direct.has(event.id)) continue;
      this.#direct.set(event.id, 'sent');
      this.#directStats.published++;
      this.deps.logger.warn({ id: event.id, type: event.type }, 'alarm not stored yet (disk full): published directly');
      client.publish(this.deps.topics.event(event.priority, event.type), this.#finalBody(event), this.#publishOptions(undefined), (err) => {
        if (this.#client !== client || this.#direct.get(event.id) !== 'sent') return;
        if (err) {
          this.#direct.delete(event.id); // tried again when more alarms are held or on the next link
          return;
        }
        this.#direct.set(event.id, 'acked');
        this.#directStats.acked++;
      });
    }
  }

  #publishOptions(ttlLeftMs: number | undefined): IClientPublishOptions {
    const opts: IClientPublishOptions = { qos: 1 };
    if (this.#protocol === 5) {
      opts.properties = { contentType: 'application/json', payloadFormatIndicator: true };
      if (ttlLeftMs !== undefined) opts.properties.messageExpiryInterval = Math.max(1, Math.ceil(ttlLeftMs / 1000));
    }
    return opts;
  }

  #publish(client: MqttClient, event: StoredEvent, refusals: number): void {
    this.#inflight.set(event.rowid, { event, refusals });
    this.#stats.published++;
    this.#stats.publishedByType[event.type] = (this.#stats.publishedByType[event.type] ?? 0) + 1;
    client.publish(this.deps.topics.event(event.priority, event.type), this.#finalBody(event), this.#publishOptions(event.ttlLeftMs), (err) => {
      if (this.#client !== client) return; // link dropped: it stays in the outbox and is resent
      if (err) {
        // MQTT.js reports a PUBACK reason code >= 0x80 as an error whose `code` is that reason code.
        const code = (err as { code?: unknown }).code;
        if (typeof code === 'number' && code >= 0x80) this.#onRefused(client, event, refusals, code, err.message.replace(/^Publish error: /, ''));
        return; // anything else ends the connection: the event is resent after reconnect
      }
      this.#inflight.delete(event.rowid);
      this.#refusalStreak = 0;
      if (refusals > 0) this.#refusalBackoff.reset(); // what the broker refused, it takes now
      this.#stats.acked++;
      this.deps.outbox.ack(event.rowid);
      // Accepted to PUBACK, only for events of this boot: the monotonic clock does not span reboots.
      if (this.#onDelivered && event.bootId === this.deps.bootId) this.#onDelivered(event.priority, this.deps.clock.monoNow() - event.mono);
      // Refill in batches of a quarter window: one query per batch, not one per acknowledgement.
      // New alarms do not wait for this: every commit wakes the pump.
      if (this.#inflight.size <= this.#window - Math.max(1, this.#window >> 2)) this.#pump();
    });
  }

  /** Events stamped before the clock synced get their wall time recomputed from the monotonic clock. */
  #finalBody(event: HeldEvent): string {
    if (event.synced || !this.deps.clockSync.synced() || event.bootId !== this.deps.bootId) return event.body;
    const parsed = JSON.parse(event.body) as Record<string, unknown>;
    parsed.time = new Date(this.deps.clockSync.correctedWall(event.mono)).toISOString();
    parsed.clock = 'synced';
    parsed.clock_corrected = true;
    return JSON.stringify(parsed);
  }
}

/** A Server Reference (`host`, `host:port`, `[v6]:port`, the first of a space-separated list) as a URL with the current one's scheme and port. */
export function referencedServer(reference: string, current: string): string | null {
  const first = reference.trim().split(/\s+/)[0];
  if (!first) return null;
  try {
    const cur = new URL(current);
    const to = new URL(`${cur.protocol}//${first}`);
    if (!to.port) to.port = cur.port;
    // A WebSocket URL keeps its path (/mqtt); the reference names only the host.
    return `${cur.protocol}//${to.host}${cur.protocol.startsWith('ws') ? cur.pathname : ''}`;
  } catch {
    return null;
  }
}

/** Redirections followed in a row without a link coming up. */
const MAX_REDIRECTS = 5;
