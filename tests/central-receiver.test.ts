import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { type ReceivedMessage, Receiver, type ReceiverOptions } from '../src/central/receiver.js';
import { createLogger } from '../src/core/logger.js';
import { DemoBroker } from '../src/gateway/demo-broker.js';
import { type Broker, startMosquitto } from './helpers/mosquitto.js';
import { freePort } from './helpers/ports.js';
import { makeTlsFiles } from './helpers/tls.js';

// The ingest's receiving side against a real Mosquitto: many messages in flight on one connection,
// each acknowledged only once its handler resolved (what was not is delivered again to the next
// connection of the same client id), a failing handler's message delivered again, reconnection
// after a broker restart or a broker that stops answering, and a refused subscription reported.

const quiet = createLogger('silent');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function broker(opts: Parameters<typeof startMosquitto>[0] = {}): Promise<Broker> {
  const b = await startMosquitto(opts);
  cleanups.push(() => b.stop());
  return b;
}

async function publisher(url: string, protocolVersion: 4 | 5 = 5): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, { protocolVersion, reconnectPeriod: 200 });
  cleanups.push(() => c.endAsync(true));
  return c;
}

/** A receiver stopped at the end of the test; `handler` decides when each message is safe. */
function receiver(url: string, clientId: string, handler: ReceiverOptions['handler'], over: Partial<ReceiverOptions> = {}): Receiver {
  const r = new Receiver({ url, clientId, topics: ['t/#'], handler, logger: quiet, sessionExpiryInterval: 600, reconnectPeriod: 200, ...over });
  cleanups.push(() => r.stop());
  return r;
}

/** A handler whose messages stay pending until released one by one. */
function holding() {
  const held: Array<{ message: ReceivedMessage; resolve: () => void; reject: (err: Error) => void }> = [];
  const handler = (message: ReceivedMessage) => new Promise<void>((resolve, reject) => held.push({ message, resolve, reject }));
  return { held, handler };
}

async function until(pred: () => boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Lets resolved handlers' acknowledgements be written (they go out together after the current turn). */
const turn = () => new Promise((r) => setImmediate(r));

const payloads = (ms: ReceivedMessage[]) => ms.map((m) => m.payload.toString());

/** Mosquitto's dynamic security plugin, shipped with the broker (Debian: in the multiarch library directory). */
function dynsecPlugin(): string {
  const name = 'mosquitto_dynamic_security.so';
  const dirs = ['/usr/lib', '/usr/local/lib', ...readdirSync('/usr/lib').map((d) => join('/usr/lib', d))];
  const found = dirs.map((d) => join(d, name)).find((f) => existsSync(f));
  if (!found) throw new Error(`${name} not found: it comes with the mosquitto package (node scripts/ensure-system-deps.mjs)`);
  return found;
}

describe('receiver', () => {
  it('hands over many messages of one connection before the first one is acknowledged', async () => {
    const b = await broker();
    const { held, handler } = holding();
    const r = receiver(b.url, 'rx-window', handler);
    await r.start();
    const pub = await publisher(b.url);
    // More than Mosquitto's max_inflight_messages in the test config (100): for an MQTT 5 client
    // the broker uses the client's Receive Maximum instead.
    const n = 300;
    for (let i = 0; i < n; i++) await pub.publishAsync(`t/${i}`, String(i), { qos: 1 });
    await until(() => held.length === n, `all ${n} messages in the handler at once`);
    expect(payloads(held.map((h) => h.message))).toEqual(Array.from({ length: n }, (_, i) => String(i)));
    expect(held.every((h) => h.message.qos === 1 && !h.message.dup)).toBe(true);
    // Acknowledged in any order: the last first.
    for (const h of [...held].reverse()) h.resolve();
    await pub.publishAsync('t/after', 'after', { qos: 1 });
    await until(() => held.length === n + 1, 'the next message');
  });

  it('acknowledges only what its handler resolved: the rest comes again to the same client id', async () => {
    const b = await broker();
    const first = holding();
    const r1 = receiver(b.url, 'rx-ack', first.handler);
    await r1.start();
    const pub = await publisher(b.url);
    for (let i = 0; i < 20; i++) await pub.publishAsync(`t/${i}`, String(i), { qos: 1 });
    await until(() => first.held.length === 20, 'the 20 messages');
    // Even ones safe, odd ones still pending when the receiver goes away.
    for (const h of first.held.filter((_, i) => i % 2 === 0)) h.resolve();
    await turn();
    await r1.stop();
    for (const h of first.held.filter((_, i) => i % 2 === 1)) h.resolve(); // too late: no connection to acknowledge on

    const got: ReceivedMessage[] = [];
    const resumed: boolean[] = [];
    const r2 = receiver(b.url, 'rx-ack', async (m) => void got.push(m));
    r2.on('connect', (c) => resumed.push(c.sessionPresent));
    await r2.start();
    // Delivered in order, the unacknowledged first: once the marker is in, nothing else is coming.
    await pub.publishAsync('t/marker', 'marker', { qos: 1 });
    await until(() => got.some((m) => m.topic === 't/marker'), 'the marker');
    expect(resumed).toEqual([true]);
    expect(payloads(got)).toEqual(['1', '3', '5', '7', '9', '11', '13', '15', '17', '19', 'marker']);
    expect(got.filter((m) => m.topic !== 't/marker').every((m) => m.dup)).toBe(true);
  });

  it('stops reading while its handlers hold too many bytes, and goes on once they finish', async () => {
    const b = await broker();
    const size = 200 * 1024;
    const maxPendingBytes = 1024 * 1024;
    let pending = 0;
    let most = 0;
    let done = 0;
    const r = receiver(
      b.url,
      'rx-bytes',
      async (m) => {
        pending += m.payload.length;
        most = Math.max(most, pending);
        await sleep(20);
        pending -= m.payload.length;
        done++;
      },
      { maxPendingBytes },
    );
    await r.start();
    const pub = await publisher(b.url);
    const n = 40;
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync(`t/${i}`, Buffer.alloc(size, i), { qos: 1 })));
    await until(() => done === n, `all ${n} large messages`);
    // Past the limit it parses at most the rest of the chunk in hand: part of one more message.
    expect(most).toBeLessThanOrEqual(maxPendingBytes + size);
  });

  it('drops the connection when a handler fails, and the broker delivers that message again', async () => {
    const b = await broker();
    const seen: string[] = [];
    const safe: string[] = [];
    const errors: string[] = [];
    let connects = 0;
    const r = receiver(b.url, 'rx-fail', async (m) => {
      const p = m.payload.toString();
      seen.push(p);
      await sleep(1);
      if (p === 'bad' && seen.filter((s) => s === 'bad').length === 1) throw new Error('disk on fire');
      safe.push(p);
    });
    r.on('connect', () => connects++);
    r.on('error', (err) => errors.push(err.message));
    await r.start();
    const pub = await publisher(b.url);
    for (const p of ['a', 'bad', 'c']) await pub.publishAsync(`t/${p}`, p, { qos: 1 });
    await until(() => safe.includes('bad') && safe.includes('c'), 'the failed message taken on the next connection');
    expect(seen.filter((s) => s === 'bad')).toHaveLength(2);
    expect(connects).toBe(2);
    expect(errors).toEqual([expect.stringContaining('disk on fire')]);
    expect(new Set(safe)).toEqual(new Set(['a', 'bad', 'c']));
  });

  it('connects again after the broker restarts, and what it queued meanwhile arrives', async () => {
    const b = await broker({ persistence: true });
    const got: string[] = [];
    const events: string[] = [];
    const r = receiver(b.url, 'rx-restart', async (m) => void got.push(m.payload.toString()));
    r.on('connect', (c) => events.push(`connect ${c.sessionPresent}`));
    r.on('close', () => events.push('close'));
    await r.start();
    const pub = await publisher(b.url);
    await pub.publishAsync('t/1', 'before', { qos: 1 });
    await until(() => got.includes('before'), 'the first message');
    await b.restart();
    await until(() => events.length === 3, 'the connection back');
    expect(events).toEqual(['connect false', 'close', 'connect true']);
    await pub.publishAsync('t/2', 'after', { qos: 1 });
    await until(() => got.includes('after'), 'a message after the restart');
    expect(r.connected).toBe(true);
  });

  it('drops a connection whose broker stops answering, and connects again once it answers', async () => {
    const b = await broker();
    const errors: string[] = [];
    let connects = 0;
    const r = receiver(b.url, 'rx-keepalive', async () => undefined, { keepalive: 1 });
    r.on('error', (err) => errors.push(err.message));
    r.on('connect', () => connects++);
    await r.start();
    process.kill(b.pid, 'SIGSTOP');
    try {
      await until(() => errors.some((e) => e.includes('PINGREQ')), 'the keepalive to give up');
      expect(r.connected).toBe(false);
    } finally {
      process.kill(b.pid, 'SIGCONT');
    }
    await until(() => connects === 2 && r.connected, 'the connection back');
  });

  it('reports a refused subscription, and start() fails with it', async () => {
    // Mosquitto's acl_file does not check subscriptions (2.0); its dynamic security plugin does.
    const dir = mkdtempSync(join(tmpdir(), 'vigia-dynsec-'));
    writeFileSync(
      join(dir, 'dynsec.json'),
      JSON.stringify({
        defaultACLAccess: { publishClientSend: true, publishClientReceive: true, subscribe: false, unsubscribe: true },
        clients: [],
        groups: [{ groupname: 'anonymous', roles: [{ rolename: 'receiver' }] }],
        anonymousGroup: 'anonymous',
        roles: [{ rolename: 'receiver', acls: [{ acltype: 'subscribePattern', topic: 't/#', priority: 0, allow: true }] }],
      }),
    );
    const b = await broker({ extraConfig: [`plugin ${dynsecPlugin()}`, `plugin_opt_config_file ${join(dir, 'dynsec.json')}`] });
    const errors: string[] = [];
    const got: string[] = [];
    const r = receiver(b.url, 'rx-refused', async (m) => void got.push(m.topic), { topics: ['t/#', 'secret/#'] });
    r.on('error', (err) => errors.push(err.message));
    await expect(r.start()).rejects.toThrow('the broker refused the subscriptions secret/# (0x87 not authorized)');
    expect(errors).toHaveLength(1);
    // What was granted still flows.
    const pub = await publisher(b.url);
    await pub.publishAsync('t/ok', 'x', { qos: 1 });
    await until(() => got.includes('t/ok'), 'the granted subscription');
  });

  it('connects over TLS with a client certificate', async () => {
    const tls = makeTlsFiles();
    const b = await broker({ tls: { ...tls, requireCertificate: true } });
    const got: string[] = [];
    const read = (f: string) => readFileSync(f);
    const r = receiver(b.url, 'rx-tls', async (m) => void got.push(m.payload.toString()), {
      tls: { ca: read(tls.caFile), cert: read(tls.clientCert), key: read(tls.clientKey) },
    });
    await r.start();
    const pub = await mqtt.connectAsync(b.url, { protocolVersion: 5, ca: read(tls.caFile), cert: read(tls.clientCert), key: read(tls.clientKey) });
    cleanups.push(() => pub.endAsync(true));
    await pub.publishAsync('t/tls', 'over tls', { qos: 1 });
    await until(() => got.includes('over tls'), 'a message over TLS');
  });

  it('works the same on MQTT 3.1.1 (the demo’s embedded aedes broker)', async () => {
    const port = await freePort();
    const demo = new DemoBroker({ host: '127.0.0.1', port }, quiet);
    await demo.start();
    cleanups.push(() => demo.stop());
    const url = `mqtt://127.0.0.1:${port}`;
    const first = holding();
    const r1 = receiver(url, 'rx-311', first.handler, { protocolVersion: 4 });
    await r1.start();
    const pub = await publisher(url, 4);
    for (let i = 0; i < 10; i++) await pub.publishAsync(`t/${i}`, String(i), { qos: 1 });
    await until(() => first.held.length === 10, 'the 10 messages at once');
    for (const h of first.held.slice(0, 5)) h.resolve();
    await turn();
    await r1.stop();

    const got: ReceivedMessage[] = [];
    const r2 = receiver(url, 'rx-311', async (m) => void got.push(m), { protocolVersion: 4 });
    await r2.start();
    await pub.publishAsync('t/marker', 'marker', { qos: 1 });
    await until(() => got.some((m) => m.topic === 't/marker'), 'the marker');
    expect(payloads(got)).toEqual(['5', '6', '7', '8', '9', 'marker']);
  });
});
