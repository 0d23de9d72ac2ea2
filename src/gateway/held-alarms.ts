import { Backoff, type BackoffOptions } from '../core/backoff.js';

export interface HeldLimits {
  events: number;
  bytes: number;
}

export const DEFAULT_HELD_LIMITS: Readonly<HeldLimits> = { events: 1024, bytes: 16 * 1024 * 1024 };
export const DEFAULT_HELD_RETRY: Readonly<BackoffOptions> = { minDelayMs: 250, maxDelayMs: 5000 };

/**
 * Alarms the outbox could not store (the disk still full after the reserve went, an I/O error),
 * kept in memory in arrival order and handed back to `retry` with backoff until they are stored.
 * Bounded by count and bytes: what does not fit is returned to the caller to refuse.
 */
export class HeldAlarms<T extends { size: number }> {
  #items: T[] = [];
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #backoff: Backoff;

  constructor(
    private readonly limits: HeldLimits,
    backoff: BackoffOptions,
    private readonly retry: () => void,
  ) {
    this.#backoff = new Backoff(backoff);
  }

  get size(): number {
    return this.#items.length;
  }

  get bytes(): number {
    return this.#bytes;
  }

  items(): readonly T[] {
    return this.#items;
  }

  /** Keeps what fits and schedules the next attempt; returns what does not fit. */
  hold(items: readonly T[]): T[] {
    const overflow: T[] = [];
    for (const item of items) {
      if (this.#items.length >= this.limits.events || this.#bytes + item.size > this.limits.bytes) {
        overflow.push(item);
        continue;
      }
      this.#items.push(item);
      this.#bytes += item.size;
    }
    if (!this.#timer) this.#schedule(this.#backoff.next());
    return overflow;
  }

  /** Everything held, for an attempt to store it (what fails comes back through hold()). */
  takeAll(): T[] {
    const items = this.#items;
    this.#items = [];
    this.#bytes = 0;
    return items;
  }

  /** Something was stored: the next failure waits the shortest delay again. */
  stored(): void {
    this.#backoff.reset();
  }

  /** Space may be back: try at once instead of waiting out the backoff. */
  retryNow(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#schedule(0);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(delayMs: number): void {
    if (this.#timer || this.#items.length === 0) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.retry();
    }, delayMs);
    this.#timer.unref();
  }
}
