// One isolation candidate for Node-RED, measured in a process of its own: this process plays the
// daemon and runs the real runtime (dist/nodered/runtime.js) either in a worker thread or in a
// forked process, as the supervisor would. It reports the memory the runtime adds, its start time,
// how late this process's own timers run (the daemon's alarm path lives on such timers and I/O
// callbacks) while a flow busy-loops, with and without another core's worth of load, and how long
// killing a hung runtime takes.
//
// With --oom it runs one scenario instead: inside a memory cgroup that the runtime's leak fills
// (as a device that ran out of memory), who does the kernel's out-of-memory killer take?
//
//   node dist-bench/bench/lib/nodered-host.js --mode worker|process [--seconds 5] [--oom]
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import bcrypt from 'bcryptjs';
import { AdminClient } from '../../src/nodered/admin-client.js';
import type { FromRuntime, RuntimeOptions, ToRuntime } from '../../src/nodered/protocol.js';
import { REPO_ROOT } from '../../tests/helpers/repo.js';
import { procMem } from './proc.js';
import { percentile, round } from './stats.js';

const args = process.argv.slice(2);
const mode = args[args.indexOf('--mode') + 1] === 'worker' ? 'worker' : 'process';
const SECONDS = Number(args.includes('--seconds') ? args[args.indexOf('--seconds') + 1] : 5);
const HEAP_MB = 192;
/** Memory held by a leaking runtime before the host kills it (twice the heap cap, as the supervisor does). */
const LEAK_CAP_MB = 2 * HEAP_MB;
const ENTRY = join(REPO_ROOT, 'dist', 'nodered', 'runtime.js');
const PASSWORD = 'isolation bench';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** How the forked runtime ended (SIGKILL from the OOM killer...), once it has. */
let runtimeExit: string | null = null;

interface Runtime {
  send(msg: ToRuntime): void;
  onMessage(fn: (msg: FromRuntime) => void): void;
  /** Resident memory the runtime adds beyond this process's own (MiB). */
  extraRssMb(): number;
  kill(): Promise<void>;
}

function startRuntime(): Runtime {
  if (mode === 'worker') {
    const worker = new Worker(ENTRY, { resourceLimits: { maxOldGenerationSizeMb: HEAP_MB } });
    return {
      send: (m) => worker.postMessage(m),
      onMessage: (fn) => worker.on('message', fn),
      extraRssMb: () => 0,
      kill: async () => {
        await worker.terminate();
      },
    };
  }
  const child: ChildProcess = fork(ENTRY, [], { execArgv: [`--max-old-space-size=${HEAP_MB}`], stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  // As the supervisor does: the runtime yields the CPU to the daemon, and is the OOM killer's first choice.
  setPriority(child.pid!, 10);
  writeFileSync(`/proc/${child.pid}/oom_score_adj`, '1000');
  child.once('exit', (_code, signal) => {
    runtimeExit = signal ?? 'exit';
  });
  return {
    send: (m) => child.send(m),
    onMessage: (fn) => child.on('message', fn),
    extraRssMb: () => procMem(child.pid!) ?? 0,
    kill: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}

/** How late a 5 ms interval timer fires, over `seconds` (p50, p99, max in ms). */
async function timerLateness(seconds: number) {
  const lateness: number[] = [];
  let expected = performance.now() + 5;
  await new Promise<void>((resolve) => {
    const end = performance.now() + seconds * 1000;
    const timer = setInterval(() => {
      const now = performance.now();
      lateness.push(Math.max(0, now - expected));
      expected = now + 5;
      if (now > end) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  return { p50: round(percentile(lateness, 50), 2), p99: round(percentile(lateness, 99), 2), max: round(Math.max(...lateness), 2) };
}

const busyFlow = (loopMs: number) => [
  { id: 'busytab000000001', type: 'tab', label: 'busy' },
  {
    id: 'busyinject000001',
    type: 'inject',
    z: 'busytab000000001',
    repeat: '1',
    once: true,
    onceDelay: 0.1,
    payloadType: 'date',
    wires: [['busyfunc00000001']],
  },
  {
    id: 'busyfunc00000001',
    type: 'function',
    z: 'busytab000000001',
    name: 'busy',
    func: `const end = Date.now() + ${loopMs}; while (Date.now() < end) {} return msg;`,
    outputs: 1,
    wires: [[]],
  },
];

/** A flow that keeps 8 MB Buffers, 20 a second, for ever: memory outside the JS heap. */
const LEAK_FLOW = [
  { id: 'leaktab000000001', type: 'tab', label: 'leak' },
  {
    id: 'leakinject000001',
    type: 'inject',
    z: 'leaktab000000001',
    repeat: '0.05',
    once: true,
    onceDelay: 0.1,
    payloadType: 'date',
    wires: [['leakfunc00000001']],
  },
  {
    id: 'leakfunc00000001',
    type: 'function',
    z: 'leaktab000000001',
    func: "const kept = context.get('kept') || []; kept.push(Buffer.alloc(8e6, 1)); context.set('kept', kept); return null;",
    outputs: 1,
    wires: [[]],
  },
];

const rssBefore = procMem('self')!;
const runtime = startRuntime();
const t0 = performance.now();
let url = '';
const ready = new Promise<void>((resolve, reject) => {
  runtime.onMessage((msg) => {
    if (msg.t === 'ready') {
      url = msg.url;
      resolve();
    } else if (msg.t === 'start_failed') reject(new Error(msg.message));
    else if (msg.t === 'call') runtime.send({ t: 'reply', id: msg.id, ok: true, result: null });
  });
});
const options: RuntimeOptions = {
  bind: '127.0.0.1',
  port: 0,
  userDir: mkdtempSync(join(tmpdir(), 'vigia-bench-nr-host-')),
  nodesDir: join(REPO_ROOT, 'node-red-vigia'),
  users: [{ username: 'bench', password: bcrypt.hashSync(PASSWORD, 4), permissions: '*' }],
  credentialSecret: 'bench',
  paletteInstalls: false,
  logLevel: 'warn',
  info: {
    device: { id: 'bench', site: 'bench', profile: 'pole' },
    eventTypes: [],
    priorities: ['alarm', 'hit', 'read', 'telemetry'],
    outputs: [],
    inputs: [],
    allowAlarm: false,
    eventRate: { per_second: 5, burst: 20 },
    hotlist: false,
  },
};
runtime.send({ t: 'init', options });
await ready;
const startupMs = round(performance.now() - t0, 0);
if (args.includes('--oom')) {
  const c = new AdminClient(url);
  await c.login('bench', PASSWORD);
  await c.setFlows(LEAK_FLOW as never);
  const end = performance.now() + 30_000;
  // In worker mode this process is the only one in the cgroup: if the line below never prints, the kernel took it.
  while (runtimeExit === null && performance.now() < end) await sleep(50);
  console.log(JSON.stringify({ mode, host_survived: true, runtime_ended_by: runtimeExit }));
  process.exit(0);
}
await sleep(2000);
const rssAddedMb = round(procMem('self')! - rssBefore + runtime.extraRssMb(), 1);

const idle = await timerLateness(SECONDS);
const client = new AdminClient(url);
await client.login('bench', PASSWORD);
await client.setFlows(busyFlow(950) as never);
await sleep(300);
const busy = await timerLateness(SECONDS);
// Another core's worth of work (plate reading, say): now the busy flow competes with the daemon for CPU.
const hog = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
await sleep(200);
const busyLoaded = await timerLateness(SECONDS);
hog.kill('SIGKILL');

// A hung runtime: how long taking it down takes, seen from here.
await client.setFlows(busyFlow(60_000) as never);
await sleep(500);
const k0 = performance.now();
await runtime.kill();
const killMs = round(performance.now() - k0, 1);

// A flow that keeps Buffers (memory outside the JS heap, which no heap cap bounds): the host does
// what the supervisor does, kills the runtime once it holds LEAK_CAP_MB more, then looks at its own
// memory. A process gives it all back; a thread leaves it in the daemon's address space.
const leakRuntime = startRuntime();
const leakBefore = procMem('self')!;
let leakUrl = '';
await new Promise<void>((resolve, reject) => {
  leakRuntime.onMessage((msg) => {
    if (msg.t === 'ready') {
      leakUrl = msg.url;
      resolve();
    } else if (msg.t === 'start_failed') reject(new Error(msg.message));
  });
  leakRuntime.send({ t: 'init', options });
});
const leakClient = new AdminClient(leakUrl);
await leakClient.login('bench', PASSWORD);
await leakClient.setFlows(LEAK_FLOW as never);
const held = () => (mode === 'worker' ? procMem('self')! - leakBefore : leakRuntime.extraRssMb());
const leakStart = performance.now();
while (held() < LEAK_CAP_MB && performance.now() - leakStart < 30_000) await sleep(50);
const heldAtKill = round(held(), 0);
await leakRuntime.kill();
await sleep(2000);
const hostAfterLeakMb = round(procMem('self')! - leakBefore, 1);

console.log(
  JSON.stringify({
    mode,
    startup_ms: startupMs,
    rss_added_mb: rssAddedMb,
    idle,
    busy,
    busy_loaded: busyLoaded,
    kill_hung_ms: killMs,
    leak_held_at_kill_mb: heldAtKill,
    host_rss_kept_after_leak_mb: hostAfterLeakMb,
  }),
);
process.exit(0);
