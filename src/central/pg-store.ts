import pg from 'pg';
import { PRIORITIES, type VigiaEvent } from '../core/event.js';
import type { DeviceStatus } from './envelope.js';
import { type AuditDbRow, auditFromRow, type DeviceDbRow, deviceFromRow, eventsQuery, schemaSql } from './schema.js';
import { type AddResult, type AuditEntry, type CentralStore, type DeviceRow, type EventQuery, plateOf, type Retention, type StoredEvent } from './store.js';

/**
 * The call center's store in PostgreSQL, for a real call center: several consoles, backups,
 * replication. Every event is one statement (the insert and the device's bookkeeping in one CTE),
 * events are committed in groups, and `addEvent` resolves after its group's commit; PostgreSQL's default `synchronous_commit = on` makes an
 * acknowledged event survive a power cut of the server.
 */

// The event and the device's last event, sequence, health and position in one statement: one
// round trip and one commit per event. The device row is only touched when the event is new.
const ADD = `
WITH ins AS (
  INSERT INTO events (id, site, device, type, priority, time_ms, seq, received_ms, plate, plate_hash, envelope)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
  ON CONFLICT (id) DO NOTHING
  RETURNING site, device
)
INSERT INTO devices AS d (site, device, last_event_ms, last_seq, health, geo)
SELECT site, device, $8, $7, $12::jsonb, $13::jsonb FROM ins
ON CONFLICT (site, device) DO UPDATE SET
  last_event_ms = excluded.last_event_ms,
  last_seq = greatest(coalesce(d.last_seq, 0), excluded.last_seq),
  health = coalesce(excluded.health, d.health),
  geo = coalesce(excluded.geo, d.geo)
RETURNING 1`;

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
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      const results: AddResult[] = [];
      for (const { event: e, receivedAt } of batch) {
        const { plate, plateHash } = plateOf(e);
        const health = e.type === 'health' ? JSON.stringify({ ...e.payload, time: e.time, clock: e.clock }) : null;
        const geo = e.geo ? JSON.stringify({ lat: e.geo.lat, lon: e.geo.lon, time: e.time }) : null;
        const r = await client.query(ADD, [
          e.id,
          e.site,
          e.device,
          e.type,
          e.priority,
          Date.parse(e.time),
          e.seq,
          receivedAt,
          plate,
          plateHash,
          JSON.stringify(e),
          health,
          geo,
        ]);
        results.push(r.rowCount === 0 ? 'duplicate' : 'stored');
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
      `INSERT INTO devices AS d (site, device, state, reason, boot_id, version, profile, status_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (site, device) DO UPDATE SET state = excluded.state, reason = excluded.reason, boot_id = coalesce(excluded.boot_id, d.boot_id),
         version = coalesce(excluded.version, d.version), profile = coalesce(excluded.profile, d.profile), status_ms = excluded.status_ms`,
      [site, device, status?.state ?? null, status?.reason ?? null, status?.boot_id ?? null, status?.version ?? null, status?.profile ?? null, receivedAt],
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
