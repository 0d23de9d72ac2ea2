import mqtt, { type MqttClient } from 'mqtt';
import type { VigiaEvent } from '../../src/core/event.js';

export interface Received {
  topic: string;
  event: VigiaEvent;
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
  #subscribed: Promise<void> = Promise.resolve();

  constructor(
    readonly url: string,
    readonly topic = 'vigia/#',
    readonly qos: 0 | 1 = 0,
    readonly extra: mqtt.IClientOptions = {},
  ) {}

  async connect(): Promise<void> {
    this.client = mqtt.connect(this.url, { reconnectPeriod: 50, protocolVersion: 5, resubscribe: false, ...this.extra });
    this.client.on('message', (topic, payload, packet) => {
      if (topic.includes('/events/')) {
        const event = JSON.parse(payload.toString()) as VigiaEvent;
        this.events.push({ topic, event });
        this.byId.set(event.id, (this.byId.get(event.id) ?? 0) + 1);
      } else {
        this.other.push({ topic, payload, retain: packet.retain });
      }
    });
    this.client.on('connect', () => {
      this.#subscribed = new Promise((resolve, reject) =>
        this.client.subscribe(this.topic, { qos: this.qos }, (err) => (err ? reject(err) : resolve())),
      );
    });
    await new Promise<void>((resolve) => this.client.once('connect', () => resolve()));
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

  async waitFor(pred: () => boolean, timeoutMs = 30_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  missing(ids: Iterable<string>): string[] {
    return [...ids].filter((id) => !this.byId.has(id));
  }

  duplicates(): number {
    let d = 0;
    for (const n of this.byId.values()) d += n - 1;
    return d;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => this.client.end(true, {}, () => r()));
  }
}
