// Minimal real-Mosquitto control for benchmarks (127.0.0.1 only): start, SIGKILL, restart with the
// same config and persistence store, stop. Everything started is tracked for cleanup.
import { spawn, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { trackChild, trackDir, untrackDir } from './cleanup.mjs';

const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export function findMosquitto() {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(SBIN_DIRS);
  for (const dir of dirs) {
    const candidate = join(dir, 'mosquitto');
    try {
      if (statSync(candidate).isFile()) {
        accessSync(candidate, constants.X_OK);
        return candidate;
      }
    } catch {
      /* next */
    }
  }
  throw new Error('mosquitto not found (Debian: apt-get install -y mosquitto)');
}

/** "2.0.11", or "unknown". */
export function mosquittoVersion() {
  try {
    const out = spawnSync(findMosquitto(), ['-h'], { encoding: 'utf8' });
    return /mosquitto version (\S+)/.exec(`${out.stdout}${out.stderr}`)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
      const { port } = server.address();
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

export function canConnect(port, timeoutMs = 200) {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function buildConfig(dir, port, logFile, opts) {
  const lines = ['per_listener_settings false', 'allow_anonymous true'];
  if (opts.persistence) {
    lines.push('persistence true', `persistence_location ${dir}/`, 'persistence_file mosquitto.db', `autosave_interval ${opts.autosaveInterval ?? 1}`);
  } else {
    lines.push('persistence false');
  }
  lines.push(
    `log_dest file ${logFile}`,
    'log_type error',
    'log_type warning',
    'log_type notice',
    'log_type information',
    'log_timestamp true',
    'log_timestamp_format %Y-%m-%dT%H:%M:%S',
    'connection_messages true',
    'max_queued_messages 2000000',
    'max_inflight_messages 100',
  );
  if (typeof process.getuid === 'function' && process.getuid() === 0) lines.push('user root');
  lines.push('', `listener ${port} 127.0.0.1`);
  if (opts.extraConfig?.length) lines.push('', ...opts.extraConfig);
  return `${lines.join('\n')}\n`;
}

const readIfExists = (f) => {
  try {
    return existsSync(f) ? readFileSync(f, 'utf8') : '';
  } catch {
    return '';
  }
};

async function spawnAndWait(binary, confFile, port, logFile) {
  const child = trackChild(spawn(binary, ['-c', confFile], { stdio: ['ignore', 'ignore', 'pipe'] }));
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (c) => {
    if (stderr.length < 65536) stderr += c;
  });
  let exitInfo;
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${code}`;
      resolve();
    });
    child.once('error', (err) => {
      exitInfo = `spawn error: ${err.message}`;
      resolve();
    });
  });
  const running = { child, exited, hasExited: () => exitInfo !== undefined };
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exitInfo !== undefined) {
      const err = new Error(`mosquitto exited (${exitInfo}) before accepting connections on ${port}\n${stderr}\n${readIfExists(logFile).slice(-2000)}`);
      err.addressInUse = /address already in use/i.test(stderr + readIfExists(logFile));
      throw err;
    }
    if (await canConnect(port)) {
      await sleep(20);
      if (exitInfo === undefined) return running;
      continue;
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`mosquitto did not accept connections on ${port} within 10 s`);
    }
    await sleep(50);
  }
}

/**
 * opts: { port?, persistence?, autosaveInterval?, extraConfig?: string[] }
 * Returns { port, url, dir, pid, running, kill(signal), start(), restart(), stop(), log() }.
 */
export async function startMosquitto(opts = {}) {
  const binary = findMosquitto();
  const port = opts.port ?? (await freePort());
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'vigia-bench-mosq-')));
  const confFile = join(dir, 'mosquitto.conf');
  const logFile = join(dir, 'mosquitto.log');
  writeFileSync(confFile, buildConfig(dir, port, logFile, opts));
  let current = await spawnAndWait(binary, confFile, port, logFile);
  let stopped = false;

  const killCurrent = async (signal, graceMs) => {
    const proc = current;
    if (proc.hasExited()) return;
    proc.child.kill(signal);
    if (graceMs === undefined) return void (await proc.exited);
    const timedOut = await Promise.race([proc.exited.then(() => false), sleep(graceMs).then(() => true)]);
    if (timedOut && !proc.hasExited()) {
      proc.child.kill('SIGKILL');
      await proc.exited;
    }
  };
  const spawnRetrying = async () => {
    const until = Date.now() + 5000;
    for (;;) {
      try {
        current = await spawnAndWait(binary, confFile, port, logFile);
        return;
      } catch (err) {
        if (err.addressInUse && Date.now() < until) {
          await sleep(200);
          continue;
        }
        throw err;
      }
    }
  };

  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    dir,
    get pid() {
      return current.child.pid ?? -1;
    },
    get running() {
      return !current.hasExited();
    },
    kill: (signal = 'SIGKILL') => killCurrent(signal),
    /** Starts it again after kill(), same port, config and store. */
    async start() {
      if (!current.hasExited()) return;
      await spawnRetrying();
    },
    async restart() {
      await killCurrent('SIGTERM', 5000);
      await spawnRetrying();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await killCurrent('SIGTERM', 5000);
      untrackDir(dir);
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => readIfExists(logFile),
  };
}
