import type { Logger } from 'pino';

/**
 * What systemd hands a `Type=notify` service in its environment: the datagram socket to report
 * to, and, with `WatchdogSec=`, how often it must hear that the process is alive.
 */
export interface ServiceManagerEnv {
  notifySocket: string;
  /** `WATCHDOG_USEC` in ms, when the watchdog is on for this very process; otherwise null. */
  watchdogMs: number | null;
}

const ENV_NAMES = ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'] as const;

/**
 * Reads the service manager's variables, as sd_notify(3) and sd_watchdog_enabled(3) do: the
 * watchdog counts only when `WATCHDOG_PID`, if set, is this process (a child that inherited the
 * variables must not ping for its parent). Then removes them from `env`, so the processes the
 * daemon starts (Node-RED, ffmpeg, the GPIO tools) never speak for it.
 */
export function takeServiceManagerEnv(env: NodeJS.ProcessEnv, pid: number): ServiceManagerEnv | null {
  const socket = env.NOTIFY_SOCKET;
  const usec = Number(env.WATCHDOG_USEC);
  const watchdogPid = env.WATCHDOG_PID;
  for (const name of ENV_NAMES) delete env[name];
  if (!socket) return null;
  const forUs = watchdogPid === undefined || Number(watchdogPid) === pid;
  return { notifySocket: socket, watchdogMs: Number.isSafeInteger(usec) && usec > 0 && forUs ? usec / 1000 : null };
}

/** Sends one datagram to the notify socket; rejects when the kernel refuses it. */
export type DatagramSend = (message: Buffer) => Promise<void>;

/**
 * A datagram sender on `path`. Node has no AF_UNIX datagram sockets, so this uses `unix-dgram`, a
 * small maintained addon (sendto(2) on a SOCK_DGRAM socket): systemd's own `sd-notify` package
 * needs libsystemd's headers to build, and spawning `systemd-notify` races with systemd's cgroup
 * attribution (the message may come from an already exited process) and forces `NotifyAccess=all`.
 * Abstract socket names (`@...`) are not supported; systemd gives services a path.
 */
export async function unixDatagramSender(path: string): Promise<{ send: DatagramSend; close: () => void }> {
  if (!path.startsWith('/')) throw new Error(`NOTIFY_SOCKET ${JSON.stringify(path)} is not a file system path; only those are supported`);
  const { createSocket } = await import('unix-dgram');
  const socket = createSocket('unix_dgram');
  // Errors also come as events (congestion, a socket gone): the callback reports them, never a crash.
  socket.on('error', () => {});
  return {
    send: (message) => new Promise((resolve, reject) => socket.send(message, 0, message.length, path, (err) => (err ? reject(err) : resolve()))),
    close: () => socket.close(),
  };
}

/**
 * The sd_notify protocol: newline-separated assignments in one datagram. Failures are logged once
 * (systemd gone, socket full) and counted; they never stop the daemon.
 */
export class SystemdNotifier {
  #failures = 0;

  constructor(
    private readonly send: DatagramSend,
    private readonly logger: Logger,
  ) {}

  /** Startup finished: the outbox takes events and the control socket answers. */
  ready(status: string): Promise<void> {
    return this.#notify(['READY=1', `STATUS=${status}`]);
  }

  status(status: string): Promise<void> {
    return this.#notify([`STATUS=${status}`]);
  }

  stopping(): Promise<void> {
    return this.#notify(['STOPPING=1', 'STATUS=stopping']);
  }

  watchdog(): Promise<void> {
    return this.#notify(['WATCHDOG=1']);
  }

  get failures(): number {
    return this.#failures;
  }

  async #notify(lines: string[]): Promise<void> {
    // A status is one line: a newline inside it would start a new assignment.
    const text = `${lines.map((l) => l.replace(/\n/g, ' ')).join('\n')}\n`;
    try {
      await this.send(Buffer.from(text));
    } catch (err) {
      if (this.#failures++ === 0) this.logger.error({ err: (err as Error).message }, 'cannot notify systemd (sd_notify); the watchdog may restart the daemon');
    }
  }
}
