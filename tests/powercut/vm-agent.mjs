#!/usr/bin/env node
// Runs inside the power-cut VM at every boot, as a technician's systemd would run the daemon:
// checks the outbox the last cut left on the virtio disk (PRAGMA integrity_check, read-only,
// before the daemon touches it), starts the real daemon (`node dist/cli.js run`) with its data
// directory on that disk, its panic button and LED on gpio-sim lines and its uplink to the
// host's Mosquitto, then drives it and tells the host, over a TCP channel to 10.0.2.2, exactly
// what the daemon acknowledged:
//   - bursts of synthetic events of every priority through the control socket (`sim.burst`
//     replies once the events are committed): their ids and sequence numbers;
//   - panic presses on the button's line: a press is acknowledged when the pole counts it in its
//     alarm (it does so once `alarm.panic` is committed), as (alarm id, press number);
//   - the daemon's WAL checkpoints as they start and end (its debug log), so the host can cut the
//     power in the middle of one.
// The host keeps the books; this side asserts nothing. Its plan is $VIGIA_RIG_OUT/powercut.json:
//   { boot, mode: 'load'|'drain', brokerPort, channelPort, synchronous, seed }
// In `drain` mode (the last boot, no cut) it waits for the outbox to empty and every eviction
// to be reported, then stops the daemon cleanly.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createSimDevice } from '../hardware/gpio-sim-chips.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const { controlRequest } = await import(join(ROOT, 'dist', 'gateway', 'control.js'));
const Database = createRequire(join(ROOT, 'package.json'))('better-sqlite3');

const OUT_DIR = process.env.VIGIA_RIG_OUT ?? '/tmp/rig-out';
const DISK = '/run/vigia-disk';
const HOST = '10.0.2.2';
const PANIC_LINE = 17;
const LED_LINE = 25;
const STROBE_LINE = 23;
const PRESS = 'pull-down'; // active-low button
const RELEASE = 'pull-up';

const plan = JSON.parse(readFileSync(join(OUT_DIR, 'powercut.json'), 'utf8'));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const uptimeMs = () => Math.round(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000);

// A small deterministic generator: the same seed gives the same load.
let seed = plan.seed >>> 0 || 1;
const random = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};

// ---------------------------------------------------------------------------------------------
// The channel to the host: JSON lines, one per fact.

const channel = connect(plan.channelPort, HOST);
channel.setNoDelay(true);
await new Promise((res, rej) => {
  channel.once('connect', res);
  channel.once('error', rej);
});
const send = (msg) => channel.write(`${JSON.stringify({ boot: plan.boot, ...msg })}\n`);
send({ ev: 'boot', uptime_ms: uptimeMs() });

// ---------------------------------------------------------------------------------------------
// What the last cut left: checked before the daemon opens (and recovers) it.

const dataDir = join(DISK, 'data');
const outboxFile = join(dataDir, 'outbox.db');
const before = { exists: existsSync(outboxFile), integrity: null, rows: null, maxSeq: null, wal_bytes: null, leftovers: [] };
if (before.exists) {
  try {
    const wal = `${outboxFile}-wal`;
    before.wal_bytes = existsSync(wal) ? readFileSync(wal).length : 0;
    const db = new Database(outboxFile, { readonly: true, fileMustExist: true });
    before.integrity = db.pragma('integrity_check', { simple: false }).map((r) => r.integrity_check);
    before.rows = db.prepare('SELECT count(*) AS n FROM events').get().n;
    db.close();
  } catch (err) {
    before.integrity = [`cannot check: ${err.message}`];
  }
}
// Files the daemon moves a corrupt outbox to: there must never be any.
if (existsSync(dataDir)) before.leftovers = readdirSync(dataDir).filter((f) => /corrupt/.test(f));
send({ ev: 'disk', ...before });

// ---------------------------------------------------------------------------------------------
// The pole's hardware and the daemon.

const sim = createSimDevice();
sim.soc.pull(PANIC_LINE, RELEASE);
sim.soc.pull(LED_LINE, 'pull-up');
sim.soc.pull(STROBE_LINE, 'pull-up');

const runDir = '/run/vigia';
mkdirSync(runDir, { recursive: true });
const socket = join(runDir, 'vigia.sock');
const config = {
  device: { id: 'pole-powercut', site: 'rig', profile: 'pole' },
  paths: { data_dir: dataDir, runtime_dir: runDir },
  // Debug: the checkpoint lines. The daemon's log goes to this agent only.
  log: { level: 'debug' },
  clock: { sync_source: 'assume-synced' },
  mqtt: { url: `mqtt://${HOST}:${plan.brokerPort}`, reconnect: { min_delay: '200ms', max_delay: '2s' } },
  outbox: {
    synchronous: plan.synchronous,
    // Small telemetry quota: bursts outrun the uplink, so the oldest telemetry is evicted and must be reported.
    quota_bytes: { telemetry: '48KiB' },
  },
  telemetry: { interval: '1h' },
  hardware: {
    backend: 'chardev',
    // The bursts: synthetic events through the control socket, next to the real button.
    synthetic_events: true,
    inputs: { panic: { line: `GPIO${PANIC_LINE}`, kind: 'panic', debounce: '10ms' } },
    outputs: { strobe: { line: `GPIO${STROBE_LINE}`, kind: 'strobe' }, button_led: { line: `GPIO${LED_LINE}`, kind: 'led' } },
  },
  pole: { led_output: 'button_led', strobe_output: 'strobe', led_received: 'on' },
};
const configFile = join(runDir, 'vigia.json');
writeFileSync(configFile, JSON.stringify(config));

const daemonStarted = uptimeMs();
const daemon = spawn(process.execPath, [join(ROOT, 'dist', 'cli.js'), 'run', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
let daemonExit;
const exited = new Promise((r) =>
  daemon.on('exit', (code, signal) => {
    daemonExit = { code, signal };
    r(daemonExit);
  }),
);
let started;
const ready = new Promise((r) => (started = r));
createInterface({ input: daemon.stdout }).on('line', (line) => {
  let entry;
  try {
    entry = JSON.parse(line);
  } catch {
    return send({ ev: 'log', line });
  }
  if (entry.msg === 'WAL checkpoint started') send({ ev: 'checkpoint', phase: 'start' });
  else if (entry.msg === 'WAL checkpoint done') send({ ev: 'checkpoint', phase: 'done', ms: entry.ms, frames: entry.frames });
  else if (entry.msg === 'started') started(entry);
  if (entry.level >= 40) send({ ev: 'log', line });
});
createInterface({ input: daemon.stderr }).on('line', (line) => send({ ev: 'log', line }));
exited.then((e) => send({ ev: 'daemon_exit', ...e }));

const first = await Promise.race([ready, exited.then(() => null)]);
if (!first) {
  await sleep(200);
  process.exit(1);
}
const status = () => controlRequest(socket, 'status', {}, 30_000);
const s0 = await status();
send({
  ev: 'ready',
  uptime_ms: uptimeMs(),
  daemon_start_ms: uptimeMs() - daemonStarted,
  outbox_depth: s0.outbox.depth,
  last_seq: s0.outbox.last_seq,
  unreported: s0.outbox.evictions_unreported,
});

// ---------------------------------------------------------------------------------------------
// Load: until the host pulls the plug.

const BURSTS = [
  { priority: 'alarm', count: [1, 4] },
  { priority: 'hit', count: [5, 20] },
  { priority: 'read', count: [50, 300] },
  { priority: 'telemetry', count: [200, 600] },
];

async function burstLoop() {
  for (;;) {
    const { priority, count } = BURSTS[Math.floor(random() * BURSTS.length)];
    const n = count[0] + Math.floor(random() * (count[1] - count[0] + 1));
    const r = await controlRequest(socket, 'sim.burst', { type: `sim.${priority}`, priority, count: n }, 60_000);
    send({ ev: 'acked', priority, ids: r.ids, first_seq: r.first_seq, last_seq: r.last_seq });
  }
}

async function pressLoop() {
  for (;;) {
    await sleep(300 + Math.floor(random() * 700));
    const before = (await status())['field-io'].pole;
    sim.soc.pull(PANIC_LINE, PRESS);
    const pressedAt = uptimeMs();
    let pole;
    do {
      await sleep(20);
      pole = (await status())['field-io'].pole;
    } while (pole.alarm_id === before.alarm_id && pole.alarm_presses === before.alarm_presses);
    send({ ev: 'press_acked', alarm_id: pole.alarm_id, press: pole.alarm_presses, ms: uptimeMs() - pressedAt });
    sim.soc.pull(PANIC_LINE, RELEASE);
    await sleep(50);
  }
}

async function drain() {
  for (;;) {
    const s = await status();
    const unreported = Object.values(s.outbox.evictions_unreported).length;
    if (s.outbox.depth === 0 && unreported === 0 && s.link.state === 'online' && s.link.inflight === 0) {
      send({ ev: 'drained', uptime_ms: uptimeMs(), last_seq: s.outbox.last_seq, checkpointer: s.outbox.checkpointer ?? null });
      break;
    }
    await sleep(500);
  }
  daemon.kill('SIGTERM');
  const e = await exited;
  send({ ev: 'stopped', ...e });
}

// A loop that fails says so and the others go on: the host decides what a failure means.
const report = (loop) => loop.catch((err) => send({ ev: 'error', message: err.message, daemon: daemonExit ?? null }));
if (plan.mode === 'drain') {
  await report(drain());
  await new Promise((r) => channel.end(r));
  process.exit(0);
}
await Promise.all([report(burstLoop()), report(pressLoop())]);
// Load boots end only by a cut.
await new Promise(() => undefined);
