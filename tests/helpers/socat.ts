import { spawn, type ChildProcess } from 'node:child_process';
import { constants, existsSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isExecutable } from '../../src/core/executable.js';

/**
 * A pair of linked pseudo-terminals made by socat: the daemon opens `devicePath` as if it were a
 * serial GPS, the test writes what the device would send into `feederPath`. Stopping socat makes
 * both ends vanish (like pulling a USB device); starting it again recreates them at the same paths.
 */
export interface PtyLink {
  /** The end the code under test opens (a symlink to /dev/pts/N). */
  readonly devicePath: string;
  /** The end the test writes into. */
  readonly feederPath: string;
  readonly running: boolean;
  /** Writes bytes as the device would send them. */
  write(data: string | Buffer): Promise<void>;
  /** Stops socat: the device paths disappear and the open port sees a hang-up. */
  unplug(): Promise<void>;
  /** Starts socat again at the same paths. */
  replug(): Promise<void>;
  /** Stops socat for good. Idempotent. */
  close(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 10_000;
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** The socat binary; throws with the command that installs it when it is missing. */
export function findSocat(): string {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(['/usr/local/bin', '/usr/bin', '/bin']);
  for (const dir of dirs) {
    const candidate = join(dir, 'socat');
    if (isExecutable(candidate)) return candidate;
  }
  throw new Error('socat not found on PATH: run `node scripts/ensure-system-deps.mjs` to install it');
}

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGKILL');
  });
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
}

async function spawnSocat(binary: string, devicePath: string, feederPath: string): Promise<Running> {
  installExitHook();
  const child = spawn(binary, ['-d', '-d', `pty,raw,echo=0,link=${devicePath}`, `pty,raw,echo=0,link=${feederPath}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  live.add(child);
  let stderr = '';
  let exitInfo: string | undefined;
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    if (stderr.length < 16 * 1024) stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitInfo = signal ? `signal ${signal}` : `code ${String(code)}`;
      live.delete(child);
      resolve();
    });
    child.once('error', (err) => {
      exitInfo = `spawn error: ${err.message}`;
      live.delete(child);
      resolve();
    });
  });
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  // socat logs this once both terminals exist and their links are in place.
  while (!stderr.includes('starting data transfer loop') || !existsSync(devicePath) || !existsSync(feederPath)) {
    if (exitInfo !== undefined) throw new Error(`socat exited (${exitInfo}) before the terminals were ready:\n${stderr}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`socat did not create ${devicePath} within ${STARTUP_TIMEOUT_MS} ms:\n${stderr}`);
    }
    await sleep(10);
  }
  return { child, exited };
}

/** Starts socat with two linked terminals named `<dir>/<name>` and `<dir>/<name>-feeder`. */
export async function startPtyLink(dir: string, name = 'device'): Promise<PtyLink> {
  const binary = findSocat();
  const devicePath = join(dir, name);
  const feederPath = join(dir, `${name}-feeder`);
  let current: Running | undefined = await spawnSocat(binary, devicePath, feederPath);
  let feeder: FileHandle | undefined;

  const stopCurrent = async (): Promise<void> => {
    await feeder?.close().catch(() => {});
    feeder = undefined;
    const proc = current;
    current = undefined;
    if (!proc) return;
    // SIGTERM lets socat remove its links, as the kernel removes a device node on unplug.
    proc.child.kill('SIGTERM');
    await proc.exited;
  };

  return {
    devicePath,
    feederPath,
    get running() {
      return current !== undefined;
    },
    async write(data) {
      if (!current) throw new Error('write() while unplugged');
      feeder ??= await open(feederPath, constants.O_WRONLY | constants.O_NOCTTY);
      const buffer = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
      let offset = 0;
      while (offset < buffer.length) offset += (await feeder.write(buffer, offset)).bytesWritten;
    },
    unplug: stopCurrent,
    async replug() {
      if (current) throw new Error('replug() while plugged in');
      current = await spawnSocat(binary, devicePath, feederPath);
    },
    close: stopCurrent,
  };
}
