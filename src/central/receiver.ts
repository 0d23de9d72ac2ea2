import { EventEmitter } from 'node:events';
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { generate, type IConnackPacket, type IPublishPacket, type ISubackPacket, type Packet, parser as newParser } from 'mqtt-packet';
import type { Logger } from 'pino';
import { redactUrl } from '../core/redact.js';

/**
 * The receiving half of an MQTT client, for the call center's ingest: one connection on a
 * persistent session, subscribed at QoS 1, that hands every PUBLISH to the handler as soon as it
 * is parsed and acknowledges it (PUBACK) only when the handler's promise resolves, in whatever
 * order they finish. MQTT.js processes a connection's packets one at a time (the next PUBLISH waits
 * for the previous one's acknowledgement), so an ingest on it holds one message per connection
 * while the database commits; here the broker keeps up to Receive Maximum messages in flight, and
 * one commit takes all those that arrived meanwhile.
 *
 * A handler that fails gets no PUBACK, and the connection is dropped and opened again after
 * `reconnectPeriod`: the session is persistent, so the broker delivers everything unacknowledged
 * again. Acknowledgements of handlers that finish after their connection is gone are dropped, never
 * sent on a later connection (the broker may have reused the packet id by then).
 *
 * Only what the ingest needs: no publishing, no QoS 2 (subscriptions are QoS 1, so the broker
 * downgrades QoS 2 publications to 1 and no PUBREC/PUBREL state is kept), Topic Alias Maximum 0
 * (the broker sends every topic in full), a Maximum Packet Size (the broker drops what is bigger
 * instead of sending it). MQTT 5 by default; 3.1.1 (`protocolVersion: 4`, the demo's embedded
 * aedes) works the same way without the MQTT 5 properties: the session lasts until the broker
 * expires it, and the broker's own in-flight limit (Mosquitto's `max_inflight_messages`) replaces
 * Receive Maximum.
 */

export interface ReceivedMessage {
  topic: string;
  payload: Buffer;
  qos: 0 | 1;
  retain: boolean;
  /** Delivered before on an earlier connection and not acknowledged then. */
  dup: boolean;
}

/** Resolves once the message is safe (committed): only then is it acknowledged. */
export type MessageHandler = (message: ReceivedMessage) => Promise<void>;

export interface ReceiverOptions {
  /** `mqtt://host[:1883]` or `mqtts://host[:8883]`; credentials in the URL are used when `username` is not given. */
  url: string;
  /** More nodes of the same (clustered) broker: a connection that closes, or fails, is tried on the next one in turn. */
  servers?: readonly string[];
  /** Keep it from run to run: the session, and what the broker queued in it, is found by it. */
  clientId: string;
  /** Topic filters, subscribed at QoS 1 on every connection. */
  topics: readonly string[];
  handler: MessageHandler;
  logger: Logger;
  username?: string;
  password?: string;
  /** TLS (`mqtts://`): CA, client certificate and key (PEM). The broker's certificate is always verified. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  /** 5 (default) or 4 (MQTT 3.1.1). */
  protocolVersion?: 4 | 5;
  /** MQTT 5: seconds the broker keeps the session after a disconnection. Default 0 (none). */
  sessionExpiryInterval?: number;
  /** MQTT 5: how many QoS 1 messages the broker may have in flight to us. Default 1000. */
  receiveMaximum?: number;
  /** MQTT 5: the largest packet the broker may send us (bytes). Default 4 MiB. */
  maximumPacketSize?: number;
  /**
   * Payload bytes held by handlers still running beyond which reading stops (TCP then holds the
   * broker back) until they fall under half of it. Bounds memory when messages are large:
   * Receive Maximum alone allows `receiveMaximum` × `maximumPacketSize`. Default 64 MiB.
   */
  maxPendingBytes?: number;
  /** Seconds between PINGREQs; a connection that then stays silent for as long is dropped. Default 30; 0: none. */
  keepalive?: number;
  /** Milliseconds before connecting again after any close. Default 1000. */
  reconnectPeriod?: number;
  /** Milliseconds to get the CONNACK before giving up on an attempt. Default 10,000. */
  connectTimeout?: number;
}

export interface ReceiverEvents {
  /** The broker accepted the connection; `sessionPresent`: it resumed the session. */
  connect: [{ sessionPresent: boolean }];
  /** An accepted connection closed (a new one follows unless stopped). */
  close: [];
  /** A failed connection attempt, a lost connection, a refused subscription. Also logged. */
  error: [Error];
}

/** One connection attempt: its socket and what belongs to it alone. */
interface Connection {
  socket: Socket;
  /** CONNACK received and accepted. */
  accepted: boolean;
  closed: boolean;
  /** Why it is being closed, reported when it is. */
  error: Error | null;
  /** PUBACKs waiting to be written together (one write per group of handlers finishing together). */
  acks: Buffer[];
  pendingBytes: number;
  paused: boolean;
  pingOutstanding: boolean;
  timers: NodeJS.Timeout[];
}

const SUBSCRIBE_ID = 1;

export class Receiver extends EventEmitter<ReceiverEvents> {
  readonly #o: ReceiverOptions;
  readonly #urls: URL[];
  #index = 0;
  readonly #version: 4 | 5;
  #conn: Connection | null = null;
  #reconnect: NodeJS.Timeout | null = null;
  #started = false;
  #stopped = false;
  /** Settles `start()`: the first subscription granted, or the first error before it. */
  #first: { resolve: () => void; reject: (err: Error) => void } | null = null;
  /** Failures in a row, to log only the first of a streak above debug. */
  #failures = 0;

  constructor(opts: ReceiverOptions) {
    super();
    this.#o = opts;
    this.#urls = [opts.url, ...(opts.servers ?? [])].map((u) => {
      const url = new URL(u);
      if (url.protocol !== 'mqtt:' && url.protocol !== 'mqtts:') throw new Error(`unsupported broker URL ${redactUrl(u)} (mqtt:// or mqtts://)`);
      return url;
    });
    if (opts.topics.length === 0) throw new Error('no topics to subscribe to');
    this.#version = opts.protocolVersion ?? 5;
  }

  /** Whether a connection is up (accepted by the broker). */
  get connected(): boolean {
    return this.#conn?.accepted === true;
  }

  /**
   * Connects and subscribes. Resolves once the subscriptions are granted; rejects with the first
   * error before that (the broker unreachable or refusing). Either way it goes on connecting again
   * after every close until `stop()`.
   */
  start(): Promise<void> {
    if (this.#started) throw new Error('the receiver was already started');
    this.#started = true;
    return new Promise((resolve, reject) => {
      this.#first = { resolve, reject };
      this.#open();
    });
  }

  /**
   * Writes the acknowledgements that are due, disconnects cleanly (the session stays on the
   * broker) and stops reconnecting. Handlers still running are not waited for: their messages stay
   * unacknowledged and the broker delivers them again on the next connection of this client id.
   */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#reconnect) clearTimeout(this.#reconnect);
    this.#reconnect = null;
    this.#settleFirst(new Error('the receiver was stopped'));
    const conn = this.#conn;
    if (!conn || conn.closed) return;
    const closed = new Promise<void>((resolve) => conn.socket.once('close', () => resolve()));
    if (conn.accepted) {
      this.#flushAcks(conn);
      conn.socket.end(generate({ cmd: 'disconnect', reasonCode: 0 }, { protocolVersion: this.#version }));
      // The broker closes on DISCONNECT; do not wait on one that does not.
      const t = setTimeout(() => conn.socket.destroy(), 2000);
      await closed;
      clearTimeout(t);
    } else {
      conn.socket.destroy();
      await closed;
    }
  }

  /** The node connected to (or tried last). */
  get url(): string {
    return redactUrl(this.#urls[this.#index]!.href);
  }

  #open(): void {
    const o = this.#o;
    const url = this.#urls[this.#index]!;
    const secure = url.protocol === 'mqtts:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (secure ? 8883 : 1883));
    const socket = secure ? tlsConnect({ host, port, ...(isIP(host) ? {} : { servername: host }), ...(o.tls ?? {}) }) : tcpConnect({ host, port });
    socket.setNoDelay(true);
    const conn: Connection = {
      socket,
      accepted: false,
      closed: false,
      error: null,
      acks: [],
      pendingBytes: 0,
      paused: false,
      pingOutstanding: false,
      timers: [],
    };
    this.#conn = conn;

    const parser = newParser({ protocolVersion: this.#version });
    parser.on('packet', (packet: Packet) => this.#onPacket(conn, packet));
    parser.on('error', (err: Error) => this.#fail(conn, new Error(`malformed packet from the broker: ${err.message}`)));
    socket.on('data', (chunk: Buffer) => parser.parse(chunk));
    socket.on('error', (err) => {
      conn.error ??= err;
    });
    socket.on('close', () => this.#onClose(conn));
    conn.timers.push(setTimeout(() => this.#fail(conn, new Error(`no CONNACK within ${this.#connectTimeout()} ms`)), this.#connectTimeout()));

    // Written at once: the socket holds it until it is connected.
    const username = o.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
    const password = o.password ?? (url.password ? decodeURIComponent(url.password) : undefined);
    socket.write(
      generate(
        {
          cmd: 'connect',
          protocolId: 'MQTT',
          protocolVersion: this.#version,
          clientId: o.clientId,
          // Never a clean start: what the broker queued while we were away is the point.
          clean: false,
          keepalive: o.keepalive ?? 30,
          ...(username !== undefined ? { username } : {}),
          ...(password !== undefined ? { password: Buffer.from(password) } : {}),
          ...(this.#version === 5
            ? {
                properties: {
                  sessionExpiryInterval: o.sessionExpiryInterval ?? 0,
                  receiveMaximum: o.receiveMaximum ?? 1000,
                  maximumPacketSize: o.maximumPacketSize ?? 4 * 1024 * 1024,
                  topicAliasMaximum: 0,
                },
              }
            : {}),
        },
        { protocolVersion: this.#version },
      ),
    );
  }

  #onPacket(conn: Connection, packet: Packet): void {
    if (conn.closed) return;
    // Anything from the broker shows the connection is alive.
    conn.pingOutstanding = false;
    switch (packet.cmd) {
      case 'publish':
        this.#onPublish(conn, packet);
        return;
      case 'connack':
        this.#onConnack(conn, packet);
        return;
      case 'suback':
        this.#onSuback(packet);
        return;
      case 'pingresp':
        return;
      case 'disconnect':
        conn.error ??= new Error(
          `the broker disconnected: ${reason(packet.reasonCode ?? 0)}${packet.properties?.reasonString ? ` (${packet.properties.reasonString})` : ''}`,
        );
        conn.socket.destroy();
        return;
      default:
        this.#fail(conn, new Error(`unexpected ${packet.cmd} from the broker`));
    }
  }

  #onConnack(conn: Connection, packet: IConnackPacket): void {
    const code = packet.reasonCode ?? packet.returnCode ?? 0;
    if (code !== 0) {
      this.#fail(
        conn,
        new Error(`the broker refused the connection: ${this.#version === 5 ? reason(code) : `${code} ${RETURN_CODES.get(code) ?? ''}`.trim()}`),
      );
      return;
    }
    for (const t of conn.timers.splice(0)) clearTimeout(t);
    conn.accepted = true;
    this.#failures = 0;
    this.#o.logger.info({ url: this.url, resumed: packet.sessionPresent }, 'connected to the broker');
    // A broker may impose its own keepalive (MQTT 5 Server Keep Alive).
    const keepalive = packet.properties?.serverKeepAlive ?? this.#o.keepalive ?? 30;
    if (keepalive > 0) {
      conn.timers.push(
        setInterval(() => {
          if (conn.pingOutstanding && !conn.paused) {
            this.#fail(conn, new Error(`nothing from the broker for ${keepalive} s after a PINGREQ`));
            return;
          }
          // Paused, we are not reading, so silence proves nothing; the PINGREQ still tells the
          // broker that we are alive while handlers hold it back.
          conn.pingOutstanding = true;
          conn.socket.write(generate({ cmd: 'pingreq' }));
        }, keepalive * 1000),
      );
    }
    this.emit('connect', { sessionPresent: packet.sessionPresent });
    // Subscribed on every connection, resumed session or not: the broker may have lost the
    // subscriptions (a restart without persistence), and subscribing again is harmless.
    const subscriptions = this.#o.topics.map((topic) => ({ topic, qos: 1 as const, ...(this.#version === 5 ? { nl: false, rap: false, rh: 0 } : {}) }));
    conn.socket.write(generate({ cmd: 'subscribe', messageId: SUBSCRIBE_ID, subscriptions }, { protocolVersion: this.#version }));
  }

  #onSuback(packet: ISubackPacket): void {
    const granted = packet.granted as number[];
    const refused = this.#o.topics.flatMap((topic, i) => (granted[i] === 1 ? [] : [`${topic} (${grantText(granted[i])})`]));
    if (refused.length === 0) {
      this.#settleFirst();
      return;
    }
    // Kept connected: what was granted still flows. Reported, and `start()` fails with it.
    const err = new Error(`the broker refused the subscriptions ${refused.join(', ')}`);
    this.#o.logger.error({ err: err.message }, 'subscription refused');
    this.#report(err);
  }

  #onPublish(conn: Connection, packet: IPublishPacket): void {
    if (packet.qos === 2 || packet.properties?.topicAlias !== undefined) {
      // Neither was allowed for (QoS 1 subscriptions, Topic Alias Maximum 0): a broker that breaks the protocol.
      this.#fail(conn, new Error(packet.qos === 2 ? 'a QoS 2 PUBLISH on a QoS 1 subscription' : 'a topic alias after Topic Alias Maximum 0'));
      return;
    }
    const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
    const message: ReceivedMessage = { topic: packet.topic, payload, qos: packet.qos, retain: packet.retain, dup: packet.dup };
    let done: Promise<void>;
    try {
      done = this.#o.handler(message);
    } catch (err) {
      done = Promise.reject(err);
    }
    if (packet.qos === 0) {
      // Nothing to acknowledge, and nothing the broker would deliver again.
      done.catch((err: unknown) => this.#o.logger.warn({ err: errorText(err), topic: packet.topic }, 'a QoS 0 message failed; it is lost'));
      return;
    }
    const id = packet.messageId!;
    const size = payload.length;
    conn.pendingBytes += size;
    const maxPending = this.#o.maxPendingBytes ?? 64 * 1024 * 1024;
    if (!conn.paused && conn.pendingBytes > maxPending) {
      conn.paused = true;
      conn.socket.pause();
    }
    const settled = () => {
      conn.pendingBytes -= size;
      if (conn.paused && conn.pendingBytes <= maxPending / 2) {
        conn.paused = false;
        conn.socket.resume();
      }
    };
    done.then(
      () => {
        settled();
        if (conn.closed) return;
        conn.acks.push(generate({ cmd: 'puback', messageId: id }, { protocolVersion: this.#version }));
        if (conn.acks.length === 1) process.nextTick(() => this.#flushAcks(conn));
      },
      (err: unknown) => {
        settled();
        // No PUBACK: the broker delivers it again on the next connection.
        this.#fail(conn, new Error(`a message handler failed (${errorText(err)}); dropping the connection so that the broker delivers again`));
      },
    );
  }

  #flushAcks(conn: Connection): void {
    if (conn.closed || conn.acks.length === 0) return;
    const acks = conn.acks;
    conn.acks = [];
    conn.socket.write(acks.length === 1 ? acks[0]! : Buffer.concat(acks));
  }

  /** Drops the connection for `err` (reported when it closes). */
  #fail(conn: Connection, err: Error): void {
    if (conn.closed) return;
    conn.error ??= err;
    conn.socket.destroy();
  }

  #onClose(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    for (const t of conn.timers.splice(0)) clearTimeout(t);
    conn.acks = [];
    if (this.#conn === conn) this.#conn = null;
    if (this.#stopped) {
      if (conn.accepted) this.emit('close');
      return;
    }
    const err = conn.error ?? new Error('the broker closed the connection');
    const log = this.#o.logger;
    const fields = { err: err.message, url: this.url, retryMs: this.#reconnectPeriod() };
    if (this.#failures++ === 0) log.warn(fields, conn.accepted ? 'connection to the broker lost' : 'could not connect to the broker');
    else log.debug(fields, 'could not connect to the broker');
    if (conn.accepted) this.emit('close');
    // Before start() resolved, it fails only once every node was tried.
    if (this.#first === null || this.#failures >= this.#urls.length) this.#report(err);
    else if (this.listenerCount('error') > 0) this.emit('error', err);
    // The next node at once when the one we were on went away; the same pace as before otherwise.
    const delay = conn.accepted && this.#urls.length > 1 ? 0 : this.#reconnectPeriod();
    this.#index = (this.#index + 1) % this.#urls.length;
    this.#reconnect = setTimeout(() => {
      this.#reconnect = null;
      if (!this.#stopped) this.#open();
    }, delay);
  }

  /** The first error before `start()` resolved rejects it; any error is emitted to those listening. */
  #report(err: Error): void {
    this.#settleFirst(err);
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #settleFirst(err?: Error): void {
    const first = this.#first;
    this.#first = null;
    if (err) first?.reject(err);
    else first?.resolve();
  }

  #reconnectPeriod = () => this.#o.reconnectPeriod ?? 1000;
  #connectTimeout = () => this.#o.connectTimeout ?? 10_000;
}

/** MQTT 5 reason codes a receiver may meet (CONNACK, SUBACK, DISCONNECT). */
const REASONS = new Map<number, string>([
  [0x80, 'unspecified error'],
  [0x81, 'malformed packet'],
  [0x82, 'protocol error'],
  [0x83, 'implementation specific error'],
  [0x84, 'unsupported protocol version'],
  [0x85, 'client identifier not valid'],
  [0x86, 'bad user name or password'],
  [0x87, 'not authorized'],
  [0x88, 'server unavailable'],
  [0x89, 'server busy'],
  [0x8a, 'banned'],
  [0x8b, 'server shutting down'],
  [0x8d, 'keep alive timeout'],
  [0x8e, 'session taken over'],
  [0x8f, 'topic filter invalid'],
  [0x93, 'receive maximum exceeded'],
  [0x95, 'packet too large'],
  [0x97, 'quota exceeded'],
  [0x9e, 'shared subscriptions not supported'],
  [0xa1, 'subscription identifiers not supported'],
  [0xa2, 'wildcard subscriptions not supported'],
]);

/** MQTT 3.1.1 CONNACK return codes. */
const RETURN_CODES = new Map<number, string>([
  [1, 'unacceptable protocol version'],
  [2, 'identifier rejected'],
  [3, 'server unavailable'],
  [4, 'bad user name or password'],
  [5, 'not authorized'],
]);

const reason = (code: number) => `0x${code.toString(16).padStart(2, '0')} ${REASONS.get(code) ?? ''}`.trim();
/** A SUBACK's answer for one filter: a granted QoS, or a failure (0x80 and above). */
const grantText = (code: number | undefined) => (code === undefined ? 'no answer' : code < 0x80 ? `granted QoS ${code}` : reason(code));
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
