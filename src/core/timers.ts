import type { Clock } from './clock.js';

/**
 * Timers as an injectable dependency, next to the Clock: debounce, long-press, hold and safety
 * cut-off logic is then tested by advancing a manual scheduler, with no sleeps.
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
}

export type TimerHandle = { readonly __timer: true } | NodeJS.Timeout;

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout | undefined),
};

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock and timers driven by hand. `advance(ms)` moves time forward, running every timer that
 * falls due in order, each at its own time (so a timer set by a timer runs too if it is due).
 */
export class ManualScheduler implements Clock, Timers {
  #wall: number;
  #mono: number;
  #pending: Pending[] = [];
  #next = 1;

  constructor(wall = Date.UTC(2026, 0, 1), mono = 10_000) {
    this.#wall = wall;
    this.#mono = mono;
  }

  wallNow(): number {
    return this.#wall;
  }

  monoNow(): number {
    return this.#mono;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#next++;
    this.#pending.push({ id, at: this.#mono + Math.max(0, ms), fn });
    return { __timer: true, id } as unknown as TimerHandle;
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!handle) return;
    const id = (handle as unknown as { id: number }).id;
    this.#pending = this.#pending.filter((p) => p.id !== id);
  }

  /** Timers not yet run. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  advance(ms: number): void {
    const end = this.#mono + ms;
    for (;;) {
      let due: Pending | undefined;
      for (const p of this.#pending) if (p.at <= end && (!due || p.at < due.at || (p.at === due.at && p.id < due.id))) due = p;
      if (!due) break;
      this.#pending = this.#pending.filter((p) => p !== due);
      this.#wall += due.at - this.#mono;
      this.#mono = due.at;
      due.fn();
    }
    this.#wall += end - this.#mono;
    this.#mono = end;
  }
}
