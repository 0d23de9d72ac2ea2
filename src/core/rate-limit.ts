/**
 * A token bucket: `burst` events at once, `perSecond` sustained. Time comes from the caller (a
 * monotonic clock), so a test drives it without waiting.
 */
export class TokenBucket {
  #tokens: number;
  #lastMs: number | undefined;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
  ) {
    if (!(perSecond > 0) || !(burst >= 1)) throw new RangeError('a token bucket needs perSecond > 0 and burst >= 1');
    this.#tokens = burst;
  }

  /** Takes one token if there is one; false means the caller is over its rate. */
  take(nowMs: number): boolean {
    if (this.#lastMs !== undefined && nowMs > this.#lastMs) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((nowMs - this.#lastMs) * this.perSecond) / 1000);
    }
    if (this.#lastMs === undefined || nowMs > this.#lastMs) this.#lastMs = nowMs;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
