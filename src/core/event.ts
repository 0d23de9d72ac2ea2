import { v7 as uuidv7 } from 'uuid';

/** Delivery classes, most urgent first. The index is the on-disk priority (lower sends first). */
export const PRIORITIES = ['alarm', 'hit', 'read', 'telemetry'] as const;
export type Priority = (typeof PRIORITIES)[number];

export const priorityRank = (p: Priority): number => PRIORITIES.indexOf(p);

export function isPriority(value: unknown): value is Priority {
  return typeof value === 'string' && (PRIORITIES as readonly string[]).includes(value);
}

export type ClockQuality = 'synced' | 'unsynced';

/**
 * The one envelope every event travels in, from the driver that saw it to the call center.
 * `time` is the device's wall clock; when `clock` is "unsynced" it may be wrong by years.
 * `mono_ms` (milliseconds since `boot_id`'s boot) lets the gateway correct it once the clock syncs.
 */
export interface VigiaEvent<P = Record<string, unknown>> {
  /** UUIDv7: time-ordered, unique; consumers deduplicate on it. */
  id: string;
  device: string;
  site: string;
  type: string;
  priority: Priority;
  /** ISO 8601 wall time at creation (corrected before sending when possible). */
  time: string;
  clock: ClockQuality;
  /** Present and true when `time` was recomputed from the monotonic clock after a sync. */
  clock_corrected?: boolean;
  boot_id: string;
  mono_ms: number;
  /** Per-device sequence number, strictly increasing across restarts. */
  seq: number;
  /** Where the device was (GPS), when it has a recent fix. */
  geo?: GeoStamp;
  payload: P;
}

/** Position attached to events from the latest GPS fix. */
export interface GeoStamp {
  lat: number;
  lon: number;
  alt_m?: number;
  speed_kmh?: number;
  course_deg?: number;
  /** Fix kind: 2d or 3d (from GSA), or gps/dgps/rtk... (from GGA's quality). */
  fix: string;
  satellites?: number;
  hdop?: number;
  /** Age of the fix when the event was created, ms. */
  age_ms: number;
}

/** What a producer supplies; the gateway stamps the rest. */
export interface EventDraft<P = Record<string, unknown>> {
  type: string;
  priority: Priority;
  payload: P;
  /** Set by the gateway from the location provider (GPS), not by producers. */
  geo?: GeoStamp;
}

export const newEventId = (): string => uuidv7();

const TYPE_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/;
export const isValidEventType = (type: string): boolean => TYPE_PATTERN.test(type) && type.length <= 64;
