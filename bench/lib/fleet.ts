// The fleet simulator: hundreds of devices (the daemon's own outbox, uplink and command code, each
// with its own SQLite file and MQTT link) on a three-node broker cluster, the call center's ingest
// split over two instances, and the things that happen to a city's fleet: the central side out of
// reach for a while, a broker node killed under load, a hotlist change sent to every device.
//
// The devices reach the cluster through TCP gates (one per node) so that "the central side is
// down" is exact: the gates refuse and cut every device connection for the outage, while the
// brokers and the ingest stay up. A node kill is a SIGKILL of that node's Erlang VM.
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import mqtt from 'mqtt';
import { CommandSender } from '../../src/central/commands.js';
import { HotlistPublisher } from '../../src/central/hotlist.js';
import type { BrokerCluster } from '../../tests/helpers/cluster.js';
import { type Gate, startGate } from '../../tests/helpers/gate.js';
import { trackChild } from './cleanup.js';
import type { FleetChildCommand, FleetChildInit, FleetChildReport, FleetTick } from './fleet-child.js';
import type { IngestTick } from './fleet-ingest-child.js';
import { percentile } from './stats.js';

export interface FleetOptions {
  cluster: BrokerCluster;
  dir: string;
  devices: number;
  /** Processes the devices are spread over. */
  processes: number;
  /** The fleet's answer to an outage: failover over the nodes and a randomised first retry (true), or one broker and fixed delays (false). */
  spreadOn: boolean;
  outageMs: number;
  /** Steady running before the outage, and between the phases. */
  steadyMs: number;
  readsPerS: number;
  telemetryEveryMs: number;
  /** Alarms per second over the whole fleet in steady running, and while the backlog drains. */
  alarmsPerS: number;
  drainAlarmsPerS: number;
  /** Per-device drain rate limit (events/s, alarms never limited). */
  drainRate: number;
  /**
   * The devices' `outbox.synchronous`. full (the daemon's default) makes every device's commits
   * wait on this machine's one disk in turn, on its process's one thread; normal shows how much of
   * a latency is that sharing, which a real device (its own card, its own process) does not have.
   */
  outboxSync?: 'full' | 'normal';
  /** The reconnect spread window the devices are configured with (ms). */
  spreadMs: number;
  nodeKill: boolean;
  hotlistDelta: boolean;
  /** Unique per run: the ingest's session ids. */
  runId: string;
  log?: (line: string) => void;
}

export interface FleetResult {
  devices: number;
  events_total: number;
  lost: number;
  duplicates: number;
  reconnect_spread_s: number | null;
  reconnect_first_s: number | null;
  reconnect_all_s: number | null;
  drain_s_after_outage: number | null;
  broker_peak_msgs_per_s: number;
  broker_steady_msgs_per_s: number | null;
  alarm_p99_ms_during_drain: number | null;
  alarm_p50_ms_during_drain: number | null;
  alarm_p99_ms_to_broker_during_drain: number | null;
  /** The same alarms split by whether the device's link was up when it was raised, or it had to reconnect first. */
  alarm_p99_ms_during_drain_online: number | null;
  alarm_p99_ms_during_drain_reconnecting: number | null;
  /** Of those raised while reconnecting: from the raise to the device's link up, p99. */
  alarm_p99_ms_to_link_up_during_drain: number | null;
  /** Every device's connection attempts that succeeded during the drain: attempt to CONNACK, p99. */
  connect_p99_ms_during_drain: number | null;
  alarms_during_drain: number;
  /** The simulator's processes: the longest their event loop was held in a second, p99 over the drain (ms). */
  sim_loop_delay_p99_ms_during_drain: number | null;
  alarm_p99_ms_steady: number | null;
  node_kill_moved_devices: number | null;
  node_kill_failover_p50_s: number | null;
  node_kill_failover_p99_s: number | null;
  node_restart_s: number | null;
  hotlist_delta_all_devices_s: number | null;
  hotlist_delta_at_center_s: number | null;
  hotlist_resent: number | null;
  subscribe_refusals: number;
  failovers: number;
  accept_errors: number;
}

const COMMAND_KEY = 'fleet-command-key-0123456789abcdef';

interface Child {
  proc: ChildProcess;
  ticks: FleetTick[];
  last: FleetTick | null;
}

/** Spawns a compiled program beside this one with an IPC channel. */
function fork(script: string, args: string[] = []): ChildProcess {
  return trackChild(spawn(process.execPath, [join(import.meta.dirname, script), ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
}

function waitMessage<T>(proc: ChildProcess, op: string, timeoutMs = 600_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${op} from pid ${proc.pid} in ${timeoutMs} ms`)), timeoutMs);
    const onMessage = (m: { op: string }) => {
      if (m.op !== op) return;
      cleanup();
      resolve(m as T);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`pid ${proc.pid} exited (${code}) before ${op}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      proc.off('message', onMessage);
      proc.off('exit', onExit);
    };
    proc.on('message', onMessage);
    proc.on('exit', onExit);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(ok: () => boolean, timeoutMs: number, step = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) return false;
    await sleep(step);
  }
  return true;
}

const round = (x: number | null, d = 1): number | null => (x === null || !Number.isFinite(x) ? null : Number(x.toFixed(d)));

export async function runFleet(o: FleetOptions): Promise<FleetResult> {
  const log = o.log ?? (() => undefined);
  mkdirSync(o.dir, { recursive: true });
  const nodes = o.cluster.nodes;
  const gates: Gate[] = [];
  const children: Child[] = [];
  const ingests: ChildProcess[] = [];
  const ingestTicks: IngestTick[] = [];
  const ingestLast = new Map<ChildProcess, IngestTick>();
  const site = 'fleet';
  let sender: CommandSender | null = null;
  const ingestSpecs = [
    { name: 'a', start: 1, priorities: 'alarm,hit' },
    { name: 'b', start: 2, priorities: 'read,telemetry' },
  ];
  try {
    for (const n of nodes) gates.push(await startGate(n.mqttPort));
    const gateUrl = (i: number) => `mqtt://127.0.0.1:${gates[i % gates.length]!.port}`;

    // The call center: two ingest instances splitting the classes (RabbitMQ 3.x's MQTT has no
    // shared subscriptions), each starting on a different node and failing over to the others.
    const rotated = (start: number) => nodes.map((_, k) => nodes[(start + k) % nodes.length]!.url).join(',');
    for (const s of ingestSpecs) {
      const proc = fork('fleet-ingest-child.js', [
        '--broker',
        rotated(s.start),
        '--store',
        `sqlite:${join(o.dir, `center-${s.name}.db`)}`,
        '--client-id',
        `fleet-${o.runId}-${s.name}`,
        '--priorities',
        s.priorities,
      ]);
      proc.on('message', (m: IngestTick) => {
        if (m.op !== 'tick') return;
        ingestTicks.push(m);
        ingestLast.set(proc, m);
      });
      ingests.push(proc);
    }
    await Promise.all(ingests.map((p) => waitMessage(p, 'started', 120_000)));
    log('ingest: 2 instances up');

    // The list publisher and its key, known to every device.
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const publisher = new HotlistPublisher({ dir: join(o.dir, 'hotlist'), privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
    publisher.open();
    const hotlistKey = publicKey.export({ type: 'spki', format: 'pem' }).toString();

    const mqttFor = (i: number): Record<string, unknown> => ({
      url: o.spreadOn ? gateUrl(i) : gateUrl(0),
      servers: o.spreadOn ? [1, 2].map((k) => gateUrl(i + k)) : [],
      protocol: '3.1.1',
      keepalive: '15s',
      // On RabbitMQ a clean session's queue lives on one node, and a device whose queue's node died
      // cannot reconnect until it is back: a kept session is a quorum queue on all three.
      session_expiry: '10m',
      connect_timeout: '10s',
      drain_rate: o.drainRate,
      reconnect: o.spreadOn
        ? { min_delay: '1s', max_delay: '60s', jitter: 0.3, spread: `${o.spreadMs}ms` }
        : { min_delay: '1s', max_delay: '60s', jitter: 0, spread: '0s' },
    });
    const ids = Array.from({ length: o.devices }, (_, i) => `dev-${String(i).padStart(4, '0')}`);
    const per = Math.ceil(o.devices / o.processes);
    for (let p = 0; p < o.processes; p++) {
      const mine = ids.slice(p * per, (p + 1) * per);
      if (mine.length === 0) continue;
      const proc = fork('fleet-child.js');
      const child: Child = { proc, ticks: [], last: null };
      proc.on('message', (m: FleetTick) => {
        if (m.op !== 'tick') return;
        child.ticks.push(m);
        child.last = m;
      });
      const init: FleetChildInit = {
        op: 'init',
        site,
        dir: join(o.dir, `devices-${p}`),
        devices: mine.map((id) => ({ id, mqtt: mqttFor(ids.indexOf(id)) })),
        commandKey: COMMAND_KEY,
        hotlistKey,
        outboxSync: o.outboxSync ?? 'full',
        readsPerS: o.readsPerS,
        telemetryEveryMs: o.telemetryEveryMs,
        alarmsPerS: (o.alarmsPerS * mine.length) / o.devices,
        startOverMs: 10_000,
      };
      proc.send(init);
      children.push(child);
    }
    const tell = (m: FleetChildCommand) => {
      for (const c of children) c.proc.send(m);
    };
    await Promise.all(children.map((c) => waitMessage(c.proc, 'started', 300_000)));
    const total = () => {
      let depth = 0;
      let online = 0;
      let subscribed = 0;
      for (const c of children) {
        depth += c.last?.depth ?? 0;
        online += c.last?.online ?? 0;
        subscribed += c.last?.subscribed ?? 0;
      }
      return { depth, online, subscribed };
    };
    if (!(await until(() => total().online === o.devices, 120_000))) throw new Error(`only ${total().online} of ${o.devices} devices came online`);
    log(`devices: ${o.devices} online in ${children.length} processes`);

    // Steady running, once the start-up has settled (every device's subscription granted: RabbitMQ
    // declares a replicated queue for each, and holds the link's publishes behind it; the first
    // backlog sent): the backlog a healthy fleet has (events between commit and PUBACK).
    const settledAt = Date.now();
    if (!(await until(() => total().subscribed === o.devices && total().depth <= o.devices, 300_000, 250)))
      throw new Error(`only ${total().subscribed} of ${o.devices} devices subscribed after 5 minutes`);
    log(`subscriptions: all granted ${((Date.now() - settledAt) / 1000).toFixed(1)} s after the last device came online`);
    await sleep(5_000);
    const steadyFrom = Date.now();
    await sleep(o.steadyMs);
    const steadyDepths = children.flatMap((c) => c.ticks.filter((t) => t.at >= steadyFrom)).map((t) => t.depth);
    const steadyDepth = (percentile(steadyDepths, 95) ?? 0) * children.length;

    // (a) The central side out of reach.
    log(`outage: ${o.outageMs} ms`);
    const outageAt = Date.now();
    await Promise.all(gates.map((g) => g.close()));
    await sleep(o.outageMs);
    const backlog = total().depth;
    tell({ op: 'alarms', perS: o.drainAlarmsPerS / children.length });
    const reopenAt = Date.now();
    for (const g of gates) g.open();
    const drainLimit = Math.max(steadyDepth * 2, o.devices);
    const drained = await until(() => total().online === o.devices && total().depth <= drainLimit, 600_000, 250);
    const drainedAt = Date.now();
    tell({ op: 'alarms', perS: o.alarmsPerS / children.length });
    log(`drain: backlog ${backlog} events, ${drained ? 'drained' : 'NOT drained'} in ${((drainedAt - reopenAt) / 1000).toFixed(1)} s`);

    // (b) A node killed under load.
    let killAt: number | null = null;
    let restartS: number | null = null;
    if (o.nodeKill) {
      await sleep(o.steadyMs);
      killAt = Date.now();
      await o.cluster.kill(1);
      log('node 1 killed');
      await sleep(1000);
      await until(() => total().online === o.devices, 120_000, 100);
      const t = Date.now();
      await o.cluster.restart(1);
      restartS = (Date.now() - t) / 1000;
      log(`node 1 back in ${restartS.toFixed(1)} s`);
    }

    // (c) A hotlist change to every device: one signed delta each, as the console sends it.
    let hotlistAt: number | null = null;
    let hotlistVersion: string | null = null;
    let hotlistResent = 0;
    const centerHotlist = new Map<string, number>();
    if (o.hotlistDelta) {
      await sleep(o.steadyMs);
      const plates = Array.from(
        { length: 200 },
        (_, i) => `${'BCDFGHJKLP'[i % 10]}${'RSTVWXYZBC'[Math.floor(i / 10) % 10]}${'BCDFG'[Math.floor(i / 100) % 5]}${'HJ'[i % 2]}${String(10 + (i % 90))}`,
      );
      const [delta] = publisher.change(
        { text: `plate,reason,source,added,expires\n${plates.map((p) => `${p},encargo por robo,carabineros,2026-12-01,`).join('\n')}\n`, format: 'csv' },
        'fleet-bench',
      );
      if (!delta) throw new Error('the hotlist change made no delta');
      hotlistVersion = delta.version;
      sender = new CommandSender({
        url: nodes[0]!.url,
        servers: nodes.slice(1).map((n) => n.url),
        auth: 'hmac-sha256',
        key: COMMAND_KEY,
        protocolVersion: 4,
        clientId: `fleet-${o.runId}-commands`,
      });
      await sender.start();
      const s = sender;
      hotlistAt = Date.now();
      await Promise.all(ids.map((id) => s.send(site, id, 'hotlist.delta', delta.args)));
      const seen = () => {
        for (const t of ingestTicks)
          for (const h of t.hotlist) if (h.version === hotlistVersion && !centerHotlist.has(h.device)) centerHotlist.set(h.device, h.at);
        return centerHotlist.size;
      };
      // A device that was between links when its command came has not got it: sent again, as the console does for a device not "up to date".
      for (let round = 0; round < 6 && seen() < o.devices; round++) {
        await until(() => seen() === o.devices, 20_000, 250);
        const missing = ids.filter((id) => !centerHotlist.has(id));
        if (missing.length === 0) break;
        hotlistResent += missing.length;
        await Promise.all(missing.map((id) => s.send(site, id, 'hotlist.delta', delta.args)));
      }
      log(`hotlist: ${centerHotlist.size} of ${o.devices} devices confirmed`);
    }

    // The end: no new events; everything accepted must reach the center's stores.
    await sleep(o.steadyMs);
    tell({ op: 'produce', on: false });
    await sleep(1500);
    await until(() => total().depth === 0 && total().online === o.devices, 300_000, 250);
    const reports = await Promise.all(
      children.map((c) => {
        const r = waitMessage<FleetChildReport>(c.proc, 'report', 60_000);
        c.proc.send({ op: 'report' } satisfies FleetChildCommand);
        return r;
      }),
    );
    const accepted = new Set<string>();
    for (const r of reports) for (const line of readFileSync(r.idsFile, 'utf8').split('\n')) if (line) accepted.add(line);
    // Wait for the ingest to commit what the brokers hold.
    const storedIds = () => {
      const all = new Set<string>();
      for (const s of ingestSpecs) {
        const db = new Database(join(o.dir, `center-${s.name}.db`), { readonly: true, fileMustExist: true });
        try {
          for (const row of db.prepare('SELECT id FROM events').iterate() as Iterable<{ id: string }>) all.add(row.id);
        } finally {
          db.close();
        }
      }
      return all;
    };
    let stored = storedIds();
    const deadline = Date.now() + 120_000;
    while ([...accepted].some((id) => !stored.has(id)) && Date.now() < deadline) {
      await sleep(1000);
      stored = storedIds();
    }
    const lost = [...accepted].filter((id) => !stored.has(id)).length;

    // Figures.
    const devices = reports.flatMap((r) => r.devices);
    const withoutDelta = devices.filter((d) => d.hotlist?.version !== hotlistVersion);
    if (o.hotlistDelta && withoutDelta.length > 0)
      log(
        `hotlist: ${withoutDelta.length} devices without the delta, e.g. ${JSON.stringify(
          withoutDelta.slice(0, 3).map((d) => ({ id: d.id, server: d.server, commands: d.commands, refusals: d.subscribeRefusals, links: d.links.slice(-4) })),
        )}`,
      );
    const firstOnlineAfter = (t: number) =>
      devices.map((d) => d.links.find((l) => l.at >= t && l.state === 'online')?.at ?? null).filter((x): x is number => x !== null);
    const reconnects = firstOnlineAfter(reopenAt).map((t) => (t - reopenAt) / 1000);
    const r95 = percentile(reconnects, 95);
    const rMin = reconnects.length ? Math.min(...reconnects) : null;

    const alarmRaised = new Map<string, number>();
    const raisedOffline = new Set<string>();
    const linkUpAfterAlarm: number[] = [];
    const byId = new Map(devices.map((d) => [d.id, d]));
    for (const c of children)
      for (const t of c.ticks)
        for (const a of t.alarms) {
          alarmRaised.set(a.id, a.at);
          if (a.online) continue;
          raisedOffline.add(a.id);
          const up = byId.get(a.device)?.links.find((l) => l.at >= a.at && l.state === 'online');
          if (up && a.at >= reopenAt && a.at <= drainedAt) linkUpAfterAlarm.push(up.at - a.at);
        }
    const handshakes: number[] = [];
    for (const d of devices)
      d.links.forEach((l, i) => {
        const next = d.links[i + 1];
        if (l.state === 'connecting' && next?.state === 'online' && l.at >= reopenAt && l.at <= drainedAt) handshakes.push(next.at - l.at);
      });
    const alarmStored = new Map<string, number>();
    for (const t of ingestTicks) for (const a of t.alarms) if (!alarmStored.has(a.id)) alarmStored.set(a.id, a.at);
    const latencies = (from: number, to: number, which: (id: string) => boolean = () => true) =>
      [...alarmRaised]
        .filter(([id, at]) => at >= from && at <= to && which(id))
        .flatMap(([id, at]) => (alarmStored.has(id) ? [alarmStored.get(id)! - at] : []));
    const drainAlarms = latencies(reopenAt, drainedAt);
    const drainAlarmsOnline = latencies(reopenAt, drainedAt, (id) => !raisedOffline.has(id));
    const drainAlarmsReconnecting = latencies(reopenAt, drainedAt, (id) => raisedOffline.has(id));
    // The device's part of it: from the outbox's acceptance to the broker's PUBACK.
    const acks = children.flatMap((c) => c.ticks.flatMap((t) => t.alarmAcks));
    const drainAcks = acks.filter((a) => a.at - a.ms >= reopenAt && a.at - a.ms <= drainedAt).map((a) => a.ms);
    // Not the last seconds before the outage: an alarm raised then waits out the outage.
    const steadyAlarms = latencies(steadyFrom, outageAt - 5_000);
    const drainLoopDelays = children.flatMap((c) => c.ticks.filter((t) => t.at >= reopenAt && t.at <= drainedAt + 1000).map((t) => t.loopDelayMaxMs));

    // Broker intake: PUBACKs the devices got, per second of the run.
    const perSecond = new Map<number, number>();
    for (const c of children) {
      let prev: FleetTick | null = null;
      for (const t of c.ticks) {
        if (prev) {
          const sec = Math.floor(t.at / 1000);
          perSecond.set(sec, (perSecond.get(sec) ?? 0) + ((t.acked - prev.acked) * 1000) / Math.max(1, t.at - prev.at));
        }
        prev = t;
      }
    }
    const steadyRates = [...perSecond].filter(([s]) => s * 1000 >= steadyFrom + 1000 && s * 1000 < outageAt - 1000).map(([, v]) => v);

    let failoverP50: number | null = null;
    let failoverP99: number | null = null;
    let moved: number | null = null;
    if (killAt !== null) {
      const k = killAt;
      const times = devices.flatMap((d) => {
        const dropped = d.links.find((l) => l.at >= k && l.state !== 'online');
        if (!dropped || dropped.at > k + 5000) return [];
        const back = d.links.find((l) => l.at >= dropped.at && l.state === 'online');
        return back ? [(back.at - k) / 1000] : [];
      });
      moved = times.length;
      failoverP50 = percentile(times, 50);
      failoverP99 = percentile(times, 99);
    }

    let hotlistDevicesS: number | null = null;
    let hotlistCenterS: number | null = null;
    if (hotlistAt !== null) {
      const at = hotlistAt;
      const installed = devices.map((d) => (d.hotlist?.version === hotlistVersion ? d.hotlist!.at : null));
      if (installed.every((x) => x !== null)) hotlistDevicesS = (Math.max(...(installed as number[])) - at) / 1000;
      if (centerHotlist.size === o.devices) hotlistCenterS = (Math.max(...centerHotlist.values()) - at) / 1000;
    }
    const duplicates = [...ingestLast.values()].reduce((s, t) => s + t.duplicates, 0);
    const lastTicks = children.map((c) => c.last!);

    return {
      devices: o.devices,
      events_total: accepted.size,
      lost,
      duplicates,
      reconnect_spread_s: r95 !== null && rMin !== null ? round(r95 - rMin) : null,
      reconnect_first_s: round(rMin),
      reconnect_all_s: reconnects.length ? round(Math.max(...reconnects)) : null,
      drain_s_after_outage: drained ? round((drainedAt - reopenAt) / 1000) : null,
      broker_peak_msgs_per_s: Math.round(Math.max(0, ...perSecond.values())),
      broker_steady_msgs_per_s: steadyRates.length ? Math.round(steadyRates.reduce((a, b) => a + b, 0) / steadyRates.length) : null,
      alarm_p99_ms_during_drain: percentile(drainAlarms, 99),
      alarm_p50_ms_during_drain: percentile(drainAlarms, 50),
      alarm_p99_ms_to_broker_during_drain: percentile(drainAcks, 99),
      alarm_p99_ms_during_drain_online: percentile(drainAlarmsOnline, 99),
      alarm_p99_ms_during_drain_reconnecting: percentile(drainAlarmsReconnecting, 99),
      alarm_p99_ms_to_link_up_during_drain: percentile(linkUpAfterAlarm, 99),
      connect_p99_ms_during_drain: percentile(handshakes, 99),
      alarms_during_drain: drainAlarms.length,
      sim_loop_delay_p99_ms_during_drain: round(percentile(drainLoopDelays, 99)),
      alarm_p99_ms_steady: percentile(steadyAlarms, 99),
      node_kill_moved_devices: moved,
      node_kill_failover_p50_s: round(failoverP50, 2),
      node_kill_failover_p99_s: round(failoverP99, 2),
      node_restart_s: round(restartS),
      hotlist_delta_all_devices_s: round(hotlistDevicesS, 2),
      hotlist_delta_at_center_s: round(hotlistCenterS, 2),
      hotlist_resent: o.hotlistDelta ? hotlistResent : null,
      subscribe_refusals: devices.reduce((s, d) => s + d.subscribeRefusals, 0),
      failovers: devices.reduce((s, d) => s + d.failovers, 0),
      accept_errors: lastTicks.reduce((s, t) => s + (t?.acceptErrors ?? 0), 0),
    };
  } finally {
    await sender?.stop().catch(() => undefined);
    await Promise.all(
      children.map(async (c) => {
        if (c.proc.exitCode !== null) return;
        const done = waitMessage(c.proc, 'stopped', 60_000).catch(() => c.proc.kill('SIGKILL'));
        c.proc.send({ op: 'stop' } satisfies FleetChildCommand);
        await done;
      }),
    );
    await Promise.all(
      ingests.map(async (p) => {
        if (p.exitCode !== null) return;
        const done = waitMessage(p, 'stopped', 60_000).catch(() => p.kill('SIGKILL'));
        p.send({ op: 'stop' });
        await done;
      }),
    );
    await Promise.all(gates.map((g) => g.stop()));
    // The ingest's kept sessions end with the run: left on the cluster, their queues would keep
    // taking a copy of every later run's events with no one to read them, and each run on the
    // same cluster would measure a broker doing more work than the one before.
    const ingestClients = ingestSpecs.flatMap((s) => [...s.priorities.split(','), 'status'].map((p) => `fleet-${o.runId}-${s.name}-${p}`));
    await Promise.all(
      ingestClients.map((clientId) => endSession(nodes[0]!.url, clientId).catch((err: Error) => log(`session ${clientId} not ended: ${err.message}`))),
    );
  }
}

/** Ends a kept session: a clean-session connection under its client id (the broker deletes its queue). */
async function endSession(url: string, clientId: string): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId, clean: true, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 30_000 });
  await client.endAsync();
}

/** A run id for session names: sessions of an earlier run on the same cluster are never reused. */
export const newRunId = (): string => randomBytes(4).toString('hex');
