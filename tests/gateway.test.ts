import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DaemonStatus } from '../src/status.js';
import { formatStatus } from '../src/status-format.js';
import { signCommand } from '../src/gateway/command-auth.js';
import { CommandClient } from './helpers/commander.js';
import { corruptOutboxTables } from './helpers/corrupt-outbox.js';
import { DaemonProcess, TEST_KEY, writeDeviceConfig } from './helpers/daemon.js';
import { startGate, type Gate } from './helpers/gate.js';
import { startMosquitto, type Broker } from './helpers/mosquitto.js';
import { Subscriber } from './helpers/subscriber.js';
import { makeTlsFiles } from './helpers/tls.js';

type Burst = { accepted: number; ids: string[]; first_seq: number; last_seq: number };

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(over: Record<string, unknown> = {}, { gated = false } = {}) {
  const broker = await startMosquitto();
  cleanups.push(() => broker.stop());
  let gate: Gate | undefined;
  if (gated) {
    gate = await startGate(broker.port);
    cleanups.push(() => gate!.stop());
  }
  const sub = new Subscriber(broker.url);
  await sub.connect();
  cleanups.push(() => sub.close());
  const cfg = writeDeviceConfig(`mqtt://127.0.0.1:${gate?.port ?? broker.port}`, over);
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  cleanups.push(() => daemon.kill('SIGKILL'));
  return { broker, gate, sub, cfg, daemon };
}

describe('gateway end to end (real daemon, real Mosquitto)', () => {
  it('delivers every event with its payload intact in one typed envelope, and announces itself', async () => {
    const { broker, sub, daemon } = await setup();
    await daemon.start();
    const payload = { text: 'Avenida Francisco de Aguirre ñandú ✓', n: 42, nested: { list: [1, 2.5, null, true] } };
    const r = await daemon.request<{ id: string; seq: number }>('sim.event', { type: 'sim.check', priority: 'hit', payload });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'event');
    const got = sub.events.find((e) => e.event.id === r.id)!;
    expect(got.topic).toBe('vigia/test-site/pole-0001/events/hit/sim.check');
    expect(got.event).toMatchObject({
      id: r.id,
      device: 'pole-0001',
      site: 'test-site',
      type: 'sim.check',
      priority: 'hit',
      clock: 'synced',
      seq: r.seq,
      payload,
    });
    expect(got.event.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Date.now() - Date.parse(got.event.time)).toBeLessThan(60_000);
    // A late subscriber gets the retained birth message, flagged as retained.
    const late = await mqtt.connectAsync(broker.url);
    const retained = await new Promise<{ retain: boolean; body: unknown }>((resolve) => {
      late.on('message', (_t, p, packet) => resolve({ retain: packet.retain, body: JSON.parse(p.toString()) }));
      void late.subscribeAsync('vigia/test-site/pole-0001/status');
    });
    await late.endAsync();
    expect(retained.retain).toBe(true);
    expect(retained.body).toMatchObject({ state: 'online', profile: 'pole' });

    const burst = await daemon.request<Burst>('sim.burst', { count: 2000, type: 'sim.bulk', priority: 'read' });
    await sub.waitFor(() => sub.missing(burst.ids).length === 0, 20_000, 'burst');
    expect(burst.last_seq - burst.first_seq).toBe(1999);

    await daemon.kill('SIGTERM'); // a clean stop says goodbye instead of leaving it to the Last Will
    await sub.waitFor(() => sub.other.some((m) => m.topic.endsWith('/status') && m.payload.toString().includes('"shutdown"')), 5_000, 'offline');
  });

  it('lets the broker announce "offline" through the Last Will when the daemon dies', async () => {
    const { sub, daemon } = await setup({ mqtt: { keepalive: '1s' } });
    await daemon.start();
    await daemon.kill('SIGKILL');
    await sub.waitFor(() => sub.other.some((m) => m.topic.endsWith('/status') && m.payload.toString().includes('"lost"')), 10_000, 'last will');
  });

  it('after an outage sends every alarm before any telemetry', async () => {
    const { gate, sub, daemon } = await setup({}, { gated: true });
    await gate!.close();
    await daemon.start();
    const telemetry = await daemon.request<Burst>('sim.burst', { count: 500, type: 'sim.tele', priority: 'telemetry' });
    const reads = await daemon.request<Burst>('sim.burst', { count: 300, type: 'sim.read', priority: 'read' });
    const alarms = await daemon.request<Burst>('sim.burst', { count: 100, type: 'sim.alarm', priority: 'alarm' });
    const status = await daemon.request<DaemonStatus>('status');
    expect(status.link.state).not.toBe('online');
    expect(status.outbox.depth).toBe(900);
    gate!.open();
    const all = [...telemetry.ids, ...reads.ids, ...alarms.ids];
    await sub.waitFor(() => sub.missing(all).length === 0, 30_000, 'drain');
    const order = sub.events.map((e) => e.event.priority);
    expect(order.lastIndexOf('alarm')).toBeLessThan(order.indexOf('read'));
    expect(order.lastIndexOf('read')).toBeLessThan(order.indexOf('telemetry'));
    // Within a class, oldest first.
    const alarmSeqs = sub.events.filter((e) => e.event.priority === 'alarm').map((e) => e.event.seq);
    expect(alarmSeqs).toEqual([...alarmSeqs].sort((a, b) => a - b));
  });

  it('loses nothing when the broker is SIGKILLed and restarted during a stream', async () => {
    const { broker, gate, sub, daemon } = await setup({}, { gated: true });
    await daemon.start();
    const accepted: string[] = [];
    let streaming = true;
    const stream = (async () => {
      while (streaming) {
        const b = await daemon.request<Burst>('sim.burst', { count: 250, type: 'sim.stream', priority: 'read' });
        accepted.push(...b.ids);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const connects = async () => (await daemon.request<DaemonStatus>('status')).link.connects;
    for (let round = 0; round < 4; round++) {
      await new Promise((r) => setTimeout(r, 300 + round * 150));
      const before = await connects();
      await broker.kill('SIGKILL');
      await gate!.close(); // the device may only come back once the call center listens again
      await new Promise((r) => setTimeout(r, 200));
      await broker.restart();
      await sub.resubscribed();
      gate!.open();
      // Each kill must be a real outage and a real reconnect, however slow the machine is.
      const deadline = Date.now() + 20_000;
      while ((await connects()) <= before) {
        if (Date.now() > deadline) throw new Error(`no reconnect after broker kill ${round + 1}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await new Promise((r) => setTimeout(r, 300));
    streaming = false;
    await stream;
    expect(accepted.length).toBeGreaterThanOrEqual(2000);
    await sub.waitFor(() => sub.missing(accepted).length === 0, 45_000, `all ${accepted.length} events`);
    const status = await daemon.request<DaemonStatus>('status');
    expect(status.link.connects).toBeGreaterThanOrEqual(5);
    console.log(`broker kills: ${accepted.length} accepted, all arrived, ${sub.duplicates()} duplicates, ${status.link.resent} resent`);
  });

  it('loses no accepted event when the daemon is SIGKILLed at random moments', async () => {
    const { sub, daemon } = await setup();
    const accepted: string[] = [];
    for (let round = 0; round < 5; round++) {
      await daemon.start();
      const killAt = Date.now() + 150 + Math.random() * 500;
      try {
        while (Date.now() < killAt + 1000) {
          if (Date.now() >= killAt) void daemon.kill('SIGKILL');
          const b = await daemon.request<Burst>('sim.burst', { count: 200, type: 'sim.crash', priority: round % 2 ? 'alarm' : 'read' });
          accepted.push(...b.ids); // acknowledged by the daemon: it must arrive
        }
      } catch {
        /* the daemon died mid-request: that burst was never acknowledged */
      }
      await daemon.kill('SIGKILL');
    }
    await daemon.start();
    await sub.waitFor(() => sub.missing(accepted).length === 0, 45_000, `all ${accepted.length} accepted events`);
    const seqs = accepted.map((id) => sub.events.find((e) => e.event.id === id)!.event.seq);
    expect(new Set(seqs).size).toBe(seqs.length); // sequence numbers survive restarts: never reused
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    console.log(`daemon kills: ${accepted.length} accepted, all arrived, ${sub.duplicates()} duplicates`);
  });

  it('moves a corrupt outbox aside at start and reports the loss as an event', async () => {
    const { sub, cfg, daemon } = await setup();
    mkdirSync(join(cfg.dir, 'data'), { recursive: true });
    writeFileSync(join(cfg.dir, 'data', 'outbox.db'), Buffer.alloc(8192, 0x42));
    await daemon.start();
    await sub.waitFor(() => sub.events.some((e) => e.event.type === 'system.outbox_corrupt'), 10_000, 'corruption report');
    expect(readdirSync(join(cfg.dir, 'data')).some((f) => f.startsWith('outbox.db.corrupt-'))).toBe(true);
    const r = await daemon.request<{ id: string }>('sim.event', { type: 'sim.after', priority: 'alarm' });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'event after recovery');
  });

  /** A running daemon that has accepted one signed ping; `before` is that command, for replaying it later. */
  async function startWithAcceptedCommand() {
    const rig = await setup();
    const { broker, daemon } = rig;
    await daemon.start();
    const commander = new CommandClient(broker.url, 'test-site', 'pole-0001');
    await commander.connect();
    cleanups.push(() => commander.close());
    await commander.ready();
    const before = commander.sign('ping');
    expect((await commander.send('ping', before)).ok).toBe(true);
    return { ...rig, commander, before };
  }

  it('keeps serving commands, and refuses their replays, after the outbox is found corrupt while running', async () => {
    const { sub, cfg, daemon, commander, before } = await startWithAcceptedCommand();

    const r0 = await daemon.request<{ id: string; seq: number }>('sim.event', { type: 'sim.before', priority: 'alarm' });
    await sub.waitFor(() => sub.byId.has(r0.id), 10_000, 'event before corruption');
    // Its deletion committed first: a later one would put fresh copies of the pages in the WAL, hiding the damage.
    await statusUntil(daemon, (s) => s.link.acked >= 1 && s.outbox.depth === 0, 'the delivered event deleted');
    // Events and nonces both unreadable: the nonces cannot be carried over into the fresh file.
    expect(corruptOutboxTables(join(cfg.dir, 'data', 'outbox.db'), ['events', 'nonces'])).toBeGreaterThan(0);
    const r = await daemon.request<{ id: string; seq: number }>('sim.event', { type: 'sim.after', priority: 'alarm' });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'event after recovery');
    expect(r.seq).toBeGreaterThan(r0.seq);
    await sub.waitFor(() => sub.events.some((e) => e.event.type === 'system.outbox_corrupt'), 10_000, 'system.outbox_corrupt');
    const corrupt = sub.events.find((e) => e.event.type === 'system.outbox_corrupt')!.event.payload as { moved_to: string };
    expect(corrupt.moved_to).toMatch(/outbox\.db\.corrupt-/);
    expect(readdirSync(join(cfg.dir, 'data')).some((f) => f.startsWith('outbox.db.corrupt-'))).toBe(true);

    const fresh = await commander.call('ping');
    expect(fresh.ok, JSON.stringify(fresh.error)).toBe(true);
    // The fresh file numbers events on from before the recovery: a sequence number never repeats.
    const r2 = await daemon.request<{ id: string; seq: number }>('sim.event', { type: 'sim.after', priority: 'alarm' });
    expect(r2.seq).toBeGreaterThan(r.seq);
    const replayed = await commander.send('ping', before);
    expect(replayed.error?.code).toBe('stale');
    expect(daemon.alive).toBe(true);
    // A restart does not forget it: the fresh file remembers when the nonces were lost.
    await daemon.kill('SIGTERM');
    await daemon.start();
    await commander.ready();
    expect((await commander.send('ping', before)).error?.code).toBe('stale');
    expect((await commander.call('ping')).ok).toBe(true);
  });

  it('refuses the command that finds the nonces corrupt, recovers the outbox and serves the next', async () => {
    const { cfg, daemon, commander, before } = await startWithAcceptedCommand();

    const r0 = await daemon.request<{ id: string; seq: number }>('sim.event', { type: 'sim.before', priority: 'alarm' });
    corruptOutboxTables(join(cfg.dir, 'data', 'outbox.db'), ['nonces']);
    expect((await commander.call('ping')).error?.code).toBe('failed');
    expect(readdirSync(join(cfg.dir, 'data')).some((f) => f.startsWith('outbox.db.corrupt-'))).toBe(true);
    // Recovered with no event in flight: the fresh file still numbers on from before.
    const r1 = await daemon.request<{ id: string; seq: number }>('sim.event', { type: 'sim.after', priority: 'alarm' });
    expect(r1.seq).toBeGreaterThan(r0.seq);
    expect((await commander.call('ping')).ok).toBe(true);
    expect((await commander.send('ping', before)).error?.code).toBe('stale');
    expect(daemon.alive).toBe(true);
  });

  it('evicts the lowest priority when the disk quota is reached, keeps every alarm, and reports it', async () => {
    const { gate, sub, daemon } = await setup({ outbox: { max_bytes: '400kB', alarm_reserve_bytes: '100kB' } }, { gated: true });
    await gate!.close();
    await daemon.start();
    await daemon.request<Burst>('sim.burst', { count: 3000, type: 'sim.tele', priority: 'telemetry' });
    const alarms = await daemon.request<Burst>('sim.burst', { count: 400, type: 'sim.alarm', priority: 'alarm' });
    const status = await daemon.request<DaemonStatus>('status');
    expect(status.outbox.evicted.telemetry.capacity).toBeGreaterThan(1000);
    expect(status.outbox.by_priority.alarm.depth).toBe(400);
    expect(status.outbox.bytes).toBeLessThanOrEqual(400_000 + 400 * 600);
    gate!.open();
    await sub.waitFor(() => sub.missing(alarms.ids).length === 0, 20_000, 'alarms');
    await sub.waitFor(() => sub.events.some((e) => e.event.type === 'system.outbox_evicted'), 20_000, 'eviction report');
    const report = sub.events.find((e) => e.event.type === 'system.outbox_evicted')!.event;
    expect(report.priority).toBe('hit');
    expect((report.payload as { evicted: { telemetry: { capacity: number } } }).evicted.telemetry.capacity).toBeGreaterThan(0);
  });

  it('reports evictions made just before a SIGKILL after the restart: every accepted event is delivered or reported evicted', async () => {
    const { gate, sub, daemon } = await setup({ outbox: { quota_bytes: { telemetry: '20kB' }, commit_max_events: 20 } }, { gated: true });
    await gate!.close(); // no broker: nothing leaves, the burst must evict
    await daemon.start();
    const burst = await daemon.request<Burst>('sim.burst', { count: 2000, type: 'sim.tele', priority: 'telemetry' });
    const evicted = (await daemon.request<DaemonStatus>('status')).outbox.evicted.telemetry.quota;
    expect(evicted).toBeGreaterThan(1000);
    await daemon.kill('SIGKILL'); // long before the periodic report would have been stored
    await daemon.start();
    gate!.open();
    const reports = () => {
      const unique = new Map(sub.events.filter((e) => e.event.type === 'system.outbox_evicted').map((e) => [e.event.id, e.event]));
      return [...unique.values()].map((e) => (e.payload as { evicted: { telemetry?: { quota?: number } } }).evicted.telemetry?.quota ?? 0);
    };
    const delivered = () => burst.accepted - sub.missing(burst.ids).length;
    const sum = (ns: number[]) => ns.reduce((a, b) => a + b, 0);
    await sub.waitFor(() => delivered() + sum(reports()) >= burst.accepted, 30_000, 'every accepted event delivered or reported evicted');
    expect(reports()[0]).toBe(evicted); // the first report after the restart: exactly what was evicted before the kill
    expect(delivered() + sum(reports())).toBe(burst.accepted); // never lost, never reported twice
  });

  it('marks events unsynced before the clock syncs and corrects them before sending', async () => {
    const { gate, sub, daemon } = await setup({ clock: { sync_source: 'never' } }, { gated: true });
    await gate!.close();
    await daemon.start();
    const before = await daemon.request<{ id: string }>('sim.event', { type: 'sim.early', priority: 'read' });
    await daemon.request('sim.clock_sync');
    const after = await daemon.request<{ id: string }>('sim.event', { type: 'sim.late', priority: 'read' });
    gate!.open();
    await sub.waitFor(() => sub.byId.has(before.id) && sub.byId.has(after.id), 10_000, 'events');
    const early = sub.events.find((e) => e.event.id === before.id)!.event;
    const late = sub.events.find((e) => e.event.id === after.id)!.event;
    expect(early).toMatchObject({ clock: 'synced', clock_corrected: true });
    expect(Math.abs(Date.parse(early.time) - Date.now())).toBeLessThan(30_000);
    expect(late.clock).toBe('synced');
    expect(late.clock_corrected).toBeUndefined();
  });

  it('sends periodic health telemetry', async () => {
    const { sub, daemon } = await setup({ telemetry: { interval: '300ms' } });
    await daemon.start();
    await sub.waitFor(() => sub.events.some((e) => e.event.type === 'health'), 10_000, 'health');
    const h = sub.events.find((e) => e.event.type === 'health')!.event;
    expect(h.priority).toBe('telemetry');
    expect(h.payload).toMatchObject({ outbox: { depth: expect.any(Number) }, link: { state: 'online' }, clock_synced: true });
    expect((h.payload as { disk_free_bytes: number }).disk_free_bytes).toBeGreaterThan(0);
    expect((h.payload as { mem: { rss_bytes: number } }).mem.rss_bytes).toBeGreaterThan(0);
  });
});

/** Polls `vigia status` until `pred` holds: a condition, never a duration. */
async function statusUntil(daemon: DaemonProcess, pred: (s: DaemonStatus) => boolean, what: string, timeoutMs = 20_000): Promise<DaemonStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await daemon.request<DaemonStatus>('status');
    if (pred(status)) return status;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: link ${JSON.stringify(status.link)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('refused publishes (MQTT 5 PUBACK reason codes >= 0x80)', () => {
  it('frees the window on a refusal, keeps and retries the refused events, still sends a panic alarm, and shows the refusals', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-acl-'));
    // Mosquitto answers a QoS 1 publish its ACL denies with PUBACK 0x87 (not authorized) under MQTT 5.
    const acl = join(dir, 'acl');
    writeFileSync(acl, ['topic readwrite #', 'topic deny vigia/+/+/events/read/#', 'topic deny vigia/+/+/events/alarm/sim.refused', ''].join('\n'));
    const broker = await startMosquitto({ extraConfig: [`acl_file ${acl}`, 'max_inflight_messages 8'] });
    cleanups.push(() => broker.stop());
    const sub = new Subscriber(broker.url);
    await sub.connect();
    cleanups.push(() => sub.close());
    const cfg = writeDeviceConfig(broker.url, { hardware: { backend: 'sim', inputs: { panic: { line: 'GPIO17', kind: 'panic' } } } });
    const daemon = new DaemonProcess(cfg.file, cfg.socket);
    cleanups.push(() => daemon.kill('SIGKILL'));
    await daemon.start();
    // The broker's receive maximum, known once the link is up (the control socket answers before).
    expect((await statusUntil(daemon, (s) => s.link.state === 'online', 'the link')).link.window).toBe(8);

    // Refused reads fill the non-alarm part of the window, a refused alarm the alarm lane.
    const reads = await daemon.request<Burst>('sim.burst', { count: 40, type: 'sim.read', priority: 'read' });
    const refusedAlarms = await daemon.request<Burst>('sim.burst', { count: 2, type: 'sim.refused', priority: 'alarm' });
    await daemon.request('sim.input', { input: 'panic', active: true });
    await sub.waitFor(() => sub.events.some((e) => e.event.type === 'alarm.panic'), 15_000, 'alarm.panic past the refused events');

    // Every refused event is retried (more refusals than events), and none is ever deleted.
    const refusedEvents = reads.ids.length + refusedAlarms.ids.length;
    // (The delivered panic's row goes with the next commit after its PUBACK: wait for that too.)
    let status = await statusUntil(
      daemon,
      (s) => (s.link.refused?.total ?? 0) > refusedEvents && s.outbox.by_priority.alarm.depth === refusedAlarms.ids.length,
      'retries of the refused events',
    );
    expect(status.link.refused.total).toBeGreaterThan(refusedEvents);
    expect(status.link.refused.by_reason).toEqual({ '0x87': status.link.refused.total });
    expect(status.link.refused.last_reason).toMatchObject({ code: '0x87', message: 'Not authorized' });
    expect(status.link.refused.waiting).toBeGreaterThan(0);
    expect(status.outbox.by_priority.read.depth).toBe(40);
    expect(status.outbox.by_priority.alarm.depth).toBe(2);
    expect(formatStatus(status)).toMatch(
      /refused\s+\d+ by the broker \(0x87 Not authorized: \d+\), last 0x87 Not authorized on sim\.(read|refused), \d+ waiting to retry/,
    );
    expect(sub.missing([...reads.ids, ...refusedAlarms.ids])).toHaveLength(reads.ids.length + refusedAlarms.ids.length);

    // Refusals that go on make the uplink reconnect (with backoff), and alarms still get through after it.
    status = await statusUntil(daemon, (s) => s.link.refused.reconnects > 0 && s.link.state === 'online', 'a reconnect after continued refusals');
    expect(status.link.connects).toBeGreaterThanOrEqual(2);
    const after = await daemon.request<{ id: string }>('sim.event', { type: 'sim.after', priority: 'alarm' });
    await sub.waitFor(() => sub.byId.has(after.id), 15_000, 'an alarm after the reconnect');
    expect((await daemon.request<DaemonStatus>('status')).outbox.by_priority.read.depth).toBe(40);
  });
});

describe('commands (signed, MQTT 5 request/response)', () => {
  let broker: Broker;
  let daemon: DaemonProcess;
  let client: mqtt.MqttClient;
  const base = 'vigia/test-site/pole-0001';
  const replyTopic = `${base}/reply/console-7`;
  const replies = new Map<string, { topic: string; body: Record<string, unknown> }>();
  const eventsTree: Array<{ topic: string; payload: string }> = [];

  beforeAll(async () => {
    broker = await startMosquitto();
    const cfg = writeDeviceConfig(broker.url);
    daemon = new DaemonProcess(cfg.file, cfg.socket);
    await daemon.start();
    client = mqtt.connect(broker.url, { protocolVersion: 5 });
    await new Promise((r) => client.once('connect', r));
    client.on('message', (topic, payload, packet) => {
      if (topic.startsWith(`${base}/events/`)) eventsTree.push({ topic, payload: payload.toString() });
      const corr = packet.properties?.correlationData?.toString();
      if (corr) replies.set(corr, { topic, body: JSON.parse(payload.toString()) as Record<string, unknown> });
    });
    await client.subscribeAsync(['test/replies', `${base}/reply/#`, `${base}/cmd/+/reply`, `${base}/events/#`], { qos: 1 });
    // Until the daemon's command subscription is live, publishes would be lost.
    await new Promise((r) => setTimeout(r, 300));
  });
  afterAll(async () => {
    client?.end(true);
    await daemon?.kill('SIGTERM');
    await broker?.stop();
  });

  type CommandReply = { ok: boolean; nonce?: string; result?: Record<string, unknown>; error?: { code: string; message: string } };

  async function exchange(name: string, payload: string | Buffer, responseTopic = replyTopic, corr = Math.random().toString(36).slice(2)) {
    await client.publishAsync(`${base}/cmd/${name}`, payload, { qos: 1, properties: { responseTopic, correlationData: Buffer.from(corr) } });
    const deadline = Date.now() + 5000;
    while (!replies.has(corr)) {
      if (Date.now() > deadline) throw new Error(`no reply to ${name}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const { topic, body } = replies.get(corr)!;
    return { topic, reply: body as CommandReply };
  }
  const call = async (name: string, payload: string | Buffer) => (await exchange(name, payload)).reply;
  const sign = (cmd: string, extra: Partial<Parameters<typeof signCommand>[0]> = {}) =>
    signCommand({ auth: 'hmac-sha256', key: TEST_KEY, site: 'test-site', device: 'pole-0001', cmd, ...extra });
  const nonceOf = (payload: string) => (JSON.parse((JSON.parse(payload) as { msg: string }).msg) as { nonce: string }).nonce;
  const refusals = async () => {
    const { rejected, replies_dropped } = (await daemon.request<DaemonStatus>('status')).commands;
    return { rejected: Object.values(rejected).reduce((a: number, b) => a + (b ?? 0), 0), dropped: replies_dropped ?? 0 };
  };

  it('answers a signed ping and outbox.stats on the response topic with the correlation data', async () => {
    const pong = await exchange('ping', sign('ping'));
    expect(pong.topic).toBe(replyTopic);
    expect(pong.reply).toMatchObject({ ok: true, cmd: 'ping', result: { pong: true } });
    const stats = await call('outbox.stats', sign('outbox.stats'));
    expect(stats.ok).toBe(true);
    expect(stats.result).toHaveProperty('byPriority');
  });

  it('refuses unsigned, forged, replayed, stale and misdirected commands', async () => {
    const inner = JSON.stringify({ v: 1, site: 'test-site', device: 'pole-0001', cmd: 'ping', ts: Date.now(), nonce: 'n'.repeat(20) });
    expect((await call('ping', JSON.stringify({ msg: inner }))).error?.code).toBe('unsigned');
    expect((await call('ping', sign('ping', { key: 'the-wrong-key-0123456789' }))).error?.code).toBe('bad_signature');
    const once = sign('ping');
    expect((await call('ping', once)).ok).toBe(true);
    expect((await call('ping', once)).error?.code).toBe('replayed');
    expect((await call('ping', sign('ping', { ts: Date.now() - 3_600_000 }))).error?.code).toBe('stale');
    expect((await call('ping', sign('ping', { device: 'pole-0002' }))).error?.code).toBe('wrong_target');
    expect((await call('ping', sign('outbox.stats'))).error?.code).toBe('wrong_target');
    expect((await call('nope', sign('nope'))).error?.code).toBe('unknown_command');
  });

  it('sends the refusal of an unverified message only to the fixed reply topic, never where the sender asks', async () => {
    const alarmTopic = `${base}/events/alarm/alarm.panic`;
    const unsigned = await exchange('ping', '{"panic":1}', alarmTopic);
    expect(unsigned.topic).toBe(`${base}/cmd/ping/reply`);
    expect(unsigned.reply.error?.code).toBe('unsigned');
    const forged = await exchange('ping', sign('ping', { key: 'the-wrong-key-0123456789' }), alarmTopic);
    expect(forged.topic).toBe(`${base}/cmd/ping/reply`);
    const once = sign('ping');
    expect((await exchange('ping', once)).reply.ok).toBe(true);
    const replayed = await exchange('ping', once, alarmTopic);
    expect(replayed).toMatchObject({ topic: `${base}/cmd/ping/reply`, reply: { error: { code: 'replayed' } } });
    // The daemon answers in order: once this verified reply is here, any stray publish would be too.
    expect((await call('ping', sign('ping'))).ok).toBe(true);
    expect(eventsTree.filter((m) => m.topic === alarmTopic || m.payload.includes('"cmd"'))).toEqual([]);
  });

  it('answers a verified command on its response topic only inside the device reply space', async () => {
    expect((await exchange('ping', sign('ping'), `${base}/reply/console-7/req-1`)).topic).toBe(`${base}/reply/console-7/req-1`);
    for (const outside of [
      'test/replies',
      `${base}/events/alarm/alarm.panic`,
      `${base}/status`,
      `${base}/cmd/outbox.stats`,
      `${base}/reply`,
      'vigia/test-site/pole-0002/reply/x',
    ]) {
      const answer = await exchange('ping', sign('ping'), outside);
      expect(answer.topic, outside).toBe(`${base}/cmd/ping/reply`);
      expect(answer.reply.ok, outside).toBe(true);
    }
    expect(eventsTree.filter((m) => m.payload.includes('"cmd"'))).toEqual([]);
  });

  it('names the nonce in refusals after verification', async () => {
    const badArgs = sign('ping', { args: { loud: true } });
    expect(await call('ping', badArgs)).toMatchObject({ ok: false, nonce: nonceOf(badArgs), error: { code: 'bad_args' } });
    const unknown = sign('nope');
    expect(await call('nope', unknown)).toMatchObject({ ok: false, nonce: nonceOf(unknown), error: { code: 'unknown_command' } });
  });

  it('survives 1000 random malformed payloads, refusing and counting each', async () => {
    let seed = 0x5eed;
    const rand = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
    const valid = sign('ping');
    const payloads: Buffer[] = [];
    for (let i = 0; i < 1000; i++) {
      const kind = i % 4;
      if (kind === 0) payloads.push(Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256))));
      else if (kind === 1) payloads.push(Buffer.from(JSON.stringify([rand(), { msg: rand() > 0.5 ? null : 5, sig: [] }, '__proto__'])));
      else if (kind === 2) {
        const b = Buffer.from(valid);
        const at = Math.floor(rand() * b.length);
        b[at] = b[at]! ^ (1 << Math.floor(rand() * 8));
        payloads.push(b);
      } else payloads.push(Buffer.from(valid.slice(0, Math.floor(rand() * valid.length))));
    }
    const before = await refusals();
    for (const p of payloads) client.publish(`${base}/cmd/ping`, p, { qos: 1 });
    const deadline = Date.now() + 20_000;
    let after = await refusals();
    while (after.rejected - before.rejected < 1000 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await refusals();
    }
    expect(after.rejected - before.rejected).toBe(1000);
    expect((await call('ping', sign('ping'))).ok).toBe(true); // still serving
  });

  it('answers a flood of unverified messages with at most a bucket of replies and counts the rest', async () => {
    const before = await refusals();
    const started = Date.now();
    for (let i = 0; i < 1000; i++) {
      client.publish(`${base}/cmd/ping`, `{"panic":${i}}`, {
        qos: 1,
        properties: { responseTopic: `${base}/events/alarm/alarm.panic`, correlationData: Buffer.from(`flood-${i}`) },
      });
    }
    let after = await refusals();
    const deadline = Date.now() + 20_000;
    while (after.rejected - before.rejected < 1000 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      after = await refusals();
    }
    expect(after.rejected - before.rejected).toBe(1000);
    expect((await call('ping', sign('ping'))).ok).toBe(true); // replies are sent in order: every flood reply is in
    const seconds = (Date.now() - started) / 1000;
    const answered = [...replies.keys()].filter((corr) => corr.startsWith('flood-')).length;
    // The bucket: 20 at once, 5 a second after that.
    expect(answered).toBeLessThanOrEqual(20 + Math.ceil(5 * seconds));
    expect(after.dropped - before.dropped).toBe(1000 - answered);
    expect(eventsTree.filter((m) => m.payload.includes('"cmd"'))).toEqual([]);
    // The journal gets a bucket's worth of lines too, not one per junk message.
    const logged = daemon.output.split('\n').filter((l) => l.includes('"msg":"command refused"') && l.includes('"bytes":1')).length;
    expect(logged).toBeLessThanOrEqual(20 + Math.ceil(5 * seconds));
  });
});

describe('inbound size limit (mqtt.max_inbound_bytes)', () => {
  const base = 'vigia/test-site/pole-0001';
  type Reply = { ok: boolean; nonce?: string; error?: { code: string } };
  const sign = (cmd: string, args?: Record<string, unknown>) =>
    signCommand({ auth: 'hmac-sha256', key: TEST_KEY, site: 'test-site', device: 'pole-0001', cmd, ...(args ? { args } : {}) });
  const nonceOf = (signed: string) => (JSON.parse((JSON.parse(signed) as { msg: string }).msg) as { nonce: string }).nonce;

  /** The call center's command side; replies are told apart by nonce (under 3.1.1 there is no correlation data). */
  async function commandSide(url: string) {
    const client = await mqtt.connectAsync(url, { protocolVersion: 5 });
    cleanups.push(() => client.endAsync(true));
    const replies: Reply[] = [];
    client.on('message', (_t, payload) => replies.push(JSON.parse(payload.toString()) as Reply));
    await client.subscribeAsync([`${base}/cmd/+/reply`, 'test/replies'], { qos: 1 });
    const publish = async (signed: string) => {
      await client.publishAsync(`${base}/cmd/ping`, signed, { qos: 1, properties: { responseTopic: 'test/replies', correlationData: Buffer.from('c') } });
      return nonceOf(signed);
    };
    const answered = async (nonce: string, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs;
      while (!replies.some((r) => r.nonce === nonce)) {
        if (Date.now() > deadline) throw new Error('no reply to ping');
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    // Pings until one is answered: then the daemon's command subscription is live.
    const warmUp = new Set<string>();
    for (let live = false; !live; ) {
      const nonce = await publish(sign('ping'));
      warmUp.add(nonce);
      live = await answered(nonce, 1000).then(
        () => true,
        () => false,
      );
    }
    /** Replies to anything but the warm-up pings (a late one included). */
    const testReplies = () => replies.filter((r) => !r.nonce || !warmUp.has(r.nonce));
    return { publish, answered, testReplies };
  }

  it('MQTT 5: announces a maximum packet size, so the broker never delivers an oversized command; a normal one still works', async () => {
    const { broker, daemon } = await setup();
    await daemon.start();
    const { publish, answered, testReplies } = await commandSide(broker.url);
    const before = await daemon.request<DaemonStatus>('status');
    // A signed command of 16 MiB: were it handed to the router it would be answered (refused with bad_args) and counted.
    await publish(sign('ping', { padding: 'x'.repeat(16 * 1024 * 1024) }));
    const small = await publish(sign('ping'));
    // Same publisher, same topic, QoS 1: delivered in order, so once the small one is answered the big one would have been.
    await answered(small);
    expect(testReplies()).toEqual([expect.objectContaining({ ok: true, nonce: small })]);
    const status = await daemon.request<DaemonStatus>('status');
    expect(status.commands).toMatchObject({ executed: before.commands.executed + 1, rejected: {} });
    expect(status.link.connects).toBe(1); // the broker dropped it: no packet too large for the client to choke on
  });

  it('MQTT 3.1.1: drops an oversized command on arrival, before parsing, and counts it; a normal one still works', async () => {
    const { broker, daemon } = await setup({ mqtt: { protocol: '3.1.1', max_inbound_bytes: '64KiB' } });
    await daemon.start();
    const { publish, answered, testReplies } = await commandSide(broker.url);
    const before = await daemon.request<DaemonStatus>('status');
    await publish(sign('ping', { padding: 'x'.repeat(100 * 1024) }));
    const small = await publish(sign('ping'));
    await answered(small);
    expect(testReplies()).toEqual([expect.objectContaining({ ok: true, nonce: small })]);
    const status = await daemon.request<DaemonStatus>('status');
    expect(status.link).toMatchObject({ protocol: '3.1.1', inbound_dropped: 1 });
    expect(status.commands).toMatchObject({ executed: before.commands.executed + 1, rejected: {} });
    expect(formatStatus(status)).toContain('1 oversized messages dropped');
  });
});

describe('TLS uplink', () => {
  it('connects with a CA and client certificate, and is refused without the certificate', async () => {
    const tls = makeTlsFiles();
    const broker = await startMosquitto({ tls: { ...tls, requireCertificate: true } });
    cleanups.push(() => broker.stop());
    const sub = new Subscriber(broker.url, 'vigia/#', 0, {
      ca: readFileSync(tls.caFile),
      cert: readFileSync(tls.clientCert),
      key: readFileSync(tls.clientKey),
    });
    await sub.connect();
    cleanups.push(() => sub.close());
    const good = writeDeviceConfig(broker.url.replace('127.0.0.1', 'localhost'), {
      mqtt: { tls: { ca: tls.caFile, cert: tls.clientCert, key: { file: tls.clientKey } } },
    });
    const daemon = new DaemonProcess(good.file, good.socket);
    cleanups.push(() => daemon.kill());
    await daemon.start();
    const r = await daemon.request<{ id: string }>('sim.event', { type: 'sim.tls', priority: 'alarm' });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'event over TLS');

    const bad = writeDeviceConfig(broker.url.replace('127.0.0.1', 'localhost'), { mqtt: { tls: { ca: tls.caFile } } });
    const refused = new DaemonProcess(bad.file, bad.socket);
    cleanups.push(() => refused.kill());
    await refused.start();
    await new Promise((res) => setTimeout(res, 1500));
    const status = await refused.request<DaemonStatus>('status');
    expect(status.link.state).not.toBe('online');
    expect(status.link.connects).toBe(0);
    expect(existsSync(bad.socket)).toBe(true);
  });
});

describe('MQTT 3.1.1 fallback and the demo broker', () => {
  it('falls back to 3.1.1 when the broker refuses MQTT 5 (the embedded aedes broker does)', async () => {
    const { freePort } = await import('./helpers/ports.js');
    const port = await freePort();
    const cfg = writeDeviceConfig(`mqtt://127.0.0.1:${port}`, { demo: { embedded_broker: { enabled: true, port } } });
    const daemon = new DaemonProcess(cfg.file, cfg.socket);
    cleanups.push(() => daemon.kill());
    await daemon.start();
    const sub = new Subscriber(`mqtt://127.0.0.1:${port}`, 'vigia/#', 1, { protocolVersion: 4 });
    await sub.connect();
    cleanups.push(() => sub.close());
    const r = await daemon.request<{ id: string }>('sim.event', { type: 'sim.v311', priority: 'alarm' });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'event over 3.1.1');
    const status = await daemon.request<DaemonStatus>('status');
    expect(status.link).toMatchObject({ state: 'online', protocol: '3.1.1', last_error: null });
  });
});

describe('broker authentication', () => {
  it('logs in with a username and a password read from a file, and never logs a secret', async () => {
    const { execFileSync } = await import('node:child_process');
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const dir = mkdtempSync(join(tmpdir(), 'vigia-auth-'));
    const password = 'S3cret-pole-password-9f2c';
    execFileSync('mosquitto_passwd', ['-b', '-c', join(dir, 'passwd'), 'pole-0001', password]);
    execFileSync('mosquitto_passwd', ['-b', join(dir, 'passwd'), 'center', 'center-pass']);
    const broker = await startMosquitto({ allowAnonymous: false, extraConfig: [`password_file ${join(dir, 'passwd')}`] });
    cleanups.push(() => broker.stop());
    const sub = new Subscriber(broker.url, 'vigia/#', 0, { username: 'center', password: 'center-pass' });
    await sub.connect();
    cleanups.push(() => sub.close());
    writeFileSync(join(dir, 'mqtt-password'), `${password}\n`);
    const cfg = writeDeviceConfig(broker.url, { log: { level: 'debug' }, mqtt: { username: 'pole-0001', password: { file: join(dir, 'mqtt-password') } } });
    const daemon = new DaemonProcess(cfg.file, cfg.socket);
    cleanups.push(() => daemon.kill());
    await daemon.start();
    const r = await daemon.request<{ id: string }>('sim.event', { type: 'sim.auth', priority: 'alarm' });
    await sub.waitFor(() => sub.byId.has(r.id), 10_000, 'authenticated delivery');

    const wrong = join(dir, 'wrong-password');
    writeFileSync(wrong, 'not-the-password');
    const badCfg = writeDeviceConfig(broker.url, { log: { level: 'debug' }, mqtt: { username: 'pole-0001', password: { file: wrong } } });
    const refused = new DaemonProcess(badCfg.file, badCfg.socket);
    cleanups.push(() => refused.kill());
    await refused.start();
    await new Promise((res) => setTimeout(res, 1000));
    const status = await refused.request<DaemonStatus>('status');
    expect(status.link.state).not.toBe('online');
    expect(status.link.last_error).toMatch(/Not authorized|Bad User Name or Password/i);

    await daemon.kill('SIGTERM');
    await refused.kill('SIGTERM');
    for (const out of [daemon.output, refused.output]) {
      expect(out.length).toBeGreaterThan(0);
      expect(out).not.toContain(password);
      expect(out).not.toContain('not-the-password');
      expect(out).not.toContain(TEST_KEY);
    }
  });
});
