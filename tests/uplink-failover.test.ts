import { createServer, type Server } from 'node:net';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { generate, parser as newParser } from 'mqtt-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { signCommand } from '../src/gateway/command-auth.js';
import { referencedServer } from '../src/gateway/uplink.js';
import type { DaemonStatus } from '../src/status.js';
import { formatStatus } from '../src/status-format.js';
import { CommandClient } from './helpers/commander.js';
import { DaemonProcess, TEST_KEY, writeDeviceConfig } from './helpers/daemon.js';
import { startGate } from './helpers/gate.js';
import { type Broker, startMosquitto } from './helpers/mosquitto.js';
import { freePort } from './helpers/ports.js';
import { Subscriber } from './helpers/subscriber.js';

// A device and several brokers (the nodes of a cluster): a node that dies is left for the next,
// an outage is waited out spread over `reconnect.spread`, and what an MQTT 5 broker tells the
// device (another server, a shorter keep-alive, fewer messages in flight) is followed.

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function broker(extraConfig: string[] = []): Promise<Broker> {
  const b = await startMosquitto({ extraConfig });
  cleanups.push(() => b.stop());
  return b;
}

async function daemonOn(url: string, mqttOver: Record<string, unknown>, log: 'warn' | 'debug' = 'warn') {
  const cfg = writeDeviceConfig(url, { log: { level: log }, mqtt: { url, reconnect: { min_delay: '100ms', max_delay: '1s', jitter: 0.2 }, ...mqttOver } });
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  cleanups.push(() => daemon.kill('SIGKILL'));
  await daemon.start();
  return daemon;
}

async function until<T>(fn: () => Promise<T>, ok: (v: T) => boolean, what: string, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A broker node that sends every client elsewhere (MQTT 5 "use another server" with a Server Reference), as a cluster's balancer does. */
async function redirector(reference: string): Promise<{ url: string; connects: () => number }> {
  let connects = 0;
  const server: Server = createServer((socket) => {
    const parser = newParser({ protocolVersion: 5 });
    parser.on('packet', (packet) => {
      if (packet.cmd !== 'connect') return;
      connects++;
      socket.end(generate({ cmd: 'connack', sessionPresent: false, reasonCode: 0x9c, properties: { serverReference: reference } }, { protocolVersion: 5 }));
    });
    socket.on('data', (b) => parser.parse(b));
    socket.on('error', () => {});
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `mqtt://127.0.0.1:${port}`, connects: () => connects };
}

describe('the link over several brokers', () => {
  it('moves to the next broker when its node dies, and delivers there', async () => {
    const [a, b] = [await broker(), await broker()];
    const sub = new Subscriber(b.url);
    await sub.connect();
    cleanups.push(() => sub.close());
    const daemon = await daemonOn(a.url, { servers: [b.url] });
    const status = () => daemon.request<DaemonStatus>('status');
    await until(status, (s) => s.link.state === 'online' && s.link.server === a.url, 'online on the first node');

    await a.kill('SIGKILL');
    const moved = await until(status, (s) => s.link.state === 'online' && s.link.server === b.url, 'online on the second node');
    expect(moved.link.failovers).toBeGreaterThanOrEqual(1);
    expect(formatStatus(moved)).toContain(`server   ${b.url} (`);
    const r = await daemon.request<{ id: string }>('sim.event', { type: 'sim.check', priority: 'alarm', payload: {} });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'the alarm at the second node');
  });

  it('after a failed first attempt, waits a random time within the spread window, then backs off exponentially, turning over the servers', async () => {
    const dead = [`mqtt://127.0.0.1:${await freePort()}`, `mqtt://127.0.0.1:${await freePort()}`];
    const daemon = await daemonOn(dead[0]!, { servers: [dead[1]], reconnect: { min_delay: '100ms', max_delay: '800ms', jitter: 0, spread: '600ms' } }, 'debug');
    const scheduled = () =>
      daemon.output
        .split('\n')
        .filter((l) => l.includes('uplink reconnect scheduled'))
        .map((l) => JSON.parse(l) as { delay_ms: number; next: string });
    const tries = await until(
      async () => scheduled(),
      (s) => s.length >= 5,
      'five attempts',
    );
    // The first attempt fails (never online): a random point of the 600 ms window, then 100, 200, 400... with no jitter.
    expect(tries[0]!.delay_ms).toBeGreaterThanOrEqual(0);
    expect(tries[0]!.delay_ms).toBeLessThanOrEqual(600);
    expect(tries.slice(1, 4).map((t) => t.delay_ms)).toEqual([100, 200, 400]);
    expect(tries.slice(0, 4).map((t) => t.next)).toEqual([dead[1], dead[0], dead[1], dead[0]]);
  });

  it('does not make an alarm wait out the spread: it reconnects at once', async () => {
    const a = await broker();
    await a.kill('SIGKILL');
    // An hour's window: without the alarm, the link would not be back during this test.
    const daemon = await daemonOn(a.url, { reconnect: { min_delay: '100ms', max_delay: '2h', spread: '1h' } }, 'debug');
    await until(
      async () => daemon.output,
      (o) => o.includes('uplink reconnect scheduled'),
      'the first attempt failed',
    );
    await a.restart();
    const sub = new Subscriber(a.url);
    await sub.connect();
    cleanups.push(() => sub.close());
    expect((await daemon.request<DaemonStatus>('status')).link.state).not.toBe('online');
    const r = await daemon.request<{ id: string }>('sim.event', { type: 'sim.check', priority: 'alarm', payload: {} });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'the alarm');
    expect(daemon.output).toContain('alarm waiting: reconnecting now');
  });

  it('follows a broker that sends it to another server, and takes the keep-alive and in-flight limit the broker sets', async () => {
    const real = await broker(['max_keepalive 10', 'max_inflight_messages 4']);
    const redirect = await redirector(`127.0.0.1:${real.port}`);
    const daemon = await daemonOn(redirect.url, { keepalive: '60s' });
    const s = await until(
      () => daemon.request<DaemonStatus>('status'),
      (x) => x.link.state === 'online',
      'online after the redirect',
    );
    expect(s.link.server).toBe(real.url);
    expect(s.link.redirects).toBe(1);
    expect(redirect.connects()).toBe(1);
    expect(s.link.protocol).toBe('5');
    expect(s.link.server_keepalive_s).toBe(10);
    expect(s.link.window).toBe(4);
  });

  it('subscribes again to what the broker refused, so commands are heard once the broker takes the subscription', async () => {
    // A cluster node that has just lost a peer refuses new subscriptions for a while (a SUBACK
    // failure code) while the connection itself is fine.
    let refusals = 2;
    const aedes = await Aedes.createBroker({
      authorizeSubscribe: (client, sub, done) => {
        if (client?.id.startsWith('vigia-') && sub.topic.includes('/cmd/') && refusals > 0) {
          refusals--;
          done(null, null); // refused: SUBACK 0x80
        } else done(null, sub);
      },
    });
    const server = createServer(aedes.handle);
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => aedes.close(() => server.close(() => r()))));
    const url = `mqtt://127.0.0.1:${port}`;
    const daemon = await daemonOn(url, { protocol: '3.1.1' });
    // The broker speaks 3.1.1 only: a verified command is answered on <base>/cmd/<name>/reply.
    const center = await mqtt.connectAsync(url, { protocolVersion: 4 });
    cleanups.push(() => center.endAsync());
    const base = 'vigia/test-site/pole-0001';
    await center.subscribeAsync(`${base}/cmd/ping/reply`, { qos: 1 });
    let answered = false;
    center.on('message', (_t, payload) => {
      if ((JSON.parse(payload.toString()) as { ok?: boolean }).ok === true) answered = true;
    });
    const sign = () => signCommand({ auth: 'hmac-sha256', key: TEST_KEY, site: 'test-site', device: 'pole-0001', cmd: 'ping', args: {} });
    await until(
      async () => {
        if (!answered) await center.publishAsync(`${base}/cmd/ping`, sign(), { qos: 1 });
        await new Promise((r) => setTimeout(r, 200));
        return answered;
      },
      (ok) => ok,
      'a reply to ping',
    );
    expect(refusals).toBe(0);
    const status = await daemon.request<DaemonStatus>('status');
    expect(status.link.subscribe_refusals).toBeGreaterThanOrEqual(2);
    expect(status.link.connects).toBe(1); // the same link all along
  });

  it('shows commands not subscribed while the broker holds the subscription, and events still flow', async () => {
    // RabbitMQ grants a kept session's subscription only once its replicated queue is declared,
    // which under load takes seconds: the link is up, commands cannot reach the device yet.
    let grant: (() => void) | undefined;
    const aedes = await Aedes.createBroker({
      authorizeSubscribe: (client, sub, done) => {
        if (client?.id.startsWith('vigia-') && sub.topic.includes('/cmd/')) grant = () => done(null, sub);
        else done(null, sub);
      },
    });
    const server = createServer(aedes.handle);
    const port = await freePort();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => aedes.close(() => server.close(() => r()))));
    const url = `mqtt://127.0.0.1:${port}`;
    const sub = new Subscriber(url, { extra: { protocolVersion: 4 } });
    await sub.connect();
    cleanups.push(() => sub.close());
    const daemon = await daemonOn(url, { protocol: '3.1.1' });
    const held = await until(
      () => daemon.request<DaemonStatus>('status'),
      (s) => s.link.state === 'online' && grant !== undefined,
      'online with the subscription held',
    );
    expect(held.link, JSON.stringify(held.link)).toMatchObject({ subscribed: false });
    expect(formatStatus(held)).toContain(', commands not subscribed yet');
    await daemon.request('sim.burst', { count: 3, type: 'sim.held', priority: 'alarm' });
    await sub.waitFor(() => sub.events.filter((e) => e.event.type === 'sim.held').length === 3, 10_000, 'the alarms while the subscription is held');

    grant!();
    const granted = await until(
      () => daemon.request<DaemonStatus>('status'),
      (s) => s.link.subscribed,
      'the subscription granted',
    );
    expect(formatStatus(granted)).not.toContain('not subscribed');
    expect(granted.link.connects).toBe(1);
  });

  it('keeps its session when told to: a command sent while the link was down is carried out when it is back', async () => {
    const b = await broker();
    const gate = await startGate(b.port);
    cleanups.push(() => gate.stop());
    const viaGate = `mqtt://127.0.0.1:${gate.port}`;
    const daemon = await daemonOn(viaGate, { session_expiry: '10m' });
    const commander = new CommandClient(b.url, 'test-site', 'pole-0001');
    await commander.connect();
    cleanups.push(() => commander.close());
    await commander.ready(20_000);

    await gate.close();
    await until(
      () => daemon.request<DaemonStatus>('status'),
      (s) => s.link.state !== 'online',
      'the link down',
    );
    // Published while the device is away: the broker keeps it in the device's session.
    const reply = commander.call('ping', {}, 30_000);
    await new Promise((r) => setTimeout(r, 1000));
    gate.open();
    expect((await reply).ok).toBe(true);
  });

  it('reads a Server Reference as MQTT 5 writes it', () => {
    expect(referencedServer('node2.central:1884', 'mqtts://node1.central:8883')).toBe('mqtts://node2.central:1884');
    expect(referencedServer('node2.central', 'mqtts://node1.central:8883')).toBe('mqtts://node2.central:8883');
    expect(referencedServer('[::1]:1885 other:1', 'mqtt://a:1883')).toBe('mqtt://[::1]:1885');
    expect(referencedServer('b:9001', 'wss://a:443/mqtt')).toBe('wss://b:9001/mqtt');
    expect(referencedServer('  ', 'mqtt://a:1883')).toBeNull();
  });
});
