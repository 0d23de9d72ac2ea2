// Outbox benchmark: durable enqueue rate, fsyncs and bytes per event, backlog drain, alarm latency
// under load, loss/duplicates across SIGKILLs and memory with a large backlog; plus the same figures
// for two baselines measured in the same run: MQTT.js publishing straight to the broker, and a local
// Mosquitto with persistence bridging to a central one.
//
//   npm run bench -- outbox [--quick]
//
// Progress goes to stderr; stdout gets the tables and, as its last line, one JSON object.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { onCleanup, runCleanups, scoped, trackChild, trackDir } from './lib/cleanup.mjs';
import { DaemonProcess, writeDeviceConfig } from './lib/daemon.mjs';
import { startGate } from './lib/gate.mjs';
import { freePort, mosquittoVersion, startMosquitto } from './lib/mosquitto.mjs';
import { envelope, READ_PAYLOAD_BYTES, streamId } from './lib/payload.mjs';
import { fmt, median, percentile, procMem, ratio, round, sleep, table } from './lib/stats.mjs';
import { nowMs, Subscriber } from './lib/subscriber.mjs';

const QUICK = process.argv.includes('--quick');
const HERE = import.meta.dirname;

const P = QUICK
  ? { enqueue: 10_000, enqueueRuns: 3, rateRuns: 3, drain: 10_000, alarms: 100, buffered: 100_000, kills: 3, streamRate: 5000 }
  : { enqueue: 100_000, enqueueRuns: 3, rateRuns: 3, drain: 100_000, alarms: 500, buffered: 1_000_000, kills: 5, streamRate: 5000 };
const FILL_CHUNK = 50_000;
const RSS_SETTLE_S = QUICK ? 5 : 10;
const ALARM_GAP_MS = 20; // mean gap between alarms (uniform 0.5x..1.5x)
const BACKGROUND_PER_S = 200;
const WINDOW = 64; // Vigía's default inflight_window; the MQTT.js producers use the same

const results = { quick: QUICK ? 1 : 0 };
const details = {}; // for the tables and notes only
const errors = [];
const log = (msg) => process.stderr.write(`${msg}\n`);

async function phase(name, fn) {
  const t0 = performance.now();
  log(`▶ ${name}`);
  try {
    await scoped(fn);
    log(`  ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } catch (err) {
    errors.push(`${name}: ${err?.message ?? err}`);
    log(`  ${name} FAILED: ${err?.stack ?? err}`);
  }
}

const tmp = (prefix) => trackDir(mkdtempSync(join(tmpdir(), prefix)));

/** Runs a node script as a child (optionally under strace); resolves with its stdout lines. */
function runNode(script, args, { prefix = [], timeoutMs = 300_000 } = {}) {
  return new Promise((resolve, reject) => {
    const cmd = prefix.length ? prefix[0] : process.execPath;
    const argv = prefix.length ? [...prefix.slice(1), process.execPath, script, ...args] : [script, ...args];
    const child = trackChild(spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr = (stderr + b).slice(-8000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout.trim().split('\n'));
      else reject(new Error(`${script} ${args.join(' ')} exited with ${code ?? signal}\n${stderr}`));
    });
  });
}
const lastJson = (lines) => JSON.parse(lines.at(-1));

// ---------------------------------------------------------------------------------------------
// strace: a real count of fsync/fdatasync calls

function straceCommand() {
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (probe.error) {
    log('strace is not installed: apt-get install -y strace');
    if (process.getuid?.() === 0) {
      log('  installing it (root): apt-get install -y strace');
      spawnSync('apt-get', ['install', '-y', 'strace'], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    if (spawnSync('strace', ['-V']).error) return null;
  }
  // --seccomp-bpf stops the tracee only on the traced calls, so the other syscalls run at full speed.
  const seccomp = spawnSync('strace', ['-f', '--seccomp-bpf', '-qq', '-e', 'trace=fsync', '-o', '/dev/null', 'true']).status === 0;
  details.straceSeccomp = seccomp;
  return ['strace', '-f', ...(seccomp ? ['--seccomp-bpf'] : []), '-qq', '-ttt', '-T', '-e', 'trace=fsync,fdatasync'];
}

/** Counts fsync/fdatasync calls in an `strace -f -ttt -o` log, in total and within [t0us, t1us]. */
function countSyncs(logFile, t0us, t1us) {
  let total = 0;
  let inPhase = 0;
  const durations = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    const m = /^(?:\d+\s+)?(\d+)\.(\d{6})\s+(fsync|fdatasync)\(/.exec(line);
    if (!m) continue; // "<... fsync resumed>" continuation lines and exit notices
    total++;
    const us = Number(m[1]) * 1e6 + Number(m[2]);
    if (us < t0us || us > t1us) continue;
    inPhase++;
    const d = /<(\d+\.\d+)>\s*$/.exec(line);
    if (d) durations.push(Number(d[1]) * 1000);
  }
  return { total, inPhase, durations };
}

// ---------------------------------------------------------------------------------------------
// 1. Enqueue: in-process Outbox, synchronous=full, group commit, concurrent producers

async function enqueuePhase() {
  let strace = straceCommand();
  if (!strace) details.fsyncNote = 'strace unavailable: fsync count not measured (apt-get install -y strace)';
  const runs = [];
  for (let i = 0; i < P.enqueueRuns; i++) {
    const dir = tmp('vigia-bench-enq-');
    const straceLog = join(dir, 'strace.log');
    const args = ['--file', join(dir, 'outbox.db'), '--events', String(P.enqueue)];
    let lines;
    try {
      lines = await runNode(join(HERE, 'lib/enqueue-child.mjs'), args, { prefix: strace ? [...strace, '-o', straceLog] : [] });
    } catch (err) {
      if (!strace) throw err;
      // e.g. ptrace not permitted in this container: measure the rest without it.
      log(`  strace failed (${err.message.split('\n').slice(0, 2).join(' ')}); continuing without it`);
      details.fsyncNote = 'strace could not trace the child here: fsync count not measured';
      strace = null;
      runs.length = 0;
      i = -1;
      continue;
    }
    const r = lastJson(lines);
    if (r.accepted !== P.enqueue || r.depth !== P.enqueue || r.evicted !== 0) {
      throw new Error(`enqueue run stored ${r.depth} of ${P.enqueue} (accepted ${r.accepted}, evicted ${r.evicted})`);
    }
    if (strace) Object.assign(r, { syncs: countSyncs(straceLog, r.t0_us, r.t1_us) });
    r.bytesSource = r.io.write_bytes > 0 ? 'write_bytes' : 'wchar';
    r.bytesPerEvent = (r.io.write_bytes > 0 ? r.io.write_bytes : r.io.wchar) / r.events;
    runs.push(r);
    log(
      `  run ${i + 1}: ${fmt(r.per_s)} accepts/s, ${r.commits} commits` +
        (r.syncs ? `, ${r.syncs.inPhase} fsync-type calls in the phase (${r.syncs.total} in the whole process)` : '') +
        `, ${fmt(r.bytesPerEvent)} B/event (${r.bytesSource})`,
    );
  }
  results.enqueue_per_s = round(median(runs.map((r) => r.per_s)));
  results.fsyncs_per_1000_events = strace ? round(median(runs.map((r) => (r.syncs.inPhase / r.events) * 1000)), 2) : null;
  results.bytes_written_per_event = round(median(runs.map((r) => r.bytesPerEvent)));
  results.enqueue_events = P.enqueue;
  const syncMs = runs.flatMap((r) => r.syncs?.durations ?? []);
  results.fsync_ms_p50 = syncMs.length ? round(percentile(syncMs, 50), 2) : null;
  results.fsync_ms_p99 = syncMs.length ? round(percentile(syncMs, 99), 2) : null;
  results.enqueue_commits_per_1000_events = round(median(runs.map((r) => (r.commits / r.events) * 1000)), 2);
  details.enqueue = runs;
  details.bytesSource = [...new Set(runs.map((r) => r.bytesSource))].join('/');
}

// ---------------------------------------------------------------------------------------------
// 2. Drain: backlog built while the broker is unreachable (gate closed), then the link opens

async function drainPhase() {
  const broker = await startMosquitto();
  onCleanup(() => broker.stop());
  const gate = await startGate(broker.port, { open: false });
  onCleanup(() => gate.stop());
  const sub = new Subscriber(broker.url);
  await sub.connect();
  onCleanup(() => sub.close());
  const cfg = writeDeviceConfig(`mqtt://127.0.0.1:${gate.port}`);
  onCleanup(() => cfg.remove());
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  onCleanup(() => daemon.kill('SIGKILL'));
  await daemon.start();

  const fillRates = [];
  for (let filled = 0; filled < P.drain; ) {
    const count = Math.min(FILL_CHUNK, P.drain - filled);
    const r = await daemon.request('sim.burst', { count, type: 'sim.drain', priority: 'read' }, 300_000);
    filled += r.accepted;
    fillRates.push(r.per_s);
  }
  const before = await daemon.request('status');
  if (before.outbox.depth !== P.drain) throw new Error(`backlog is ${before.outbox.depth}, expected ${P.drain}`);
  if (before.link.state === 'online') throw new Error('link is online while the gate is closed');

  let onlineAt;
  sub.onOther = (topic, payload, t) => {
    if (onlineAt === undefined && topic.endsWith('/status') && payload.includes('"online"')) onlineAt = t;
  };
  const openedAt = nowMs();
  gate.open();
  await sub.waitFor(() => sub.distinct >= P.drain, 600_000, `${P.drain} drained events`, 50);
  const after = await daemon.request('status');
  const start = onlineAt ?? sub.firstAt;
  results.drain_per_s = round(P.drain / ((sub.lastAt - start) / 1000));
  results.drain_events = P.drain;
  results.drain_from_gate_open_per_s = round(P.drain / ((sub.lastAt - openedAt) / 1000));
  results.drain_duplicates = sub.duplicates();
  results.daemon_burst_accept_per_s = round(median(fillRates));
  details.drain = { reconnectMs: start - openedAt, linkResent: after.link.resent, depthAfter: after.outbox.depth, window: after.link.window };
}

async function waitOnline(daemon, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await daemon.request('status')).link.state !== 'online') {
    if (Date.now() > deadline) throw new Error('the daemon did not get online');
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// 3. Alarm latency with background reads

/** Collects created→received latencies of alarm events (payload.t is the sender's wall time). */
function alarmCollector(sub) {
  const lat = [];
  sub.onEvent = (topic, payload, id, t) => {
    if (!topic.includes('/events/alarm/')) return;
    const e = JSON.parse(payload.toString());
    if (typeof e.payload?.t === 'number') lat.push(t - e.payload.t);
  };
  return lat;
}

const latencySummary = (lat) => ({ p50: round(percentile(lat, 50), 2), p99: round(percentile(lat, 99), 2), max: round(Math.max(...lat), 2), n: lat.length });

async function alarmPhase() {
  const broker = await startMosquitto();
  onCleanup(() => broker.stop());
  const sub = new Subscriber(broker.url);
  await sub.connect();
  onCleanup(() => sub.close());
  const cfg = writeDeviceConfig(broker.url);
  onCleanup(() => cfg.remove());
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  onCleanup(() => daemon.kill('SIGKILL'));
  await daemon.start();
  await waitOnline(daemon);

  const lat = alarmCollector(sub);
  const perTick = Math.round(BACKGROUND_PER_S / 50);
  let bgFailed = 0;
  const bg = setInterval(() => {
    daemon.request('sim.burst', { count: perTick, type: 'anpr.read', priority: 'read' }, 30_000).catch(() => bgFailed++);
  }, 20);
  onCleanup(() => clearInterval(bg));
  await sleep(500);
  const pending = [];
  const acceptLat = [];
  for (let k = 0; k < P.alarms; k++) {
    const t = nowMs();
    pending.push(daemon.request('sim.event', { type: 'sim.alarm', priority: 'alarm', payload: { t, k } }, 30_000).then(() => acceptLat.push(nowMs() - t)));
    await sleep(ALARM_GAP_MS * (0.5 + Math.random()));
  }
  await Promise.all(pending);
  await sub.waitFor(() => lat.length >= P.alarms, 30_000, `${P.alarms} alarms`);
  clearInterval(bg);
  const s = latencySummary(lat);
  results.alarm_latency_p50_ms = s.p50;
  results.alarm_latency_p99_ms = s.p99;
  results.alarm_latency_max_ms = s.max;
  results.alarms = s.n;
  // Created -> sim.event reply, which comes once the alarm is committed: the durable part of the path.
  results.alarm_accept_p50_ms = round(percentile(acceptLat, 50), 2);
  results.alarm_accept_p99_ms = round(percentile(acceptLat, 99), 2);
  details.alarmBackground = { failed: bgFailed, readsReceived: sub.received - s.n };
}

// ---------------------------------------------------------------------------------------------
// 4. Faults: the daemon is SIGKILLed and restarted several times during a stream. Odd-numbered
// kills happen after the uplink has been down for OUTAGE_MS (a backlog is waiting), even-numbered
// ones with the link up. The baselines go through the same schedule.

const OUTAGE_MS = 1000;
const isOutageKill = (k) => k % 2 === 1;
const gapBeforeKill = () => 1500 + Math.random() * 1000;

/**
 * The same kill schedule for every system: a random gap, and for outage kills the uplink cut
 * (gate closed) OUTAGE_MS before the kill. Returns whether this kill happens during an outage.
 */
async function approachKill(k, gate) {
  await sleep(gapBeforeKill());
  const outage = isOutageKill(k);
  if (outage) {
    await gate.close();
    await sleep(OUTAGE_MS);
  }
  return outage;
}

async function faultPhase() {
  const broker = await startMosquitto();
  onCleanup(() => broker.stop());
  const gate = await startGate(broker.port);
  onCleanup(() => gate.stop());
  const sub = new Subscriber(broker.url);
  await sub.connect();
  onCleanup(() => sub.close());
  const cfg = writeDeviceConfig(`mqtt://127.0.0.1:${gate.port}`);
  onCleanup(() => cfg.remove());
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  onCleanup(() => daemon.kill('SIGKILL'));
  await daemon.start();
  await waitOnline(daemon);

  const epochs = [[]];
  const inflight = new Set();
  let refused = 0;
  const perTick = P.streamRate / 10;
  const stream = setInterval(() => {
    if (!daemon.alive) return;
    const p = daemon
      // A short timeout: controlRequest only gives up on a daemon that died mid-request when its
      // timer fires (an EOF without a reply is not treated as an error).
      .request('sim.burst', { count: perTick, type: 'sim.stream', priority: 'read' }, 5_000)
      .then((r) => epochs.at(-1).push(...r.ids))
      .catch(() => refused++);
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  }, 100);
  onCleanup(() => clearInterval(stream));
  const restartMs = [];
  for (let k = 1; k <= P.kills; k++) {
    const outage = await approachKill(k, gate);
    await daemon.kill('SIGKILL');
    epochs.push([]);
    await sleep(200);
    const t = performance.now();
    await daemon.start();
    restartMs.push(performance.now() - t);
    if (outage) gate.open();
    await waitOnline(daemon); // the next interval starts with the link really up
  }
  await sleep(2000);
  clearInterval(stream);
  await Promise.allSettled([...inflight]);
  const accepted = epochs.flat();
  const t = performance.now();
  try {
    await sub.waitFor(() => sub.missing(accepted) === 0, 120_000, 'every accepted event', 250);
  } catch {
    /* counted below */
  }
  const catchUpMs = performance.now() - t;
  await sub.settle(1000, 10_000); // late duplicates
  const split = lossByKind(epochs, sub);
  results.lost = sub.missing(accepted);
  results.lost_link_up = split['link-up'];
  results.lost_in_outage = split.outage;
  results.duplicates = sub.duplicates();
  results.fault_accepted = accepted.length;
  results.fault_sigkills = P.kills;
  details.fault = { refused, received: sub.received, distinct: sub.distinct, restartMs: Math.round(median(restartMs)), catchUpMs: Math.round(catchUpMs) };
  log(`  ${accepted.length} accepted, ${results.lost} lost, ${results.duplicates} duplicates; restart ${details.fault.restartMs} ms (median), catch-up after the stream ${details.fault.catchUpMs} ms`);
}

// ---------------------------------------------------------------------------------------------
// 5. Memory with a large backlog (broker unreachable)

async function rssPhase() {
  const deadPort = await freePort(); // nothing listens there
  const cfg = writeDeviceConfig(`mqtt://127.0.0.1:${deadPort}`, {
    // The default budget (256 MiB) holds fewer than 1M events: make room so nothing is evicted.
    outbox: { max_bytes: '2GiB', quota_bytes: { read: '1800MiB' } },
  });
  onCleanup(() => cfg.remove());
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  onCleanup(() => daemon.kill('SIGKILL'));
  await daemon.start();
  const rssStart = procMem(daemon.pid, 'VmRSS');
  const rates = [];
  for (let filled = 0; filled < P.buffered; ) {
    const count = Math.min(FILL_CHUNK, P.buffered - filled);
    const r = await daemon.request('sim.burst', { count, type: 'sim.fill', priority: 'read' }, 600_000);
    filled += r.accepted;
    rates.push(r.per_s);
  }
  // V8 and malloc give the memory of the last 50k-event burst back over a few seconds: report the
  // steady state after RSS_SETTLE_S idle seconds, and the peak separately.
  const samples = [];
  for (let i = 0; i < RSS_SETTLE_S; i++) {
    await sleep(1000);
    samples.push(procMem(daemon.pid, 'VmRSS'));
  }
  log(`  VmRSS each second after the fill: ${samples.map((x) => Math.round(x)).join(' ')} MB; peak ${round(procMem(daemon.pid, 'VmHWM'), 1)} MB`);
  const status = await daemon.request('status');
  const evicted = Object.values(status.outbox.evicted).reduce((a, r) => a + Object.values(r).reduce((x, y) => x + y, 0), 0);
  if (evicted > 0) throw new Error(`${evicted} events were evicted while filling`);
  results.rss_mb_1m_buffered = round(samples.at(-1), 1);
  results.rss_right_after_fill_mb = round(samples[0], 1);
  results.rss_events_buffered = status.outbox.depth;
  results.rss_peak_mb = round(procMem(daemon.pid, 'VmHWM'), 1);
  results.rss_idle_mb = round(rssStart, 1);
  const dbFile = join(cfg.dir, 'data', 'outbox.db');
  let dbBytes = 0;
  for (const s of ['', '-wal']) {
    try {
      dbBytes += statSync(dbFile + s).size;
    } catch {
      /* no wal */
    }
  }
  results.outbox_file_mb_buffered = round(dbBytes / 2 ** 20, 1);

  // The same backlog held by a freshly started daemon (as after a reboot during an outage): no
  // memory left over from the filling bursts.
  await daemon.kill('SIGTERM');
  const t = performance.now();
  await daemon.start(120_000);
  results.restart_ms_buffered = round(performance.now() - t);
  await sleep(RSS_SETTLE_S * 1000);
  const again = await daemon.request('status');
  if (again.outbox.depth !== status.outbox.depth) throw new Error(`after a restart the backlog is ${again.outbox.depth}, was ${status.outbox.depth}`);
  results.rss_mb_buffered_after_restart = round(procMem(daemon.pid, 'VmRSS'), 1);
  log(`  after a restart with ${fmt(again.outbox.depth)} buffered: VmRSS ${results.rss_mb_buffered_after_restart} MB (up in ${results.restart_ms_buffered} ms)`);
  details.rss = { fillRates: rates, samples: samples.map((x) => Math.round(x)) };
}

// ---------------------------------------------------------------------------------------------
// Baselines

const PRODUCER = join(HERE, 'lib/mqtt-producer.mjs');

async function producerRates(url, sub, name) {
  const runs = [];
  for (let i = 0; i < P.rateRuns; i++) {
    sub.reset();
    const r = lastJson(await runNode(PRODUCER, ['rate', '--url', url, '--events', String(P.enqueue), '--window', String(WINDOW), '--name', name]));
    await sub.waitFor(() => sub.distinct >= P.enqueue, 300_000, `${P.enqueue} ${name} events at the subscriber`, 50);
    r.delivered_per_s = P.enqueue / ((sub.lastAt - r.t0_wall) / 1000);
    runs.push(r);
    log(`  ${name} run ${i + 1}: ${fmt(r.per_s)} publishes/s acknowledged, ${fmt(r.delivered_per_s)}/s delivered`);
  }
  return { publish: median(runs.map((r) => r.per_s)), delivered: median(runs.map((r) => r.delivered_per_s)), body: runs[0].body_bytes };
}

async function producerLatency(url, sub, name) {
  sub.reset();
  const lat = alarmCollector(sub);
  await runNode(PRODUCER, ['latency', '--url', url, '--alarms', String(P.alarms), '--gap-ms', String(ALARM_GAP_MS), '--background', String(BACKGROUND_PER_S), '--name', name]);
  await sub.waitFor(() => lat.length >= P.alarms, 30_000, `${P.alarms} ${name} alarms`);
  sub.onEvent = undefined;
  return latencySummary(lat);
}

/** MQTT.js producers SIGKILLed mid-stream (through a gate for the outage kills): events handed to publish() that never arrive. */
async function mqttjsKillRuns(url, sub, gate) {
  const lost = { 'link-up': 0, outage: 0 };
  let handedTotal = 0;
  for (let run = 1; run <= P.kills; run++) {
    sub.reset();
    const child = trackChild(
      spawn(process.execPath, [PRODUCER, 'stream', '--url', `mqtt://127.0.0.1:${gate.port}`, '--rate', String(P.streamRate), '--run', String(run), '--name', 'mqttjs'], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    let handed = 0;
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c) => {
      buf += c;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const m = /^H (\d+)$/.exec(buf.slice(0, nl));
        if (m) handed = Number(m[1]);
        buf = buf.slice(nl + 1);
      }
    });
    const closed = new Promise((r) => child.once('close', r));
    await sub.waitFor(() => handed > 0, 10_000, 'the producer to start');
    const kind = (await approachKill(run, gate)) ? 'outage' : 'link-up';
    child.kill('SIGKILL');
    await closed; // every "H" line written before the kill has been read
    gate.open();
    await sub.settle(1000, 10_000);
    let missing = 0;
    for (let seq = 1; seq <= handed; seq++) if (!sub.byId.has(streamId(run, seq))) missing++;
    lost[kind] += missing;
    handedTotal += handed;
    log(`  mqttjs kill ${run} (${kind}): ${missing} of ${handed} handed to publish() never arrived`);
  }
  return { lost: lost['link-up'] + lost.outage, lostLinkUp: lost['link-up'], lostOutage: lost.outage, handed: handedTotal };
}

async function mqttjsPhase() {
  const broker = await startMosquitto();
  onCleanup(() => broker.stop());
  const sub = new Subscriber(broker.url);
  await sub.connect();
  onCleanup(() => sub.close());
  const rates = await producerRates(broker.url, sub, 'mqttjs');
  results.mqttjs_publish_per_s = round(rates.publish);
  results.mqttjs_delivered_per_s = round(rates.delivered);
  const lat = await producerLatency(broker.url, sub, 'mqttjs');
  results.mqttjs_alarm_latency_p50_ms = lat.p50;
  results.mqttjs_alarm_latency_p99_ms = lat.p99;
  results.mqttjs_alarm_latency_max_ms = lat.max;
  const gate = await startGate(broker.port);
  onCleanup(() => gate.stop());
  const k = await mqttjsKillRuns(broker.url, sub, gate);
  results.mqttjs_lost_on_sigkill = k.lost;
  results.mqttjs_lost_on_sigkill_link_up = k.lostLinkUp;
  results.mqttjs_lost_on_sigkill_in_outage = k.lostOutage;
  results.mqttjs_handed_on_sigkill = k.handed;
  results.mqttjs_sigkills = P.kills;
  details.mqttjsBody = rates.body;
}

/** Waits until a message published on `local` shows up at central (the bridge is up). */
async function waitForBridge(localUrl, sub, timeoutMs = 20_000) {
  const client = mqtt.connect(localUrl, { protocolVersion: 5, reconnectPeriod: 100, clientId: `bench-probe-${process.pid}-${Date.now()}` });
  client.on('error', () => {});
  const tag = `probe-${Math.random().toString(16).slice(2)}`;
  let seen = false;
  const prev = sub.onOther;
  sub.onOther = (topic, payload, t) => {
    if (payload.toString() === tag) seen = true;
    prev?.(topic, payload, t);
  };
  try {
    const deadline = Date.now() + timeoutMs;
    while (!seen) {
      if (Date.now() > deadline) throw new Error('the bridge did not come up');
      if (client.connected) client.publish('vigia/bench/probe', tag, { qos: 1 });
      await sleep(200);
    }
  } finally {
    sub.onOther = prev;
    await new Promise((r) => client.end(true, {}, r));
  }
}

/** A local Mosquitto with persistence, bridging vigia/# (QoS 1, cleansession false) to centralPort. */
function startLocalBridge(centralPort) {
  return startMosquitto({
    persistence: true,
    autosaveInterval: 1,
    extraConfig: [
      'connection central',
      `address 127.0.0.1:${centralPort}`,
      'topic vigia/# out 1',
      'cleansession false',
      `clientid bench-bridge-${centralPort}`,
      'bridge_protocol_version mqttv311',
      'try_private false',
      'notifications false',
      'start_type automatic',
      'restart_timeout 1',
    ],
  });
}

/** Splits ids acknowledged before each kill into epochs, so a loss can be pinned to the kill that caused it. */
function lossByKind(epochs, sub) {
  const out = { 'link-up': 0, outage: 0, after: 0 };
  epochs.forEach((ids, i) => {
    const kind = i < P.kills ? (isOutageKill(i + 1) ? 'outage' : 'link-up') : 'after';
    out[kind] += sub.missing(ids);
  });
  return out;
}

async function bridgePhase() {
  const central = await startMosquitto();
  onCleanup(() => central.stop());
  const sub = new Subscriber(central.url);
  await sub.connect();
  onCleanup(() => sub.close());
  {
    const local = await startLocalBridge(central.port);
    await waitForBridge(local.url, sub);
    try {
      const rates = await producerRates(local.url, sub, 'bridge');
      results.bridge_publish_per_s = round(rates.publish);
      results.bridge_delivered_per_s = round(rates.delivered);
      const lat = await producerLatency(local.url, sub, 'bridge');
      results.bridge_alarm_latency_p50_ms = lat.p50;
      results.bridge_alarm_latency_p99_ms = lat.p99;
      results.bridge_alarm_latency_max_ms = lat.max;
    } finally {
      await local.stop();
    }
  }

  // A fresh local broker whose bridge goes through a gate (the uplink that can drop). It is
  // SIGKILLed mid-stream and restarted; count what it had PUBACKed that never reached central.
  sub.reset();
  const gate = await startGate(central.port);
  onCleanup(() => gate.stop());
  const local = await startLocalBridge(gate.port);
  onCleanup(() => local.stop());
  await waitForBridge(local.url, sub);
  sub.reset();
  const epochs = [[]];
  const client = mqtt.connect(local.url, { protocolVersion: 5, reconnectPeriod: 100, clean: true, clientId: `bench-bridge-stream-${process.pid}` });
  client.on('error', () => {});
  onCleanup(() => new Promise((r) => client.end(true, {}, r)));
  await new Promise((r) => client.once('connect', r));
  let seq = 0;
  const t0 = performance.now();
  const topic = 'vigia/bench/bridge/events/read/anpr.read';
  const stream = setInterval(() => {
    const target = Math.floor(((performance.now() - t0) / 1000) * P.streamRate);
    while (seq < target) {
      const id = streamId(0x100, ++seq);
      client.publish(topic, envelope(seq, 'anpr.read', 'read', { n: seq }, 'bridge', id), { qos: 1 }, (err) => {
        if (!err) epochs.at(-1).push(id);
      });
    }
  }, 10);
  onCleanup(() => clearInterval(stream));
  for (let k = 1; k <= P.kills; k++) {
    const outage = await approachKill(k, gate);
    await local.kill('SIGKILL');
    epochs.push([]);
    await sleep(200);
    await local.start();
    if (outage) gate.open();
    await waitForBridge(local.url, sub); // the next interval starts with the bridge really up
  }
  await sleep(2000);
  clearInterval(stream);
  const handed = seq;
  await sleep(1000); // let the producer's own queue reach the broker
  // A probe published now arrives at central once the restarted bridge is up and has sent what
  // was queued before it; then wait for the flow to go quiet.
  const t = performance.now();
  await waitForBridge(local.url, sub, 60_000).catch(() => log('  bridge probe did not arrive within 60 s'));
  const acked = epochs.flat();
  await sub.waitFor(() => sub.missing(acked) === 0, 5000, 'bridge flush', 250).catch(() => sub.settle(3000, 30_000));
  const flushMs = performance.now() - t;
  const split = lossByKind(epochs, sub);
  results.bridge_lost_on_sigkill = sub.missing(acked);
  results.bridge_lost_on_sigkill_link_up = split['link-up'];
  results.bridge_lost_on_sigkill_in_outage = split.outage;
  results.bridge_duplicates = sub.duplicates();
  results.bridge_acked_on_sigkill = acked.length;
  results.bridge_sigkills = P.kills;
  details.bridge = { handed, received: sub.received, split, flushMs: Math.round(flushMs) };
  log(`  bridge: ${results.bridge_lost_on_sigkill} of ${acked.length} PUBACKed never reached central (link up ${split['link-up']}, outage ${split.outage}, after the last kill ${split.after}); ${results.bridge_duplicates} duplicates`);
}

// ---------------------------------------------------------------------------------------------

function report() {
  const r = results;
  const v = (x, d = 0) => fmt(x ?? null, d);
  const lostCell = (lost, of, up, outage, kills) => (lost == null ? '–' : `${fmt(lost)} of ${fmt(of)} (up ${fmt(up)} / outage ${fmt(outage)}, ${kills} kills)`);
  const out = [];
  out.push('');
  out.push(`Vigía outbox benchmark${QUICK ? ' (--quick: small counts)' : ''} — ${new Date().toISOString()}`);
  out.push('');
  out.push(
    table(
      ['system', 'accepts/s', 'delivered/s', 'alarm p50 ms', 'alarm p99 ms', 'lost (SIGKILL)', 'duplicates', 'fsyncs/1k ev', 'bytes/event', 'RSS MB'],
      [
        ['vigia', v(r.enqueue_per_s), v(r.drain_per_s), v(r.alarm_latency_p50_ms, 2), v(r.alarm_latency_p99_ms, 2), lostCell(r.lost, r.fault_accepted, r.lost_link_up, r.lost_in_outage, r.fault_sigkills), v(r.duplicates), v(r.fsyncs_per_1000_events, 2), r.bytes_written_per_event == null ? '–' : `${fmt(r.bytes_written_per_event)} (${details.bytesSource})`, r.rss_mb_1m_buffered == null ? '–' : `${v(r.rss_mb_1m_buffered, 1)} @ ${fmt(r.rss_events_buffered)} buffered`],
        ['mqttjs-direct', v(r.mqttjs_publish_per_s), v(r.mqttjs_delivered_per_s), v(r.mqttjs_alarm_latency_p50_ms, 2), v(r.mqttjs_alarm_latency_p99_ms, 2), lostCell(r.mqttjs_lost_on_sigkill, r.mqttjs_handed_on_sigkill, r.mqttjs_lost_on_sigkill_link_up, r.mqttjs_lost_on_sigkill_in_outage, r.mqttjs_sigkills), '–', '–', '–', '–'],
        ['mosquitto-bridge', v(r.bridge_publish_per_s), v(r.bridge_delivered_per_s), v(r.bridge_alarm_latency_p50_ms, 2), v(r.bridge_alarm_latency_p99_ms, 2), lostCell(r.bridge_lost_on_sigkill, r.bridge_acked_on_sigkill, r.bridge_lost_on_sigkill_link_up, r.bridge_lost_on_sigkill_in_outage, r.bridge_sigkills), v(r.bridge_duplicates), '–', '–', '–'],
      ],
    ),
  );
  out.push('');
  out.push('How each figure was measured:');
  out.push(`  accepts/s     vigia: Outbox.accept() resolved (committed, synchronous=full) per second, ${fmt(P.enqueue)} events with a ${READ_PAYLOAD_BYTES}-byte payload` +
    ` (${details.enqueue?.[0]?.body_bytes ?? '?'}-byte envelope), ${details.enqueue?.[0]?.producers ?? '?'} producers x ${details.enqueue?.[0]?.window ?? '?'} outstanding, median of ${P.enqueueRuns} runs`);
  out.push(`                baselines: QoS 1 publishes acknowledged (PUBACK) per second, ${fmt(P.enqueue)} events of ${details.mqttjsBody ?? '?'} bytes, window ${WINDOW}, median of ${P.rateRuns} runs (no durability for mqttjs-direct)`);
  out.push(`  delivered/s   vigia: backlog of ${fmt(r.drain_events)} drained after the link opens, first status=online to last event at the subscriber` +
    (r.drain_from_gate_open_per_s ? ` (${fmt(r.drain_from_gate_open_per_s)}/s counting from the gate opening, reconnect ${fmt(details.drain?.reconnectMs)} ms)` : ''));
  out.push('                baselines: the same publish runs, first publish to last event at the subscriber (central broker for the bridge)');
  out.push(`  alarm p50/p99 ${P.alarms} alarms ~${ALARM_GAP_MS} ms apart with ${BACKGROUND_PER_S} reads/s in the background; created (sender wall time) -> received by a subscriber`);
  out.push(`                vigia: sent through the control socket (sim.event); created -> durable (the sim.event reply) p50 ${v(r.alarm_accept_p50_ms, 2)} / p99 ${v(r.alarm_accept_p99_ms, 2)} ms`);
  out.push(`  lost          stream of ${fmt(P.streamRate)} events/s, ${P.kills} SIGKILLs, each ${fmt(1500)}-${fmt(2500)} ms after the system is back up (link included);`);
  out.push(`                odd-numbered kills after the uplink has been down ${OUTAGE_MS} ms ("outage"), the others with the link up ("up")`);
  out.push('                vigia: ids acknowledged by sim.burst replies that never reached the subscriber; the daemon is restarted after each kill');
  out.push('                mqttjs-direct: events handed to publish() that never arrived; a new producer process per kill');
  out.push(`                mosquitto-bridge: events PUBACKed by the local broker (Mosquitto ${mosquittoVersion()}, persistence true, autosave_interval 1, bridge QoS 1 cleansession false)`);
  out.push('                that never reached central; the local broker is restarted after each kill');
  out.push(`  fsyncs/1k ev  fsync+fdatasync calls counted by strace${details.straceSeccomp ? ' --seccomp-bpf' : ''} -f during the enqueue phase only` +
    (details.enqueue?.[0]?.syncs ? ` (whole child incl. open/close: ${details.enqueue.map((e) => e.syncs.total).join(', ')})` : '') +
    (details.fsyncNote ? ` — ${details.fsyncNote}` : ''));
  if (r.fsync_ms_p50 != null) out.push(`                time in one fsync/fdatasync call (strace -T) during the phase: p50 ${v(r.fsync_ms_p50, 2)} ms, p99 ${v(r.fsync_ms_p99, 2)} ms`);
  out.push(`  bytes/event   /proc/<pid>/io ${details.bytesSource ?? '?'} delta of the enqueue child during the phase / events`);
  out.push(`  RSS MB        VmRSS of the daemon with ${fmt(r.rss_events_buffered)} events buffered (broker unreachable), filled by sim.burst x ${fmt(FILL_CHUNK)}, read ${RSS_SETTLE_S} s after the fill`);
  out.push(`                (1 s after the fill ${v(r.rss_right_after_fill_mb, 1)} MB, peak VmHWM ${v(r.rss_peak_mb, 1)} MB, idle before the fill ${v(r.rss_idle_mb, 1)} MB, outbox file ${v(r.outbox_file_mb_buffered, 1)} MB;`);
  out.push(`                same backlog in a freshly restarted daemon: ${v(r.rss_mb_buffered_after_restart, 1)} MB, up in ${fmt(r.restart_ms_buffered)} ms)`);
  out.push('');
  const target = (label, ok, value) => `  ${ok == null ? 'n/a ' : ok ? 'ok  ' : 'MISS'}  ${label}: ${value}`;
  out.push('Targets:');
  out.push(target('enqueue >= 20,000/s', r.enqueue_per_s == null ? null : r.enqueue_per_s >= 20_000, v(r.enqueue_per_s)));
  out.push(target('drain >= 5,000/s', r.drain_per_s == null ? null : r.drain_per_s >= 5000, v(r.drain_per_s)));
  out.push(target('alarm p99 <= 10 ms', r.alarm_latency_p99_ms == null ? null : r.alarm_latency_p99_ms <= 10, v(r.alarm_latency_p99_ms, 2)));
  out.push(target('lost = 0', r.lost == null ? null : r.lost === 0, v(r.lost)));
  out.push(target('RSS <= 100 MB with 1M buffered', r.rss_mb_1m_buffered == null ? null : r.rss_mb_1m_buffered <= 100, `${v(r.rss_mb_1m_buffered, 1)} MB with ${fmt(r.rss_events_buffered)} buffered`));
  if (errors.length) {
    out.push('');
    out.push('Phases that failed:');
    for (const e of errors) out.push(`  ${e.split('\n')[0]}`);
  }
  out.push('');
  process.stdout.write(out.join('\n') + '\n');

  results.enqueue_vs_mqttjs_ratio = ratio(r.enqueue_per_s, r.mqttjs_publish_per_s);
  results.enqueue_vs_bridge_ratio = ratio(r.enqueue_per_s, r.bridge_publish_per_s);
  results.drain_vs_mqttjs_ratio = ratio(r.drain_per_s, r.mqttjs_delivered_per_s);
  results.drain_vs_bridge_ratio = ratio(r.drain_per_s, r.bridge_delivered_per_s);
  results.alarm_p50_vs_mqttjs_ratio = ratio(r.alarm_latency_p50_ms, r.mqttjs_alarm_latency_p50_ms);
  results.alarm_p99_vs_mqttjs_ratio = ratio(r.alarm_latency_p99_ms, r.mqttjs_alarm_latency_p99_ms);
  results.alarm_p99_vs_bridge_ratio = ratio(r.alarm_latency_p99_ms, r.bridge_alarm_latency_p99_ms);
  results.failed_phases = errors.length;
  const required = ['enqueue_per_s', 'fsyncs_per_1000_events', 'bytes_written_per_event', 'drain_per_s', 'alarm_latency_p50_ms', 'alarm_latency_p99_ms', 'lost', 'duplicates', 'rss_mb_1m_buffered', 'rss_events_buffered', 'mqttjs_publish_per_s', 'mqttjs_alarm_latency_p50_ms', 'mqttjs_alarm_latency_p99_ms', 'mqttjs_lost_on_sigkill', 'bridge_publish_per_s', 'bridge_alarm_latency_p50_ms', 'bridge_alarm_latency_p99_ms', 'bridge_lost_on_sigkill'];
  for (const k of required) results[k] ??= null;
  process.stdout.write(JSON.stringify(results) + '\n');
}

const started = performance.now();
try {
  await phase('enqueue (in-process outbox, strace, /proc/<pid>/io)', enqueuePhase);
  await phase('drain after an outage', drainPhase);
  await phase('alarm latency under background load', alarmPhase);
  await phase('SIGKILL loop (lost / duplicates)', faultPhase);
  await phase(`memory with ${fmt(P.buffered)} buffered`, rssPhase);
  await phase('baseline: MQTT.js straight to the broker', mqttjsPhase);
  await phase('baseline: Mosquitto bridge with persistence', bridgePhase);
} finally {
  await runCleanups();
}
log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
report();
process.exit(errors.length ? 1 : 0);
