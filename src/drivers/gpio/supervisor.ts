import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Backoff, type BackoffOptions } from '../../core/backoff.js';
import type { Clock } from '../../core/clock.js';
import { type TimerHandle, type Timers, systemTimers } from '../../core/timers.js';

/**
 * A long-running child process that must stay up: a `gpiomon` watching an input or a `gpioset`
 * holding an output. When it exits or cannot start, the failure is reported (with the end of its
 * stderr, where the tools say why) and it is started again after an exponential backoff with
 * jitter, so a flapping tool neither spins nor takes the daemon down. `stop()` ends it with
 * SIGTERM, then SIGKILL if it lingers.
 */

/** Restarts: a run of 10 s counts as healthy, and maxDelayMs bounds the jittered delay too (a restart never waits longer). */
export const SUPERVISOR_BACKOFF: BackoffOptions = { minDelayMs: 500, maxDelayMs: 30_000, factor: 2, jitter: 0.2, resetAfterMs: 10_000, capJitter: true };

export interface ProcessFailure {
  /** Describes the exit (or the spawn error) and the stderr tail. */
  error: Error;
  /** Consecutive failures so far, this one included. */
  attempt: number;
  /** When the next start is due. */
  restartInMs: number;
}

export interface SupervisorOptions {
  /** Shown in messages, e.g. `gpiomon pinctrl-bcm2711:17`. */
  label: string;
  command: string;
  /** Read at every start, so a restart picks up the latest state (the value an output must hold). */
  args: () => string[];
  clock: Clock;
  timers?: Timers;
  backoff?: BackoffOptions;
  random?: () => number;
  /** SIGTERM, then SIGKILL after this long. */
  killGraceMs?: number;
  /** Runs before each restart (not the first start); a rejection counts as a failed start. */
  beforeRestart?: () => Promise<void>;
}

const STDERR_TAIL_BYTES = 2048;
const MAX_PARTIAL_LINE = 64 * 1024;
/** After `exit`, how long to wait for the pipes to drain (`close`) before reporting. */
const DRAIN_MS = 200;

type Events = {
  /** A complete stdout line, without its newline. */
  line: [string];
  /** Raw stdout, for prompts that end without a newline. */
  stdout: [string];
  started: [pid: number];
  failure: [ProcessFailure];
};

export class SupervisedProcess extends EventEmitter<Events> {
  readonly #opts: SupervisorOptions;
  readonly #timers: Timers;
  readonly #backoff: Backoff;
  #child: ChildProcessWithoutNullStreams | undefined;
  #exited: Promise<void> | undefined;
  #restartTimer: TimerHandle | undefined;
  #stopped = true;
  #lastFailure: Error | undefined;

  constructor(opts: SupervisorOptions) {
    super();
    this.#opts = opts;
    this.#timers = opts.timers ?? systemTimers;
    this.#backoff = new Backoff({ ...SUPERVISOR_BACKOFF, ...opts.backoff }, opts.random);
  }

  /** Whether a child is running now (not between a failure and its restart). */
  get running(): boolean {
    return this.#child !== undefined;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get lastFailure(): Error | undefined {
    return this.#lastFailure;
  }

  start(): void {
    this.#stopped = false;
    if (!this.#child && !this.#restartTimer) this.#spawn();
  }

  /** Stops the current child (if any) and starts a new one at once, with fresh args. Not a failure. */
  async replace(): Promise<void> {
    this.#timers.clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#stopped = true;
    await this.#kill();
    this.#stopped = false;
    this.#spawn();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#timers.clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    await this.#kill();
  }

  /** Writes to the child's stdin; rejects when no child is running or the pipe is broken. */
  write(text: string): Promise<void> {
    const child = this.#child;
    if (!child?.stdin.writable) return Promise.reject(new Error(`${this.#opts.label} is not running`));
    return new Promise((resolve, reject) => child.stdin.write(text, (err) => (err ? reject(err) : resolve())));
  }

  #spawn(): void {
    const { command, label } = this.#opts;
    const startedAt = this.#opts.clock.monoNow();
    let stderrTail = '';
    let partial = '';

    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(command, this.#opts.args(), { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      this.#failed(new Error(`${label} could not start: ${(err as Error).message}`));
      return;
    }
    this.#child = child;
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdin.on('error', () => {
      /* EPIPE when the child has exited; the exit itself is what gets reported */
    });
    child.stdout.on('data', (chunk: string) => {
      this.emit('stdout', chunk);
      const rows = (partial + chunk).split('\n');
      partial = rows.pop() ?? '';
      if (partial.length > MAX_PARTIAL_LINE) partial = '';
      for (const row of rows) this.emit('line', row.replace(/\r$/, ''));
    });
    child.stderr.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-STDERR_TAIL_BYTES);
    });
    child.once('spawn', () => this.emit('started', child.pid ?? 0));

    let drained!: () => void;
    this.#exited = new Promise<void>((resolve) => {
      drained = resolve;
    });
    let finished = false;
    const finish = (how: string) => {
      if (finished) return;
      finished = true;
      drained();
      if (this.#child !== child) return;
      this.#child = undefined;
      if (this.#stopped) return;
      const tail = stderrTail.trim().split('\n').slice(-3).join(' | ');
      this.#failed(new Error(`${label} ${how}${tail ? `: ${tail}` : ''}`), this.#opts.clock.monoNow() - startedAt);
    };
    child.on('error', (err) => {
      // Without a pid it never ran (ENOENT, EACCES...): no `exit` follows. Otherwise (a failed
      // kill) the process is still there and its exit is what counts.
      if (child.pid === undefined) finish(`could not start: ${err.message}`);
    });
    child.once('exit', (code, signal) => {
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      // The last stderr bytes may still be in the pipe when `exit` fires: wait for `close`, briefly.
      const timer = this.#timers.setTimeout(() => finish(how), DRAIN_MS);
      child.once('close', () => {
        this.#timers.clearTimeout(timer);
        finish(how);
      });
    });
  }

  /** `ranForMs`: how long the child ran, when it did start (a long enough run resets the backoff). */
  #failed(error: Error, ranForMs?: number): void {
    this.#lastFailure = error;
    const restartInMs = this.#backoff.next(ranForMs);
    const attempt = this.#backoff.failures;
    this.#restartTimer = this.#timers.setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopped) return;
      void this.#restart();
    }, restartInMs);
    this.emit('failure', { error, attempt, restartInMs });
  }

  async #restart(): Promise<void> {
    try {
      await this.#opts.beforeRestart?.();
    } catch (err) {
      if (!this.#stopped) this.#failed(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (!this.#stopped && !this.#child) this.#spawn();
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    const exited = this.#exited;
    if (!child || !exited) return;
    child.kill('SIGTERM');
    const escalate = this.#timers.setTimeout(() => {
      if (this.#child === child) child.kill('SIGKILL');
    }, this.#opts.killGraceMs ?? 2000);
    await exited;
    this.#timers.clearTimeout(escalate);
  }
}
