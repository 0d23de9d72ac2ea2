import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from '../../core/backoff.js';
import { type Clock, systemClock } from '../../core/clock.js';
import { systemTimers, type TimerHandle, type Timers } from '../../core/timers.js';
import { errorMessage } from '../camera/source.js';
import { SafeListeners } from './listeners.js';
import { LineSplitter } from './line-splitter.js';

/**
 * The part of a `serialport` SerialPort this module uses, so tests and other transports can stand
 * in for it. The real class satisfies it.
 */
export interface SerialPortHandle {
  readonly isOpen: boolean;
  open(callback: (err: Error | null) => void): void;
  close(callback?: (err: Error | null) => void): void;
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'close', listener: (err?: Error | null) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  off(event: 'data', listener: (chunk: Buffer) => void): unknown;
  off(event: 'close', listener: (err?: Error | null) => void): unknown;
  off(event: 'error', listener: (err: Error) => void): unknown;
}

export type SerialPortClass = new (options: { path: string; baudRate: number; autoOpen: false }) => SerialPortHandle;

export type LinePortState = 'stopped' | 'opening' | 'open' | 'backoff';

export interface LinePortOptions {
  /** Device path, e.g. /dev/ttyACM0 or /dev/serial0. */
  path: string;
  baudRate: number;
  /** Longest line kept (default 1024 bytes); longer ones are dropped and counted as overlong. */
  maxLineBytes?: number;
  /**
   * Reopen the port when no byte arrived for this long (default: never). For devices that talk
   * continuously, silence means a wedged USB adapter or a loose wire.
   */
  idleTimeoutMs?: number;
  backoff?: BackoffOptions;
}

export interface LinePortDeps {
  clock?: Clock;
  timers?: Timers;
  logger?: Logger;
  /** Randomness for backoff jitter. */
  random?: () => number;
  /** Defaults to `serialport`'s SerialPort, loaded on first use. */
  SerialPort?: SerialPortClass;
}

export interface LinePortEvents {
  /** A complete line (terminator removed), decoded byte for byte (latin1), with its monotonic receive time. */
  line: [text: string, monoMs: number];
  state: [state: LinePortState, lastError: string | null];
  /** An attempt failed (open error, unplug, silence); the port has already scheduled its retry. */
  error: [error: Error];
  /** A line passed the length cap and is being dropped. */
  overlong: [droppedBytes: number];
  /** The device stopped answering: once per outage, however many reopen attempts fail. */
  lost: [error: string, wasReceiving: boolean];
  /** Lines arrive again after a loss. */
  restored: [downMs: number];
}

export interface LinePortStats {
  path: string;
  baudRate: number;
  state: LinePortState;
  /** Bytes received, all connections together. */
  bytes: number;
  lines: number;
  overlong: number;
  /** Failed attempts. */
  errors: number;
  /** Attempts started after a failure. */
  reconnects: number;
  lastError: string | null;
  /** Monotonic time of the last line, null before the first. */
  lastLineMono: number | null;
}

const DEFAULT_MAX_LINE_BYTES = 1024;
const CLOSE_TIMEOUT_MS = 2_000;

/** One connection: its handle, our listeners on it, and whether open() succeeded. */
interface Attempt {
  gen: number;
  port: SerialPortHandle;
  onData: (chunk: Buffer) => void;
  onClose: (err?: Error | null) => void;
  onError: (err: Error) => void;
  /** Settles when open() calls back: true if the port opened. */
  opened: Promise<boolean>;
  openedMono: number | undefined;
  lastDataMono: number;
  idleTimer: TimerHandle | undefined;
}

async function loadSerialPort(): Promise<SerialPortClass> {
  // Loaded lazily: the native binding costs memory on devices that have no serial hardware.
  const { SerialPort } = await import('serialport');
  return SerialPort;
}

/**
 * A supervised, line-oriented serial port. The device may vanish at any moment (USB unplugged,
 * power dip): every failure closes the handle and retries with exponential backoff and jitter,
 * for as long as the port is started. Protocols (NMEA, a radar's speed lines...) are parsers on
 * top of the 'line' event:
 *
 * ```ts
 * const radar = new LinePort({ path: '/dev/ttyUSB1', baudRate: 9600 });
 * radar.on('line', (text, monoMs) => { const kmh = parseRadarLine(text); ... });
 * radar.start();
 * ```
 *
 * Each attempt has a generation number; callbacks from a handle that is
 * no longer current are ignored, so a late 'close' can never schedule a second retry.
 */
export class LinePort {
  readonly name: string;
  readonly #opts: Required<Omit<LinePortOptions, 'idleTimeoutMs' | 'backoff'>> & { idleTimeoutMs: number | undefined };
  readonly #backoff: Backoff;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #logger: Logger | undefined;
  readonly #listeners: SafeListeners<LinePortEvents>;
  readonly #splitter: LineSplitter;
  #SerialPort: SerialPortClass | undefined;
  #state: LinePortState = 'stopped';
  #counters = { bytes: 0, lines: 0, overlong: 0, errors: 0, reconnects: 0 };
  #lastError: string | null = null;
  #lastLineMono: number | null = null;
  #running = false;
  #gen = 0;
  #attempt: Attempt | undefined;
  #released: Promise<void> = Promise.resolve();
  #retryTimer: TimerHandle | undefined;
  #stopping: Promise<void> | undefined;
  /** null until the first line or failure; then whether lines are flowing. */
  #healthy: boolean | null = null;
  #downSinceMono = 0;
  #rxMono = 0;

  constructor(opts: LinePortOptions, deps: LinePortDeps = {}) {
    this.name = `serial:${opts.path}`;
    this.#opts = {
      path: opts.path,
      baudRate: opts.baudRate,
      maxLineBytes: opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
      idleTimeoutMs: opts.idleTimeoutMs,
    };
    this.#backoff = new Backoff(opts.backoff, deps.random);
    this.#clock = deps.clock ?? systemClock;
    this.#timers = deps.timers ?? systemTimers;
    this.#logger = deps.logger;
    this.#SerialPort = deps.SerialPort;
    this.#listeners = new SafeListeners(deps.logger, { port: opts.path });
    this.#splitter = new LineSplitter(this.#opts.maxLineBytes, {
      line: (bytes) => this.#onLine(bytes),
      overlong: (dropped) => this.#onOverlong(dropped),
    });
  }

  get path(): string {
    return this.#opts.path;
  }

  start(): void {
    if (this.#running || this.#stopping) return;
    this.#running = true;
    this.#backoff.reset();
    this.#begin();
  }

  /** Closes the port; resolves once the device handle is released (and its lock with it). */
  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (!this.#running) return Promise.resolve();
    this.#running = false;
    this.#gen++;
    this.#timers.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    const attempt = this.#attempt;
    this.#attempt = undefined;
    if (attempt) this.#released = this.#release(attempt);
    this.#stopping = this.#released
      .catch((err: unknown) => this.#logger?.error({ err, port: this.#opts.path }, 'error while closing serial port'))
      .finally(() => {
        this.#stopping = undefined;
        this.#splitter.reset();
        this.#healthy = null;
        this.#setState('stopped');
      });
    return this.#stopping;
  }

  stats(): LinePortStats {
    return {
      path: this.#opts.path,
      baudRate: this.#opts.baudRate,
      state: this.#state,
      ...this.#counters,
      lastError: this.#lastError,
      lastLineMono: this.#lastLineMono,
    };
  }

  on<E extends keyof LinePortEvents>(event: E, cb: (...args: LinePortEvents[E]) => void): this {
    this.#listeners.on(event, cb);
    return this;
  }

  off<E extends keyof LinePortEvents>(event: E, cb: (...args: LinePortEvents[E]) => void): this {
    this.#listeners.off(event, cb);
    return this;
  }

  #isCurrent(gen: number): boolean {
    return gen === this.#gen && this.#running;
  }

  #begin(): void {
    const gen = ++this.#gen;
    this.#setState('opening');
    void this.#open(gen).catch((err: unknown) => this.#fail(gen, err));
  }

  async #open(gen: number): Promise<void> {
    // The previous handle must be closed first: it holds an exclusive lock on the device.
    await this.#released;
    this.#SerialPort ??= await loadSerialPort();
    if (!this.#isCurrent(gen)) return;
    const port = new this.#SerialPort({ path: this.#opts.path, baudRate: this.#opts.baudRate, autoOpen: false });
    let settle: (opened: boolean) => void = () => {};
    const attempt: Attempt = {
      gen,
      port,
      onData: (chunk) => this.#onData(attempt, chunk),
      onClose: (err) => this.#fail(gen, err ?? new Error('port closed')),
      onError: (err) => this.#fail(gen, err),
      opened: new Promise((resolve) => (settle = resolve)),
      openedMono: undefined,
      lastDataMono: this.#clock.monoNow(),
      idleTimer: undefined,
    };
    this.#attempt = attempt;
    port.on('data', attempt.onData);
    port.on('close', attempt.onClose);
    port.on('error', attempt.onError);
    port.open((err) => {
      settle(!err);
      if (err) this.#fail(gen, err);
      else this.#onOpen(attempt);
    });
  }

  #onOpen(attempt: Attempt): void {
    if (!this.#isCurrent(attempt.gen)) return;
    const now = this.#clock.monoNow();
    attempt.openedMono = now;
    attempt.lastDataMono = now;
    this.#splitter.reset();
    this.#setState('open');
    const idleMs = this.#opts.idleTimeoutMs;
    if (idleMs !== undefined) this.#armIdle(attempt, idleMs, idleMs);
  }

  /** One timer per connection, re-armed for the remainder instead of on every chunk. */
  #armIdle(attempt: Attempt, idleMs: number, delayMs: number): void {
    attempt.idleTimer = this.#timers.setTimeout(() => {
      attempt.idleTimer = undefined;
      if (!this.#isCurrent(attempt.gen)) return;
      const silentMs = this.#clock.monoNow() - attempt.lastDataMono;
      if (silentMs >= idleMs) this.#fail(attempt.gen, new Error(`no data for ${silentMs} ms`));
      else this.#armIdle(attempt, idleMs, idleMs - silentMs);
    }, delayMs);
  }

  #onData(attempt: Attempt, chunk: Buffer): void {
    if (!this.#isCurrent(attempt.gen)) return;
    this.#rxMono = this.#clock.monoNow();
    attempt.lastDataMono = this.#rxMono;
    this.#counters.bytes += chunk.length;
    this.#splitter.push(chunk);
  }

  #onLine(bytes: Buffer): void {
    // A 'line' listener may have stopped the port while a chunk was being split.
    if (!this.#running) return;
    this.#counters.lines++;
    this.#lastLineMono = this.#rxMono;
    this.#markHealthy();
    this.#listeners.emit('line', bytes.toString('latin1'), this.#rxMono);
  }

  #onOverlong(dropped: number): void {
    if (!this.#running) return;
    this.#counters.overlong++;
    this.#logger?.debug({ port: this.#opts.path, dropped }, 'overlong serial line dropped');
    this.#listeners.emit('overlong', dropped);
  }

  /** The attempt failed: release the handle, report, and retry after the backoff delay. */
  #fail(gen: number, err: unknown): void {
    if (!this.#isCurrent(gen)) return;
    this.#gen++; // later callbacks from this attempt are ignored
    const error = err instanceof Error ? err : new Error(errorMessage(err));
    this.#counters.errors++;
    this.#lastError = error.message;
    const attempt = this.#attempt;
    this.#attempt = undefined;
    if (attempt) this.#released = this.#release(attempt);
    // A connection that stayed up a while was healthy: the next outage starts from the short delay.
    const upFor = attempt?.openedMono === undefined ? 0 : this.#clock.monoNow() - attempt.openedMono;
    const delay = this.#backoff.next(upFor);
    this.#logger?.warn({ port: this.#opts.path, error: error.message, retry_in_ms: delay, attempt: this.#backoff.failures }, 'serial port failed');
    this.#setState('backoff');
    this.#listeners.emit('error', error);
    this.#markLost(error.message);
    if (!this.#running) return; // a listener stopped the port
    this.#retryTimer = this.#timers.setTimeout(() => {
      this.#retryTimer = undefined;
      if (!this.#running) return;
      this.#counters.reconnects++;
      this.#begin();
    }, delay);
  }

  #markLost(error: string): void {
    if (this.#healthy === false) return;
    const wasReceiving = this.#healthy === true;
    this.#healthy = false;
    this.#downSinceMono = this.#clock.monoNow();
    this.#listeners.emit('lost', error, wasReceiving);
  }

  #markHealthy(): void {
    if (this.#healthy === true) return;
    const wasDown = this.#healthy === false;
    this.#healthy = true;
    if (wasDown) this.#listeners.emit('restored', this.#clock.monoNow() - this.#downSinceMono);
  }

  /** Detaches our listeners and closes the handle (after its open() settles, so no descriptor leaks). */
  async #release(attempt: Attempt): Promise<void> {
    this.#timers.clearTimeout(attempt.idleTimer);
    const { port } = attempt;
    port.off('data', attempt.onData);
    port.off('close', attempt.onClose);
    port.off('error', attempt.onError);
    port.on('error', () => {}); // a discarded handle may still report; nobody needs to hear it
    if (!(await attempt.opened) || !port.isOpen) return;
    await new Promise<void>((resolve) => {
      const guard = this.#timers.setTimeout(resolve, CLOSE_TIMEOUT_MS);
      port.close(() => {
        this.#timers.clearTimeout(guard);
        resolve();
      });
    });
  }

  #setState(state: LinePortState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#listeners.emit('state', state, this.#lastError);
  }
}
