import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { controlRequest } from '../../src/gateway/control.js';
import { DAEMON_NODE_FLAGS } from '../../src/launch.js';
import { REPO_ROOT } from './repo.js';

export const CLI = join(REPO_ROOT, 'dist', 'cli.js');

/** `vigia ARGS...` as a technician runs it: its exit code and what it printed. */
export async function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  const child = spawn(process.execPath, [CLI, ...args], { env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  child.stdin!.end(opts.input ?? '');
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
  return { code, stdout, stderr };
}
export const TEST_KEY = 'test-command-key-0123456789';

type Plain = { [k: string]: unknown };

/** Config `over` laid over `base`: objects merge key by key, anything else (arrays included) replaces. */
export const mergeConfig = (base: Plain, over: Plain): Plain => {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? mergeConfig(out[k] as Plain, v as Plain) : v;
  }
  return out;
};

// Daemons still running when this process exits (a test or benchmark that crashed) are killed.
const liveDaemons = new Set<ChildProcess>();
let exitHookInstalled = false;

function killAtExit(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of liveDaemons) c.kill('SIGKILL');
    });
  }
  liveDaemons.add(child);
  child.once('exit', () => liveDaemons.delete(child));
}

/** A device config in a fresh directory, pointed at the given broker URL. */
export function writeDeviceConfig(brokerUrl: string, over: Plain = {}, dir = mkdtempSync(join(tmpdir(), 'vigia-dev-'))) {
  mkdirSync(dir, { recursive: true });
  const cfg = mergeConfig(
    {
      device: { id: 'pole-0001', site: 'test-site', profile: 'pole' },
      paths: { data_dir: join(dir, 'data'), runtime_dir: join(dir, 'run') },
      log: { level: 'warn' },
      clock: { sync_source: 'assume-synced' },
      mqtt: { url: brokerUrl, reconnect: { min_delay: '100ms', max_delay: '1s', jitter: 0.2 } },
      commands: { key: TEST_KEY },
      telemetry: { interval: '1h' },
      hardware: { backend: 'sim' },
    },
    over,
  );
  const file = join(dir, 'vigia.yaml');
  writeFileSync(file, stringify(cfg));
  return { dir, file, socket: join(dir, 'run', 'vigia.sock') };
}

/** The real daemon as a child process (`node dist/cli.js run`), as systemd would run it. */
export class DaemonProcess {
  proc: ChildProcess | undefined;
  output = '';
  /** Exit codes of the runs a supervised daemon was started again after, in order. */
  readonly exits: Array<number | null> = [];
  #killing = false;

  constructor(
    readonly configFile: string,
    readonly socket: string,
    /** A command the daemon runs under (e.g. `nsenter ... --`), whose last argument is followed by node's. */
    readonly wrap: readonly string[] = [],
    /** Start it again whenever it exits by itself, as systemd's Restart=always does (restart, config.set, rollbacks). */
    readonly supervised = false,
  ) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get alive(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  #spawn(): ChildProcess {
    const [command, ...args] = [...this.wrap, process.execPath, ...DAEMON_NODE_FLAGS, CLI, 'run', '--config', this.configFile];
    const proc = spawn(command!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    killAtExit(proc);
    const append = (b: Buffer) => {
      this.output = (this.output + b.toString()).slice(-200_000);
    };
    proc.stdout!.on('data', append);
    proc.stderr!.on('data', append);
    if (this.supervised) {
      proc.once('exit', (code) => {
        if (this.#killing || this.proc !== proc) return;
        this.exits.push(code);
        this.#spawn();
      });
    }
    return proc;
  }

  /** Resolves once the control socket answers; the benchmarks time it, so it polls often. */
  async start(timeoutMs = 20_000): Promise<void> {
    this.#killing = false;
    const proc = this.#spawn();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`daemon exited with ${proc.exitCode ?? proc.signalCode}:\n${this.output}`);
      if (existsSync(this.socket)) {
        try {
          await controlRequest(this.socket, 'status', {}, 2000);
          return;
        } catch {
          /* not ready yet */
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`daemon did not come up within ${timeoutMs} ms:\n${this.output}`);
  }

  request<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    return controlRequest(this.socket, op, args, timeoutMs) as Promise<T>;
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    this.#killing = true;
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return p?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
    p.kill(signal);
    return exited;
  }
}
