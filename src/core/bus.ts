import type { Logger } from 'pino';
import type { VigiaEvent } from './event.js';

/** The uplink's state, as extensions see it. */
export type LinkState = 'offline' | 'connecting' | 'online' | 'stopped';

/**
 * Notifications between extensions. Events do not travel on the bus to reach the outbox (producers
 * call `emit`, which stores them first); the bus tells others afterwards.
 */
export interface BusEvents {
  'event.accepted': [event: VigiaEvent];
  'link.state': [state: LinkState];
  'clock.synced': [source: string];
}

export type BusListener<K extends keyof BusEvents> = (...args: BusEvents[K]) => unknown;

/** One listener's record: what `vigia status` shows under `bus`. */
export interface ListenerStats {
  calls: number;
  errors: number;
  /** Calls that held the event loop longer than the bus's `slowMs`. */
  slow: number;
  max_ms: number;
  last_error: string | null;
}

export interface EventBusOptions {
  logger?: Logger;
  /** A listener running longer than this is counted and logged as slow (default 10 ms). */
  slowMs?: number;
  /** Errors and slow calls are logged at most once per listener in this window (default 10 s). */
  logIntervalMs?: number;
  now?: () => number;
}

interface Subscription {
  /** `owner:event`, e.g. `nodered:event.accepted`; the key of its stats. */
  key: string;
  listener: (...args: unknown[]) => unknown;
  stats: ListenerStats;
  lastLogMs: number;
}

type Delivery = { subs: Subscription[]; args: unknown[] };

/**
 * A typed bus that isolates its listeners from the code that emits. `emit` only queues: listeners
 * run on a later turn of the event loop, after the emitter's own continuation (a panic press lights
 * its LED before any listener runs). A listener that throws, rejects or runs slowly is counted and
 * logged under its owner's name; it never changes what `emit` did, and the other listeners still run.
 */
export class EventBus {
  readonly #subs = new Map<keyof BusEvents, Subscription[]>();
  readonly #stats = new Map<string, ListenerStats>();
  readonly #queue: Delivery[] = [];
  #scheduled = false;
  readonly #slowMs: number;
  readonly #logIntervalMs: number;
  readonly #now: () => number;

  constructor(private readonly opts: EventBusOptions = {}) {
    this.#slowMs = opts.slowMs ?? 10;
    this.#logIntervalMs = opts.logIntervalMs ?? 10_000;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Subscribes `listener` on behalf of `owner` (an extension's name); returns the unsubscribe function. */
  on<K extends keyof BusEvents>(event: K, listener: BusListener<K>, owner = 'anonymous'): () => void {
    const key = `${owner}:${event}`;
    let stats = this.#stats.get(key);
    if (!stats) this.#stats.set(key, (stats = { calls: 0, errors: 0, slow: 0, max_ms: 0, last_error: null }));
    const sub: Subscription = { key, listener: listener as Subscription['listener'], stats, lastLogMs: Number.NEGATIVE_INFINITY };
    const list = this.#subs.get(event) ?? [];
    // Copy on write: a delivery in progress keeps the list it started with.
    this.#subs.set(event, [...list, sub]);
    return () => {
      const current = this.#subs.get(event);
      if (current)
        this.#subs.set(
          event,
          current.filter((s) => s !== sub),
        );
    };
  }

  /** Queues the notification; never throws, never waits for a listener. */
  emit<K extends keyof BusEvents>(event: K, ...args: BusEvents[K]): void {
    const subs = this.#subs.get(event);
    if (!subs || subs.length === 0) return;
    this.#queue.push({ subs, args });
    if (!this.#scheduled) {
      this.#scheduled = true;
      setImmediate(() => this.#drain());
    }
  }

  listenerCount(event: keyof BusEvents): number {
    return this.#subs.get(event)?.length ?? 0;
  }

  /** Per listener (`owner:event`): calls, errors, slow calls, the longest call. */
  stats(): Record<string, ListenerStats> {
    return Object.fromEntries([...this.#stats].map(([key, s]) => [key, { ...s, max_ms: Math.round(s.max_ms * 100) / 100 }]));
  }

  #drain(): void {
    this.#scheduled = false;
    // Only what was queued before this turn: a listener that emits schedules another turn.
    const batch = this.#queue.splice(0, this.#queue.length);
    for (const { subs, args } of batch) for (const sub of subs) this.#call(sub, args);
  }

  #call(sub: Subscription, args: unknown[]): void {
    const { stats } = sub;
    stats.calls++;
    const started = this.#now();
    try {
      const result = sub.listener(...args);
      if (result instanceof Promise) result.catch((err: unknown) => this.#failed(sub, err));
    } catch (err) {
      this.#failed(sub, err);
    }
    const ms = this.#now() - started;
    if (ms > stats.max_ms) stats.max_ms = ms;
    if (ms > this.#slowMs) {
      stats.slow++;
      this.#log(sub, () => this.opts.logger?.warn({ listener: sub.key, ms: Math.round(ms), slow: stats.slow }, 'slow bus listener'));
    }
  }

  #failed(sub: Subscription, err: unknown): void {
    sub.stats.errors++;
    sub.stats.last_error = err instanceof Error ? err.message : String(err);
    this.#log(sub, () => this.opts.logger?.error({ listener: sub.key, err, errors: sub.stats.errors }, 'bus listener failed'));
  }

  /** A listener failing on every event must not flood the log (and wear the SD card). */
  #log(sub: Subscription, write: () => void): void {
    const now = this.#now();
    if (now - sub.lastLogMs < this.#logIntervalMs) return;
    sub.lastLogMs = now;
    write();
  }
}
