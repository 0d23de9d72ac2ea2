/**
 * Retry delays for anything that reconnects or restarts: the uplink, camera sources, serial
 * ports, supervised GPIO tools. Exponential growth keeps a dead peer from being hammered; the
 * jitter keeps a fleet of devices that lost the same broker (or a power dip) from retrying in step.
 */

export interface BackoffOptions {
  /** Delay after the first failure (default 500 ms). */
  minDelayMs?: number;
  /** Largest delay before jitter (default 30 s). */
  maxDelayMs?: number;
  /** Growth per consecutive failure (default 2). */
  factor?: number;
  /** Random spread as a fraction of the delay either way, 0..1 (default 0.2: ±20 %). */
  jitter?: number;
  /** A failed attempt that had been up at least this long was healthy: its failure counts as a first one (default 10 s). */
  resetAfterMs?: number;
  /** Clamp the jittered delay to maxDelayMs too (default false: jitter spreads around maxDelayMs as around any delay). */
  capJitter?: boolean;
}

export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>> = {
  minDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.2,
  resetAfterMs: 10_000,
  capJitter: false,
};

/** The delay, in whole milliseconds, before retry number `attempt` (0 after the first failure). */
export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const { minDelayMs, maxDelayMs, factor, jitter, capJitter } = { ...DEFAULT_BACKOFF, ...opts };
  // After ~1000 failures factor ** attempt is Infinity, and 0 × Infinity is NaN: a zero minimum stays zero.
  const grown = minDelayMs * factor ** attempt;
  const base = Number.isNaN(grown) ? 0 : Math.min(maxDelayMs, grown);
  const delay = Math.max(0, Math.round(base * (1 + jitter * (2 * random() - 1))));
  return capJitter ? Math.min(maxDelayMs, delay) : delay;
}

/**
 * Counts consecutive failures and hands out the delay before each retry.
 *
 * ```ts
 * const backoff = new Backoff({ minDelayMs: 1000, maxDelayMs: 60_000, jitter: 0.3 });
 * onConnect: backoff.reset();
 * onClose: setTimeout(connect, backoff.next());
 * ```
 */
export class Backoff {
  readonly #opts: Required<BackoffOptions>;
  readonly #random: () => number;
  #failures = 0;

  constructor(opts: BackoffOptions = {}, random: () => number = Math.random) {
    this.#opts = { ...DEFAULT_BACKOFF, ...opts };
    this.#random = random;
  }

  /**
   * Counts a failure and returns the delay before the next attempt. `upForMs` is how long the
   * failed attempt had been up, when it got that far: resetAfterMs or more, and this failure
   * starts over from minDelayMs.
   */
  next(upForMs?: number): number {
    if (upForMs !== undefined && upForMs >= this.#opts.resetAfterMs) this.#failures = 0;
    return backoffDelay(this.#failures++, this.#opts, this.#random);
  }

  /** A success: the next failure waits minDelayMs again. */
  reset(): void {
    this.#failures = 0;
  }

  /** Consecutive failures since the last reset, the latest one included. */
  get failures(): number {
    return this.#failures;
  }
}
