// A process holding part of the simulated fleet (fleet-device.ts), driven by the fleet benchmark
// over IPC: it makes the devices' steady event mix, raises alarms at the rate it is told, reports
// a tick every second (backlog, links up, broker acknowledgements) and, at the end, every device's
// link history, hotlist and the ids of every event it accepted (written to a file).
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pino from 'pino';
import { FleetDevice } from './fleet-device.js';

export interface FleetChildInit {
  op: 'init';
  site: string;
  dir: string;
  devices: Array<{ id: string; mqtt: Record<string, unknown> }>;
  commandKey: string;
  hotlistKey: string;
  outboxSync: 'full' | 'normal';
  /** Plate reads per device per second. */
  readsPerS: number;
  /** Health telemetry period per device (ms). */
  telemetryEveryMs: number;
  /** Alarms per second over this process's devices. */
  alarmsPerS: number;
  /** Devices are started over this window, as a fleet powered up over minutes would be. */
  startOverMs: number;
}

export type FleetChildCommand = FleetChildInit | { op: 'alarms'; perS: number } | { op: 'produce'; on: boolean } | { op: 'report' } | { op: 'stop' };

export interface FleetTick {
  op: 'tick';
  at: number;
  depth: number;
  online: number;
  /** Devices online with their command subscription granted. */
  subscribed: number;
  started: number;
  acked: number;
  accepted: number;
  acceptErrors: number;
  /** Alarms raised since the last tick; `online`: whether the device's link was up when it was raised. */
  alarms: Array<{ id: string; at: number; online: boolean; device: string }>;
  /** Alarms the broker acknowledged since the last tick: raised at `at - ms`, acknowledged `ms` later. */
  alarmAcks: Array<{ at: number; ms: number }>;
  /**
   * The longest this process's event loop was held since the last tick (ms): the simulator's own
   * share of every latency, as its devices share one thread (a real device has a process of its own).
   */
  loopDelayMaxMs: number;
}

export interface DeviceReport {
  id: string;
  accepted: number;
  links: Array<{ at: number; state: string; server: string }>;
  hotlist: { version: string; at: number } | null;
  failovers: number;
  resent: number;
  subscribeRefusals: number;
  server: string;
  commands: ReturnType<FleetDevice['commandStats']>;
}

export interface FleetChildReport {
  op: 'report';
  devices: DeviceReport[];
  /** File of accepted event ids, one per line. */
  idsFile: string;
}

const TICK_MS = 100;

let devices: FleetDevice[] = [];
let init: FleetChildInit | undefined;
let producing = true;
let alarmsPerS = 0;
let acceptErrors = 0;
let pendingAlarms: FleetTick['alarms'] = [];
let generator: NodeJS.Timeout | undefined;
let ticker: NodeJS.Timeout | undefined;
let seq = 0;

const send = (m: unknown) => process.send?.(m);
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const logger = pino({ level: process.env.FLEET_LOG_LEVEL ?? 'error' }, pino.destination(2));

async function start(msg: FleetChildInit): Promise<void> {
  init = msg;
  alarmsPerS = msg.alarmsPerS;
  devices = msg.devices.map(
    (d) =>
      new FleetDevice({
        id: d.id,
        site: msg.site,
        dir: join(msg.dir, d.id),
        mqtt: d.mqtt,
        commandKey: msg.commandKey,
        hotlistKey: msg.hotlistKey,
        outboxSync: msg.outboxSync,
        logger,
      }),
  );
  const started = new Set<FleetDevice>();
  const gap = devices.length > 1 ? msg.startOverMs / devices.length : 0;
  for (const d of devices) {
    await d.start();
    started.add(d);
    if (gap > 0) await new Promise((r) => setTimeout(r, gap));
  }
  // Each device's reads and telemetry come at its own phase: accumulators start at random levels.
  const readAcc = devices.map(() => Math.random());
  const telAcc = devices.map(() => Math.random());
  let alarmAcc = 0;
  let last = performance.now();
  generator = setInterval(() => {
    const now = performance.now();
    const dt = (now - last) / 1000;
    last = now;
    if (!producing) return;
    devices.forEach((d, i) => {
      readAcc[i]! += msg.readsPerS * dt;
      while (readAcc[i]! >= 1) {
        readAcc[i]! -= 1;
        // An innocent plate travels as its keyed hash, as the daemon sends it.
        emit(d, 'plate.read', 'read', {
          camera: 'lane-1',
          plate_hash: createHash('sha256').update(String(seq++)).digest('hex'),
          hash: 'hmac-sha256',
          confidence: 0.93,
          frames: 4,
        });
      }
      telAcc[i]! += (dt * 1000) / msg.telemetryEveryMs;
      while (telAcc[i]! >= 1) {
        telAcc[i]! -= 1;
        emit(d, 'health', 'telemetry', { depth: d.depth(), uptime_s: Math.round(process.uptime()) });
      }
    });
    alarmAcc += alarmsPerS * dt;
    while (alarmAcc >= 1) {
      alarmAcc -= 1;
      const d = devices[Math.floor(Math.random() * devices.length)]!;
      const at = Date.now();
      const online = d.online();
      d.emit('alarm.panic', 'alarm', {
        input: 'panic',
        pressed_at: new Date(at).toISOString(),
        line_mono_ms: 0,
        alarm_id: null,
        press: 1,
        snapshot: null,
      }).then(
        (id) => pendingAlarms.push({ id, at, online, device: d.id }),
        () => acceptErrors++,
      );
    }
  }, TICK_MS);
  ticker = setInterval(() => send(tick()), 1000);
  send({ op: 'started' });
}

function emit(d: FleetDevice, type: string, priority: 'read' | 'telemetry', payload: Record<string, unknown>): void {
  d.emit(type, priority, payload).catch(() => acceptErrors++);
}

function tick(): FleetTick {
  let depth = 0;
  let online = 0;
  let subscribed = 0;
  let acked = 0;
  let accepted = 0;
  for (const d of devices) {
    depth += d.depth();
    if (d.online()) online++;
    const stats = d.uplinkStats();
    if (stats.subscribed) subscribed++;
    acked += stats.acked;
    accepted += d.accepted.length;
  }
  const alarms = pendingAlarms;
  pendingAlarms = [];
  const alarmAcks = devices.flatMap((d) => d.alarmAcks.splice(0));
  const loopDelayMaxMs = loopDelay.max / 1e6;
  loopDelay.reset();
  return { op: 'tick', at: Date.now(), depth, online, subscribed, started: devices.length, acked, accepted, acceptErrors, alarms, alarmAcks, loopDelayMaxMs };
}

function report(): FleetChildReport {
  const idsFile = join(init!.dir, `ids-${process.pid}.txt`);
  writeFileSync(idsFile, devices.map((d) => d.accepted.join('\n')).join('\n'));
  return {
    op: 'report',
    idsFile,
    devices: devices.map((d) => {
      const s = d.uplinkStats();
      return {
        id: d.id,
        accepted: d.accepted.length,
        links: d.links,
        hotlist: d.hotlist,
        failovers: s.failovers,
        resent: s.resent,
        subscribeRefusals: s.subscribeRefusals,
        server: s.server,
        commands: d.commandStats(),
      };
    }),
  };
}

process.on('message', (msg: FleetChildCommand) => {
  switch (msg.op) {
    case 'init':
      start(msg).catch((err: Error) => {
        process.stderr.write(`fleet-child: ${err.stack}\n`);
        process.exit(1);
      });
      break;
    case 'alarms':
      alarmsPerS = msg.perS;
      break;
    case 'produce':
      producing = msg.on;
      break;
    case 'report':
      send(report());
      break;
    case 'stop':
      clearInterval(generator);
      clearInterval(ticker);
      void Promise.all(devices.map((d) => d.stop().catch(() => undefined))).then(() => {
        send({ op: 'stopped' });
        process.exit(0);
      });
      break;
  }
});
process.on('disconnect', () => process.exit(0));
