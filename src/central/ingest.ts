import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { PRIORITIES, type VigiaEvent } from '../core/event.js';
import { parseMessage, type RefusalReason } from './envelope.js';
import type { CentralStore } from './store.js';

/**
 * The call center's ingest: subscribes to every device's events and status on the central broker
 * and stores each event once. The uplink delivers at least once, so duplicates are normal and
 * dropped by id. A message is acknowledged to the broker (PUBACK) only after the store committed
 * it: the session is persistent (a fixed client id, no clean start, a long session expiry), so
 * what the broker holds while the ingest is down or killed is delivered when it comes back, and a
 * message it delivered but the ingest did not commit is delivered again.
 *
 * Messages that are not events or status, or whose envelope does not match its topic, are refused:
 * counted by reason and logged (rate-limited), acknowledged so that the broker does not offer them
 * forever, never stored.
 */

export interface IngestOptions {
  /** Broker URL (`mqtt://`, `mqtts://`). */
  url: string;
  /** Topic prefix of the devices (`mqtt.topic_prefix` on them). Default `vigia`. */
  prefix?: string;
  /** Sites to take, `+` for all (default). */
  site?: string;
  /**
   * Prefix of the client ids of the persistent sessions (`ID-alarm`, `ID-hit`, `ID-read`,
   * `ID-telemetry`, `ID-status`). Default `vigia-central-ingest`. Keep it from run to run: what
   * the broker queued while the ingest was away waits in those sessions.
   */
  clientId?: string;
  username?: string;
  password?: string;
  /** TLS: CA, client certificate and key (PEM). */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  store: CentralStore;
  logger: Logger;
  /**
   * MQTT 5 (default) or 3.1.1 (4: a broker without MQTT 5, such as the demo's embedded one). On
   * 3.1.1 messages are acknowledged on receipt, not after the commit: only MQTT 5 keeps the
   * guarantee that nothing the broker delivered is lost.
   */
  protocolVersion?: 4 | 5;
  /** Called with each newly stored event, after its commit (the console's live feed). */
  onStored?: (event: VigiaEvent) => void;
  /** Clock for received times (ms since the epoch). */
  now?: () => number;
}

export interface IngestStats {
  connected: boolean;
  stored: number;
  duplicates: number;
  status: number;
  refused: Record<RefusalReason, number>;
  /** Store failures: the message was not acknowledged and the broker will offer it again. */
  storeErrors: number;
}

/** How long the broker keeps the session (and queues messages) while the ingest is away: 7 days. */
const SESSION_EXPIRY_S = 7 * 24 * 3600;

export class Ingest {
  readonly #clients: MqttClient[] = [];
  readonly #stats: IngestStats = {
    connected: false,
    stored: 0,
    duplicates: 0,
    status: 0,
    refused: { topic: 0, too_large: 0, not_json: 0, envelope: 0, mismatch: 0 },
    storeErrors: 0,
  };
  #lastRefusalLog = 0;

  constructor(private readonly opts: IngestOptions) {}

  /**
   * Connects and subscribes; resolves once every subscription is granted. One connection per
   * priority class and one for status: a connection holds one message until its commit (MQTT.js
   * hands a connection's messages over one at a time), so the classes share commits, and an alarm
   * never waits at the center behind a backlog of reads or telemetry. (Shared subscriptions would
   * spread one class over many connections, but Mosquitto 2.0 as Debian 12 ships it loses messages
   * queued for them across a broker restart.)
   */
  async start(): Promise<void> {
    const { opts } = this;
    const prefix = opts.prefix ?? 'vigia';
    const site = opts.site ?? '+';
    const base = opts.clientId ?? 'vigia-central-ingest';
    await Promise.all([
      ...PRIORITIES.map((p) => this.#connect(`${base}-${p}`, [`${prefix}/${site}/+/events/${p}/#`], prefix)),
      this.#connect(`${base}-status`, [`${prefix}/${site}/+/status`], prefix),
    ]);
  }

  async #connect(clientId: string, topics: string[], prefix: string): Promise<void> {
    const { opts } = this;
    const now = opts.now ?? Date.now;
    const log = opts.logger.child({ mod: 'ingest', client: clientId });
    let client: MqttClient;
    // Parse, store, and only then acknowledge (`done`).
    const take = (topic: string, message: Buffer, done: (err: Error | number) => void) => {
      const msg = parseMessage(prefix, topic, message);
      if (msg.kind === 'refused') {
        this.#stats.refused[msg.reason]++;
        const t = now();
        if (t - this.#lastRefusalLog > 10_000) {
          this.#lastRefusalLog = t;
          log.warn({ reason: msg.reason, detail: msg.detail, site: msg.site, device: msg.device, refused: this.#stats.refused }, 'message refused');
        }
        done(0);
        return;
      }
      const stored =
        msg.kind === 'event'
          ? opts.store.addEvent(msg.event, now()).then((r) => {
              if (r === 'stored') {
                this.#stats.stored++;
                opts.onStored?.(msg.event);
              } else this.#stats.duplicates++;
            })
          : opts.store.setStatus(msg.site, msg.device, msg.status, now()).then(() => {
              this.#stats.status++;
            });
      stored.then(
        () => done(0),
        (err: unknown) => {
          // Not acknowledged: the connection is dropped, and the broker offers the message again
          // when the ingest reconnects.
          this.#stats.storeErrors++;
          log.error({ err: (err as Error).message, topic }, 'store failed; the message will be delivered again');
          done(err instanceof Error ? err : new Error(String(err)));
          client.stream.destroy();
        },
      );
    };
    const options: IClientOptions = {
      clientId,
      clean: false,
      ...(opts.protocolVersion === 4 ? { protocolVersion: 4 } : { protocolVersion: 5, properties: { sessionExpiryInterval: SESSION_EXPIRY_S } }),
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...(opts.username !== undefined ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ...(opts.tls ?? {}),
      // The acknowledgement waits for the store: PUBACK only after the commit.
      customHandleAcks: (topic, message, _packet, done) => take(topic, message, done),
    };
    client = mqtt.connect(opts.url, options);
    // What the acknowledgement handler does not see is stored all the same: QoS 0 (a broker that
    // downgrades), and everything on MQTT 3.1.1, where MQTT.js acknowledges on receipt (its custom
    // acknowledgement is an MQTT 5 feature): there a message the ingest dies holding is lost.
    const acknowledgedByUs = opts.protocolVersion !== 4;
    client.on('message', (topic, message, packet) => {
      if (packet.qos === 0 || !acknowledgedByUs) take(topic, message, () => undefined);
    });
    this.#clients.push(client);
    const subscribe = async () => {
      const granted = await client.subscribeAsync(Object.fromEntries(topics.map((t) => [t, { qos: 1 as const }])));
      const refused = granted.filter((g) => g.qos !== 1);
      if (refused.length > 0) throw new Error(`the broker refused the subscriptions ${refused.map((g) => `${g.topic} (${g.qos})`).join(', ')}`);
    };
    let first: ((err?: Error) => void) | null = null;
    const subscribed = new Promise<void>((resolve, reject) => {
      first = (err) => (err ? reject(err) : resolve());
    });
    client.on('connect', (ack) => {
      this.#updateConnected();
      log.info({ url: redact(opts.url), resumed: ack.sessionPresent }, 'connected to the broker');
      // Subscribed again on every connection, resumed session or not: a broker restored from its
      // persistence file may have lost a shared subscription, and subscribing twice is harmless.
      subscribe().then(
        () => {
          first?.();
          first = null;
        },
        (err: Error) => {
          log.error({ err: err.message }, 'subscribe failed');
          first?.(err);
          first = null;
        },
      );
    });
    client.on('close', () => this.#updateConnected());
    client.on('error', (err) => {
      log.warn({ err: err.message }, 'broker error');
      if (!client.connected) {
        first?.(err);
        first = null;
      }
    });
    await subscribed;
  }

  #updateConnected(): void {
    this.#stats.connected = this.#clients.length > 0 && this.#clients.every((c) => c.connected);
  }

  stats(): IngestStats {
    return { ...this.#stats, refused: { ...this.#stats.refused } };
  }

  /** Disconnects cleanly; the sessions stay on the broker, which queues what comes meanwhile. */
  async stop(): Promise<void> {
    const clients = this.#clients.splice(0);
    await Promise.all(clients.map((c) => c.endAsync()));
  }
}

const redact = (url: string) => url.replace(/\/\/[^@/]*@/, '//***@');
