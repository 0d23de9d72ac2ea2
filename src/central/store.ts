import type { Priority, VigiaEvent } from '../core/event.js';
import type { DeviceStatus } from './envelope.js';

/**
 * Where the call center keeps what the devices said: every event once (by its id), and the state
 * of every device. One interface, two implementations chosen by URL (`sqlite-store.ts` for a file,
 * PostgreSQL for a real call center), as MQTT.js lets its stores be swapped.
 *
 * `addEvent` resolves only once the event is committed: the ingest acknowledges a message to the
 * broker after that and not before, so what the broker delivered is never lost by the center.
 */

export type AddResult = 'stored' | 'duplicate';

export interface DeviceRow {
  site: string;
  device: string;
  /** From the retained status topic (birth, Last Will, clean stop); null before any. */
  state: 'online' | 'offline' | null;
  reason: string | null;
  boot_id: string | null;
  version: string | null;
  profile: string | null;
  /** When the center received the last status, ms since the epoch. */
  status_at: number | null;
  /** When the center received the device's last event, ms since the epoch. */
  last_event_at: number | null;
  last_seq: number | null;
  /** The last `health` event's payload, with its `time` and `clock`. */
  health: (Record<string, unknown> & { time: string; clock: string }) | null;
  /** The device's last known position (from any event's `geo`). */
  geo: { lat: number; lon: number; time: string } | null;
}

export interface StoredEvent {
  event: VigiaEvent;
  received_at: number;
  /** Its place in the order the center stored events: increasing (PostgreSQL's may have gaps). */
  arrival: number;
}

export interface EventQuery {
  site?: string;
  device?: string;
  type?: string;
  priority?: Priority;
  /** Plate as read (hits, full reads) or its keyed hash (hashed reads). */
  plate?: string;
  plateHash?: string;
  /** Device time range, ms since the epoch. */
  from?: number;
  to?: number;
  /** Newest first; default 100, at most 10,000. */
  limit?: number;
}

export interface Retention {
  /** How long events of each priority are kept, ms. */
  byPriority: Record<Priority, number>;
  /** Per event type, overriding the priority's. */
  byType: Record<string, number>;
}

/** One action of an operator: who, when, from where, what, on what. */
export interface AuditEntry {
  /** ms since the epoch. */
  at: number;
  user: string;
  role: string;
  /** `login`, `login_failed`, `alarm.ack`, `alarm.clear`, `user.add`... */
  action: string;
  /** What it was done to: a device (`site/device`), an alarm id, a user name. */
  target: string;
  /** The client's address. */
  remote: string;
  detail?: Record<string, unknown>;
}

export interface CentralStore {
  /** Stores the event unless one with its id is stored already; resolves once committed. */
  addEvent(event: VigiaEvent, receivedAt: number): Promise<AddResult>;
  /** A device's status message (null: its retained status was cleared). */
  setStatus(site: string, device: string, status: DeviceStatus | null, receivedAt: number): Promise<void>;
  events(query?: EventQuery): Promise<StoredEvent[]>;
  /**
   * Events stored after `arrival`, in the order they were stored (at most `limit`, default 1,000):
   * what a console missed while it was away. One ingest writes a store, so arrivals are committed
   * in order and none appears later below one already seen.
   */
  eventsSince(arrival: number, limit?: number): Promise<StoredEvent[]>;
  devices(): Promise<DeviceRow[]>;
  countEvents(): Promise<number>;
  /** Appends to the audit trail, which nothing can change or delete (the database refuses it). */
  addAudit(entry: AuditEntry): Promise<void>;
  /** The latest audit entries, newest first (at most `limit`, default 100). */
  audit(limit?: number): Promise<Array<AuditEntry & { id: number }>>;
  /** Deletes events older than their retention (by the time they were received); returns how many. */
  purge(retention: Retention, now: number): Promise<number>;
  close(): Promise<void>;
}

/** The plate or plate hash an event carries, for search: hits and full reads carry the plate, hashed reads its hash. */
export function plateOf(e: VigiaEvent): { plate: string | null; plateHash: string | null } {
  const p = e.payload as Record<string, unknown>;
  return {
    plate: typeof p.plate === 'string' ? p.plate.toUpperCase() : null,
    plateHash: typeof p.plate_hash === 'string' ? p.plate_hash.toLowerCase() : null,
  };
}
