import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Database from 'better-sqlite3';
import mqtt, { type MqttClient } from 'mqtt';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { parseMessage } from '../src/central/envelope.js';
import { topicsFor } from '../src/gateway/topics.js';
import { Ingest } from '../src/central/ingest.js';
import { DEFAULT_RETENTION, openStore, parseRetention } from '../src/central/service.js';
import { newEventId, type Priority, type VigiaEvent } from '../src/core/event.js';
import { createLogger } from '../src/core/logger.js';
import { CLI } from './helpers/daemon.js';
import { type Broker, startMosquitto } from './helpers/mosquitto.js';
import { startPostgres } from './helpers/postgres.js';

// The call center's ingest against a real Mosquitto and a real SQLite file: every event once,
// device state from status and health, nothing lost when the ingest is killed or the broker
// restarts mid-stream, and what is not a valid event kept out and counted.

const quiet = createLogger('silent');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let seq = 0;
function event(device: string, over: Partial<VigiaEvent> = {}): VigiaEvent {
  return {
    id: newEventId(),
    device,
    site: 'la-serena',
    type: 'alarm.panic',
    priority: 'alarm',
    time: new Date().toISOString(),
    clock: 'synced',
    boot_id: '5d1e0c7a-2b9e-4f41-a3c0-98e1f3d2a6b4',
    mono_ms: 1000 + seq,
    seq: ++seq,
    payload: { input: 'panic' },
    ...over,
  };
}
const topicOf = (e: VigiaEvent) => `vigia/${e.site}/${e.device}/events/${e.priority}/${e.type}`;

/** A device's connection: QoS 1 publishes, resent after a reconnect until acknowledged (as the uplink does). */
async function device(broker: Broker, id: string): Promise<MqttClient> {
  const c = await mqtt.connectAsync(broker.url, {
    clientId: `dev-${id}`,
    protocolVersion: 5,
    clean: false,
    properties: { sessionExpiryInterval: 3600 },
    reconnectPeriod: 200,
  });
  cleanups.push(() => c.endAsync(true));
  return c;
}

async function startIngest(broker: Broker, storeUrl: string, clientId = 'ingest-test') {
  const store = await openStore(storeUrl);
  const live: string[] = [];
  const ingest = new Ingest({ url: broker.url, store, logger: quiet, clientId, onStored: (e) => live.push(e.id) });
  await ingest.start();
  cleanups.push(async () => {
    await ingest.stop();
    await store.close();
  });
  return { store, ingest, live };
}

/** `vigia central ingest` in its own process, to be killed. */
function ingestProcess(broker: Broker, storeUrl: string): ChildProcess {
  const child = spawn(
    process.execPath,
    [CLI, 'central', 'ingest', '--broker', broker.url, '--store', storeUrl, '--client-id', 'ingest-kill', '--log-level', 'warn'],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  return child;
}

async function until(pred: () => Promise<boolean> | boolean, what: string, ms = 20_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A fresh store of each kind, by URL. */
const STORES: Array<[string, () => Promise<string>]> = [
  ['SQLite', async () => `sqlite:${join(mkdtempSync(join(tmpdir(), 'vigia-central-')), 'central.db')}`],
  [
    'PostgreSQL',
    async () => {
      const server = await startPostgres();
      cleanups.push(() => server.stop());
      return server.url;
    },
  ],
];

describe.each(STORES)('central ingest into %s', (_name, newStore) => {
  it('stores every event once however often it arrives, and keeps device state from status and health', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const { store, ingest, live } = await startIngest(broker, await newStore());
    const pole = await device(broker, 'pole-1');
    await pole.publishAsync(
      'vigia/la-serena/pole-1/status',
      JSON.stringify({ state: 'online', time: new Date().toISOString(), boot_id: 'b1', version: '0.1.0', profile: 'pole' }),
      {
        qos: 1,
        retain: true,
      },
    );
    const events = Array.from({ length: 50 }, () => event('pole-1'));
    events.push(
      event('pole-1', {
        type: 'health',
        priority: 'telemetry',
        payload: { uptime_s: 60, outbox: { depth: 3 } },
        geo: { lat: -29.9045, lon: -71.2489, fix: '3d', age_ms: 200 },
      }),
    );
    // Every event twice, and the first ten a third time after the others: the uplink's at-least-once.
    for (const e of [...events, ...events, ...events.slice(0, 10)]) await pole.publishAsync(topicOf(e), JSON.stringify(e), { qos: 1 });
    await until(() => ingest.stats().stored + ingest.stats().duplicates === 112 && ingest.stats().status === 1, 'all 112 messages and the status');
    expect(ingest.stats()).toMatchObject({ stored: 51, duplicates: 61, status: 1 });
    expect(await store.countEvents()).toBe(51);
    // The live feed got each new event once, after its commit.
    expect(live.sort()).toEqual(events.map((e) => e.id).sort());
    const stored = await store.events({ device: 'pole-1', limit: 1000 });
    expect(new Set(stored.map((s) => s.event.id))).toEqual(new Set(events.map((e) => e.id)));
    expect(stored.find((s) => s.event.type === 'health')!.event).toEqual(events[50]);
    const [row] = await store.devices();
    expect(row).toMatchObject({ site: 'la-serena', device: 'pole-1', state: 'online', boot_id: 'b1', profile: 'pole', last_seq: events[50]!.seq });
    expect(row!.health).toMatchObject({ uptime_s: 60, outbox: { depth: 3 }, clock: 'synced' });
    expect(row!.geo).toMatchObject({ lat: -29.9045, lon: -71.2489 });

    // The Last Will: the broker publishes it when the device vanishes.
    await pole.publishAsync('vigia/la-serena/pole-1/status', JSON.stringify({ state: 'offline', reason: 'lost' }), { qos: 1, retain: true });
    await until(async () => (await store.devices())[0]!.state === 'offline', 'offline');
    expect((await store.devices())[0]).toMatchObject({ state: 'offline', reason: 'lost', boot_id: 'b1' });
  });

  it('refuses what is not a valid event of the device that sent it, counts it, stores nothing of it, and keeps going', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const { store, ingest } = await startIngest(broker, await newStore());
    const pole = await device(broker, 'pole-2');
    const good = event('pole-2');
    const bad: Array<[string, string | Buffer]> = [
      ['vigia/la-serena/pole-2/events/alarm/alarm.panic', 'not json {'],
      ['vigia/la-serena/pole-2/events/alarm/alarm.panic', JSON.stringify([1, 2])],
      ['vigia/la-serena/pole-2/events/alarm/alarm.panic', JSON.stringify({ ...event('pole-2'), id: 'nope' })],
      ['vigia/la-serena/pole-2/events/alarm/alarm.panic', JSON.stringify({ ...event('pole-2'), seq: -1 })],
      // Another device's event published with this device's credentials (topic).
      ['vigia/la-serena/pole-2/events/alarm/alarm.panic', JSON.stringify(event('pole-9'))],
      ['vigia/la-serena/pole-2/events/hit/alarm.panic', JSON.stringify(event('pole-2'))],
      ['vigia/la-serena/pole-2/events/alarm/alarm.panic', Buffer.alloc(4 * 1024 * 1024 + 1, 32)],
      ['vigia/la-serena/pole-2/status', JSON.stringify({ state: 'sleeping' })],
    ];
    for (const [topic, payload] of bad) await pole.publishAsync(topic, payload, { qos: 1 });
    await pole.publishAsync(topicOf(good), JSON.stringify(good), { qos: 1 });
    // Refusals come on the connections of their topics (alarm, hit, status), each at its own pace.
    const refusedTotal = () => Object.values(ingest.stats().refused).reduce((a, b) => a + b, 0);
    await until(() => ingest.stats().stored === 1 && refusedTotal() === bad.length, 'the good event and every refusal');
    expect(ingest.stats().refused).toEqual({ topic: 0, too_large: 1, not_json: 2, envelope: 3, mismatch: 2 });
    expect((await store.events()).map((s) => s.event.id)).toEqual([good.id]);
  });

  it('loses nothing when the ingest is killed mid-stream and started again', async () => {
    const broker = await startMosquitto({ persistence: true });
    cleanups.push(() => broker.stop());
    const url = await newStore();
    let child = ingestProcess(broker, url);
    // Another connection to the same store, to watch it fill.
    const store = await openStore(url);
    cleanups.push(() => store.close());
    const pole = await device(broker, 'pole-3');
    // The ingest's session exists (it has stored a probe) before the stream starts: what is
    // published before anyone subscribed is nobody's to lose.
    const probes: string[] = [];
    await until(async () => {
      const probe = event('pole-3', { type: 'health', priority: 'telemetry' });
      probes.push(probe.id);
      await pole.publishAsync(topicOf(probe), JSON.stringify(probe), { qos: 1 });
      await sleep(100);
      return (await store.countEvents()) > 0;
    }, 'the ingest subscribed');
    await sleep(300);
    const before = (await store.events({ limit: 10_000 })).map((s) => s.event.id);
    expect(probes).toEqual(expect.arrayContaining(before));
    const total = 3000;
    const ids: string[] = [...before];
    let killed = false;
    for (let i = 0; i < total; i++) {
      if (i % 20 === 0) await sleep(2); // a stream, not one burst
      const e = event('pole-3', i % 7 === 0 ? { type: 'plate.hit', priority: 'hit', payload: { plate: 'BBCL12' } } : {});
      ids.push(e.id);
      await pole.publishAsync(topicOf(e), JSON.stringify(e), { qos: 1 });
      if (!killed && (await store.countEvents()) > before.length + 300) {
        // Mid-stream: hard kill, some messages delivered and not yet acknowledged.
        killed = true;
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
        child = ingestProcess(broker, url);
      }
    }
    expect(killed).toBe(true);
    await until(async () => (await store.countEvents()) === ids.length, `${ids.length} events stored`, 60_000);
    const stored = await store.events({ limit: 10_000 });
    expect(new Set(stored.map((s) => s.event.id))).toEqual(new Set(ids));
    expect(await store.events({ plate: 'bbcl12', limit: 10_000 })).toHaveLength(Math.ceil(total / 7));
  });

  it('loses nothing when the broker restarts mid-stream', async () => {
    const broker = await startMosquitto({ persistence: true });
    cleanups.push(() => broker.stop());
    const { store } = await startIngest(broker, await newStore(), 'ingest-restart');
    const pole = await device(broker, 'pole-4');
    const total = 2000;
    const ids: string[] = [];
    const pending: Array<Promise<unknown>> = [];
    for (let i = 0; i < total; i++) {
      const e = event('pole-4');
      ids.push(e.id);
      // Not awaited one by one: the device keeps sending while the broker is away (MQTT.js resends).
      pending.push(pole.publishAsync(topicOf(e), JSON.stringify(e), { qos: 1 }));
      if (i === 700) {
        await broker.kill('SIGTERM');
        await broker.restart();
      }
    }
    await Promise.all(pending);
    await until(async () => (await store.countEvents()) === total, `${total} events stored`, 60_000);
    expect(new Set((await store.events({ limit: 10_000 })).map((s) => s.event.id))).toEqual(new Set(ids));
  });
});

describe('central store', () => {
  it.each(STORES)('%s: purges by retention per priority and per type', async (_name, newStore) => {
    const store = await openStore(await newStore());
    cleanups.push(() => store.close());
    const day = 24 * 3600 * 1000;
    const now = Date.now();
    const put = (type: string, priority: Priority, ageDays: number) => store.addEvent(event('pole-5', { type, priority }), now - ageDays * day);
    await put('alarm.panic', 'alarm', 400);
    await put('plate.read', 'read', 10);
    await put('plate.read', 'read', 40);
    await put('health', 'telemetry', 20);
    await put('gps.fix_acquired', 'telemetry', 20);
    const retention = parseRetention('telemetry=14d,health=30d');
    expect(retention.byPriority.alarm).toBe(DEFAULT_RETENTION.byPriority.alarm);
    expect(await store.purge(retention, now)).toBe(2); // the 40-day read, the 20-day fix (health kept: its own 30 days)
    expect((await store.events()).map((s) => s.event.type).sort()).toEqual(['alarm.panic', 'health', 'plate.read']);
  });

  it.each(STORES)('%s: hands out what was stored after a given arrival, in the order it was stored', async (_name, newStore) => {
    const store = await openStore(await newStore());
    cleanups.push(() => store.close());
    const events = Array.from({ length: 6 }, () => event('pole-7'));
    for (const e of events.slice(0, 3)) expect(await store.addEvent(e, Date.now())).toBe('stored');
    expect(await store.addEvent(events[1]!, Date.now())).toBe('duplicate');
    // Out of device order: the center's order is the order of arrival.
    for (const e of events.slice(3).reverse()) await store.addEvent(e, Date.now());
    const all = await store.eventsSince(0);
    expect(all.map((s) => s.event.id)).toEqual([...events.slice(0, 3), ...events.slice(3).reverse()].map((e) => e.id));
    expect(all.map((s) => s.arrival)).toEqual([...all.map((s) => s.arrival)].sort((a, b) => a - b));
    const rest = await store.eventsSince(all[2]!.arrival);
    expect(rest.map((s) => s.event.id)).toEqual(all.slice(3).map((s) => s.event.id));
    expect(await store.eventsSince(all[5]!.arrival)).toEqual([]);
    expect((await store.eventsSince(0, 2)).map((s) => s.event.id)).toEqual(all.slice(0, 2).map((s) => s.event.id));
  });

  it.each(STORES)('%s: keeps an audit trail the database itself refuses to change', async (_name, newStore) => {
    const url = await newStore();
    const store = await openStore(url);
    cleanups.push(() => store.close());
    await store.addAudit({ at: 1000, user: 'ana', role: 'operator', action: 'login', target: 'ana', remote: '10.0.0.7' });
    await store.addAudit({
      at: 2000,
      user: 'ana',
      role: 'operator',
      action: 'alarm.ack',
      target: 'la-serena/pole-1',
      remote: '10.0.0.7',
      detail: { alarm_id: 'x' },
    });
    const trail = await store.audit();
    expect(trail.map((a) => [a.action, a.at, a.detail])).toEqual([
      ['alarm.ack', 2000, { alarm_id: 'x' }],
      ['login', 1000, undefined],
    ]);
    // Straight at the database, bypassing the store: no UPDATE, no DELETE.
    const tries = ["UPDATE audit SET username = 'eve'", 'DELETE FROM audit'];
    if (url.startsWith('sqlite:')) {
      const db = new Database(url.slice('sqlite:'.length));
      for (const sql of tries) expect(() => db.prepare(sql).run(), sql).toThrow(/append-only/);
      db.close();
    } else {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      for (const sql of [...tries, 'TRUNCATE audit']) await expect(c.query(sql), sql).rejects.toThrow(/append-only/);
      await c.end();
    }
    expect(await store.audit()).toHaveLength(2);
  });

  it('refuses retention and store URLs it does not understand', async () => {
    expect(() => parseRetention('read=soon')).toThrow(/NAME=Nd/);
    expect(() => parseRetention('read=0d')).toThrow(/more than 0/);
    await expect(openStore('redis://x')).rejects.toThrow(/unknown store URL/);
  });

  it('parses status and events by topic', () => {
    const e = event('pole-6');
    expect(parseMessage('vigia', topicOf(e), Buffer.from(JSON.stringify(e)))).toEqual({ kind: 'event', event: e });
    expect(parseMessage('vigia', 'vigia/la-serena/pole-6/status', Buffer.alloc(0))).toEqual({
      kind: 'status',
      site: 'la-serena',
      device: 'pole-6',
      status: null,
    });
    expect(parseMessage('vigia', 'other/la-serena/pole-6/status', Buffer.from('{}'))).toMatchObject({ kind: 'refused', reason: 'topic' });
    expect(parseMessage('vigia', 'vigia/la-serena/pole-6/cmd/alarm.ack', Buffer.from('{}'))).toMatchObject({ kind: 'refused', reason: 'topic' });
    // RabbitMQ 3.x delivers the type's dots as levels: the same event.
    const dotted = topicOf(e);
    expect(e.type).toContain('.');
    const asLevels = `${dotted.slice(0, dotted.lastIndexOf(e.type))}${e.type.replaceAll('.', '/')}`;
    expect(parseMessage('vigia', asLevels, Buffer.from(JSON.stringify(e)))).toEqual({ kind: 'event', event: e });
    // ...but the levels must still spell the envelope's type.
    expect(parseMessage('vigia', `${asLevels}/extra`, Buffer.from(JSON.stringify(e)))).toMatchObject({ kind: 'refused', reason: 'mismatch' });
  });

  it('reads a command name from its topic whether the broker kept the dots or made them levels', () => {
    const t = topicsFor('vigia', 'la-serena', 'pole-6');
    expect(t.commands).toBe('vigia/la-serena/pole-6/cmd/#');
    expect(t.commandName('vigia/la-serena/pole-6/cmd/hotlist.delta')).toBe('hotlist.delta');
    expect(t.commandName('vigia/la-serena/pole-6/cmd/hotlist/delta')).toBe('hotlist.delta');
    expect(t.commandName('vigia/la-serena/pole-6/cmd/ping')).toBe('ping');
    // The device's own replies come back on `cmd/#` (MQTT 3.1.1 has no No Local): never commands.
    expect(t.commandName('vigia/la-serena/pole-6/cmd/ping/reply')).toBeUndefined();
    expect(t.commandName('vigia/la-serena/pole-6/cmd/alarm/ack/reply')).toBeUndefined();
    expect(t.commandName('vigia/la-serena/pole-6/cmd//ping')).toBeUndefined();
    expect(t.commandName('vigia/la-serena/pole-7/cmd/ping')).toBeUndefined();
  });
});
