// What embedding Node-RED costs the device and whether a bad flow can touch the alarm path, on the
// real daemon with a local Mosquitto:
//   - resident memory of the daemon without Node-RED, and of the daemon plus its Node-RED process
//     running the pole's example flow;
//   - how long Node-RED takes to serve after the daemon starts it;
//   - a `vigia in` -> `vigia event` round trip: an event accepted by the daemon, through a flow, back
//     into the outbox (both arrive at the broker; the gap is the flow's round trip);
//   - panic press to broker (p99) without Node-RED, with idle flows, and while a function node
//     busy-loops (950 ms of every second);
//   - the isolation candidates (worker thread, forked process) side by side, each in a process of
//     its own (bench/lib/nodered-host.ts).
//
//   npm run bench -- nodered [--quick]
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import bcrypt from 'bcryptjs';
import { AdminClient } from '../src/nodered/admin-client.js';
import { DaemonProcess } from '../tests/helpers/daemon.js';
import type { Broker } from '../tests/helpers/mosquitto.js';
import { Subscriber } from '../tests/helpers/subscriber.js';
import { startBenchBroker } from './lib/broker.js';
import { lastLineJson, runNode } from './lib/child.js';
import { onCleanup, scoped, trackChild } from './lib/cleanup.js';
import { memoryCgroup } from './lib/memcg.js';
import { writeBenchDeviceConfig } from './lib/device.js';
import { median, percentile, ratio, round } from './lib/stats.js';
import { fmt, table } from './lib/table.js';
import { timePresses } from './lib/presses.js';
import { procMem } from './lib/proc.js';
import { REPO_ROOT } from '../tests/helpers/repo.js';

const quick = process.argv.includes('--quick');
const PRESSES = quick ? 100 : 400;
const ROUND_TRIPS = quick ? 200 : 1000;
const ISOLATION_RUNS = quick ? 1 : 3;
const USER = 'bench';
const PASSWORD = 'node-red bench password';

const HARDWARE = {
  backend: 'sim',
  inputs: {
    panic: { line: 'GPIO17', kind: 'panic', stuck: '1h' },
    pir: { line: 'GPIO27', kind: 'motion', active_low: false, bias: 'pull-down', hold: '300ms', min_interval: '0s' },
  },
  outputs: { strobe: { line: 'GPIO23', kind: 'strobe' }, button_led: { line: 'GPIO25', kind: 'led' } },
};
const POLE = { led_output: 'button_led', strobe_output: 'strobe' };

type Flow = Array<Record<string, unknown>>;
const TAB = 'benchtab00000001';
const ECHO_FLOW: Flow = [
  { id: TAB, type: 'tab', label: 'bench' },
  { id: 'benchin000000001', type: 'vigia in', z: TAB, name: 'in', types: 'sim.bench_ping', priorities: '', wires: [['benchev000000001']] },
  { id: 'benchev000000001', type: 'vigia event', z: TAB, name: 'echo', eventType: 'flow.bench_echo', priority: 'read', payloadFrom: 'payload', wires: [[]] },
];
const BUSY_NODES: Flow = [
  { id: 'benchinject00001', type: 'inject', z: TAB, repeat: '1', once: true, onceDelay: 0.1, payloadType: 'date', wires: [['benchbusy0000001']] },
  {
    id: 'benchbusy0000001',
    type: 'function',
    z: TAB,
    name: 'busy',
    func: 'const end = Date.now() + 950; while (Date.now() < end) {} return msg;',
    outputs: 1,
    wires: [[]],
  },
];

interface Phase {
  name: string;
  rssMb: number | null;
  alarm: { p50: number | null; p99: number | null; lost: number };
}

async function startDaemon(broker: Broker, nodered: boolean, over: Record<string, unknown> = {}) {
  const cfg = writeBenchDeviceConfig(broker.url, {
    hardware: HARDWARE,
    pole: POLE,
    ...over,
    ...(nodered
      ? {
          nodered: {
            enabled: true,
            port: 0,
            users: [{ username: USER, password: bcrypt.hashSync(PASSWORD, 4) }],
            credential_secret: 'bench',
            // The round trip measures the flow, not the per-node limit.
            event_rate: { per_second: 1000, burst: 1000 },
          },
        }
      : {}),
  });
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  onCleanup(() => daemon.kill('SIGKILL'));
  await daemon.start(60_000);
  return { cfg, daemon };
}

interface NodeRedStatus {
  state: string;
  url: string | null;
  pid: number | null;
  start_ms: number | null;
}
const noderedStatus = async (daemon: DaemonProcess) => (await daemon.request<{ nodered: NodeRedStatus }>('status')).nodered;

async function waitServing(daemon: DaemonProcess): Promise<NodeRedStatus> {
  for (let i = 0; i < 600; i++) {
    const s = await noderedStatus(daemon);
    if (s.state === 'running' && s.url) return s;
    await sleep(50);
  }
  throw new Error(`Node-RED did not start:\n${daemon.output.slice(-3000)}`);
}

async function deploy(url: string, flow: Flow): Promise<void> {
  const client = new AdminClient(url);
  await client.login(USER, PASSWORD);
  await client.setFlows(flow as never);
  await client.revokeToken();
}

/** Resident memory of the daemon, plus its Node-RED process when there is one (MiB, after settling). */
async function residentMb(daemon: DaemonProcess, noderedPid: number | null): Promise<number | null> {
  await sleep(3000);
  const own = procMem(daemon.pid!);
  const nr = noderedPid ? procMem(noderedPid) : 0;
  return own === null || nr === null ? null : round(own + nr, 1);
}

async function pressLatencies(broker: Broker, daemon: DaemonProcess): Promise<Phase['alarm']> {
  const { latencies, received } = await timePresses(broker, daemon, PRESSES);
  return { p50: round(percentile(latencies, 50), 2), p99: round(percentile(latencies, 99), 2), lost: PRESSES - Math.min(PRESSES, received) };
}

/** `sim.bench_ping` events in, `flow.bench_echo` events out: the gap between their arrivals at the broker. */
async function roundTrips(broker: Broker, daemon: DaemonProcess): Promise<{ p50: number | null; p99: number | null; lost: number }> {
  const sub = new Subscriber(broker.url, { topic: 'vigia/bench/pole-0001/events/read/#', qos: 1 });
  const sent = new Map<number, number>();
  const gaps: number[] = [];
  let echoes = 0;
  sub.onEvent = (topic, payload, _id, at) => {
    const event = JSON.parse(payload.toString()) as { type: string; payload: { n: number } };
    if (event.type === 'sim.bench_ping') sent.set(event.payload.n, at);
    else if (event.type === 'flow.bench_echo') {
      echoes++;
      const t = sent.get(event.payload.n);
      if (t !== undefined) gaps.push(at - t);
    }
    void topic;
  };
  await sub.connect();
  for (let n = 0; n < ROUND_TRIPS; n++) {
    await daemon.request('sim.event', { type: 'sim.bench_ping', priority: 'read', payload: { n } });
    await sleep(10);
  }
  for (let i = 0; i < 100 && echoes < ROUND_TRIPS; i++) await sleep(50);
  await sub.close();
  return { p50: round(percentile(gaps, 50), 2), p99: round(percentile(gaps, 99), 2), lost: ROUND_TRIPS - echoes };
}

/**
 * The host and its runtime in a memory cgroup of OOM_LIMIT_MB that the runtime's leak fills:
 * whom the kernel's out-of-memory killer takes, the runtime or the stand-in daemon.
 */
const OOM_LIMIT_MB = 400;
async function oomVictim(host: string, mode: 'worker' | 'process'): Promise<string> {
  const cg = memoryCgroup(`vigia-bench-oom-${process.pid}-${mode}`, OOM_LIMIT_MB * 2 ** 20);
  if (!cg) return 'not measured (no writable memory cgroup; run as root)';
  try {
    const [cmd, ...argv] = cg.wrap([process.execPath, host, '--mode', mode, '--oom']);
    const child = trackChild(spawn(cmd!, argv, { stdio: ['ignore', 'pipe', 'ignore'] }));
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b;
    });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on('close', (c, s) => r([c, s])));
    if (signal === 'SIGKILL') return 'the daemon (killed)';
    if (code !== 0) return `unclear (exit ${code ?? signal})`;
    const result = JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as { runtime_ended_by?: string | null };
    return result.runtime_ended_by ? `the runtime (${result.runtime_ended_by}); the daemon lives` : 'nobody within 30 s';
  } finally {
    cg.remove();
  }
}

interface HostResult {
  mode: string;
  startup_ms: number;
  rss_added_mb: number;
  idle: { p99: number; max: number };
  busy: { p99: number; max: number };
  busy_loaded: { p99: number; max: number };
  kill_hung_ms: number;
  leak_held_at_kill_mb: number;
  host_rss_kept_after_leak_mb: number;
}

await scoped(async () => {
  const broker = await startBenchBroker();
  onCleanup(() => broker.stop());
  const phases: Phase[] = [];

  // 1. Without Node-RED.
  {
    const { cfg, daemon } = await startDaemon(broker, false);
    const rssMb = await residentMb(daemon, null);
    phases.push({ name: 'without Node-RED', rssMb, alarm: await pressLatencies(broker, daemon) });
    await daemon.kill('SIGTERM');
    cfg.remove();
  }

  // 2. The flow round trip, with the outbox's group-commit window (25 ms by default, which a flow's
  // read event waits like any other) cut to 1 ms, so the figure is the flow's own.
  const pole = JSON.parse(readFileSync(join(REPO_ROOT, 'config', 'flows', 'pole.json'), 'utf8')) as Flow;
  let rt: Awaited<ReturnType<typeof roundTrips>>;
  {
    const { cfg, daemon } = await startDaemon(broker, true, { outbox: { commit_interval: '1ms' } });
    await deploy((await waitServing(daemon)).url!, [...pole, ...ECHO_FLOW]);
    rt = await roundTrips(broker, daemon);
    await daemon.kill('SIGTERM');
    cfg.remove();
  }

  // 3. With Node-RED (default outbox): the pole's example flow plus the echo flow, idle; then a busy function node.
  const { cfg, daemon } = await startDaemon(broker, true);
  const serving = await waitServing(daemon);
  await deploy(serving.url!, [...pole, ...ECHO_FLOW]);
  const rssWith = await residentMb(daemon, serving.pid);
  const rtDefault = await roundTrips(broker, daemon);
  phases.push({ name: 'with Node-RED, idle flows', rssMb: rssWith, alarm: await pressLatencies(broker, daemon) });
  await deploy(serving.url!, [...pole, ...ECHO_FLOW, ...BUSY_NODES]);
  await sleep(500);
  phases.push({ name: 'with Node-RED, busy function node', rssMb: null, alarm: await pressLatencies(broker, daemon) });
  const nrAfter = await noderedStatus(daemon);
  await daemon.kill('SIGTERM');
  cfg.remove();

  // 4. The isolation candidates, alternated so the machine's noise falls on both.
  const host = join(REPO_ROOT, 'dist-bench', 'bench', 'lib', 'nodered-host.js');
  const iso: Record<string, HostResult[]> = { worker: [], process: [] };
  for (let i = 0; i < ISOLATION_RUNS; i++) {
    for (const mode of ['worker', 'process'] as const) {
      iso[mode]!.push(lastLineJson<HostResult>(await runNode(host, ['--mode', mode, '--seconds', quick ? '3' : '5'], { timeoutMs: 120_000 })));
    }
  }
  const med = (mode: string, f: (r: HostResult) => number) => median(iso[mode]!.map(f));
  const oom = { worker: await oomVictim(host, 'worker'), process: await oomVictim(host, 'process') };

  const [without, idle, busy] = phases as [Phase, Phase, Phase];
  console.log(`\nPanic press → alarm.panic at a Mosquitto subscriber (${PRESSES} presses per phase, ms); resident memory after settling\n`);
  console.log(
    table(
      ['phase', 'RSS MiB', 'p50', 'p99', 'lost'],
      phases.map((p) => [p.name, p.rssMb === null ? '–' : fmt(p.rssMb, 1), fmt(p.alarm.p50, 2), fmt(p.alarm.p99, 2), fmt(p.alarm.lost)]),
    ),
  );
  console.log(`\nNode-RED served ${fmt(serving.start_ms)} ms after the daemon started it; ${nrAfter.state} after the busy phase.`);
  console.log(`vigia in → vigia event round trip (${ROUND_TRIPS} events): p50 ${fmt(rt.p50, 2)} ms, p99 ${fmt(rt.p99, 2)} ms, lost ${rt.lost}`);
  console.log(
    `  the same with the default 25 ms group commit (the echo waits for the next commit): p50 ${fmt(rtDefault.p50, 2)} ms, p99 ${fmt(rtDefault.p99, 2)} ms`,
  );
  console.log(
    `\nIsolation candidates (median of ${ISOLATION_RUNS}; the host stands in for the daemon: lateness of its 5 ms timer in ms; ` +
      'memory it keeps after killing a runtime whose flow leaked Buffers)\n',
  );
  console.log(
    table(
      ['isolation', 'start ms', 'RSS added MiB', 'idle p99', 'busy p99', 'busy+load p99', 'busy+load max', 'kill hung ms', 'kept after leak MiB'],
      (['worker', 'process'] as const).map((m) => {
        const figure = (f: (r: HostResult) => number, digits: number) => fmt(med(m, f), digits);
        return [
          m === 'worker' ? 'worker thread' : 'child process (nice 10)',
          figure((r) => r.startup_ms, 0),
          figure((r) => r.rss_added_mb, 1),
          figure((r) => r.idle.p99, 2),
          figure((r) => r.busy.p99, 2),
          figure((r) => r.busy_loaded.p99, 2),
          figure((r) => r.busy_loaded.max, 2),
          figure((r) => r.kill_hung_ms, 1),
          figure((r) => r.host_rss_kept_after_leak_mb, 1),
        ];
      }),
    ),
  );
  console.log(
    `\nOut of memory (a ${OOM_LIMIT_MB} MiB cgroup that a flow's leak fills), the kernel kills: worker thread: ${oom.worker}; child process: ${oom.process}.`,
  );
  const added = round((idle.rssMb ?? 0) - (without.rssMb ?? 0), 1);
  console.log(
    `\nNode-RED adds ${fmt(added, 1)} MiB. Busy/without alarm p99 ratio: ${fmt(ratio(busy.alarm.p99, without.alarm.p99), 2)}.` +
      ' Targets: adds <= 120 MB, round trip p99 <= 10 ms, busy alarm p99 <= 20 ms and <= 1.5x without.\n',
  );
  writeFileSync(join(REPO_ROOT, 'dist-bench', 'nodered-isolation.json'), JSON.stringify(iso, null, 2));
  console.log(
    JSON.stringify({
      rss_mb_without: without.rssMb,
      rss_mb_with: idle.rssMb,
      rss_mb_added: added,
      startup_ms_with: serving.start_ms,
      flow_roundtrip_p50_ms: rt.p50,
      flow_roundtrip_p99_ms: rt.p99,
      flow_roundtrip_p99_ms_group_commit: rtDefault.p99,
      alarm_p99_ms_without: without.alarm.p99,
      alarm_p99_ms_idle_flows: idle.alarm.p99,
      alarm_p99_ms_busy_flow: busy.alarm.p99,
      busy_without_p99_ratio: ratio(busy.alarm.p99, without.alarm.p99),
      lost: without.alarm.lost + idle.alarm.lost + busy.alarm.lost + rt.lost + rtDefault.lost,
      isolation_busy_loaded_p99_ms: { worker: med('worker', (r) => r.busy_loaded.p99), process: med('process', (r) => r.busy_loaded.p99) },
      isolation_rss_added_mb: { worker: med('worker', (r) => r.rss_added_mb), process: med('process', (r) => r.rss_added_mb) },
      isolation_rss_kept_after_leak_mb: {
        worker: med('worker', (r) => r.host_rss_kept_after_leak_mb),
        process: med('process', (r) => r.host_rss_kept_after_leak_mb),
      },
      oom_victim: oom,
      quick,
    }),
  );
});
