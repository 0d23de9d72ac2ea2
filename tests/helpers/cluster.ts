import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isExecutable } from '../../src/core/executable.js';
import { cleanupAtExit } from './exit-hooks.js';
import { canConnect, freePort, readIfExists } from './ports.js';

/**
 * A real RabbitMQ cluster for a test or a benchmark: Debian's `rabbitmq-server` package (3.10 on
 * Debian 12), N nodes started as child processes of this process on loopback ports, with the MQTT
 * plugin and durable (clean session = false) MQTT subscriptions kept in quorum queues replicated on
 * three nodes. Nothing system-wide is used: each cluster has its own epmd on a free port, its own
 * Erlang cookie (in a private HOME) and its own data folder; /etc/rabbitmq is ignored.
 *
 * Node 0 boots first and forms the cluster; the others join it through classic config peer
 * discovery. `kill(i)` is a power cut of node i (SIGKILL to its whole process tree), `restart(i)`
 * boots it again on its data folder and waits until it is back in the cluster.
 */

export interface ClusterNode {
  /** Erlang node name, e.g. `vigia-a@localhost`. */
  readonly name: string;
  readonly mqttPort: number;
  /** AMQP 0-9-1 listener (127.0.0.1), handy for inspecting queues. */
  readonly amqpPort: number;
  /** `mqtt://127.0.0.1:PORT` */
  readonly url: string;
  /** PID of the node's Erlang VM (beam.smp) while it runs. */
  readonly pid: number | undefined;
  /** Whether the node's processes are running (started and not killed). */
  readonly alive: boolean;
}

export interface BrokerCluster {
  readonly nodes: ClusterNode[];
  /** The nodes' MQTT URLs, in node order. */
  readonly urls: string[];
  /** The cluster's folder: a `home` (cookie), one folder per node (config, data, logs). */
  readonly dir: string;
  /** The broker's version, e.g. "3.10.8". */
  readonly version: string;
  /** How long startBrokerCluster took until every node was up and clustered (ms). */
  readonly startupMs: number;
  /**
   * SIGKILL the node's whole process tree at once (beam.smp, erl_child_setup, inet_gethost, the
   * disk monitor's shell) — a power cut of that node. Resolves when all of them are gone.
   */
  kill(index: number): Promise<void>;
  /** Start a killed node again (same data dir) and wait until it is back in the cluster and its MQTT port answers. */
  restart(index: number): Promise<void>;
  /** Stop everything (all nodes, their epmd) and remove the data dir unless keepDir. Idempotent. */
  stop(): Promise<void>;
  /** Text of the node's log files, for test failure messages. */
  logs(index: number): string;
  /** Runs `rabbitmqctl -n NODE ARGS...` against node `index` (default: the first live node); resolves with its stdout. */
  ctl(args: string[], index?: number): Promise<string>;
  /** Resident memory of the node's Erlang VM in bytes (undefined when the node is down). */
  rssBytes(index: number): number | undefined;
}

export interface BrokerClusterOptions {
  /** Number of nodes (default 3). Durable MQTT subscriptions get min(3, nodes) replicas. */
  nodes?: number;
  /** Folder for the cluster (created if missing). Default: a fresh folder in the system temp dir. */
  dir?: string;
  /**
   * Keep the folder on stop() (default false: it is removed, also when `dir` was given). For looking
   * at the data and logs afterwards; starting a new cluster on a kept folder is not supported.
   */
  keepDir?: boolean;
  /** Progress lines ("node vigia-b@localhost up in 9.8 s"). */
  logger?: (line: string) => void;
  /** Time allowed for one node to boot (default 120 s; a 2-core machine boots one in ~10 s). */
  nodeStartTimeoutMs?: number;
}

const LIB_DIRS = ['/usr/lib/rabbitmq'];
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
const CTL_TIMEOUT_MS = 60_000;
const CLUSTER_TIMEOUT_MS = 120_000;

// ---------------------------------------------------------------------------
// Locating the installation.

export interface RabbitmqInstall {
  server: string;
  ctl: string;
  epmd: string;
  version: string;
}

let cachedInstall: RabbitmqInstall | undefined;

function onPath(name: string, extra: string[]): string | undefined {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(extra);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The scripts that start a node and talk to it. Debian's /usr/sbin/rabbitmq-server is a wrapper
 * that switches to the `rabbitmq` user; the scripts it wraps live in /usr/lib/rabbitmq/bin and run
 * as whoever calls them, which is what a test wants.
 */
export function findRabbitmq(): RabbitmqInstall {
  if (cachedInstall) return cachedInstall;
  let binDir: string | undefined;
  for (const lib of LIB_DIRS) {
    if (isExecutable(join(lib, 'bin', 'rabbitmq-server'))) binDir = join(lib, 'bin');
  }
  if (binDir === undefined) {
    // Generic-unix layout: sbin/rabbitmq-server is the real script.
    const found = onPath('rabbitmq-server', SBIN_DIRS);
    if (found !== undefined && !realpathSync(found).endsWith('rabbitmq-script-wrapper')) binDir = join(realpathSync(found), '..');
  }
  if (binDir === undefined) {
    throw new Error('RabbitMQ is not installed (no /usr/lib/rabbitmq/bin/rabbitmq-server): run `node scripts/ensure-system-deps.mjs` as root');
  }
  const epmd = onPath('epmd', ['/usr/bin', '/usr/lib/erlang/bin']);
  if (epmd === undefined) throw new Error('epmd (Erlang) not found; it comes with the rabbitmq-server package (erlang-base)');
  let version = 'unknown';
  try {
    const lib = join(binDir, '..', 'lib');
    const server = readdirSync(lib).find((d) => d.startsWith('rabbitmq_server-'));
    if (server) version = server.slice('rabbitmq_server-'.length);
  } catch {
    // version stays unknown
  }
  cachedInstall = { server: join(binDir, 'rabbitmq-server'), ctl: join(binDir, 'rabbitmqctl'), epmd, version };
  return cachedInstall;
}

/** The installed RabbitMQ version ("3.10.8"), or "unknown". */
export function rabbitmqVersion(): string {
  return findRabbitmq().version;
}

// ---------------------------------------------------------------------------
// Processes: a node is a process group (the rabbitmq-server script, beam.smp) plus helpers that
// beam starts in their own sessions (erl_child_setup, inet_gethost, the disk monitor's shell).

/** PID → parent PID for every process, from /proc. */
function processTable(): Map<number, { ppid: number; comm: string; state: string }> {
  const table = new Map<number, { ppid: number; comm: string; state: string }>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return table;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse from the last ')'.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const [state, ppid] = stat
        .slice(close + 2)
        .split(' ')
        .slice(0, 2);
      table.set(Number(entry), { ppid: Number(ppid), comm, state: state ?? '?' });
    } catch {
      // the process went away meanwhile
    }
  }
  return table;
}

/** `root` and all its descendants that are still running (zombies left out). */
function processTree(root: number): number[] {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, { ppid }] of table) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    const info = table.get(pid);
    if (info && info.state !== 'Z') out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

function findBeam(root: number): number | undefined {
  const table = processTable();
  for (const pid of processTree(root)) {
    if (table.get(pid)?.comm === 'beam.smp') return pid;
  }
  return undefined;
}

function isRunning(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function killTreeSync(root: number): number[] {
  const pids = processTree(root);
  try {
    process.kill(-root, 'SIGKILL');
  } catch {
    // group already gone
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  return pids;
}

/** Process groups (node scripts, epmd) and folders still to clean up if this process exits early. */
const liveGroups = new Set<number>();
/** epmd process groups: killed after the nodes (a node that finds its epmd gone starts another). */
const liveEpmds = new Set<number>();
const liveDirs = new Set<string>();

function cleanupSync(): void {
  for (const pgid of liveGroups) killTreeSync(pgid);
  liveGroups.clear();
  for (const pgid of liveEpmds) killTreeSync(pgid);
  liveEpmds.clear();
  for (const dir of liveDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  liveDirs.clear();
}

/**
 * The nodes run in sessions of their own (so that a kill reaches the whole node), which also means
 * they would outlive this process if it died without running its exit hooks (SIGKILL, a test
 * runner's hard timeout). A small shell watches a pipe from this process: when the pipe closes
 * without an `end` line, it kills every process group it was told about and removes the folder.
 */
const WATCHDOG_SCRIPT = `
list=" "
last=""
dir=""
while read -r op arg; do
  case "$op" in
    add) list="$list$arg " ;;
    del) list=$(printf '%s' "$list" | sed "s/ $arg / /") ;;
    last) last="$arg" ;;
    dir) dir="$arg" ;;
    end) exit 0 ;;
  esac
done
for id in $list; do kill -9 "-$id" 2>/dev/null; kill -9 "$id" 2>/dev/null; done
sleep 1
if [ -n "$last" ]; then kill -9 "-$last" 2>/dev/null; kill -9 "$last" 2>/dev/null; fi
if [ -n "$dir" ]; then rm -rf -- "$dir"; fi
`;

interface Watchdog {
  add(pgid: number): void;
  /** The process group to kill after all the others (epmd: a node that finds it gone starts a new one). */
  last(pgid: number): void;
  del(pgid: number): void;
  end(): void;
}

function startWatchdog(dir: string | undefined): Watchdog {
  const child = spawn('/bin/sh', ['-c', WATCHDOG_SCRIPT], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  child.on('error', () => {});
  child.stdin?.on('error', () => {});
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  let open = true;
  const send = (line: string): void => {
    if (open) child.stdin?.write(`${line}\n`);
  };
  if (dir !== undefined) send(`dir ${dir}`);
  return {
    add: (pgid) => send(`add ${pgid}`),
    last: (pgid) => send(`last ${pgid}`),
    del: (pgid) => send(`del ${pgid}`),
    end: () => {
      send('end');
      open = false;
      child.stdin?.end();
    },
  };
}

async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

// ---------------------------------------------------------------------------
// Configuration.

interface NodeSpec {
  index: number;
  name: string;
  dir: string;
  amqpPort: number;
  distPort: number;
  mqttPort: number;
  configFile: string;
}

/**
 * rabbitmq.conf for one node. Every key is checked against the 3.10 schemas (rabbit.schema and
 * rabbitmq_mqtt.schema); an unknown key would stop the node at boot.
 */
function nodeConfig(spec: NodeSpec, all: NodeSpec[]): string {
  const lines = [
    `# ${spec.name}, generated by tests/helpers/cluster.ts`,
    `listeners.tcp.default = 127.0.0.1:${spec.amqpPort}`,
    // guest/guest is the MQTT default user; allow it from anywhere (everything is on loopback anyway).
    'loopback_users = none',
    // Small test machines: no disk alarm while a few hundred MB are free, no memory alarm from three
    // nodes sharing one machine's RAM.
    'disk_free_limit.absolute = 50MB',
    'vm_memory_high_watermark.relative = 0.2',
    'log.console = false',
    'log.file.level = info',
    '',
    `mqtt.listeners.tcp.default = 127.0.0.1:${spec.mqttPort}`,
    'mqtt.allow_anonymous = true',
    'mqtt.vhost = /',
    'mqtt.exchange = amq.topic',
    // QoS 1 subscriptions of clean-session=false clients go to quorum queues (Raft, replicated on
    // three nodes, acknowledged publishes survive the loss of one). Clean sessions keep classic
    // auto-delete queues: quorum queues cannot be auto-delete.
    'mqtt.durable_queue_type = quorum',
    // Unacknowledged QoS 1 deliveries in flight per subscriber (the plugin's default is 10).
    'mqtt.prefetch = 1000',
    // A persistent session's queue is deleted after being unused for this long (24 h).
    'mqtt.subscription_ttl = 86400000',
  ];
  if (spec.index > 0) {
    // Joins the cluster at its first boot (an empty data folder). Node 0 has no peers to look for:
    // it starts alone and the others join it. A node that restarts on its data ignores this.
    lines.push('', 'cluster_formation.peer_discovery_backend = classic_config');
    for (const n of all) lines.push(`cluster_formation.classic_config.nodes.${n.index + 1} = ${n.name}`);
    lines.push('cluster_formation.discovery_retry_limit = 60', 'cluster_formation.discovery_retry_interval = 1000');
  }
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------

interface NodeState {
  spec: NodeSpec;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  exitInfo: string | undefined;
  beamPid: number | undefined;
}

/**
 * Starts an N-node cluster (default 3) and resolves when every node answers on its MQTT port and
 * all of them are listed as running in `rabbitmqctl cluster_status`, and the MQTT plugin's client
 * ID tracking (a Raft cluster of its own) has every node as a member.
 */
export async function startBrokerCluster(opts: BrokerClusterOptions = {}): Promise<BrokerCluster> {
  const t0 = Date.now();
  const install = findRabbitmq();
  const count = opts.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 26) throw new Error(`startBrokerCluster: nodes must be 1..26, got ${count}`);
  const log = opts.logger ?? (() => undefined);
  const nodeStartTimeoutMs = opts.nodeStartTimeoutMs ?? 120_000;
  cleanupAtExit(cleanupSync);

  let dir: string;
  if (opts.dir !== undefined) {
    mkdirSync(opts.dir, { recursive: true });
    dir = realpathSync(opts.dir);
  } else {
    dir = mkdtempSync(join(tmpdir(), 'vigia-rabbitmq-'));
  }
  if (opts.keepDir !== true) liveDirs.add(dir);
  const watchdog = startWatchdog(opts.keepDir === true ? undefined : dir);
  const track = (pgid: number): void => {
    liveGroups.add(pgid);
    watchdog.add(pgid);
  };
  const untrack = (pgid: number): void => {
    liveGroups.delete(pgid);
    watchdog.del(pgid);
  };

  const home = join(dir, 'home');
  mkdirSync(home, { recursive: true });
  const cookieFile = join(home, '.erlang.cookie');
  if (!existsSync(cookieFile)) {
    writeFileSync(cookieFile, `VIGIA${Math.random().toString(36).slice(2).toUpperCase()}${Date.now()}`);
    chmodSync(cookieFile, 0o400);
  }
  const pluginsFile = join(dir, 'enabled_plugins');
  writeFileSync(pluginsFile, '[rabbitmq_mqtt].\n');
  // An empty rabbitmq-env.conf in place of /etc/rabbitmq/rabbitmq-env.conf.
  const envConfFile = join(dir, 'rabbitmq-env.conf');
  writeFileSync(envConfFile, '');

  const ports = await distinctFreePorts(1 + 3 * count);
  const epmdPort = ports[0]!;
  const specs: NodeSpec[] = Array.from({ length: count }, (_, i) => {
    const name = `vigia-${String.fromCharCode(97 + i)}@localhost`;
    const nodeDir = join(dir, name.split('@')[0]!);
    return {
      index: i,
      name,
      dir: nodeDir,
      amqpPort: ports[1 + 3 * i]!,
      distPort: ports[2 + 3 * i]!,
      mqttPort: ports[3 + 3 * i]!,
      configFile: join(nodeDir, 'rabbitmq.conf'),
    };
  });
  for (const spec of specs) {
    mkdirSync(join(spec.dir, 'mnesia'), { recursive: true });
    mkdirSync(join(spec.dir, 'log'), { recursive: true });
    writeFileSync(spec.configFile, nodeConfig(spec, specs));
  }

  // The environment of the nodes and of rabbitmqctl: none of the caller's RABBITMQ_/ERL_ settings.
  const baseEnv: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('RABBITMQ_') && !k.startsWith('ERL_') && k !== 'HOME') baseEnv[k] = v;
  }
  Object.assign(baseEnv, {
    HOME: home,
    ERL_EPMD_PORT: String(epmdPort),
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_USE_LONGNAME: 'false',
    RABBITMQ_CONF_ENV_FILE: envConfFile,
    RABBITMQ_ENABLED_PLUGINS_FILE: pluginsFile,
    // Never start a system epmd: ours is running before any node or CLI call.
    RABBITMQ_CTL_ERL_ARGS: '-start_epmd false',
  });
  const nodeEnv = (spec: NodeSpec): NodeJS.ProcessEnv => ({
    ...baseEnv,
    RABBITMQ_NODENAME: spec.name,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_NODE_PORT: String(spec.amqpPort),
    RABBITMQ_DIST_PORT: String(spec.distPort),
    RABBITMQ_CONFIG_FILE: spec.configFile,
    RABBITMQ_ADVANCED_CONFIG_FILE: join(spec.dir, 'advanced.config'),
    RABBITMQ_MNESIA_BASE: join(spec.dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(spec.dir, 'log'),
    // Three VMs on a small machine: let the OS place the schedulers instead of binding them to cores.
    RABBITMQ_SCHEDULER_BIND_TYPE: 'u',
    // Erlang distribution on loopback only, and never a system epmd.
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1} -start_epmd false +sbwt none +sbwtdcpu none +sbwtdio none',
  });

  // --- epmd: ours, in the foreground, as our child (a daemonised one would outlive us).
  const epmdLog = join(dir, 'epmd.log');
  const epmdOut = openSync(epmdLog, 'a');
  const epmd = spawn(install.epmd, ['-port', String(epmdPort), '-address', '127.0.0.1'], {
    detached: true,
    stdio: ['ignore', epmdOut, epmdOut],
    env: baseEnv,
  });
  closeSync(epmdOut);
  const epmdPid = epmd.pid;
  if (epmdPid !== undefined) {
    liveEpmds.add(epmdPid);
    watchdog.last(epmdPid);
  }
  const epmdExited = new Promise<void>((resolve) => epmd.once('exit', () => resolve()).once('error', () => resolve()));

  const states: NodeState[] = specs.map((spec) => ({ spec, child: undefined, exited: Promise.resolve(), exitInfo: 'not started', beamPid: undefined }));
  let stopped = false;

  const logsOf = (index: number): string => {
    const st = states[index];
    if (!st) return '';
    const parts: string[] = [];
    const stdout = readIfExists(join(st.spec.dir, 'stdout.log'));
    if (stdout) parts.push(`--- ${st.spec.name} stdout ---\n${stdout}`);
    const logDir = join(st.spec.dir, 'log');
    try {
      for (const f of readdirSync(logDir).sort()) parts.push(`--- ${f} ---\n${readIfExists(join(logDir, f))}`);
    } catch {
      // no logs yet
    }
    return parts.join('\n');
  };
  const tail = (text: string, lines = 60): string => text.split('\n').slice(-lines).join('\n');

  const ctlAt = (spec: NodeSpec, args: string[]): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(
        install.ctl,
        ['-n', spec.name, ...args],
        { env: baseEnv, timeout: CTL_TIMEOUT_MS, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
        (err, stdout, stderr) => {
          if (err) reject(new Error(`rabbitmqctl -n ${spec.name} ${args.join(' ')}: ${err.message}\n${stderr}${stdout}`));
          else resolve(stdout);
        },
      );
    });

  const spawnNode = (st: NodeState): void => {
    const out = openSync(join(st.spec.dir, 'stdout.log'), 'a');
    const child = spawn(install.server, [], { detached: true, stdio: ['ignore', out, out], env: nodeEnv(st.spec) });
    closeSync(out);
    st.child = child;
    st.exitInfo = undefined;
    st.beamPid = undefined;
    if (child.pid !== undefined) track(child.pid);
    st.exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        st.exitInfo = signal ? `signal ${signal}` : `code ${String(code)}`;
        resolve();
      });
      child.once('error', (err) => {
        st.exitInfo = `spawn error: ${err.message}`;
        resolve();
      });
    });
  };

  const waitNodeUp = async (st: NodeState, since: number): Promise<void> => {
    const deadline = Date.now() + nodeStartTimeoutMs;
    for (;;) {
      if (st.exitInfo !== undefined) throw new Error(`RabbitMQ node ${st.spec.name} exited (${st.exitInfo}) while starting\n${tail(logsOf(st.spec.index))}`);
      if (await canConnect(st.spec.mqttPort, 500)) break;
      if (Date.now() > deadline) {
        throw new Error(`RabbitMQ node ${st.spec.name} did not open its MQTT port within ${nodeStartTimeoutMs} ms\n${tail(logsOf(st.spec.index))}`);
      }
      await sleep(250);
    }
    if (st.child?.pid !== undefined) st.beamPid = findBeam(st.child.pid);
    log(`node ${st.spec.name} up in ${((Date.now() - since) / 1000).toFixed(1)} s (mqtt ${st.spec.mqttPort})`);
  };

  const liveSpecs = (): NodeSpec[] => states.filter((s) => s.child !== undefined && s.exitInfo === undefined).map((s) => s.spec);

  /** Waits until `via` sees every node in `expected` running, and in the MQTT client ID tracker's Raft cluster. */
  const waitClustered = async (via: NodeSpec, expected: NodeSpec[]): Promise<void> => {
    const deadline = Date.now() + CLUSTER_TIMEOUT_MS;
    let last = '';
    let downSince: number | undefined;
    let repairs = 0;
    for (;;) {
      try {
        const status = JSON.parse(await ctlAt(via, ['cluster_status', '--formatter', 'json'])) as { running_nodes?: string[] };
        const running = status.running_nodes ?? [];
        const members = (await ctlAt(via, ['eval', 'ra:members({mqtt_node, node()}).'])).trim();
        const missing = expected.filter((s) => !running.includes(s.name)).map((s) => s.name);
        const notInRaft = expected.filter((s) => !members.includes(`'${s.name}'`)).map((s) => s.name);
        if (missing.length === 0 && notInRaft.length === 0 && members.startsWith('{ok,')) return;
        last = `running: ${running.join(', ')}; not running: ${missing.join(', ') || '-'}; not in mqtt_node: ${notInRaft.join(', ') || '-'} (${members})`;
        // RabbitMQ 3.10 (Ra 2.2): a node that restarts calls an election for the MQTT client ID
        // tracker; when it wins before it has re-applied the log entries that made it a member, it
        // applies an older membership without itself and stops its server ("leader not in new
        // cluster - goodbye"). The other members still count it, so the next node lost would take
        // client ID tracking, and every MQTT connect, down with it. Start that server again: as a
        // follower it catches up with the log and becomes a full member.
        if (missing.length === 0 && members.includes('noproc')) {
          downSince ??= Date.now();
          if (Date.now() - downSince > 2000 && repairs < 5) {
            repairs++;
            downSince = undefined;
            const res = await ctlAt(via, ['eval', 'ra:restart_server(coordination, {mqtt_node, node()}).']);
            log(`node ${via.name}: the MQTT client ID tracker had stopped after the restart; restarted it (${res.trim()})`);
          }
        } else {
          downSince = undefined;
        }
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`RabbitMQ cluster did not form within ${CLUSTER_TIMEOUT_MS} ms: ${last}`);
      await sleep(500);
    }
  };

  const killNode = async (st: NodeState): Promise<void> => {
    const root = st.child?.pid;
    if (root === undefined || st.exitInfo !== undefined) return;
    // All of the node at once: beam.smp and every helper it started. The rabbitmq-server script
    // that started beam.smp is only a wrapper; it reaps beam.smp and exits by itself, so no zombie
    // is left for init to collect. A wrapper that does not exit is killed with its group.
    const pids = processTree(root).filter((pid) => pid !== root);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const wrapperGone = await Promise.race([st.exited.then(() => true), sleep(3000).then(() => false)]);
    if (!wrapperGone) {
      killTreeSync(root);
      await st.exited;
    }
    untrack(root);
    // beam.smp's helpers sit in sessions of their own; wait until every one of them is gone.
    const until = Date.now() + 10_000;
    while (pids.some(isRunning) && Date.now() < until) await sleep(20);
    st.beamPid = undefined;
  };

  const stopAll = async (): Promise<void> => {
    await Promise.all(states.map(killNode));
    if (epmdPid !== undefined) {
      killTreeSync(epmdPid);
      await epmdExited;
      liveEpmds.delete(epmdPid);
    }
    // Should a node have started an epmd of its own on our port (it does when it finds epmd gone),
    // ask that one to quit too.
    if (await canConnect(epmdPort, 200)) {
      await new Promise<void>((resolve) => {
        execFile(install.epmd, ['-port', String(epmdPort), '-kill'], { env: baseEnv, timeout: 10_000 }, () => resolve());
      });
    }
  };

  try {
    // epmd first: the nodes must not start one of their own.
    const epmdDeadline = Date.now() + 10_000;
    while (!(await canConnect(epmdPort, 200))) {
      if (epmd.exitCode !== null || Date.now() > epmdDeadline) throw new Error(`epmd did not listen on 127.0.0.1:${epmdPort}\n${readIfExists(epmdLog)}`);
      await sleep(50);
    }
    // Node 0 forms the cluster; the others join it, in parallel.
    const first = states[0]!;
    let t = Date.now();
    spawnNode(first);
    await waitNodeUp(first, t);
    t = Date.now();
    const rest = states.slice(1);
    for (const st of rest) spawnNode(st);
    await Promise.all(rest.map((st) => waitNodeUp(st, t)));
    await waitClustered(first.spec, specs);
  } catch (err) {
    await stopAll();
    if (opts.keepDir !== true) {
      liveDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    }
    watchdog.end();
    throw err;
  }
  const startupMs = Date.now() - t0;
  log(`cluster of ${count} up in ${(startupMs / 1000).toFixed(1)} s: ${specs.map((s) => `${s.name} mqtt://127.0.0.1:${s.mqttPort}`).join(', ')}`);

  const stateAt = (index: number): NodeState => {
    const st = states[index];
    if (!st) throw new RangeError(`no node ${index} (cluster of ${count})`);
    return st;
  };

  const nodes: ClusterNode[] = states.map((st) => ({
    name: st.spec.name,
    mqttPort: st.spec.mqttPort,
    amqpPort: st.spec.amqpPort,
    url: `mqtt://127.0.0.1:${st.spec.mqttPort}`,
    get pid(): number | undefined {
      if (st.exitInfo !== undefined) return undefined;
      if (st.beamPid === undefined && st.child?.pid !== undefined) st.beamPid = findBeam(st.child.pid);
      return st.beamPid;
    },
    get alive(): boolean {
      return st.child !== undefined && st.exitInfo === undefined;
    },
  }));

  return {
    nodes,
    urls: nodes.map((n) => n.url),
    dir,
    version: install.version,
    startupMs,
    async kill(index: number): Promise<void> {
      const st = stateAt(index);
      const t = Date.now();
      await killNode(st);
      log(`node ${st.spec.name} killed (${Date.now() - t} ms)`);
    },
    async restart(index: number): Promise<void> {
      if (stopped) throw new Error('restart() after stop()');
      const st = stateAt(index);
      if (st.exitInfo === undefined) throw new Error(`node ${st.spec.name} is running; kill() it first`);
      const t = Date.now();
      spawnNode(st);
      await waitNodeUp(st, t);
      const others = liveSpecs();
      await waitClustered(st.spec, others);
      log(`node ${st.spec.name} back in the cluster in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      await stopAll();
      if (opts.keepDir !== true) {
        liveDirs.delete(dir);
        rmSync(dir, { recursive: true, force: true });
      }
      watchdog.end();
    },
    logs: logsOf,
    ctl(args: string[], index?: number): Promise<string> {
      const spec = index === undefined ? liveSpecs()[0] : stateAt(index).spec;
      if (spec === undefined) return Promise.reject(new Error('no node is running'));
      return ctlAt(spec, args);
    },
    rssBytes(index: number): number | undefined {
      const pid = nodes[index]?.pid;
      if (pid === undefined) return undefined;
      const m = /VmRSS:\s+(\d+) kB/.exec(readIfExists(`/proc/${pid}/status`));
      return m ? Number(m[1]) * 1024 : undefined;
    },
  };
}
