import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { Ingest } from '../src/central/ingest.js';
import { openStore } from '../src/central/service.js';
import { newEventId, type VigiaEvent } from '../src/core/event.js';
import { createLogger } from '../src/core/logger.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { freePort } from './helpers/ports.js';

// Several ingest instances splitting the events (MQTT 5 shared subscriptions), and an ingest
// given the nodes of a cluster: the first one down, it takes the next.

const quiet = createLogger('silent');
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let seq = 0;
const event = (device: string): VigiaEvent => ({
  id: newEventId(),
  device,
  site: 'la-serena',
  type: 'plate.read',
  priority: 'read',
  time: new Date().toISOString(),
  clock: 'synced',
  boot_id: 'b',
  mono_ms: ++seq,
  seq,
  payload: { camera: 'lane-1', plate_hash: 'ab'.repeat(32), hash: 'hmac-sha256', confidence: 0.9 },
});

async function until(pred: () => Promise<boolean> | boolean, what: string, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('ingest at fleet scale', () => {
  it('splits the events between the instances of a share group, each stored once', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const store = await openStore(`sqlite:${join(mkdtempSync(join(tmpdir(), 'vigia-share-')), 'c.db')}`);
    cleanups.push(() => store.close());
    const ingests = ['ingest-a', 'ingest-b'].map((clientId) => new Ingest({ url: broker.url, store, logger: quiet, clientId, group: 'center' }));
    for (const i of ingests) {
      await i.start();
      cleanups.push(() => i.stop());
    }
    const dev = await mqtt.connectAsync(broker.url, { clientId: 'dev-share', protocolVersion: 5 });
    cleanups.push(() => dev.endAsync());
    const events = Array.from({ length: 2000 }, (_, i) => event(`gantry-${i % 20}`));
    await Promise.all(events.map((e) => dev.publishAsync(`vigia/la-serena/${e.device}/events/read/plate.read`, JSON.stringify(e), { qos: 1 })));
    await until(async () => (await store.countEvents()) === 2000, 'every event stored');
    const stored = ingests.map((i) => i.stats().stored);
    expect(stored.every((n) => n > 0)).toBe(true);
    expect(stored[0]! + stored[1]!).toBe(2000);
    expect(ingests.map((i) => i.stats().duplicates)).toEqual([0, 0]);
  });

  it('splits by priority class on a broker without shared subscriptions, each event stored once', async () => {
    const broker = await startMosquitto();
    cleanups.push(() => broker.stop());
    const store = await openStore(`sqlite:${join(mkdtempSync(join(tmpdir(), 'vigia-split-')), 'c.db')}`);
    cleanups.push(() => store.close());
    const alarms = new Ingest({ url: broker.url, store, logger: quiet, clientId: 'ingest-alarms', priorities: ['alarm', 'hit'] });
    const rest = new Ingest({ url: broker.url, store, logger: quiet, clientId: 'ingest-rest', priorities: ['read', 'telemetry'] });
    for (const i of [alarms, rest]) {
      await i.start();
      cleanups.push(() => i.stop());
    }
    const dev = await mqtt.connectAsync(broker.url, { clientId: 'dev-split', protocolVersion: 5 });
    cleanups.push(() => dev.endAsync());
    const reads = Array.from({ length: 300 }, () => event('gantry-s'));
    const panic = { ...event('pole-s'), type: 'alarm.panic', priority: 'alarm' as const, payload: { input: 'panic' } };
    for (const e of [...reads, panic]) await dev.publishAsync(`vigia/la-serena/${e.device}/events/${e.priority}/${e.type}`, JSON.stringify(e), { qos: 1 });
    await until(async () => (await store.countEvents()) === 301, 'every event stored');
    expect(alarms.stats().stored).toBe(1);
    expect(rest.stats().stored).toBe(300);
  });

  it('starts on the next node of the cluster when the first is down, and follows a node that dies', async () => {
    const [a, b] = [await startMosquitto({ persistence: true }), await startMosquitto({ persistence: true })];
    cleanups.push(
      () => a.stop(),
      () => b.stop(),
    );
    const dead = `mqtt://127.0.0.1:${await freePort()}`;
    const store = await openStore(`sqlite:${join(mkdtempSync(join(tmpdir(), 'vigia-nodes-')), 'c.db')}`);
    cleanups.push(() => store.close());
    const ingest = new Ingest({ url: dead, servers: [a.url, b.url], store, logger: quiet, clientId: 'ingest-nodes' });
    await ingest.start();
    cleanups.push(() => ingest.stop());
    const onA = await mqtt.connectAsync(a.url, { clientId: 'dev-a', protocolVersion: 5 });
    const first = event('gantry-a');
    await onA.publishAsync(`vigia/la-serena/gantry-a/events/read/plate.read`, JSON.stringify(first), { qos: 1 });
    await onA.endAsync();
    await until(async () => (await store.countEvents()) === 1, 'the event through the second node');
    await a.kill('SIGKILL');
    await until(() => ingest.stats().connected, 'connected again');
    const onB = await mqtt.connectAsync(b.url, { clientId: 'dev-b', protocolVersion: 5 });
    cleanups.push(() => onB.endAsync());
    const second = event('gantry-b');
    // Mosquitto nodes here are separate brokers, not a cluster: the event is published after the
    // ingest subscribed on b, which it does on every connection.
    await until(async () => {
      await onB.publishAsync(`vigia/la-serena/gantry-b/events/read/plate.read`, JSON.stringify(second), { qos: 1 });
      return (await store.events({ device: 'gantry-b' })).length === 1;
    }, 'the event through the third node');
  });
});
