// Outbox benchmark: durable enqueue rate, fsyncs and bytes per event, backlog drain, alarm latency
// under load, loss/duplicates across SIGKILLs and memory with a large backlog; plus the same figures
// for two baselines measured in the same run: MQTT.js publishing straight to the broker, and a local
// Mosquitto with persistence bridging to a central one.
//
//   npm run bench -- outbox [--quick]
//
// Progress goes to stderr; stdout gets the tables and, as its last line, one JSON object.
import { spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { DaemonProcess } from '../tests/helpers/daemon.js';
import { type Gate, startGate } from '../tests/helpers/gate.js';
import { freePort } from '../tests/helpers/ports.js';
import { nowMs, Subscriber } from '../tests/helpers/subscriber.js';
import { startBenchBroker } from './lib/broker.js';
import { lastLineJson, nodeArgv, runNode } from './lib/child.js';
import { onCleanup, runCleanups, scoped, trackChild, trackDir } from './lib/cleanup.js';
import { type BurstReply, type StatusReply, totalEvicted } from './lib/daemon-replies.js';
import { writeBenchDeviceConfig } from './lib/device.js';
import { approachKill, lossByKind } from './lib/kill-schedule.js';
import { startLocalBridge, waitForBridge } from './lib/mosquitto-bridge.js';
import { envelope, streamId } from './lib/payload.js';
import { type OutboxDetails, outboxReport } from './lib/outbox-report.js';
import { procMem } from './lib/proc.js';
import { median, percentile, ratio, round } from './lib/stats.js';
import { countSyncs, type SyncCount, straceCommand } from './lib/strace.js';
import { fmt } from './lib/table.js';

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
const DAEMON_START_MS = 30_000; // a cold start on a busy 2-core machine can take several seconds
const ENQUEUE_CHILD = join(HERE, 'lib/enqueue-child.js');
const PRODUCER = join(HERE, 'lib/mqtt-producer.js');

/** What enqueue-child.ts prints, plus what this process adds from strace and /proc. */
interface EnqueueRun {
  events: number;
  accepted: number;
  depth: number;
  evicted: number;
  commits: number;
  ms: number;
  per_s: number;
  t0_us: number;
  t1_us: number;
  io: Record<string, number>;
  body_bytes: number;
  producers: number;
  window: number;
  syncs?: SyncCount;
  bytesSource: 'write_bytes' | 'wchar';
  bytesPerEvent: number;
}

/** What mqtt-producer.ts prints in rate mode, plus the delivery rate seen by the subscriber. */
interface ProducerRun {
  events: number;
  ms: number;
  per_s: number;
  t0_wall: number;
  body_bytes: number;
  delivered_per_s: number;
}

/** The last-line JSON: every figure, null where a phase could not measure it. */
const results: Record<string, number | null> = { quick: QUICK ? 1 : 0 };
/** For the tables and notes only. */
const details: OutboxDetails & {
  enqueue?: EnqueueRun[];
  drain?: { reconnectMs: number; linkResent: number; depthAfter: number; window: number };
  alarmBackground?: { failed: number; readsReceived: number };
  fault?: { refused: number; received: number; distinct: number; restartMs: number; catchUpMs: number };
  rss?: { fillRates: number[]; samples: number[] };
  bridge?: { handed: number; received: number; split: Record<string, number>; flushMs: number };
} = {};
const errors: string[] = [];
const log = (msg: string) => process.stderr.write(`${msg}\n`);
const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function phase(name: string, fn: () => Promise<void>): Promise<void> {
  const t0 = performance.now();
  log(`▶ ${name}`);
  try {
    await scoped(fn);
    log(`  ${name}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  } catch (err) {
    errors.push(`${name}: ${message(err)}`);
    log(`  ${name} FAILED: ${err instanceof Error ? err.stack : String(err)}`);
  }
}

const tmp = (prefix: string) => trackDir(mkdtempSync(join(tmpdir(), prefix)));

/** A subscriber at central that counts events by id (QoS 1, so that it never drops one itself); closed with the phase. */
async function centralSubscriber(url: string): Promise<Subscriber> {
  const sub = new Subscriber(url, { qos: 1, keepEvents: false, extra: { reconnectPeriod: 100 } });
  await sub.connect();
  onCleanup(() => sub.close());
  return sub;
}

/** The daemon on a bench device config pointed at brokerUrl, started; both undone with the phase. */
async function startedDaemon(brokerUrl: string, over: Record<string, unknown> = {}) {
  const cfg = writeBenchDeviceConfig(brokerUrl, over);
  onCleanup(() => cfg.remove());
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  onCleanup(() => daemon.kill('SIGKILL'));
  await daemon.start(DAEMON_START_MS);
  return { cfg, daemon };
}

const status = (daemon: DaemonProcess) => daemon.request<StatusReply>('status');

async function waitOnline(daemon: DaemonProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await status(daemon)).link.state !== 'online') {
    if (Date.now() > deadline) throw new Error('the daemon did not get online');
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// 1. Enqueue: in-process Outbox, synchronous=full, group commit, concurrent producers

async function enqueuePhase(): Promise<void> {
  let strace = straceCommand(log);
  if (strace) details.straceSeccomp = strace.seccomp;
  else details.fsyncNote = 'strace unavailable: fsync count not measured (apt-get install -y strace)';
  const runs: EnqueueRun[] = [];
  for (let i = 0; i < P.enqueueRuns; i++) {
    const dir = tmp('vigia-bench-enq-');
    const straceLog = join(dir, 'strace.log');
    const args = ['--file', join(dir, 'outbox.db'), '--events', String(P.enqueue)];
    let lines: string[];
    try {
      lines = await runNode(ENQUEUE_CHILD, args, { prefix: strace ? [...strace.argv, '-o', straceLog] : [] });
    } catch (err) {
      if (!strace) throw err;
      // e.g. ptrace not permitted in this container: measure the rest without it.
      log(`  strace failed (${message(err).split('\n').slice(0, 2).join(' ')}); continuing without it`);
      details.fsyncNote = 'strace could not trace the child here: fsync count not measured';
      strace = null;
      runs.length = 0;
      i = -1;
      continue;
    }
    const r = lastLineJson<Omit<EnqueueRun, 'syncs' | 'bytesSource' | 'bytesPerEvent'>>(lines);
    if (r.accepted !== P.enqueue || r.depth !== P.enqueue || r.evicted !== 0) {
      throw new Error(`enqueue run stored ${r.depth} of ${P.enqueue} (accepted ${r.accepted}, evicted ${r.evicted})`);
    }
    const bytesSource = r.io.write_bytes! > 0 ? 'write_bytes' : 'wchar';
    const run: EnqueueRun = {
      ...r,
      ...(strace ? { syncs: countSyncs(straceLog, r.t0_us, r.t1_us) } : {}),
      bytesSource,
      bytesPerEvent: r.io[bytesSource]! / r.events,
    };
    runs.push(run);
    log(
      `  run ${i + 1}: ${fmt(run.per_s)} accepts/s, ${run.commits} commits` +
        (run.syncs ? `, ${run.syncs.inPhase} fsync-type calls in the phase (${run.syncs.total} in the whole process)` : '') +
        `, ${fmt(run.bytesPerEvent)} B/event (${run.bytesSource})`,
    );
  }
  results.enqueue_per_s = round(median(runs.map((r) => r.per_s)));
  results.fsyncs_per_1000_events = strace ? round(median(runs.map((r) => (r.syncs!.inPhase / r.events) * 1000)), 2) : null;
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

async function drainPhase(): Promise<void> {
  const broker = await startBenchBroker();
  onCleanup(() => broker.stop());
  const gate = await startGate(broker.port, { open: false });
  onCleanup(() => gate.stop());
  const sub = await centralSubscriber(broker.url);
  const { daemon } = await startedDaemon(`mqtt://127.0.0.1:${gate.port}`);

  const fillRates: number[] = [];
  for (let filled = 0; filled < P.drain; ) {
    const count = Math.min(FILL_CHUNK, P.drain - filled);
    const r = await daemon.request<BurstReply>('sim.burst', { count, type: 'sim.drain', priority: 'read' }, 300_000);
    filled += r.accepted;
    fillRates.push(r.per_s);
  }
  const before = await status(daemon);
  if (before.outbox.depth !== P.drain) throw new Error(`backlog is ${before.outbox.depth}, expected ${P.drain}`);
  if (before.link.state === 'online') throw new Error('link is online while the gate is closed');

  let onlineAt: number | undefined;
  sub.onOther = (topic, payload, t) => {
    if (onlineAt === undefined && topic.endsWith('/status') && payload.includes('"online"')) onlineAt = t;
  };
  const openedAt = nowMs();
  gate.open();
  await sub.waitFor(() => sub.distinct >= P.drain, 600_000, `${P.drain} drained events`, 50);
  const after = await status(daemon);
  const start = onlineAt ?? sub.firstAt!;
  const lastAt = sub.lastAt!;
  results.drain_per_s = round(P.drain / ((lastAt - start) / 1000));
  results.drain_events = P.drain;
  results.drain_from_gate_open_per_s = round(P.drain / ((lastAt - openedAt) / 1000));
  results.drain_duplicates = sub.duplicates();
  results.daemon_burst_accept_per_s = round(median(fillRates));
  details.drain = { reconnectMs: start - openedAt, linkResent: after.link.resent, depthAfter: after.outbox.depth, window: after.link.window };
}

// ---------------------------------------------------------------------------------------------
// 3. Alarm latency with background reads

/** Collects created→received latencies of alarm events (payload.t is the sender's wall time). */
function alarmCollector(sub: Subscriber): number[] {
  const lat: number[] = [];
  sub.onEvent = (topic, payload, _id, t) => {
    if (!topic.includes('/events/alarm/')) return;
    const e = JSON.parse(payload.toString()) as { payload?: { t?: unknown } };
    if (typeof e.payload?.t === 'number') lat.push(t - e.payload.t);
  };
  return lat;
}

const latencySummary = (lat: number[]) => ({
  p50: round(percentile(lat, 50), 2),
  p99: round(percentile(lat, 99), 2),
  max: round(Math.max(...lat), 2),
  n: lat.length,
});

async function alarmPhase(): Promise<void> {
  const broker = await startBenchBroker();
  onCleanup(() => broker.stop());
  const sub = await centralSubscriber(broker.url);
  const { daemon } = await startedDaemon(broker.url);
  await waitOnline(daemon);

  const lat = alarmCollector(sub);
  const perTick = Math.round(BACKGROUND_PER_S / 50);
  let bgFailed = 0;
  const bg = setInterval(() => {
    daemon.request('sim.burst', { count: perTick, type: 'anpr.read', priority: 'read' }, 30_000).catch(() => bgFailed++);
  }, 20);
  onCleanup(() => clearInterval(bg));
  await sleep(500);
  const pending: Promise<unknown>[] = [];
  const acceptLat: number[] = [];
  for (let k = 0; k < P.alarms; k++) {
    const t = nowMs();
    pending.push(daemon.request('sim.event', { type: 'sim.alarm', priority: 'alarm', payload: { t, k } }, 30_000).then(() => acceptLat.push(nowMs() - t)));
    await sleep(ALARM_GAP_MS * (0.5 + Math.random()));
  }
  await Promise.all(pending);
  await sub.waitFor(() => lat.length >= P.alarms, 30_000, `${P.alarms} alarms`, 10);
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
// 4. Faults: the daemon is SIGKILLed and restarted several times during a stream, on the schedule
// of kill-schedule.ts. The baselines go through the same schedule.

async function faultPhase(): Promise<void> {
  const broker = await startBenchBroker();
  onCleanup(() => broker.stop());
  const gate = await startGate(broker.port);
  onCleanup(() => gate.stop());
  const sub = await centralSubscriber(broker.url);
  const { daemon } = await startedDaemon(`mqtt://127.0.0.1:${gate.port}`);
  await waitOnline(daemon);

  const epochs: string[][] = [[]];
  const inflight = new Set<Promise<unknown>>();
  let refused = 0;
  const perTick = P.streamRate / 10;
  const stream = setInterval(() => {
    if (!daemon.alive) return;
    const p = daemon
      // A short timeout: controlRequest only gives up on a daemon that died mid-request when its
      // timer fires (an EOF without a reply is not treated as an error).
      .request<BurstReply>('sim.burst', { count: perTick, type: 'sim.stream', priority: 'read' }, 5_000)
      .then((r) => epochs.at(-1)!.push(...(r.ids ?? [])))
      .catch(() => refused++);
    inflight.add(p);
    p.finally(() => inflight.delete(p));
  }, 100);
  onCleanup(() => clearInterval(stream));
  const restartMs: number[] = [];
  for (let k = 1; k <= P.kills; k++) {
    const outage = await approachKill(k, gate);
    await daemon.kill('SIGKILL');
    epochs.push([]);
    await sleep(200);
    const t = performance.now();
    await daemon.start(DAEMON_START_MS);
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
    await sub.waitFor(() => sub.missing(accepted).length === 0, 120_000, 'every accepted event', 250);
  } catch {
    /* counted below */
  }
  const catchUpMs = performance.now() - t;
  await sub.settle(1000, 10_000); // late duplicates
  const split = lossByKind(epochs, sub, P.kills);
  results.lost = sub.missing(accepted).length;
  results.lost_link_up = split['link-up'];
  results.lost_in_outage = split.outage;
  results.duplicates = sub.duplicates();
  results.fault_accepted = accepted.length;
  results.fault_sigkills = P.kills;
  details.fault = { refused, received: sub.received, distinct: sub.distinct, restartMs: Math.round(median(restartMs)!), catchUpMs: Math.round(catchUpMs) };
  log(
    `  ${accepted.length} accepted, ${results.lost} lost, ${results.duplicates} duplicates; restart ${details.fault.restartMs} ms (median), ` +
      `catch-up after the stream ${details.fault.catchUpMs} ms`,
  );
}

// ---------------------------------------------------------------------------------------------
// 5. Memory with a large backlog (broker unreachable)

async function rssPhase(): Promise<void> {
  const deadPort = await freePort(); // nothing listens there
  const { cfg, daemon } = await startedDaemon(`mqtt://127.0.0.1:${deadPort}`, {
    // The default budget (256 MiB) holds fewer than 1M events: make room so nothing is evicted.
    outbox: { max_bytes: '2GiB', quota_bytes: { read: '1800MiB' } },
  });
  const pid = daemon.pid!;
  const rssStart = procMem(pid, 'VmRSS');
  const rates: number[] = [];
  for (let filled = 0; filled < P.buffered; ) {
    const count = Math.min(FILL_CHUNK, P.buffered - filled);
    const r = await daemon.request<BurstReply>('sim.burst', { count, type: 'sim.fill', priority: 'read' }, 600_000);
    filled += r.accepted;
    rates.push(r.per_s);
  }
  // V8 and malloc give the memory of the last 50k-event burst back over a few seconds: report the
  // steady state after RSS_SETTLE_S idle seconds, and the peak separately.
  const samples: number[] = [];
  for (let i = 0; i < RSS_SETTLE_S; i++) {
    await sleep(1000);
    samples.push(procMem(pid, 'VmRSS')!);
  }
  log(`  VmRSS each second after the fill: ${samples.map((x) => Math.round(x)).join(' ')} MB; peak ${round(procMem(pid, 'VmHWM'), 1)} MB`);
  const filled = await status(daemon);
  const evicted = totalEvicted(filled.outbox.evicted);
  if (evicted > 0) throw new Error(`${evicted} events were evicted while filling`);
  results.rss_mb_1m_buffered = round(samples.at(-1), 1);
  results.rss_right_after_fill_mb = round(samples[0], 1);
  results.rss_events_buffered = filled.outbox.depth;
  results.rss_peak_mb = round(procMem(pid, 'VmHWM'), 1);
  results.rss_idle_mb = round(rssStart, 1);
  const dbFile = join(cfg.dir, 'data', 'outbox.db');
  let dbBytes = 0;
  for (const suffix of ['', '-wal']) {
    try {
      dbBytes += statSync(dbFile + suffix).size;
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
  const again = await status(daemon);
  if (again.outbox.depth !== filled.outbox.depth) throw new Error(`after a restart the backlog is ${again.outbox.depth}, was ${filled.outbox.depth}`);
  results.rss_mb_buffered_after_restart = round(procMem(daemon.pid!, 'VmRSS'), 1);
  log(
    `  after a restart with ${fmt(again.outbox.depth)} buffered: VmRSS ${results.rss_mb_buffered_after_restart} MB ` +
      `(up in ${results.restart_ms_buffered} ms)`,
  );
  details.rss = { fillRates: rates, samples: samples.map((x) => Math.round(x)) };
}

// ---------------------------------------------------------------------------------------------
// Baselines

async function producerRates(url: string, sub: Subscriber, name: string) {
  const runs: ProducerRun[] = [];
  for (let i = 0; i < P.rateRuns; i++) {
    sub.reset();
    const args = ['rate', '--url', url, '--events', String(P.enqueue), '--window', String(WINDOW), '--name', name];
    const r = lastLineJson<Omit<ProducerRun, 'delivered_per_s'>>(await runNode(PRODUCER, args));
    await sub.waitFor(() => sub.distinct >= P.enqueue, 300_000, `${P.enqueue} ${name} events at the subscriber`, 50);
    const run = { ...r, delivered_per_s: P.enqueue / ((sub.lastAt! - r.t0_wall) / 1000) };
    runs.push(run);
    log(`  ${name} run ${i + 1}: ${fmt(run.per_s)} publishes/s acknowledged, ${fmt(run.delivered_per_s)}/s delivered`);
  }
  return { publish: median(runs.map((r) => r.per_s)), delivered: median(runs.map((r) => r.delivered_per_s)), body: runs[0]!.body_bytes };
}

async function producerLatency(url: string, sub: Subscriber, name: string) {
  sub.reset();
  const lat = alarmCollector(sub);
  const load = ['--alarms', String(P.alarms), '--gap-ms', String(ALARM_GAP_MS), '--background', String(BACKGROUND_PER_S)];
  await runNode(PRODUCER, ['latency', '--url', url, ...load, '--name', name]);
  await sub.waitFor(() => lat.length >= P.alarms, 30_000, `${P.alarms} ${name} alarms`, 10);
  sub.onEvent = undefined;
  return latencySummary(lat);
}

/** MQTT.js producers SIGKILLed mid-stream (through a gate for the outage kills): events handed to publish() that never arrive. */
async function mqttjsKillRuns(sub: Subscriber, gate: Gate) {
  const lost = { 'link-up': 0, outage: 0 };
  let handedTotal = 0;
  for (let run = 1; run <= P.kills; run++) {
    sub.reset();
    const args = ['stream', '--url', `mqtt://127.0.0.1:${gate.port}`, '--rate', String(P.streamRate), '--run', String(run), '--name', 'mqttjs'];
    const child = trackChild(spawn(process.execPath, nodeArgv(PRODUCER, args), { stdio: ['ignore', 'pipe', 'pipe'] }));
    let handed = 0;
    let buf = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => {
      buf += c;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const m = /^H (\d+)$/.exec(buf.slice(0, nl));
        if (m) handed = Number(m[1]);
        buf = buf.slice(nl + 1);
      }
    });
    const closed = new Promise((r) => child.once('close', r));
    await sub.waitFor(() => handed > 0, 10_000, 'the producer to start', 10);
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

async function mqttjsPhase(): Promise<void> {
  const broker = await startBenchBroker();
  onCleanup(() => broker.stop());
  const sub = await centralSubscriber(broker.url);
  const rates = await producerRates(broker.url, sub, 'mqttjs');
  results.mqttjs_publish_per_s = round(rates.publish);
  results.mqttjs_delivered_per_s = round(rates.delivered);
  const lat = await producerLatency(broker.url, sub, 'mqttjs');
  results.mqttjs_alarm_latency_p50_ms = lat.p50;
  results.mqttjs_alarm_latency_p99_ms = lat.p99;
  results.mqttjs_alarm_latency_max_ms = lat.max;
  const gate = await startGate(broker.port);
  onCleanup(() => gate.stop());
  const k = await mqttjsKillRuns(sub, gate);
  results.mqttjs_lost_on_sigkill = k.lost;
  results.mqttjs_lost_on_sigkill_link_up = k.lostLinkUp;
  results.mqttjs_lost_on_sigkill_in_outage = k.lostOutage;
  results.mqttjs_handed_on_sigkill = k.handed;
  results.mqttjs_sigkills = P.kills;
  details.mqttjsBody = rates.body;
}

async function bridgePhase(): Promise<void> {
  const central = await startBenchBroker();
  onCleanup(() => central.stop());
  const sub = await centralSubscriber(central.url);
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
  const epochs: string[][] = [[]];
  const client = mqtt.connect(local.url, { protocolVersion: 5, reconnectPeriod: 100, clean: true, clientId: `bench-bridge-stream-${process.pid}` });
  client.on('error', () => {});
  onCleanup(() => new Promise<void>((r) => client.end(true, {}, () => r())));
  await new Promise((r) => client.once('connect', r));
  let seq = 0;
  const t0 = performance.now();
  const topic = 'vigia/bench/bridge/events/read/anpr.read';
  const stream = setInterval(() => {
    const target = Math.floor(((performance.now() - t0) / 1000) * P.streamRate);
    while (seq < target) {
      const id = streamId(0x100, ++seq);
      client.publish(topic, envelope(seq, 'anpr.read', 'read', { n: seq }, 'bridge', id), { qos: 1 }, (err) => {
        if (!err) epochs.at(-1)!.push(id);
      });
    }
  }, 10);
  onCleanup(() => clearInterval(stream));
  for (let k = 1; k <= P.kills; k++) {
    const outage = await approachKill(k, gate);
    await local.kill('SIGKILL');
    epochs.push([]);
    await sleep(200);
    await local.restart(); // already down: starts it again, same port, config and store
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
  await sub.waitFor(() => sub.missing(acked).length === 0, 5000, 'bridge flush', 250).catch(() => sub.settle(3000, 30_000));
  const flushMs = performance.now() - t;
  const split = lossByKind(epochs, sub, P.kills);
  results.bridge_lost_on_sigkill = sub.missing(acked).length;
  results.bridge_lost_on_sigkill_link_up = split['link-up'];
  results.bridge_lost_on_sigkill_in_outage = split.outage;
  results.bridge_duplicates = sub.duplicates();
  results.bridge_acked_on_sigkill = acked.length;
  results.bridge_sigkills = P.kills;
  details.bridge = { handed, received: sub.received, split, flushMs: Math.round(flushMs) };
  log(
    `  bridge: ${results.bridge_lost_on_sigkill} of ${acked.length} PUBACKed never reached central (link up ${split['link-up']}, ` +
      `outage ${split.outage}, after the last kill ${split.after}); ${results.bridge_duplicates} duplicates`,
  );
}

// ---------------------------------------------------------------------------------------------

function report(): void {
  const load = { window: WINDOW, alarmGapMs: ALARM_GAP_MS, backgroundPerS: BACKGROUND_PER_S, fillChunk: FILL_CHUNK, rssSettleS: RSS_SETTLE_S };
  const setup = { quick: QUICK, ...P, ...load };
  process.stdout.write(`${outboxReport(setup, results, details, errors)}\n`);

  // Baseline comparisons, then the figures every reader of the JSON may look for.
  const r = results;
  results.enqueue_vs_mqttjs_ratio = ratio(r.enqueue_per_s, r.mqttjs_publish_per_s);
  results.enqueue_vs_bridge_ratio = ratio(r.enqueue_per_s, r.bridge_publish_per_s);
  results.drain_vs_mqttjs_ratio = ratio(r.drain_per_s, r.mqttjs_delivered_per_s);
  results.drain_vs_bridge_ratio = ratio(r.drain_per_s, r.bridge_delivered_per_s);
  results.alarm_p50_vs_mqttjs_ratio = ratio(r.alarm_latency_p50_ms, r.mqttjs_alarm_latency_p50_ms);
  results.alarm_p99_vs_mqttjs_ratio = ratio(r.alarm_latency_p99_ms, r.mqttjs_alarm_latency_p99_ms);
  results.alarm_p99_vs_bridge_ratio = ratio(r.alarm_latency_p99_ms, r.bridge_alarm_latency_p99_ms);
  results.failed_phases = errors.length;
  // Present even when their phase failed, so that a reader of the JSON always finds them.
  const required = [
    'enqueue_per_s',
    'fsyncs_per_1000_events',
    'bytes_written_per_event',
    'drain_per_s',
    'alarm_latency_p50_ms',
    'alarm_latency_p99_ms',
    'lost',
    'duplicates',
    'rss_mb_1m_buffered',
    'rss_events_buffered',
    'mqttjs_publish_per_s',
    'mqttjs_alarm_latency_p50_ms',
    'mqttjs_alarm_latency_p99_ms',
    'mqttjs_lost_on_sigkill',
    'bridge_publish_per_s',
    'bridge_alarm_latency_p50_ms',
    'bridge_alarm_latency_p99_ms',
    'bridge_lost_on_sigkill',
  ];
  for (const k of required) results[k] ??= null;
  process.stdout.write(`${JSON.stringify(results)}\n`);
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
