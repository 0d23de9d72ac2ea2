import pg from 'pg';
import { PRIORITIES, type VigiaEvent } from '../core/event.js';
import type { DeviceStatus } from './envelope.js';
import { type AuditDbRow, auditFromRow, type DeviceDbRow, deviceFromRow, eventsQuery, schemaSql } from './schema.js';
import {
  type AddResult,
  type AuditEntry,
  type CentralStore,
  configuredGeo,
  type DeviceRow,
  deviceFactsOf,
  type EventQuery,
  plateOf,
  type Retention,
  type StoredEvent,
} from './store.js';

/**
 * The call center's store in PostgreSQL, for a real call center: several consoles, backups,
 * replication. Events are committed in groups, two statements per group whatever its size (the
 * events, then their devices' bookkeeping, each as arrays unnested on the server: one round trip
 * each), and `addEvent` resolves after its group's commit; PostgreSQL's default
 * `synchronous_commit = on` makes an acknowledged event survive a power cut of the server.
 */

// In the order given (arrival follows it); an id already stored, or twice in the group, is skipped.
const ADD_EVENTS = `
INSERT INTO events (id, site, device, type, priority, time_ms, seq, received_ms, plate, plate_hash, envelope)
SELECT id, site, device, type, priority, time_ms, seq, received_ms, plate, plate_hash, envelope
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::jsonb[])
  WITH ORDINALITY AS e(id, site, device, type, priority, time_ms, seq, received_ms, plate, plate_hash, envelope, ord)
ORDER BY ord
ON CONFLICT (id) DO NOTHING
RETURNING id`;

// One row per device of the group's new events: its last event and sequence, and what they said.
const TOUCH_DEVICES = `
INSERT INTO devices AS d (site, device, last_event_ms, last_seq, health, geo, hotlist, cameras)
SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::jsonb[], $6::jsonb[], $7::jsonb[], $8::jsonb[])
ON CONFLICT (site, device) DO UPDATE SET
  last_event_ms = excluded.last_event_ms,
  last_seq = greatest(coalesce(d.last_seq, 0), excluded.last_seq),
  health = coalesce(excluded.health, d.health),
  geo = coalesce(excluded.geo, d.geo),
  hotlist = coalesce(excluded.hotlist, d.hotlist),
  cameras = CASE WHEN excluded.cameras IS NULL THEN d.cameras ELSE coalesce(d.cameras, '{}'::jsonb) || excluded.cameras END`;

interface DeviceTouch {
  site: string;
  device: string;
  lastEventMs: number;
  lastSeq: number;
  health: string | null;
  geo: string | null;
  hotlist: string | null;
  cameras: Record<string, string> | null;
}

export class PgCentralStore implements CentralStore {
  #pending: Array<{ event: VigiaEvent; receivedAt: number; resolve: (r: AddResult) => void; reject: (e: unknown) => void }> = [];
  #flushing = false;

  private constructor(private readonly pool: pg.Pool) {}

  /** Connects and creates the tables if they are missing. */
  static async open(url: string): Promise<PgCentralStore> {
    const pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'vigia-central' });
    try {
      await pool.query(schemaSql('postgres'));
    } catch (err) {
      await pool.end();
      throw err;
    }
    return new PgCentralStore(pool);
  }

  /**
   * Group commit: events waiting while a transaction commits go together into the next one (one
   * WAL flush for all of them); `addEvent` resolves after its transaction's commit.
   */
  addEvent(event: VigiaEvent, receivedAt: number): Promise<AddResult> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ event, receivedAt, resolve, reject });
      if (!this.#flushing) void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        try {
          const results = await this.#commit(batch);
          for (const [i, p] of batch.entries()) p.resolve(results[i]!);
        } catch (err) {
          for (const p of batch) p.reject(err);
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #commit(batch: ReadonlyArray<{ event: VigiaEvent; receivedAt: number }>): Promise<AddResult[]> {
    const cols: unknown[][] = Array.from({ length: 11 }, () => []);
    for (const { event: e, receivedAt } of batch) {
      const { plate, plateHash } = plateOf(e);
      const row = [e.id, e.site, e.device, e.type, e.priority, Date.parse(e.time), e.seq, receivedAt, plate, plateHash, JSON.stringify(e)];
      for (const [k, v] of row.entries()) cols[k]!.push(v);
    }
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const inserted = new Set((await client.query<{ id: string }>(ADD_EVENTS, cols)).rows.map((r) => r.id));
      // The first of an id in the group is the one stored; a repeat is a duplicate.
      const results: AddResult[] = batch.map(({ event }) => (inserted.delete(event.id) ? 'stored' : 'duplicate'));
      const touches = new Map<string, DeviceTouch>();
      for (const [i, { event: e, receivedAt }] of batch.entries()) {
        if (results[i] !== 'stored') continue;
        const key = `${e.site}/${e.device}`;
        const t = touches.get(key) ?? { site: e.site, device: e.device, lastEventMs: 0, lastSeq: 0, health: null, geo: null, hotlist: null, cameras: null };
        const f = deviceFactsOf(e);
        t.lastEventMs = Math.max(t.lastEventMs, receivedAt);
        t.lastSeq = Math.max(t.lastSeq, e.seq);
        t.health = f.health ?? t.health;
        t.geo = f.geo ?? t.geo;
        t.hotlist = f.hotlist ?? t.hotlist;
        if (f.cameras) t.cameras = { ...t.cameras, ...(JSON.parse(f.cameras) as Record<string, string>) };
        touches.set(key, t);
      }
      if (touches.size > 0) {
        const ts = [...touches.values()];
        await client.query(TOUCH_DEVICES, [
          ts.map((t) => t.site),
          ts.map((t) => t.device),
          ts.map((t) => t.lastEventMs),
          ts.map((t) => t.lastSeq),
          ts.map((t) => t.health),
          ts.map((t) => t.geo),
          ts.map((t) => t.hotlist),
          ts.map((t) => (t.cameras ? JSON.stringify(t.cameras) : null)),
        ]);
      }
      await client.query('COMMIT');
      return results;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async setStatus(site: string, device: string, status: DeviceStatus | null, receivedAt: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO devices AS d (site, device, state, reason, boot_id, version, profile, status_ms, geo) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb)
       ON CONFLICT (site, device) DO UPDATE SET state = excluded.state, reason = excluded.reason, boot_id = coalesce(excluded.boot_id, d.boot_id),
         version = coalesce(excluded.version, d.version), profile = coalesce(excluded.profile, d.profile), status_ms = excluded.status_ms,
         geo = CASE WHEN excluded.geo IS NOT NULL AND (d.geo IS NULL OR d.geo->>'source' = 'configured') THEN excluded.geo ELSE d.geo END`,
      [
        site,
        device,
        status?.state ?? null,
        status?.reason ?? null,
        status?.boot_id ?? null,
        status?.version ?? null,
        status?.profile ?? null,
        receivedAt,
        configuredGeo(status, receivedAt),
      ],
    );
  }

  async events(q: EventQuery = {}): Promise<StoredEvent[]> {
    const { sql, args } = eventsQuery(q, 'postgres');
    const r = await this.pool.query<{ envelope: VigiaEvent; received_ms: string; arrival: string }>(sql, args);
    return r.rows.map((row) => ({ event: row.envelope, received_at: Number(row.received_ms), arrival: Number(row.arrival) }));
  }

  async eventsSince(arrival: number, limit = 1000): Promise<StoredEvent[]> {
    const r = await this.pool.query<{ envelope: VigiaEvent; received_ms: string; arrival: string }>(
      'SELECT envelope, received_ms, arrival FROM events WHERE arrival > $1 ORDER BY arrival LIMIT $2',
      [arrival, Math.min(10_000, Math.max(1, Math.floor(limit)))],
    );
    return r.rows.map((row) => ({ event: row.envelope, received_at: Number(row.received_ms), arrival: Number(row.arrival) }));
  }

  async devices(): Promise<DeviceRow[]> {
    return (await this.pool.query<DeviceDbRow>('SELECT * FROM devices ORDER BY site, device')).rows.map(deviceFromRow);
  }

  async addAudit(e: AuditEntry): Promise<void> {
    await this.pool.query('INSERT INTO audit (at_ms, username, role, action, target, remote, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
      e.at,
      e.user,
      e.role,
      e.action,
      e.target,
      e.remote,
      e.detail ? JSON.stringify(e.detail) : null,
    ]);
  }

  async audit(limit = 100): Promise<Array<AuditEntry & { id: number }>> {
    return (await this.pool.query<AuditDbRow>('SELECT * FROM audit ORDER BY id DESC LIMIT $1', [Math.min(10_000, Math.max(1, Math.floor(limit)))])).rows.map(
      auditFromRow,
    );
  }

  async countEvents(): Promise<number> {
    const r = await this.pool.query<{ n: string }>('SELECT count(*) AS n FROM events');
    return Number(r.rows[0]!.n);
  }

  async purge(retention: Retention, now: number): Promise<number> {
    const client = await this.pool.connect();
    let deleted = 0;
    try {
      await client.query('BEGIN');
      const types = Object.keys(retention.byType);
      for (const [type, ms] of Object.entries(retention.byType)) {
        deleted += (await client.query('DELETE FROM events WHERE type = $1 AND received_ms < $2', [type, now - ms])).rowCount ?? 0;
      }
      for (const p of PRIORITIES) {
        deleted +=
          (
            await client.query('DELETE FROM events WHERE priority = $1 AND received_ms < $2 AND NOT (type = ANY($3))', [
              p,
              now - retention.byPriority[p],
              types,
            ])
          ).rowCount ?? 0;
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
    return deleted;
  }

  async close(): Promise<void> {
    while (this.#flushing) await new Promise((r) => setTimeout(r, 5));
    await this.pool.end();
  }
}
