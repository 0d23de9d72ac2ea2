import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import type { Logger } from 'pino';
import { Backoff } from '../core/backoff.js';
import type { VigiaEvent } from '../core/event.js';
import { type FromRuntime, matchesFilter, type RuntimeOptions, type RuntimeStats, type ToRuntime } from './protocol.js';

/**
 * Runs the Node-RED process and keeps it alive. A flow is user code, so it runs in its own
 * process: a busy loop stalls that process, not the daemon's alarm path; a leak hits the heap cap
 * (`--max-old-space-size`) and the RSS cap, not the device; a crash is an exit code. The
 * supervisor pings the process every heartbeat, kills it when it stops answering (hung) or grows
 * past its memory, and starts a new one after a backoff. It runs at a lower CPU priority (nice)
 * and is the out-of-memory killer's first choice, so on a loaded device the daemon comes first.
 */

export type FailureReason = 'exited' | 'hung' | 'out_of_memory' | 'start_failed';
export type RuntimeState = 'stopped' | 'starting' | 'running' | 'restarting';

export interface SupervisorOptions {
  /** The runtime's entry script (dist/nodered/runtime.js). */
  entry: string;
  /** The Node.js executable that runs it (default: the daemon's own). */
  execPath?: string;
  runtime: RuntimeOptions;
  /** Heap cap of the process, bytes; its RSS may reach twice that before it is killed. */
  memoryBytes: number;
  heartbeatMs: number;
  hangTimeoutMs: number;
  /**
   * How long a start may take (loading the nodes, the flows) before it counts as a failure
   * (default 60 s). Doubled after each start that ran out of it, up to 10 min, and back to this
   * once a start succeeds: a device too slow or too busy for it (a loaded Pi 3, the runtime at
   * nice 10) would otherwise kill every start at the same point and never run the flows.
   */
  startTimeoutMs?: number;
  restart: { minDelayMs: number; maxDelayMs: number };
  /** CPU niceness of the process (default 10; 0 leaves it as the daemon's). */
  nice?: number;
  logger: Logger;
  /** Answers a node's call (emit, output, hotlist, status); a thrown error is refused with its code. */
  onCall(msg: Extract<FromRuntime, { t: 'call' }>): Promise<unknown>;
  onFailed(failure: { reason: FailureReason; detail: string; failures: number; restartInMs: number }): void;
  onRestarted(info: { restarts: number; downMs: number }): void;
}

/** Events sent but not yet counted by the runtime, above which new ones are dropped (a hung runtime must not grow the daemon). */
const MAX_IN_FLIGHT_EVENTS = 1000;
const STDERR_TAIL_LINES = 20;
const MAX_START_TIMEOUT_MS = 10 * 60_000;

export class Supervisor {
  #child: ChildProcess | undefined;
  #state: RuntimeState = 'stopped';
  #stopping = false;
  #killReason: { reason: FailureReason; detail: string } | undefined;
  #backoff: Backoff;
  #heartbeat: NodeJS.Timeout | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #seq = 0;
  #lastPongMs = 0;
  #startedMs = 0;
  #readyMs = 0;
  #downSinceMs: number | null = null;
  #stderrTail: string[] = [];
  #filters: Array<{ types: string[]; priorities: string[] }> = [];
  #sent = 0;
  #counts = { starts: 0, restarts: 0, failures: 0, events_forwarded: 0, events_dropped: 0, calls: 0 };
  #lastFailure: { reason: FailureReason; detail: string; at_mono_ms: number } | null = null;
  #stats: RuntimeStats | null = null;
  #url: string | null = null;
  #rssBytes: number | null = null;
  #readyWaiters: Array<() => void> = [];
  /** Starts in a row that ran out of their time; each doubles the next one's. */
  #slowStarts = 0;

  constructor(private readonly opts: SupervisorOptions) {
    this.#backoff = new Backoff({ minDelayMs: opts.restart.minDelayMs, maxDelayMs: opts.restart.maxDelayMs, jitter: 0.2, resetAfterMs: 60_000 });
  }

  get state(): RuntimeState {
    return this.#state;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** Resolves when the runtime is serving (the first start or a restart). */
  ready(): Promise<void> {
    if (this.#state === 'running') return Promise.resolve();
    return new Promise((resolve) => this.#readyWaiters.push(resolve));
  }

  start(): void {
    this.#stopping = false;
    this.#spawn();
    this.#heartbeat = setInterval(() => this.#beat(), this.opts.heartbeatMs);
    this.#heartbeat.unref();
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    clearInterval(this.#heartbeat);
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    this.#state = 'stopped';
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.#send({ t: 'stop' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  /** Kills the runtime and starts a new one at once (flows imported on disk, a technician's request). */
  restartNow(): void {
    if (this.#stopping) return;
    this.#backoff.reset();
    this.#kill('exited', 'restart requested');
  }

  /** Forwards an accepted event to the flows that want it; dropped (and counted) if the runtime is behind. */
  forward(event: VigiaEvent): void {
    if (this.#state !== 'running' || !this.#filters.some((f) => matchesFilter(event, f))) return;
    if (this.#sent - (this.#stats?.received ?? 0) >= MAX_IN_FLIGHT_EVENTS) {
      this.#counts.events_dropped++;
      return;
    }
    this.#sent++;
    this.#counts.events_forwarded++;
    this.#send({ t: 'event', event });
  }

  status() {
    const now = performance.now();
    return {
      state: this.#state,
      pid: this.#child?.pid ?? null,
      url: this.#state === 'running' ? this.#url : null,
      uptime_s: this.#state === 'running' ? Math.round((now - this.#readyMs) / 1000) : 0,
      /** How long the last start took, from the fork to serving. */
      start_ms: this.#readyMs > this.#startedMs ? Math.round(this.#readyMs - this.#startedMs) : null,
      rss_bytes: this.#rssBytes,
      heap_used_bytes: this.#stats?.heap_used_bytes ?? null,
      ...this.#counts,
      last_failure: this.#lastFailure
        ? { reason: this.#lastFailure.reason, detail: this.#lastFailure.detail, ago_s: Math.round((now - this.#lastFailure.at_mono_ms) / 1000) }
        : null,
      stats: this.#stats,
    };
  }

  #spawn(): void {
    const { opts } = this;
    const heapMb = Math.max(32, Math.floor(opts.memoryBytes / 2 ** 20));
    this.#state = this.#counts.starts === 0 ? 'starting' : 'restarting';
    this.#counts.starts++;
    this.#startedMs = performance.now();
    this.#lastPongMs = this.#startedMs;
    this.#killReason = undefined;
    this.#stderrTail = [];
    this.#filters = [];
    this.#sent = 0;
    this.#stats = null;
    const child = fork(opts.entry, [], {
      ...(opts.execPath ? { execPath: opts.execPath } : {}),
      execArgv: [`--max-old-space-size=${heapMb}`],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, NODE_RED_DISABLE_TELEMETRY: '1', NODE_OPTIONS: '' },
    });
    this.#child = child;
    if (child.pid !== undefined) lowerStanding(child.pid, opts.nice ?? 10, opts.logger);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.#output('info', chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.#output('warn', chunk));
    child.on('message', (msg: FromRuntime) => this.#message(child, msg));
    child.on('error', (err) => opts.logger.error({ err: err.message }, 'Node-RED process error'));
    child.once('exit', (code, signal) => this.#exited(child, code, signal));
    this.#send({ t: 'init', options: opts.runtime });
  }

  #message(child: ChildProcess, msg: FromRuntime): void {
    if (child !== this.#child || typeof msg !== 'object' || msg === null) return;
    switch (msg.t) {
      case 'ready': {
        const wasRestart = this.#counts.starts > 1;
        this.#state = 'running';
        this.#slowStarts = 0;
        this.#url = msg.url;
        this.#readyMs = performance.now();
        this.#lastPongMs = this.#readyMs;
        this.opts.logger.info({ url: msg.url, pid: child.pid, start_ms: Math.round(this.#readyMs - this.#startedMs) }, 'Node-RED is running');
        if (wasRestart) {
          this.#counts.restarts++;
          this.opts.onRestarted({ restarts: this.#counts.restarts, downMs: Math.round(this.#readyMs - (this.#downSinceMs ?? this.#startedMs)) });
        }
        this.#downSinceMs = null;
        for (const resolve of this.#readyWaiters.splice(0)) resolve();
        break;
      }
      case 'start_failed':
        this.#killReason = { reason: 'start_failed', detail: msg.message };
        break;
      case 'pong':
        this.#lastPongMs = performance.now();
        this.#stats = msg.stats;
        break;
      case 'interest':
        this.#filters = Array.isArray(msg.filters) ? msg.filters : [];
        break;
      case 'call':
        this.#counts.calls++;
        this.opts.onCall(msg).then(
          (result) => this.#send({ t: 'reply', id: msg.id, ok: true, result: result ?? null }),
          (err: Error & { code?: unknown }) =>
            this.#send({ t: 'reply', id: msg.id, ok: false, code: typeof err.code === 'string' ? err.code : 'failed', message: err.message }),
        );
        break;
      case 'log': {
        const fields = msg.node ? { node: msg.node } : {};
        const level = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'].includes(msg.level) ? msg.level : 'info';
        this.opts.logger[level](fields, String(msg.msg));
        break;
      }
    }
  }

  #output(level: 'info' | 'warn', chunk: string): void {
    for (const line of chunk.split('\n')) {
      if (!line.trim()) continue;
      this.#stderrTail.push(line);
      if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
      this.opts.logger[level]({ stream: level === 'warn' ? 'stderr' : 'stdout' }, line.slice(0, 500));
    }
  }

  #beat(): void {
    const child = this.#child;
    if (!child || this.#stopping || child.exitCode !== null || child.signalCode !== null) return;
    const now = performance.now();
    if (this.#state === 'running') {
      if (now - this.#lastPongMs > this.opts.hangTimeoutMs) {
        return this.#kill('hung', `no heartbeat answer for ${Math.round(now - this.#lastPongMs)} ms (a flow blocking the event loop?)`);
      }
    } else if (now - this.#startedMs > this.#startTimeoutMs()) {
      this.#slowStarts++;
      return this.#kill(
        'start_failed',
        `not serving after ${Math.round(now - this.#startedMs)} ms (the next start may take ${Math.round(this.#startTimeoutMs() / 1000)} s)`,
      );
    }
    const rss = readRssBytes(child.pid);
    this.#rssBytes = rss;
    if (rss !== null && rss > 2 * this.opts.memoryBytes) {
      return this.#kill(
        'out_of_memory',
        `resident memory ${Math.round(rss / 2 ** 20)} MiB over the cap of ${Math.round((2 * this.opts.memoryBytes) / 2 ** 20)} MiB`,
      );
    }
    this.#send({ t: 'ping', seq: ++this.#seq });
  }

  #startTimeoutMs(): number {
    const base = this.opts.startTimeoutMs ?? 60_000;
    return Math.min(base * 2 ** this.#slowStarts, Math.max(base, MAX_START_TIMEOUT_MS));
  }

  #kill(reason: FailureReason, detail: string): void {
    this.#killReason ??= { reason, detail };
    this.#child?.kill('SIGKILL');
  }

  #exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (child !== this.#child) return;
    this.#child = undefined;
    this.#rssBytes = null;
    if (this.#stopping) {
      this.#state = 'stopped';
      return;
    }
    const oom = this.#stderrTail.some((l) => /heap out of memory|Reached heap limit/i.test(l));
    const failure = this.#killReason ?? {
      reason: oom ? ('out_of_memory' as const) : this.#state === 'running' ? ('exited' as const) : ('start_failed' as const),
      detail: `${signal ? `signal ${signal}` : `exit code ${code}`}${this.#stderrTail.length ? `: ${this.#stderrTail.slice(-3).join(' | ').slice(0, 400)}` : ''}`,
    };
    const upForMs = this.#state === 'running' ? performance.now() - this.#readyMs : 0;
    this.#counts.failures++;
    this.#downSinceMs ??= performance.now();
    this.#lastFailure = { ...failure, at_mono_ms: performance.now() };
    const delay = this.#backoff.next(upForMs);
    this.#state = 'restarting';
    this.opts.logger.error({ reason: failure.reason, detail: failure.detail, restart_in_ms: delay }, 'Node-RED failed');
    this.opts.onFailed({ ...failure, failures: this.#backoff.failures, restartInMs: delay });
    this.#restartTimer = setTimeout(() => this.#spawn(), delay);
    this.#restartTimer.unref();
  }

  #send(msg: ToRuntime): void {
    const child = this.#child;
    if (!child?.connected) return;
    try {
      child.send(msg);
    } catch (err) {
      this.opts.logger.debug({ err: (err as Error).message }, 'could not send to the Node-RED process');
    }
  }
}

/**
 * The runtime yields to the daemon: a lower CPU priority, and the kernel's out-of-memory killer
 * takes it first (on a 1 GB Pi a leaking flow must cost the flows, not the alarm path). The OOM
 * killer chooses whole processes, which is why flows run in one of their own.
 */
function lowerStanding(pid: number, nice: number, logger: Logger): void {
  try {
    if (nice !== 0) setPriority(pid, nice);
    writeFileSync(`/proc/${pid}/oom_score_adj`, '1000');
  } catch (err) {
    logger.debug({ err: (err as Error).message }, 'could not lower the Node-RED process standing');
  }
}

/** Resident memory of a process from /proc (Linux); null elsewhere or once it is gone. */
function readRssBytes(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}
