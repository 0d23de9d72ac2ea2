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
  /** The device's last known position: a GPS fix (any event's `geo`), else where it is installed (its birth message). */
  geo: { lat: number; lon: number; time: string; source: 'gps' | 'configured' } | null;
  /** The hotlist the device matches against (from `hotlist.updated` and the health report). */
  hotlist: DeviceHotlist | null;
  /** Each camera's state by id (from the health report, `camera.online` and `camera.offline`). */
  cameras: Record<string, string> | null;
}

export interface DeviceHotlist {
  version: string;
  size: number;
  serial: number | null;
  stale: boolean;
  /** Device time of the event that said so. */
  time: string;
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
  /** Any of these types. */
  types?: string[];
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

/**
 * What an event tells about its device beyond its last event and sequence, as JSON text for the
 * devices table (null: nothing, keep what is stored). `cameras` is merged into what is stored.
 */
export function deviceFactsOf(e: VigiaEvent): { health: string | null; geo: string | null; hotlist: string | null; cameras: string | null } {
  const p = e.payload as Record<string, unknown>;
  let hotlist: DeviceHotlist | null = null;
  let cameras: Record<string, string> | null = null;
  if (e.type === 'hotlist.updated' && typeof p.version === 'string' && typeof p.size === 'number') {
    hotlist = { version: p.version, size: p.size, serial: null, stale: false, time: e.time };
  } else if (e.type === 'camera.online' || e.type === 'camera.offline') {
    if (typeof p.camera === 'string') cameras = { [p.camera]: e.type === 'camera.online' ? 'online' : 'offline' };
  } else if (e.type === 'health') {
    const anpr = (p.extensions as Record<string, unknown> | undefined)?.anpr as Record<string, unknown> | undefined;
    const h = anpr?.hotlist as Record<string, unknown> | null | undefined;
    if (h && typeof h.version === 'string')
      hotlist = {
        version: h.version,
        size: Number(h.size) || 0,
        serial: typeof h.serial === 'number' ? h.serial : null,
        stale: h.stale === true,
        time: e.time,
      };
    if (anpr?.cameras && typeof anpr.cameras === 'object') cameras = anpr.cameras as Record<string, string>;
  }
  return {
    health: e.type === 'health' ? JSON.stringify({ ...p, time: e.time, clock: e.clock }) : null,
    geo: e.geo ? JSON.stringify({ lat: e.geo.lat, lon: e.geo.lon, time: e.time, source: 'gps' }) : null,
    hotlist: hotlist ? JSON.stringify(hotlist) : null,
    cameras: cameras ? JSON.stringify(cameras) : null,
  };
}

/** The position a status message gives (where the device is installed), as JSON text, or null. */
export function configuredGeo(status: DeviceStatus | null, receivedAt: number): string | null {
  if (!status?.location) return null;
  return JSON.stringify({ ...status.location, time: status.time ?? new Date(receivedAt).toISOString(), source: 'configured' });
}
