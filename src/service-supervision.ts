import type { Logger } from 'pino';
import type { LinkState } from './core/bus.js';
import { SystemdNotifier, takeServiceManagerEnv, unixDatagramSender } from './gateway/sd-notify.js';

/** How often the status line is looked at; it is sent only when it changed. */
export const STATUS_CHECK_MS = 5_000;
/** A flapping link sends at most one status a second (monotonic time: a GPS clock step must not stall it). */
const MIN_STATUS_GAP_MS = 1_000;

export interface ServiceSummary {
  link: LinkState;
  outboxDepth: number;
}

/** `systemctl status vigia` shows this line. */
export function statusLine(s: ServiceSummary): string {
  return `link ${s.link}, outbox ${s.outboxDepth} event${s.outboxDepth === 1 ? '' : 's'} waiting`;
}

/**
 * The daemon under systemd (`Type=notify`, `WatchdogSec=`): READY=1 once started, a STATUS= line
 * with the link and outbox depth, STOPPING=1, and WATCHDOG=1 every half watchdog period. The ping
 * is a timer on the main event loop on purpose: a loop that stalls (a runaway computation, a
 * blocking call) stops the pings, and systemd kills and restarts the daemon.
 */
export class SystemdSupervision {
  #watchdogTimer: NodeJS.Timeout | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #lastStatus = '';
  #lastStatusAt = 0;
  #pendingStatus: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;

  private constructor(
    private readonly notifier: SystemdNotifier,
    private readonly closeSocket: () => void,
    private readonly logger: Logger,
  ) {}

  /**
   * Null when not started by systemd as a notify service (no NOTIFY_SOCKET), or when its socket
   * cannot be used (logged). Removes systemd's variables from `env` either way.
   */
  static async start(env: NodeJS.ProcessEnv, pid: number, logger: Logger): Promise<SystemdSupervision | null> {
    const manager = takeServiceManagerEnv(env, pid);
    if (!manager) return null;
    let sender: Awaited<ReturnType<typeof unixDatagramSender>>;
    try {
      sender = await unixDatagramSender(manager.notifySocket);
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'cannot reach systemd through NOTIFY_SOCKET: no readiness, status or watchdog');
      return null;
    }
    const supervision = new SystemdSupervision(new SystemdNotifier(sender.send, logger), sender.close, logger);
    if (manager.watchdogMs !== null) supervision.#startWatchdog(manager.watchdogMs / 2);
    return supervision;
  }

  #startWatchdog(intervalMs: number): void {
    void this.notifier.watchdog();
    this.#watchdogTimer = setInterval(() => void this.notifier.watchdog(), intervalMs);
    this.#watchdogTimer.unref();
    this.logger.info({ watchdog_interval_ms: intervalMs }, 'systemd watchdog on: pinging from the event loop');
  }

  /** Startup is over: READY=1, then the status line kept current. */
  async ready(summary: () => ServiceSummary, onLinkChange: (listener: () => void) => () => void): Promise<void> {
    this.#lastStatus = statusLine(summary());
    this.#lastStatusAt = performance.now();
    await this.notifier.ready(this.#lastStatus);
    const update = () => this.#updateStatus(summary);
    this.#statusTimer = setInterval(update, STATUS_CHECK_MS);
    this.#statusTimer.unref();
    this.#unsubscribe = onLinkChange(update);
  }

  #updateStatus(summary: () => ServiceSummary): void {
    const line = statusLine(summary());
    if (line === this.#lastStatus || this.#pendingStatus) return;
    const wait = this.#lastStatusAt + MIN_STATUS_GAP_MS - performance.now();
    if (wait > 0) {
      this.#pendingStatus = setTimeout(() => {
        this.#pendingStatus = undefined;
        this.#updateStatus(summary);
      }, wait);
      this.#pendingStatus.unref();
      return;
    }
    this.#lastStatus = line;
    this.#lastStatusAt = performance.now();
    void this.notifier.status(line);
  }

  /** Shutdown began: STOPPING=1. The watchdog keeps pinging until the process exits. */
  stopping(): Promise<void> {
    this.#stopStatus();
    return this.notifier.stopping();
  }

  close(): void {
    this.#stopStatus();
    clearInterval(this.#watchdogTimer);
    this.closeSocket();
  }

  #stopStatus(): void {
    clearInterval(this.#statusTimer);
    clearTimeout(this.#pendingStatus);
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }
}
