// The call center's side. Ingest: events stored per second from a broker queue, into SQLite
// (synchronous full and normal) and a real PostgreSQL server, with one event in ten a duplicate
// (the uplink's at-least-once), against a subscriber that only counts and acknowledges on the
// ingest's own receive path (src/central/receiver.ts, as many messages in flight: the broker's
// delivery ceiling), measured in the same run; MQTT.js doing the same is shown beside it. The loop: a real pole (daemon, simulated
// GPIO), the console in Chromium: press to screen and acknowledgement to LED, p99, each beside its
// baseline without the center (press to a plain subscriber; a command straight to the pole).
//
//   npm run bench -- central [--quick]      (--quick: 5,000 events per run instead of 20,000)
//
// For each run the events are queued on Mosquitto for the ingest's persistent sessions (one per
// priority class, sharing commits) while it is away, then the ingest connects and the
// time to store them all (group commits, each message acknowledged after its commit) is measured. Three runs per store, the median kept. The last line is one JSON object.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import { Ingest } from '../src/central/ingest.js';
import { Receiver } from '../src/central/receiver.js';
import { openStore } from '../src/central/service.js';
import { newEventId, type VigiaEvent } from '../src/core/event.js';
import { createLogger } from '../src/core/logger.js';
import { CommandSender } from '../src/central/commands.js';
import { startCentralRig, OPERATORS } from '../tests/helpers/central-rig.js';
import { TEST_KEY } from '../tests/helpers/daemon.js';
import { startPostgres } from '../tests/helpers/postgres.js';
import { startBenchBroker } from './lib/broker.js';
import { median, percentile, ratio, round } from './lib/stats.js';
import { fmt, table } from './lib/table.js';

const QUICK = process.argv.includes('--quick');
const N = QUICK ? 5_000 : 20_000;
const RUNS = 3;
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const quiet = createLogger('silent');

/** N messages over 50 devices: 90% new events (alarms, hits, reads, telemetry), 10% repeats of earlier ones. */
function messages(): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const seqs = new Map<string, number>();
  const kinds = [
    ['read', 'plate.read', { camera: 'lane-1', plate_hash: 'ab'.repeat(32), hash: 'hmac-sha256', confidence: 0.93, frames: 4 }],
    ['telemetry', 'health', { uptime_s: 3600, outbox: { depth: 0 } }],
    ['hit', 'camera.online', { camera: 'lane-1' }],
    ['alarm', 'alarm.panic', { input: 'panic', press: 1 }],
  ] as const;
  const sent: Array<[string, string]> = [];
  for (let i = 0; out.length < N; i++) {
    if (i % 10 === 9 && sent.length > 0) {
      out.push(sent[Math.floor(sent.length / 2)]!);
      continue;
    }
    const device = `pole-${i % 50}`;
    const seq = (seqs.get(device) ?? 0) + 1;
    seqs.set(device, seq);
    const [priority, type, payload] = kinds[i % kinds.length]!;
    const e: VigiaEvent = {
      id: newEventId(),
      device,
      site: 'la-serena',
      type,
      priority,
      time: new Date().toISOString(),
      clock: 'synced',
      boot_id: '5d1e0c7a-2b9e-4f41-a3c0-98e1f3d2a6b4',
      mono_ms: i,
      seq,
      payload: { ...payload },
    };
    const m: [string, string] = [`vigia/la-serena/${device}/events/${priority}/${type}`, JSON.stringify(e)];
    out.push(m);
    sent.push(m);
  }
  return out;
}

/** Queues the messages for `clientId`'s persistent session (created first, then left). */
async function queue(url: string, clientId: string, msgs: Array<[string, string]>): Promise<void> {
  const sub = await mqtt.connectAsync(url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600 } });
  await sub.subscribeAsync({ 'vigia/+/+/events/#': { qos: 1 }, 'vigia/+/+/status': { qos: 1 } });
  await sub.endAsync();
  const pub = await mqtt.connectAsync(url, { clientId: `${clientId}-pub`, protocolVersion: 5 });
  await Promise.all(msgs.map(([t, p]) => pub.publishAsync(t, p, { qos: 1 })));
  await pub.endAsync();
}

/**
 * Seconds for a plain subscriber to take the queue, counting and acknowledging, storing nothing:
 * on the ingest's receive path (the ceiling it is measured against), or on MQTT.js, which takes a
 * connection's messages one at a time but acknowledges at once when nothing is stored.
 */
async function drainBaseline(url: string, client: 'receiver' | 'mqttjs'): Promise<number> {
  const clientId = `baseline-${newEventId()}`;
  const msgs = messages();
  await queue(url, clientId, msgs);
  let got = 0;
  let done: () => void = () => undefined;
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const t0 = performance.now();
  if (client === 'receiver') {
    const r = new Receiver({
      url,
      clientId,
      topics: ['vigia/+/+/events/#', 'vigia/+/+/status'],
      logger: quiet,
      sessionExpiryInterval: 3600,
      receiveMaximum: 1000,
      handler: async () => {
        if (++got === msgs.length) done();
      },
    });
    await r.start();
    await all;
    const s = (performance.now() - t0) / 1000;
    await r.stop();
    return s;
  }
  const c = mqtt.connect(url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 3600, receiveMaximum: 1000 } });
  c.on('message', () => {
    if (++got === msgs.length) done();
  });
  await all;
  const s = (performance.now() - t0) / 1000;
  await c.endAsync();
  return s;
}

/** Seconds for the ingest to store the queue (its sessions made first, then left while the queue fills). */
async function drainIngest(
  url: string,
  storeUrl: string,
  opts: { synchronous?: 'full' | 'normal' } = {},
): Promise<{ seconds: number; stored: number; duplicates: number }> {
  const clientId = `ingest-${newEventId()}`;
  const store = await openStore(storeUrl, opts);
  const first = new Ingest({ url, store, logger: quiet, clientId });
  await first.start();
  await first.stop();
  const msgs = messages();
  const pub = await mqtt.connectAsync(url, { clientId: `${clientId}-pub`, protocolVersion: 5 });
  await Promise.all(msgs.map(([t, p]) => pub.publishAsync(t, p, { qos: 1 })));
  await pub.endAsync();
  const ingest = new Ingest({ url, store, logger: quiet, clientId });
  const t0 = performance.now();
  await ingest.start();
  while (ingest.stats().stored + ingest.stats().duplicates < msgs.length) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - t0) / 1000;
  const { stored, duplicates } = ingest.stats();
  await ingest.stop();
  await store.close();
  return { seconds, stored, duplicates };
}

/**
 * The loop with a real pole and a real browser: press to the alarm on the operator's screen, and
 * the operator's click on "acknowledge" to the pole's LED; beside each, in the same run, the part
 * without the center's side: press to the event at a plain MQTT subscriber, and a command signed
 * and published straight to the pole to its LED.
 */
async function loop(presses: number) {
  const rig = await startCentralRig();
  const samples = { toScreen: [] as number[], toBroker: [] as number[], ackToLed: [] as number[], directToLed: [] as number[] };
  try {
    const page = await rig.operatorPage(OPERATORS[0][0], OPERATORS[0][2]);
    const watcher = await mqtt.connectAsync(rig.broker.url, { clientId: 'bench-watch', protocolVersion: 5 });
    await watcher.subscribeAsync('vigia/test-site/pole-0001/events/alarm/alarm.panic', { qos: 1 });
    const direct = new CommandSender({ url: rig.broker.url, auth: 'hmac-sha256', key: TEST_KEY, clientId: 'bench-direct' });
    await direct.start();
    const ledIs = async (mode: string) => {
      const deadline = Date.now() + 10_000;
      while ((await rig.outputs()).button_led!.pattern.mode !== mode) {
        if (Date.now() > deadline) throw new Error(`the LED never went ${mode}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    for (let i = 0; i < presses; i++) {
      let atBroker = 0;
      let alarmId = '';
      const seen = new Promise<void>((resolve) =>
        watcher.once('message', (_t, payload) => {
          atBroker = performance.now();
          alarmId = (JSON.parse(payload.toString()) as { id: string }).id;
          resolve();
        }),
      );
      const t0 = performance.now();
      await rig.press(true);
      await page.waitForSelector(`.alarm[data-device="pole-0001"][data-state="raised"]`, { timeout: 10_000 });
      samples.toScreen.push(performance.now() - t0);
      await seen;
      samples.toBroker.push(atBroker - t0);
      await rig.press(false);
      // Half the acknowledgements from the console, half straight to the pole.
      const t1 = performance.now();
      if (i % 2 === 0) {
        await page.click(`#alarm-${alarmId} button.ack`);
        await ledIs('on');
        samples.ackToLed.push(performance.now() - t1);
      } else {
        await direct.send('test-site', 'pole-0001', 'alarm.ack', { alarm_id: alarmId, operator: 'bench' });
        await ledIs('on');
        samples.directToLed.push(performance.now() - t1);
      }
      await page.click(`#alarm-${alarmId} button.clear`);
      await ledIs('off');
      await page.waitForSelector(`#alarm-${alarmId}[data-state="cleared"]`);
    }
    await direct.stop();
    await watcher.endAsync();
    if (rig.problems.length > 0) throw new Error(`the console reported: ${rig.problems.join('; ')}`);
  } finally {
    await rig.stop();
  }
  return samples;
}

const broker = await startBenchBroker();
const pgServer = await startPostgres();
const dir = mkdtempSync(join(tmpdir(), 'vigia-bench-central-'));
try {
  const rates: Record<string, number[]> = { baseline: [], mqttjs: [], sqlite_full: [], sqlite_normal: [], postgres: [] };
  let checked = '';
  for (let run = 0; run < RUNS; run++) {
    log(`run ${run + 1}/${RUNS}: baselines, SQLite full, SQLite normal, PostgreSQL (${N} messages each)…`);
    rates.baseline!.push(N / (await drainBaseline(broker.url, 'receiver')));
    rates.mqttjs!.push(N / (await drainBaseline(broker.url, 'mqttjs')));
    for (const [name, storeUrl, opts] of [
      ['sqlite_full', `sqlite:${join(dir, `full-${run}.db`)}`, { synchronous: 'full' as const }],
      ['sqlite_normal', `sqlite:${join(dir, `normal-${run}.db`)}`, { synchronous: 'normal' as const }],
      ['postgres', pgServer.url, {}],
    ] as const) {
      const r = await drainIngest(broker.url, storeUrl, opts);
      rates[name]!.push(N / r.seconds);
      checked = `${r.stored} stored, ${r.duplicates} duplicates`;
    }
  }
  const PRESSES = QUICK ? 10 : 40;
  log(`the loop: ${PRESSES} presses on a real pole, acknowledged in Chromium (half) or straight (half)…`);
  const l = await loop(PRESSES);
  const p99 = (xs: number[]) => round(percentile(xs, 99), 1);
  const m = (k: string) => round(median(rates[k]!), 0);
  console.log(`Central ingest: ${N} messages from the broker's queue (10% duplicates), medians of ${RUNS} runs (last: ${checked})\n`);
  console.log(
    table(
      ['consumer', 'events/s', 'vs plain subscriber'],
      [
        ['plain subscriber (counts, acknowledges)', fmt(m('baseline')), '1.00'],
        ['plain subscriber on MQTT.js (one message at a time)', fmt(m('mqttjs')), fmt(ratio(m('mqttjs'), m('baseline')), 2)],
        ['ingest, SQLite synchronous=full', fmt(m('sqlite_full')), fmt(ratio(m('sqlite_full'), m('baseline')), 2)],
        ['ingest, SQLite synchronous=normal', fmt(m('sqlite_normal')), fmt(ratio(m('sqlite_normal'), m('baseline')), 2)],
        ['ingest, PostgreSQL (synchronous_commit on)', fmt(m('postgres')), fmt(ratio(m('postgres'), m('baseline')), 2)],
      ],
    ),
  );
  console.log(`\nThe loop (${PRESSES} presses; p50 / p99 ms)\n`);
  const row = (name: string, xs: number[]) => [name, fmt(round(percentile(xs, 50), 1), 1), fmt(p99(xs), 1)];
  console.log(
    table(
      ['path', 'p50', 'p99'],
      [
        row("press to the alarm on the operator's screen (Chromium)", l.toScreen),
        row('press to the event at a plain subscriber (baseline)', l.toBroker),
        row("click on acknowledge to the pole's LED", l.ackToLed),
        row('command straight to the pole to its LED (baseline)', l.directToLed),
      ],
    ),
  );
  console.log(
    JSON.stringify({
      ingest_events_per_s_sqlite: m('sqlite_full'),
      ingest_events_per_s_sqlite_normal: m('sqlite_normal'),
      ingest_events_per_s_postgres: m('postgres'),
      subscriber_events_per_s_baseline: m('baseline'),
      subscriber_events_per_s_mqttjs: m('mqttjs'),
      ingest_sqlite_vs_baseline: ratio(m('sqlite_full'), m('baseline')),
      ingest_postgres_vs_baseline: ratio(m('postgres'), m('baseline')),
      messages: N,
      duplicates_share: 0.1,
      press_to_screen_p99_ms: p99(l.toScreen),
      press_to_broker_p99_ms: p99(l.toBroker),
      press_to_screen_vs_broker_p99: ratio(p99(l.toScreen), p99(l.toBroker)),
      ack_to_led_p99_ms: p99(l.ackToLed),
      direct_command_to_led_p99_ms: p99(l.directToLed),
      ack_to_led_vs_direct_p99: ratio(p99(l.ackToLed), p99(l.directToLed)),
      presses: PRESSES,
      quick: QUICK,
    }),
  );
} finally {
  await broker.stop();
  await pgServer.stop();
  rmSync(dir, { recursive: true, force: true });
}
