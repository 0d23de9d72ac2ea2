import { readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGate, type Gate } from './helpers/gate.js';
import { mosquittoVersion, startMosquitto, type Broker } from './helpers/mosquitto.js';
import { freePort } from './helpers/ports.js';
import { Subscriber } from './helpers/subscriber.js';
import { makeTlsFiles, type TlsFiles } from './helpers/tls.js';

// ---------------------------------------------------------------------------
// Small MQTT.js helpers local to this file.

const clients = new Set<MqttClient>();

/** Creates a tracked client (ended in afterEach) that never throws on 'error'. */
function newClient(url: string, opts: IClientOptions = {}): MqttClient {
  const client = mqtt.connect(url, {
    reconnectPeriod: 100,
    connectTimeout: 2_000,
    clientId: `harness-${Math.random().toString(16).slice(2, 10)}`,
    ...opts,
  });
  client.on('error', () => {});
  clients.add(client);
  return client;
}

/** Resolves on CONNACK; rejects if the connection errors or closes first (use with reconnectPeriod: 0). */
function connectOnce(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
  const client = newClient(url, { reconnectPeriod: 0, ...opts });
  return new Promise((resolve, reject) => {
    const cleanup = (): void => {
      client.off('connect', onConnect);
      client.off('error', onError);
      client.off('close', onClose);
    };
    const onConnect = (): void => {
      cleanup();
      resolve(client);
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error('connection closed before CONNACK'));
    };
    client.on('connect', onConnect);
    client.on('error', onError);
    client.on('close', onClose);
  });
}

/** Waits for `event` on `client`, ignoring errors meanwhile. */
function waitEvent(client: MqttClient, event: 'connect' | 'close' | 'offline', timeoutMs = 3_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off(event, onEvent);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    const onEvent = (): void => {
      clearTimeout(timer);
      resolve();
    };
    client.once(event, onEvent);
  });
}

/** Polls `cond` until it holds. */
async function until(cond: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function nextMessage(client: MqttClient, topic: string, timeoutMs = 3_000): Promise<{ payload: string; qos: number; retain: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('message', onMessage);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for a message on ${topic}`));
    }, timeoutMs);
    const onMessage = (t: string, payload: Buffer, packet: { qos: number; retain: boolean }): void => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off('message', onMessage);
      resolve({ payload: payload.toString(), qos: packet.qos, retain: packet.retain });
    };
    client.on('message', onMessage);
  });
}

/** Subscribes at QoS 1, publishes at QoS 1 from `pub`, and checks `sub` gets it. */
async function roundTrip(pub: MqttClient, sub: MqttClient, topic: string, payload: string): Promise<void> {
  await sub.subscribeAsync(topic, { qos: 1 });
  const received = nextMessage(sub, topic);
  await pub.publishAsync(topic, payload, { qos: 1 });
  const msg = await received;
  expect(msg.payload).toBe(payload);
  expect(msg.qos).toBe(1);
}

afterEach(async () => {
  const ending = [...clients].map((c) => c.endAsync(true).catch(() => {}));
  clients.clear();
  await Promise.all(ending);
});

// ---------------------------------------------------------------------------

describe('freePort', () => {
  it('returns distinct usable ports', async () => {
    const a = await freePort();
    const b = await freePort();
    expect(a).toBeGreaterThan(0);
    expect(b).toBeGreaterThan(0);
  });
});

describe('mosquitto broker', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it('delivers QoS 1 publishes to a subscriber', async () => {
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const sub = await connectOnce(broker.url);
    const pub = await connectOnce(broker.url);
    await roundTrip(pub, sub, 'harness/qos1', 'hello');
    expect(broker.log()).toContain('mosquitto version');
    expect(mosquittoVersion()).toMatch(/^\d+\.\d+/);
  });

  it('restarts on the same port after SIGKILL and clients reconnect', async () => {
    const client = newClient(broker.url);
    await waitEvent(client, 'connect');
    const firstPid = broker.pid;
    const port = broker.port;

    const closed = waitEvent(client, 'close');
    await broker.kill();
    expect(broker.running).toBe(false);
    await closed;

    const reconnected = waitEvent(client, 'connect', 4_000);
    await broker.restart();
    expect(broker.running).toBe(true);
    expect(broker.port).toBe(port);
    expect(broker.pid).not.toBe(firstPid);
    await reconnected;

    const other = await connectOnce(broker.url);
    await roundTrip(other, client, 'harness/after-restart', 'back');
  });
});

describe('mosquitto options', () => {
  it('keeps retained messages across SIGTERM + restart when persistence is on', async () => {
    const broker = await startMosquitto({ persistence: true });
    try {
      const pub = await connectOnce(broker.url);
      await pub.publishAsync('harness/retained', 'kept', { qos: 1, retain: true });
      await pub.endAsync();

      await broker.kill('SIGTERM'); // clean shutdown writes the store
      await broker.restart();

      const sub = await connectOnce(broker.url);
      const received = nextMessage(sub, 'harness/retained');
      await sub.subscribeAsync('harness/retained', { qos: 1 });
      const msg = await received;
      expect(msg.payload).toBe('kept');
      expect(msg.retain).toBe(true);
    } finally {
      await broker.stop();
    }
  });

  it('rejects with the broker output when mosquitto cannot start', async () => {
    await expect(startMosquitto({ extraConfig: ['definitely_not_an_option 1'] })).rejects.toThrow(
      /exited .*before accepting connections[\s\S]*definitely_not_an_option/,
    );
  });

  it('accepts a fixed port', async () => {
    const port = await freePort();
    const broker = await startMosquitto({ port });
    try {
      expect(broker.port).toBe(port);
      const c = await connectOnce(broker.url);
      expect(c.connected).toBe(true);
    } finally {
      await broker.stop();
    }
  });
});

describe('mosquitto with TLS and client certificates', () => {
  let tls: TlsFiles;
  let broker: Broker;
  let ca: Buffer;

  beforeAll(async () => {
    tls = makeTlsFiles();
    ca = readFileSync(tls.caFile);
    broker = await startMosquitto({ tls: { ...tls, requireCertificate: true } });
  });
  afterAll(async () => {
    await broker?.stop();
    if (tls) rmSync(tls.dir, { recursive: true, force: true });
  });

  it('accepts a client presenting a certificate signed by the CA', async () => {
    expect(broker.url).toBe(`mqtts://127.0.0.1:${broker.port}`);
    const opts: IClientOptions = {
      ca,
      cert: readFileSync(tls.clientCert),
      key: readFileSync(tls.clientKey),
      rejectUnauthorized: true,
    };
    const sub = await connectOnce(broker.url, opts);
    const pub = await connectOnce(broker.url, opts);
    await roundTrip(pub, sub, 'harness/tls', 'secure');
  });

  it('also verifies the server by host name', async () => {
    const client = await connectOnce(`mqtts://localhost:${broker.port}`, {
      ca,
      cert: readFileSync(tls.clientCert),
      key: readFileSync(tls.clientKey),
      rejectUnauthorized: true,
    });
    expect(client.connected).toBe(true);
  });

  it('refuses a client without a certificate', async () => {
    // TLS 1.3: "tlsv13 alert certificate required"; TLS 1.2: a handshake failure alert.
    await expect(connectOnce(broker.url, { ca, rejectUnauthorized: true })).rejects.toThrow(/certificate required|handshake failure|alert/i);
  });

  it('refuses a client whose certificate comes from another CA', async () => {
    await expect(
      connectOnce(broker.url, {
        ca,
        cert: readFileSync(tls.rogueClientCert),
        key: readFileSync(tls.rogueClientKey),
        rejectUnauthorized: true,
      }),
    ).rejects.toThrow(/unknown ca|alert/i);
  });

  it('is refused by a client that does not trust the test CA', async () => {
    await expect(
      connectOnce(broker.url, {
        cert: readFileSync(tls.clientCert),
        key: readFileSync(tls.clientKey),
        rejectUnauthorized: true,
      }),
    ).rejects.toThrow(/self.signed certificate|unable to (get|verify)/i);
  });
});

describe('gate', () => {
  let broker: Broker;
  let gate: Gate;

  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(async () => {
    await broker?.stop();
  });
  afterEach(async () => {
    await gate?.stop();
  });

  it('proxies, drops and refuses on close(), lets clients back on open()', async () => {
    gate = await startGate(broker.port);
    expect(gate.port).not.toBe(broker.port);

    const device = newClient(`mqtt://127.0.0.1:${gate.port}`);
    let connects = 0;
    let attempts = 0;
    device.on('connect', () => connects++);
    device.on('reconnect', () => attempts++);
    await waitEvent(device, 'connect');
    expect(gate.active).toBe(1);

    const observer = await connectOnce(broker.url);
    await roundTrip(device, observer, 'harness/gate', 'through');

    const dropped = waitEvent(device, 'close');
    await gate.close();
    await dropped;
    expect(gate.isOpen).toBe(false);
    expect(gate.active).toBe(0); // close() resolves only once every proxied connection is gone

    // The device keeps retrying (every 100 ms) but never gets a CONNACK.
    const connectsWhenClosed = connects;
    const attemptsWhenClosed = attempts;
    await sleep(600);
    expect(attempts).toBeGreaterThan(attemptsWhenClosed + 1);
    expect(connects).toBe(connectsWhenClosed);
    expect(device.connected).toBe(false);

    const back = waitEvent(device, 'connect');
    gate.open();
    await back;
    expect(device.connected).toBe(true);
    await roundTrip(device, observer, 'harness/gate', 'again');
  });

  it('starts closed when asked, and lets clients in on open()', async () => {
    gate = await startGate(broker.port, { open: false });
    expect(gate.isOpen).toBe(false);
    const device = newClient(`mqtt://127.0.0.1:${gate.port}`);
    await sleep(300);
    expect(device.connected).toBe(false);
    const back = waitEvent(device, 'connect');
    gate.open();
    await back;
  });

  it('drops the downstream side when the broker dies, and while it is down', async () => {
    const localBroker = await startMosquitto();
    try {
      gate = await startGate(localBroker.port);
      const device = newClient(`mqtt://127.0.0.1:${gate.port}`);
      await waitEvent(device, 'connect');

      const dropped = waitEvent(device, 'close');
      await localBroker.kill();
      await dropped;
      await until(() => gate.active === 0);

      // Broker down: a connection through the open gate is accepted, then closed
      // as soon as the upstream connect is refused.
      const raw = connect({ host: '127.0.0.1', port: gate.port });
      raw.on('error', () => {});
      const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
      await rawClosed;
      expect(device.connected).toBe(false);
      await until(() => gate.active === 0);

      const back = waitEvent(device, 'connect', 4_000);
      await localBroker.restart();
      await back;
    } finally {
      await localBroker.stop();
    }
  });
});

describe('subscriber counting ids only', () => {
  let broker: Broker;

  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it('counts events by id without keeping them, calls its hooks, and forgets on reset()', async () => {
    const sub = new Subscriber(broker.url, { qos: 1, keepEvents: false });
    await sub.connect();
    try {
      const seen: string[] = [];
      sub.onEvent = (_topic, _payload, id) => seen.push(id);
      const pub = await connectOnce(broker.url);
      const id = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
      // The envelope's first field is the id (read without parsing); elsewhere it is parsed.
      await pub.publishAsync('vigia/s/d/events/read/t', JSON.stringify({ id, seq: 1 }), { qos: 1 });
      await pub.publishAsync('vigia/s/d/events/read/t', JSON.stringify({ id, seq: 1 }), { qos: 1 });
      await pub.publishAsync('vigia/s/d/events/read/t', JSON.stringify({ seq: 2, id: 'late-id' }), { qos: 1 });
      await pub.publishAsync('vigia/s/d/status', 'online', { qos: 1 });
      await sub.waitFor(() => sub.received === 3 && sub.other.length === 1, 5_000, 'three events and a status');
      expect(sub.events).toEqual([]);
      expect(seen).toEqual([id, id, 'late-id']);
      expect(sub.distinct).toBe(2);
      expect(sub.duplicates()).toBe(1);
      expect(sub.missing([id, 'never-sent'])).toEqual(['never-sent']);
      expect(sub.lastAt).toBeGreaterThanOrEqual(sub.firstAt!);
      sub.reset();
      expect([sub.received, sub.distinct, sub.other.length, sub.firstAt]).toEqual([0, 0, 0, undefined]);
    } finally {
      await sub.close();
    }
  });
});
