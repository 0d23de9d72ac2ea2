// The parts of the daemon's control-socket replies that the benchmarks read.

/** sim.burst: ids only for bursts of up to 10,000 events. */
export interface BurstReply {
  accepted: number;
  per_s: number;
  ids?: string[];
}

/** Counts per priority, then per reason. */
export type EvictedCounts = Record<string, Record<string, number>>;

export interface StatusReply {
  link: { state: string; resent: number; window: number };
  outbox: { depth: number; evicted: EvictedCounts };
  /** Present when plate reading is on. */
  anpr?: { workers?: { completed: number } };
  'field-io'?: { pole?: { led_latency_ms?: { p50: number | null; p99: number | null } } };
}

export const totalEvicted = (evicted: EvictedCounts): number =>
  Object.values(evicted).reduce((sum, byReason) => sum + Object.values(byReason).reduce((a, b) => a + b, 0), 0);
