// The real daemon as a child process (`node dist/cli.js run --config FILE`), as systemd runs it.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { controlRequest } from '../../dist/gateway/control.js';
import { DAEMON_NODE_FLAGS } from '../../dist/launch.js';
import { trackChild, trackDir, untrackDir } from './cleanup.mjs';

export const CLI = resolve(import.meta.dirname, '../../dist/cli.js');

const merge = (base, over) => {
  const out = { ...base };
  for (const [k, v] of Object.entries(over)) {
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object' ? merge(out[k], v) : v;
  }
  return out;
};

/** A device config in a fresh temp dir (removed at exit), pointed at brokerUrl. */
export function writeDeviceConfig(brokerUrl, over = {}) {
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'vigia-bench-dev-')));
  mkdirSync(dir, { recursive: true });
  const cfg = merge(
    {
      device: { id: 'pole-0001', site: 'bench', profile: 'pole' },
      paths: { data_dir: join(dir, 'data'), runtime_dir: join(dir, 'run') },
      log: { level: 'warn' },
      clock: { sync_source: 'assume-synced' },
      mqtt: { url: brokerUrl, reconnect: { min_delay: '50ms', max_delay: '250ms', jitter: 0.2 } },
      commands: { key: 'bench-command-key-0123456789' },
      telemetry: { interval: '1h' },
      hardware: { backend: 'sim' },
    },
    over,
  );
  const file = join(dir, 'vigia.yaml');
  writeFileSync(file, stringify(cfg));
  return {
    dir,
    file,
    socket: join(dir, 'run', 'vigia.sock'),
    remove() {
      untrackDir(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export class DaemonProcess {
  constructor(configFile, socket) {
    this.configFile = configFile;
    this.socket = socket;
    this.proc = undefined;
    this.output = '';
  }

  get pid() {
    return this.proc?.pid;
  }

  get alive() {
    return !!this.proc && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  async start(timeoutMs = 30_000) {
    const proc = trackChild(spawn(process.execPath, [...DAEMON_NODE_FLAGS, CLI, 'run', '--config', this.configFile], { stdio: ['ignore', 'pipe', 'pipe'] }));
    this.proc = proc;
    const append = (b) => {
      this.output = (this.output + b.toString()).slice(-100_000);
    };
    proc.stdout.on('data', append);
    proc.stderr.on('data', append);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`daemon exited (${proc.exitCode ?? proc.signalCode}) during start:\n${this.output.slice(-4000)}`);
      }
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
    throw new Error(`daemon did not come up within ${timeoutMs} ms:\n${this.output.slice(-4000)}`);
  }

  request(op, args = {}, timeoutMs = 120_000) {
    return controlRequest(this.socket, op, args, timeoutMs);
  }

  async kill(signal = 'SIGKILL') {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', () => r()));
    p.kill(signal);
    await exited;
  }
}
