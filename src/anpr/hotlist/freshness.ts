/**
 * Whether the installed hotlist is too old to be trusted (anpr.hotlist.max_age).
 *
 * A server that answers 304 forever, or one that is unreachable, leaves the device matching
 * against an old list without any refusal to report; only the list's signed issue time shows it.
 * Age is measured on the wall clock, and only once that clock is trusted: before NTP or GPS the
 * time of a Pi without RTC may be off by years, and a false alarm teaches people to ignore it.
 */

/** What the freshness check reads from HotlistStore.stats(). */
export type HotlistStamp = { version: string; serial: number; issued: string | null };

/** The payload of hotlist.stale. */
export type HotlistStaleness = { version: string; serial: number; issued: string; age_s: number };

export type HotlistFreshnessOptions = {
  maxAgeMs: number;
  /** Wall clock in ms. */
  now: () => number;
  clockSynced: () => boolean;
};

export class HotlistFreshness {
  /** True while a staleness episode is under way and has been reported. */
  #reported = false;

  constructor(private readonly opts: HotlistFreshnessOptions) {}

  /** Stale or not, and the age in seconds; null when unknown (no issue time, or an untrusted clock). */
  status(list: HotlistStamp): { stale: boolean; age_s: number } | null {
    if (list.issued === null || !this.opts.clockSynced()) return null;
    const ageMs = Math.max(0, this.opts.now() - Date.parse(list.issued));
    return { stale: ageMs > this.opts.maxAgeMs, age_s: Math.floor(ageMs / 1000) };
  }

  /** The staleness to report now: only at the start of an episode (the list became too old), else null. */
  check(list: HotlistStamp): HotlistStaleness | null {
    const s = this.status(list);
    if (s === null) {
      // An unsigned local list has no age: whatever episode there was is over. An untrusted clock tells nothing.
      if (list.issued === null) this.#reported = false;
      return null;
    }
    if (!s.stale) {
      this.#reported = false;
      return null;
    }
    if (this.#reported) return null;
    this.#reported = true;
    return { version: list.version, serial: list.serial, issued: list.issued!, age_s: s.age_s };
  }
}
