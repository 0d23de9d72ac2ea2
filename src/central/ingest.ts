import type { Logger } from 'pino';
import { PRIORITIES, type Priority, type VigiaEvent } from '../core/event.js';
import { MAX_MESSAGE_BYTES, parseMessage, type RefusalReason } from './envelope.js';
import { Receiver } from './receiver.js';
import type { CentralStore } from './store.js';

/**
 * The call center's ingest: subscribes to every device's events and status on the central broker
 * and stores each event once. The uplink delivers at least once, so duplicates are normal and
 * dropped by id. A message is acknowledged to the broker (PUBACK) only after the store committed
 * it: the session is persistent (a fixed client id, no clean start, a long session expiry), so
 * what the broker holds while the ingest is down or killed is delivered when it comes back, and a
 * message it delivered but the ingest did not commit is delivered again. Each connection has many
 * messages in flight at once (`receiver.ts`), so that one group commit of the store takes them all.
 *
 * Messages that are not events or status, or whose envelope does not match its topic, are refused:
 * counted by reason and logged (rate-limited), acknowledged so that the broker does not offer them
 * forever, never stored.
 */

export interface IngestOptions {
  /** Broker URL (`mqtt://`, `mqtts://`). */
  url: string;
  /** The other nodes of a clustered broker: a connection that drops moves to the next. */
  servers?: string[];
  /**
   * Shares the events with the other ingest instances of this group (MQTT 5 shared subscriptions,
   * `$share/GROUP/...`): each message goes to one of them. Each instance keeps its own client id.
   * Status messages are taken by every instance (they are retained, and shared subscriptions get
   * no retained messages).
   */
  group?: string;
  /**
   * Only these priority classes (default all): instances split the load by topic filter on a
   * broker without shared subscriptions (RabbitMQ 3.x's MQTT), e.g. one takes alarms and hits, another
   * reads and telemetry. Status messages are taken by every instance.
   */
  priorities?: readonly Priority[];
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
   * MQTT 5 (default) or 3.1.1 (4: a broker without MQTT 5, such as the demo's embedded one). Both
   * acknowledge after the commit; on 3.1.1 the broker decides how long it keeps the sessions and
   * how many messages it has in flight to each.
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
/** Messages the broker may have in flight on each connection: plenty for one commit to take many. */
const RECEIVE_MAXIMUM = 1000;
/**
 * The largest packet the broker may send: a message just over the envelope's limit still arrives
 * and is counted as refused (`too_large`); the broker drops anything bigger than this unseen.
 * (Mosquitto 2.0 then keeps one in-flight slot of the connection until it reconnects: the broker's
 * `message_size_limit` should refuse such messages from the devices in the first place.)
 */
const MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 64 * 1024;

export class Ingest {
  readonly #receivers: Receiver[] = [];
  readonly #stats: IngestStats = {
    connected: false,
    stored: 0,
    duplicates: 0,
    status: 0,
    refused: { topic: 0, too_large: 0, not_json: 0, envelope: 0, mismatch: 0 },
    storeErrors: 0,
  };
  #lastRefusalLog = 0;
  /** Status updates are applied one after another, in the order they arrived. */
  #statusTail: Promise<void> = Promise.resolve();

  constructor(private readonly opts: IngestOptions) {}

  /**
   * Connects and subscribes; resolves once every subscription is granted. One connection per
   * priority class and one for status, each with its own in-flight window at the broker: an alarm
   * never waits at the center behind a backlog of reads or telemetry, and the classes share the
   * store's group commits. (Shared subscriptions would spread one class over many connections, but
   * Mosquitto 2.0 as Debian 12 ships it loses messages queued for them across a broker restart.)
   */
  async start(): Promise<void> {
    const { opts } = this;
    const prefix = opts.prefix ?? 'vigia';
    const site = opts.site ?? '+';
    const base = opts.clientId ?? 'vigia-central-ingest';
    const shared = opts.group ? `$share/${opts.group}/` : '';
    await Promise.all([
      ...(opts.priorities ?? PRIORITIES).map((p) => this.#connect(`${base}-${p}`, [`${shared}${prefix}/${site}/+/events/${p}/#`], prefix)),
      this.#connect(`${base}-status`, [`${prefix}/${site}/+/status`], prefix),
    ]);
  }

  #connect(clientId: string, topics: string[], prefix: string): Promise<void> {
    const { opts } = this;
    const log = opts.logger.child({ mod: 'ingest', client: clientId });
    const receiver = new Receiver({
      url: opts.url,
      ...(opts.servers?.length ? { servers: opts.servers } : {}),
      clientId,
      topics,
      logger: log,
      protocolVersion: opts.protocolVersion ?? 5,
      sessionExpiryInterval: SESSION_EXPIRY_S,
      receiveMaximum: RECEIVE_MAXIMUM,
      maximumPacketSize: MAX_PACKET_BYTES,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      ...(opts.username !== undefined ? { username: opts.username } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
      // The receiver acknowledges when this resolves: after the commit.
      handler: (m) => this.#take(prefix, m.topic, m.payload, log),
    });
    receiver.on('connect', () => this.#updateConnected());
    receiver.on('close', () => this.#updateConnected());
    // Errors are logged by the receiver; start() fails with the first one.
    receiver.on('error', () => undefined);
    this.#receivers.push(receiver);
    return receiver.start();
  }

  /** Parses and stores one message; resolves after its commit (or at once for a refusal, which is acknowledged too). */
  #take(prefix: string, topic: string, message: Buffer, log: Logger): Promise<void> {
    const { opts } = this;
    const now = opts.now ?? Date.now;
    const msg = parseMessage(prefix, topic, message);
    if (msg.kind === 'refused') {
      this.#stats.refused[msg.reason]++;
      const t = now();
      if (t - this.#lastRefusalLog > 10_000) {
        this.#lastRefusalLog = t;
        log.warn({ reason: msg.reason, detail: msg.detail, site: msg.site, device: msg.device, refused: this.#stats.refused }, 'message refused');
      }
      return Promise.resolve();
    }
    let stored: Promise<void>;
    if (msg.kind === 'event') {
      stored = opts.store.addEvent(msg.event, now()).then((r) => {
        if (r === 'stored') {
          this.#stats.stored++;
          opts.onStored?.(msg.event);
        } else this.#stats.duplicates++;
      });
    } else {
      // In order: a device's "online" must not land after the "offline" that followed it.
      const receivedAt = now();
      stored = this.#statusTail
        .then(() => opts.store.setStatus(msg.site, msg.device, msg.status, receivedAt))
        .then(() => {
          this.#stats.status++;
        });
      this.#statusTail = stored.catch(() => undefined);
    }
    return stored.catch((err: unknown) => {
      // Not acknowledged: the receiver drops the connection, and the broker offers the message
      // again when it reconnects.
      this.#stats.storeErrors++;
      log.error({ err: (err as Error).message, topic }, 'store failed; the message will be delivered again');
      throw err;
    });
  }

  #updateConnected(): void {
    this.#stats.connected = this.#receivers.length > 0 && this.#receivers.every((r) => r.connected);
  }

  stats(): IngestStats {
    return { ...this.#stats, refused: { ...this.#stats.refused } };
  }

  /** Disconnects cleanly; the sessions stay on the broker, which queues what comes meanwhile. */
  async stop(): Promise<void> {
    const receivers = this.#receivers.splice(0);
    await Promise.all(receivers.map((r) => r.stop()));
    this.#updateConnected();
  }
}
