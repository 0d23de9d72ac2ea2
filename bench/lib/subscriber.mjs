// The call center's side: counts every event on a topic filter by id (duplicates included),
// with a hook for latency measurement. QoS 1 so that the subscriber itself never drops anything
// under load (a drop here would look like a loss of the system under test).
import mqtt from 'mqtt';

export const nowMs = () => performance.timeOrigin + performance.now();

const PREFIX = Buffer.from('{"id":"');

/** The event id, read straight from the envelope's first field when possible (fast path). */
export function eventId(buf) {
  if (buf.length > 44 && buf.compare(PREFIX, 0, 7, 0, 7) === 0 && buf[43] === 0x22) return buf.toString('latin1', 7, 43);
  return JSON.parse(buf.toString()).id;
}

export class Subscriber {
  constructor(url, { topic = 'vigia/#', qos = 1, clientId } = {}) {
    this.url = url;
    this.topic = topic;
    this.qos = qos;
    this.clientId = clientId ?? `bench-sub-${process.pid}-${Math.random().toString(16).slice(2, 8)}`;
    this.byId = new Map();
    this.received = 0;
    this.firstAt = undefined;
    this.lastAt = undefined;
    this.onEvent = undefined; // (topic, payload, id, recvMs) => void
    this.onOther = undefined; // (topic, payload, recvMs) => void
  }

  async connect() {
    this.client = mqtt.connect(this.url, { clientId: this.clientId, protocolVersion: 5, reconnectPeriod: 100, clean: true, resubscribe: false });
    this.client.on('error', () => {});
    this.client.on('message', (topic, payload) => {
      const t = nowMs();
      if (topic.includes('/events/')) {
        const id = eventId(payload);
        this.received++;
        this.firstAt ??= t;
        this.lastAt = t;
        this.byId.set(id, (this.byId.get(id) ?? 0) + 1);
        this.onEvent?.(topic, payload, id, t);
      } else {
        this.onOther?.(topic, payload, t);
      }
    });
    let subscribed;
    this.client.on('connect', () => {
      subscribed = new Promise((resolve, reject) => this.client.subscribe(this.topic, { qos: this.qos }, (err) => (err ? reject(err) : resolve())));
    });
    await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`subscriber could not connect to ${this.url}`)), 10_000);
      this.client.once('connect', () => {
        clearTimeout(t);
        resolve();
      });
    });
    await subscribed;
  }

  get distinct() {
    return this.byId.size;
  }

  duplicates() {
    let d = 0;
    for (const n of this.byId.values()) d += n - 1;
    return d;
  }

  missing(ids) {
    let n = 0;
    for (const id of ids) if (!this.byId.has(id)) n++;
    return n;
  }

  reset() {
    this.byId.clear();
    this.received = 0;
    this.firstAt = undefined;
    this.lastAt = undefined;
  }

  async waitFor(pred, timeoutMs, what = 'condition', pollMs = 10) {
    const deadline = Date.now() + timeoutMs;
    while (!pred()) {
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Waits until nothing new has arrived for quietMs (or timeoutMs passed). */
  async settle(quietMs, timeoutMs) {
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

  close() {
    return new Promise((r) => this.client.end(true, {}, () => r()));
  }
}
