import mqtt, { type MqttClient } from 'mqtt';
import type { VigiaEvent } from '../../src/core/event.js';

export interface Received {
  topic: string;
  event: VigiaEvent;
}

export interface SubscriberOptions {
  /** Default vigia/#. */
  topic?: string;
  /** Default 0. */
  qos?: 0 | 1;
  /** Client options over the defaults (reconnect every 50 ms, MQTT 5). */
  extra?: mqtt.IClientOptions;
  /**
   * Parse every event and keep it in `events` (default). False counts events by id only: a benchmark
   * streaming 100k events must not spend the CPU it measures on parsing them.
   */
  keepEvents?: boolean;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable between processes on one machine. */
export const nowMs = (): number => performance.timeOrigin + performance.now();

const ID_PREFIX = Buffer.from('{"id":"');

/** The event id, read straight from the envelope's first field when it is there (no JSON parse). */
export function eventId(payload: Buffer): string {
  if (payload.length > 44 && payload.compare(ID_PREFIX, 0, 7, 0, 7) === 0 && payload[43] === 0x22) return payload.toString('latin1', 7, 43);
  return (JSON.parse(payload.toString()) as { id: string }).id;
}

/**
 * The call center's side in tests: collects every event on vigia/#, remembers duplicates, and
 * re-subscribes after each reconnect (so a test can wait for it before letting the device back in).
 * QoS 0 on the subscription keeps the broker's outgoing path simple when it is killed mid-stream.
 */
export class Subscriber {
  client!: MqttClient;
  events: Received[] = [];
  byId = new Map<string, number>();
  other: Array<{ topic: string; payload: Buffer; retain: boolean }> = [];
  /** The client's last error, kept rather than thrown: the client reconnects by itself. */
  lastError: Error | undefined;
  /** Events received, duplicates included, and when the first and the last arrived (nowMs). */
  received = 0;
  firstAt: number | undefined;
  lastAt: number | undefined;
  /** Called on each event as it arrives, with its id and arrival time (nowMs). */
  onEvent: ((topic: string, payload: Buffer, id: string, receivedAt: number) => void) | undefined;
  /** Called on each message that is not an event (status, telemetry...), with its arrival time. */
  onOther: ((topic: string, payload: Buffer, receivedAt: number) => void) | undefined;
  readonly topic: string;
  readonly qos: 0 | 1;
  readonly extra: mqtt.IClientOptions;
  readonly keepEvents: boolean;
  #subscribed: Promise<void> = Promise.resolve();

  constructor(url: string, options?: SubscriberOptions);
  constructor(url: string, topic?: string, qos?: 0 | 1, extra?: mqtt.IClientOptions);
  constructor(
    readonly url: string,
    topicOrOptions: string | SubscriberOptions = {},
    qos: 0 | 1 = 0,
    extra: mqtt.IClientOptions = {},
  ) {
    const o: SubscriberOptions = typeof topicOrOptions === 'string' ? { topic: topicOrOptions, qos, extra } : topicOrOptions;
    this.topic = o.topic ?? 'vigia/#';
    this.qos = o.qos ?? 0;
    this.extra = o.extra ?? {};
    this.keepEvents = o.keepEvents ?? true;
  }

  async connect(timeoutMs = 10_000): Promise<void> {
    this.client = mqtt.connect(this.url, { reconnectPeriod: 50, protocolVersion: 5, resubscribe: false, ...this.extra });
    this.client.on('error', (err) => {
      this.lastError = err;
    });
    this.client.on('message', (topic, payload, packet) => {
      const t = nowMs();
      if (topic.includes('/events/')) {
        let id: string;
        if (this.keepEvents) {
          const event = JSON.parse(payload.toString()) as VigiaEvent;
          this.events.push({ topic, event });
          id = event.id;
        } else {
          id = eventId(payload);
        }
        this.byId.set(id, (this.byId.get(id) ?? 0) + 1);
        this.received++;
        this.firstAt ??= t;
        this.lastAt = t;
        this.onEvent?.(topic, payload, id, t);
      } else {
        this.other.push({ topic, payload, retain: packet.retain });
        this.onOther?.(topic, payload, t);
      }
    });
    this.client.on('connect', () => {
      this.#subscribed = new Promise((resolve, reject) => this.client.subscribe(this.topic, { qos: this.qos }, (err) => (err ? reject(err) : resolve())));
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`subscriber could not connect to ${this.url} within ${timeoutMs} ms`)), timeoutMs);
      this.client.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await this.#subscribed;
  }

  /** Resolves once the client is connected and subscribed again after a broker restart. */
  async resubscribed(timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.client.connected) {
      if (Date.now() > deadline) throw new Error('subscriber did not reconnect');
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.#subscribed;
  }

  async waitFor(pred: () => boolean, timeoutMs = 30_000, what = 'condition', pollMs = 25): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Waits until no event has arrived for quietMs, or timeoutMs has passed. */
  async settle(quietMs: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let last = this.received;
    let since = Date.now();
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      if (this.received !== last) {
        last = this.received;
        since = Date.now();
      } else if (Date.now() - since >= quietMs) return;
    }
  }

  /** Distinct event ids received. */
  get distinct(): number {
    return this.byId.size;
  }

  missing(ids: Iterable<string>): string[] {
    return [...ids].filter((id) => !this.byId.has(id));
  }

  duplicates(): number {
    let d = 0;
    for (const n of this.byId.values()) d += n - 1;
    return d;
  }

  /** Forgets everything received so far (the connection and the hooks stay). */
  reset(): void {
    this.events = [];
    this.byId.clear();
    this.other = [];
    this.received = 0;
    this.firstAt = undefined;
    this.lastAt = undefined;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.client.end(true, {}, () => r()));
  }
}
