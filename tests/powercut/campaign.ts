import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { prepareRig, type Rig, startVm, type Vm } from '../../scripts/hardware-rig.mjs';
import { type Broker, startMosquitto } from '../helpers/mosquitto.js';
import { freePort } from '../helpers/ports.js';
import { REPO_ROOT } from '../helpers/repo.js';
import { Subscriber } from '../helpers/subscriber.js';

// The power-cut campaign: boots the VM (tests/powercut/vm-agent.mjs runs the daemon on a virtio
// disk image), lets it work, pulls the plug (SIGKILL to QEMU) at random moments and in the middle
// of WAL checkpoints, boots again, and keeps the books of what the daemon acknowledged against
// what reached the broker. The last boot is not cut: it drains the outbox and stops cleanly.

export type Synchronous = 'full' | 'normal';
type Priority = 'alarm' | 'hit' | 'read' | 'telemetry';

export interface CampaignOptions {
  synchronous: Synchronous;
  cuts: number;
  /** Where the disk image, consoles and results go. */
  dir: string;
  seed?: number;
  /** Every n-th cut waits for a WAL checkpoint to start and cuts during it. */
  checkpointEvery?: number;
  log?: (msg: string) => void;
}

/** A message from the agent in the VM. */
type AgentMessage = { boot: number; ev: string; [k: string]: any };

export interface BootRecord {
  boot: number;
  /** Host time from starting QEMU to the daemon's "started", ms. */
  bootToReadyMs: number | null;
  /** The daemon's own start (process spawn to "started") inside the VM, ms. */
  daemonStartMs: number | null;
  integrity: string[] | null;
  corruptLeftovers: string[];
  rowsAfterCut: number | null;
  walBytesAfterCut: number | null;
  cut: 'random' | 'checkpoint' | 'none';
  /** The cut came after a checkpoint started and before it was reported done. */
  inCheckpoint: boolean;
  loadMs: number | null;
  ackedEvents: number;
  ackedPresses: number;
  errors: string[];
  daemonExit: unknown;
}

export interface CampaignResult {
  synchronous: Synchronous;
  boots: BootRecord[];
  cuts: number;
  cutsInCheckpoint: number;
  acked: Record<Priority, number>;
  ackedPresses: number;
  received: number;
  /** Acknowledged alarm, hit and read events that never arrived. */
  lost: number;
  lostByPriority: Record<Priority, number>;
  lostPresses: number;
  /** Acknowledged telemetry that never arrived, and the telemetry evictions reported. */
  telemetryMissing: number;
  telemetryEvictedReported: number;
  /** Events received more than once (at-least-once delivery), counted once per extra copy. */
  duplicates: number;
  /** Sequence numbers carried by two different events. */
  seqReused: number;
  integrityFailures: number;
  bootToReadyMs: number[];
  daemonStartMs: number[];
  /** How long the checkpoints that copied something took in the VM (ms). */
  checkpointMs: number[];
  lostSamples: string[];
  logErrors: string[];
}

const PRIORITIES: Priority[] = ['alarm', 'hit', 'read', 'telemetry'];
const DISK_MIB = 256;
const READY_TIMEOUT_MS = 180_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** xorshift32: the cut moments come from the seed, so a failing run can be repeated. */
function generator(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/** The channel the agents connect to: one JSON line per fact, for whichever boot is current. */
class Channel {
  server!: Server;
  port = 0;
  #listeners = new Set<(m: AgentMessage) => void>();

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = createServer((socket) => {
      socket.on('error', () => socket.destroy());
      createInterface({ input: socket }).on('line', (line) => {
        let msg: AgentMessage;
        try {
          msg = JSON.parse(line) as AgentMessage;
        } catch {
          return;
        }
        for (const l of this.#listeners) l(msg);
      });
    });
    // The guest reaches the host's loopback through QEMU's user networking.
    await new Promise<void>((r) => this.server.listen(this.port, '127.0.0.1', r));
  }

  on(listener: (m: AgentMessage) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resolves with the first message that matches, or null when the VM is gone or time is up. */
  next(pred: (m: AgentMessage) => boolean, vm: Vm, timeoutMs: number): Promise<AgentMessage | null> {
    return new Promise((resolve) => {
      const done = (m: AgentMessage | null) => {
        off();
        clearTimeout(timer);
        resolve(m);
      };
      const off = this.on((m) => pred(m) && done(m));
      const timer = setTimeout(() => done(null), timeoutMs);
      void vm.exited.then(() => done(null));
    });
  }

  stop(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

function makeDisk(image: string): void {
  rmSync(image, { force: true });
  const res = spawnSync('sh', ['-c', `truncate -s ${DISK_MIB}M "$1" && mkfs.ext4 -q -F "$1"`, 'sh', image], { encoding: 'utf8' });
  if (res.status !== 0) throw new Error(`cannot make the disk image ${image}: ${res.stderr}`);
}

export async function runCampaign(opts: CampaignOptions): Promise<CampaignResult> {
  const log = opts.log ?? (() => undefined);
  const random = generator(opts.seed ?? 0x5eed);
  const checkpointEvery = opts.checkpointEvery ?? 3;
  mkdirSync(opts.dir, { recursive: true });
  const rig: Rig = prepareRig();
  const image = join(opts.dir, 'data.img');
  makeDisk(image);

  const broker: Broker = await startMosquitto({ maxQueuedMessages: 10_000_000 });
  const sub = new Subscriber(broker.url, { qos: 1 });
  await sub.connect();
  const channel = new Channel();
  await channel.start();

  // The books.
  const ackedIds = new Map<string, Priority>();
  const ackedPresses: Array<{ alarmId: string; press: number; boot: number }> = [];
  const boots: BootRecord[] = [];
  const logErrors: string[] = [];
  let current: BootRecord | undefined;
  let checkpointOpen = false;
  const checkpointMs: number[] = [];
  channel.on((m) => {
    if (!current || m.boot !== current.boot) return;
    if (m.ev === 'acked') {
      for (const id of m.ids as string[]) ackedIds.set(id, m.priority as Priority);
      current.ackedEvents += (m.ids as string[]).length;
    } else if (m.ev === 'press_acked') {
      ackedPresses.push({ alarmId: m.alarm_id, press: m.press, boot: m.boot });
      current.ackedPresses++;
    } else if (m.ev === 'disk') {
      current.integrity = m.exists ? (m.integrity as string[]) : ['ok'];
      current.corruptLeftovers = m.leftovers as string[];
      current.rowsAfterCut = m.rows as number | null;
      current.walBytesAfterCut = m.wal_bytes as number | null;
    } else if (m.ev === 'checkpoint') {
      checkpointOpen = m.phase === 'start';
      if (m.phase === 'done' && m.frames > 0) checkpointMs.push(m.ms as number);
    } else if (m.ev === 'log') {
      const line = String(m.line);
      // Errors and worse, minus the link's: the broker is reachable, but a cut can land mid-connect.
      if (/"level":(5|6)0/.test(line) || !line.startsWith('{')) {
        current.errors.push(line.slice(0, 400));
        logErrors.push(`boot ${m.boot}: ${line.slice(0, 400)}`);
      }
    } else if (m.ev === 'error') {
      current.errors.push(`agent: ${m.message}`);
    } else if (m.ev === 'daemon_exit') {
      current.daemonExit = { code: m.code, signal: m.signal };
    }
  });

  const boot = async (n: number, mode: 'load' | 'drain') => {
    const record: BootRecord = {
      boot: n,
      bootToReadyMs: null,
      daemonStartMs: null,
      integrity: null,
      corruptLeftovers: [],
      rowsAfterCut: null,
      walBytesAfterCut: null,
      cut: 'none',
      inCheckpoint: false,
      loadMs: null,
      ackedEvents: 0,
      ackedPresses: 0,
      errors: [],
      daemonExit: null,
    };
    current = record;
    boots.push(record);
    checkpointOpen = false;
    const outDir = join(opts.dir, `boot-${String(n).padStart(2, '0')}`);
    mkdirSync(outDir, { recursive: true });
    const plan = { boot: n, mode, brokerPort: broker.port, channelPort: channel.port, synchronous: opts.synchronous, seed: Math.floor(random() * 2 ** 31) };
    writeFileSync(join(outDir, 'powercut.json'), JSON.stringify(plan));
    const vm = startVm(rig, [process.execPath, 'tests/powercut/vm-agent.mjs'], {
      outDir,
      cwd: REPO_ROOT,
      disk: { image, mountAt: '/run/vigia-disk' },
      net: true,
    });
    const ready = await channel.next((m) => m.boot === n && m.ev === 'ready', vm, READY_TIMEOUT_MS);
    if (!ready) {
      vm.kill();
      const exit = await vm.exited;
      throw new Error(
        `boot ${n}: the daemon did not report ready within ${READY_TIMEOUT_MS / 1000} s; console ${exit.consoleFile}; ${record.errors.join('\n')}`,
      );
    }
    record.bootToReadyMs = Date.now() - vm.startedAt;
    record.daemonStartMs = ready.daemon_start_ms as number;
    log(
      `boot ${n} (${mode}): ready in ${(record.bootToReadyMs / 1000).toFixed(1)} s, integrity ${record.integrity?.join(',')}, outbox ${ready.outbox_depth} events`,
    );
    return { vm, record };
  };

  try {
    for (let n = 0; n < opts.cuts; n++) {
      const { vm, record } = await boot(n, 'load');
      const loadStarted = Date.now();
      const atCheckpoint = (n + 1) % checkpointEvery === 0;
      if (atCheckpoint) {
        // Work for a while first, so the WAL has something to copy, then cut as a checkpoint starts.
        await sleep(1500 + random() * 3000);
        const started = await channel.next((m) => m.boot === n && m.ev === 'checkpoint' && m.phase === 'start', vm, 20_000);
        record.cut = started ? 'checkpoint' : 'random';
      } else {
        record.cut = 'random';
        await sleep(500 + random() * 6000);
      }
      record.inCheckpoint = checkpointOpen;
      vm.kill();
      await vm.exited;
      record.loadMs = Date.now() - loadStarted;
      log(
        `cut ${n + 1}/${opts.cuts} after ${(record.loadMs / 1000).toFixed(1)} s of load (${record.cut}${record.inCheckpoint ? ', during a checkpoint' : ''}): ${record.ackedEvents} events and ${record.ackedPresses} presses acknowledged`,
      );
    }
    const { vm, record } = await boot(opts.cuts, 'drain');
    const stopped = await channel.next((m) => m.boot === opts.cuts && m.ev === 'stopped', vm, 600_000);
    const exit = await vm.exited;
    if (!stopped) throw new Error(`the last boot did not drain and stop; console ${exit.consoleFile}; ${record.errors.join('\n')}`);
    await sub.settle(2000, 30_000);
  } finally {
    await channel.stop();
  }

  // The books against the broker.
  const received = new Map<string, { type: string; seq: number; payload: any }>();
  let duplicates = 0;
  const seqOwners = new Map<number, Set<string>>();
  for (const { event } of sub.events) {
    if (received.has(event.id)) duplicates++;
    received.set(event.id, { type: event.type, seq: event.seq, payload: event.payload });
    let owners = seqOwners.get(event.seq);
    if (!owners) seqOwners.set(event.seq, (owners = new Set()));
    owners.add(event.id);
  }
  const seqReused = [...seqOwners.values()].filter((s) => s.size > 1).length;
  const acked = Object.fromEntries(PRIORITIES.map((p) => [p, 0])) as Record<Priority, number>;
  const lostByPriority = Object.fromEntries(PRIORITIES.map((p) => [p, 0])) as Record<Priority, number>;
  const lostSamples: string[] = [];
  for (const [id, p] of ackedIds) {
    acked[p]++;
    if (!received.has(id)) {
      lostByPriority[p]++;
      if (p !== 'telemetry' && lostSamples.length < 10) lostSamples.push(`${p} ${id}`);
    }
  }
  const panics = [...received.entries()].filter(([, e]) => e.type === 'alarm.panic');
  const lostPresses = ackedPresses.filter(
    ({ alarmId, press }) => !panics.some(([id, e]) => (press === 1 && id === alarmId) || (e.payload.alarm_id === alarmId && e.payload.press === press)),
  ).length;
  let telemetryEvictedReported = 0;
  for (const e of received.values()) {
    if (e.type === 'system.outbox_evicted') {
      for (const n of Object.values((e.payload.evicted?.telemetry ?? {}) as Record<string, number>)) telemetryEvictedReported += n;
    }
  }
  const cut = boots.filter((b) => b.cut !== 'none');
  await sub.client.endAsync();
  await broker.stop();
  return {
    synchronous: opts.synchronous,
    boots,
    cuts: cut.length,
    cutsInCheckpoint: cut.filter((b) => b.inCheckpoint).length,
    acked,
    ackedPresses: ackedPresses.length,
    received: received.size,
    lost: lostByPriority.alarm + lostByPriority.hit + lostByPriority.read,
    lostByPriority,
    lostPresses,
    telemetryMissing: lostByPriority.telemetry,
    telemetryEvictedReported,
    duplicates,
    seqReused,
    integrityFailures: boots.filter((b) => b.integrity && (b.integrity.length !== 1 || b.integrity[0] !== 'ok')).length,
    bootToReadyMs: boots.flatMap((b) => (b.bootToReadyMs === null ? [] : [b.bootToReadyMs])),
    daemonStartMs: boots.flatMap((b) => (b.daemonStartMs === null ? [] : [b.daemonStartMs])),
    checkpointMs,
    lostSamples,
    logErrors,
  };
}
