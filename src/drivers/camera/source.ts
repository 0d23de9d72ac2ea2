import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from '../../core/backoff.js';
import { type Clock, systemClock } from '../../core/clock.js';

// The sources (directory.ts, ffmpeg.ts, http-snapshot.ts) and their users take retry options from here.

/** One still image from a camera, always JPEG. */
export interface Frame {
  cameraId: string;
  jpeg: Buffer;
  /** Per-source sequence number, from 1, never reset by reconnects. */
  seq: number;
  /** Monotonic milliseconds (the injected clock) when the frame was received. */
  monoMs: number;
  /** Wall-clock epoch milliseconds when the frame was received; may be wrong before clock sync. */
  wallMs: number;
}

export type FrameSourceState = 'starting' | 'running' | 'backoff' | 'stopped';

export interface FrameSourceStats {
  /** Frames emitted. */
  frames: number;
  /** Frames received but discarded (over the size cap, not a valid JPEG...). */
  dropped: number;
  /** Failed attempts: process exits, HTTP errors, timeouts, missing directory... */
  errors: number;
  /** Attempts started after a failure (after the backoff delay). */
  reconnects: number;
  state: FrameSourceState;
  lastError: string | null;
}

export interface FrameSourceEvents {
  frame: [frame: Frame];
  state: [state: FrameSourceState, lastError: string | null];
  /** A failed attempt; the source has already scheduled its own retry. */
  error: [error: Error];
}

export type FrameSourceListener<E extends keyof FrameSourceEvents> = (...args: FrameSourceEvents[E]) => void;

/**
 * A camera. Like every extension, the constructor does nothing; start() begins producing frames
 * and supervising the connection; stop() ends it and resolves when every resource is released.
 * Listeners that throw are logged and never break the source.
 */
export interface FrameSource {
  readonly cameraId: string;
  /** "camera:<id>", so a source can be handed to the controller as an Extension. */
  readonly name: string;
  start(): void;
  stop(): Promise<void>;
  stats(): FrameSourceStats;
  on<E extends keyof FrameSourceEvents>(event: E, cb: FrameSourceListener<E>): this;
  off<E extends keyof FrameSourceEvents>(event: E, cb: FrameSourceListener<E>): this;
}

export interface FrameSourceDeps {
  clock?: Clock;
  logger?: Logger;
  /** Randomness for backoff jitter; injectable for tests. */
  random?: () => number;
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

type AnyListener = (...args: unknown[]) => void;

/**
 * The supervision every source shares: state machine, counters, safe listener calls and the
 * retry loop. A subclass implements one attempt (`open`) and its teardown (`close`). Each attempt
 * has a generation number; callbacks from an attempt that is no longer current are ignored, so a
 * late exit or response from an old connection can never emit a frame or schedule a second retry.
 */
export abstract class BaseFrameSource implements FrameSource {
  readonly name: string;
  protected readonly clock: Clock;
  protected readonly logger: Logger | undefined;
  readonly #backoff: Backoff;
  readonly #listeners: Record<keyof FrameSourceEvents, Set<AnyListener>> = { frame: new Set(), state: new Set(), error: new Set() };
  #state: FrameSourceState = 'stopped';
  #counters = { frames: 0, dropped: 0, errors: 0, reconnects: 0 };
  #lastError: string | null = null;
  #seq = 0;
  #gen = 0;
  #runningSince: number | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;

  protected constructor(
    readonly cameraId: string,
    deps: FrameSourceDeps = {},
    backoff: BackoffOptions = {},
  ) {
    this.name = `camera:${cameraId}`;
    this.clock = deps.clock ?? systemClock;
    this.logger = deps.logger;
    this.#backoff = new Backoff(backoff, deps.random);
  }

  /** Begins one attempt. Report with emitFrame/markRunning/drop/fail, always passing `gen`. */
  protected abstract open(gen: number): void;
  /** Ends the current attempt, if any, and releases its resources. */
  protected abstract close(): Promise<void>;

  start(): void {
    if (this.#state !== 'stopped' || this.#stopping) return;
    this.#backoff.reset();
    this.#begin();
  }

  stop(): Promise<void> {
    if (this.#stopping) return this.#stopping;
    if (this.#state === 'stopped') return Promise.resolve();
    this.#gen++;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#stopping = this.close()
      .catch((err: unknown) => this.logger?.error({ err, camera: this.cameraId }, 'error while stopping camera source'))
      .finally(() => {
        this.#stopping = undefined;
        this.#runningSince = undefined;
        this.#setState('stopped');
      });
    return this.#stopping;
  }

  stats(): FrameSourceStats {
    return { ...this.#counters, state: this.#state, lastError: this.#lastError };
  }

  on<E extends keyof FrameSourceEvents>(event: E, cb: FrameSourceListener<E>): this {
    this.#listeners[event].add(cb as unknown as AnyListener);
    return this;
  }

  off<E extends keyof FrameSourceEvents>(event: E, cb: FrameSourceListener<E>): this {
    this.#listeners[event].delete(cb as unknown as AnyListener);
    return this;
  }

  /** True while `gen` is the live attempt (not failed, not stopped). */
  protected isCurrent(gen: number): boolean {
    return gen === this.#gen && !this.#stopping;
  }

  /** The attempt is healthy even without a frame yet (a watched directory that exists). */
  protected markRunning(gen: number): void {
    if (!this.isCurrent(gen) || this.#state === 'running') return;
    this.#runningSince = this.clock.monoNow();
    this.#setState('running');
  }

  protected emitFrame(gen: number, jpeg: Buffer): void {
    if (!this.isCurrent(gen)) return;
    this.markRunning(gen);
    const frame: Frame = { cameraId: this.cameraId, jpeg, seq: ++this.#seq, monoMs: this.clock.monoNow(), wallMs: this.clock.wallNow() };
    this.#counters.frames++;
    this.#emit('frame', frame);
  }

  /** A frame was received but discarded; the attempt goes on. */
  protected drop(gen: number, reason: string): void {
    if (!this.isCurrent(gen)) return;
    this.#counters.dropped++;
    this.logger?.warn({ camera: this.cameraId, reason }, 'camera frame dropped');
  }

  /** A problem worth counting and reporting that does not end the attempt. */
  protected softError(gen: number, err: unknown): void {
    if (!this.isCurrent(gen)) return;
    const error = err instanceof Error ? err : new Error(String(err));
    this.#counters.errors++;
    this.#lastError = error.message;
    this.logger?.warn({ camera: this.cameraId, error: error.message }, 'camera source error');
    this.#emit('error', error);
  }

  /** The attempt failed: count it, report it, and retry after the backoff delay. */
  protected fail(gen: number, err: unknown): void {
    if (!this.isCurrent(gen)) return;
    this.#gen++; // later callbacks from this attempt are ignored
    const error = err instanceof Error ? err : new Error(String(err));
    this.#counters.errors++;
    this.#lastError = error.message;
    const upForMs = this.#runningSince === undefined ? undefined : this.clock.monoNow() - this.#runningSince;
    this.#runningSince = undefined;
    const delay = this.#backoff.next(upForMs);
    this.logger?.warn({ camera: this.cameraId, error: error.message, retry_in_ms: delay, attempt: this.#backoff.failures }, 'camera source failed');
    this.#emit('error', error);
    this.#setState('backoff');
    if (!this.isCurrent(this.#gen)) return; // a listener stopped the source
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#counters.reconnects++;
      this.#begin();
    }, delay);
  }

  #begin(): void {
    const gen = ++this.#gen;
    this.#setState('starting');
    if (!this.isCurrent(gen)) return;
    try {
      this.open(gen);
    } catch (err) {
      this.fail(gen, err);
    }
  }

  #setState(state: FrameSourceState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.#emit('state', state, this.#lastError);
  }

  #emit<E extends keyof FrameSourceEvents>(event: E, ...args: FrameSourceEvents[E]): void {
    for (const cb of [...this.#listeners[event]]) {
      try {
        cb(...args);
      } catch (err) {
        this.logger?.error({ err, camera: this.cameraId, event }, 'camera source listener threw');
      }
    }
  }
}

/**
 * Latest-frame-wins hand-over between a source and a slower consumer (inference). At most one
 * frame waits; a newer one replaces it and the replaced frame counts as dropped, so memory stays
 * flat however slow the consumer is. Consumers either poll with take() or await next(); several
 * concurrent next() calls are served in order, one frame each (a worker pool).
 *
 * ```ts
 * source.on('frame', (f) => slot.put(f));
 * for await (const frame of slot) await infer(frame); // ends when slot.close() is called
 * ```
 */
export class LatestFrameSlot<T = Frame> implements AsyncIterable<T> {
  #pending: T | undefined;
  #waiters: Array<(value: T | undefined) => void> = [];
  #closed = false;
  #counters = { offered: 0, delivered: 0, dropped: 0 };

  /** Offers a frame: handed to a waiting consumer, else kept as the newest (replacing any older). */
  put(frame: T): void {
    if (this.#closed) return;
    this.#counters.offered++;
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#counters.delivered++;
      waiter(frame);
      return;
    }
    if (this.#pending !== undefined) this.#counters.dropped++;
    this.#pending = frame;
  }

  /** The newest waiting frame, if any, without waiting. */
  take(): T | undefined {
    const frame = this.#pending;
    if (frame !== undefined) {
      this.#pending = undefined;
      this.#counters.delivered++;
    }
    return frame;
  }

  /** Resolves with the newest frame as soon as there is one; with undefined once closed. */
  next(): Promise<T | undefined> {
    const frame = this.take();
    if (frame !== undefined) return Promise.resolve(frame);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Ends iteration: waiting consumers get undefined, the pending frame is released. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#pending !== undefined) this.#counters.dropped++;
    this.#pending = undefined;
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Frames held right now: 0 or 1. */
  get size(): number {
    return this.#pending === undefined ? 0 : 1;
  }

  stats(): { offered: number; delivered: number; dropped: number; waiting: number; pending: number } {
    return { ...this.#counters, waiting: this.#waiters.length, pending: this.size };
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: async (): Promise<IteratorResult<T>> => {
        const frame = await this.next();
        return frame === undefined ? { done: true, value: undefined } : { done: false, value: frame };
      },
    };
  }
}
