import Database from 'better-sqlite3';
import { PRIORITIES, type VigiaEvent } from '../core/event.js';
import type { DeviceStatus } from './envelope.js';
import { type AuditDbRow, auditFromRow, type DeviceDbRow, deviceFromRow, eventsQuery, LATER_DEVICE_COLUMNS, schemaSql } from './schema.js';
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
 * The call center's store in one SQLite file: nothing to install, for a small municipality or a
 * demo. WAL journal; events are committed in groups (all those waiting at one time), and
 * `addEvent` resolves after its group's commit.
 *
 * `synchronous`: `full` (default) syncs the WAL at every commit, so an acknowledged event survives
 * a power cut of the server; `normal` syncs only at checkpoints, surviving a crash or kill of the
 * ingest but not of the machine, for several times the throughput.
 */

export interface SqliteStoreOptions {
  synchronous?: 'full' | 'normal';
}

export class SqliteCentralStore implements CentralStore {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #touch: Database.Statement;
  readonly #facts: Database.Statement;
  readonly #status: Database.Statement;
  readonly #addMany: (batch: ReadonlyArray<{ event: VigiaEvent; receivedAt: number }>) => AddResult[];
  #pending: Array<{ event: VigiaEvent; receivedAt: number; resolve: (r: AddResult) => void; reject: (e: unknown) => void }> = [];

  constructor(file: string, opts: SqliteStoreOptions = {}) {
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma(`synchronous = ${opts.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(schemaSql('sqlite'));
    const columns = new Set((this.#db.pragma('table_info(devices)') as Array<{ name: string }>).map((c) => c.name));
    for (const c of LATER_DEVICE_COLUMNS) if (!columns.has(c)) this.#db.exec(`ALTER TABLE devices ADD COLUMN ${c} TEXT`);
    this.#insert = this.#db.prepare(
      `INSERT INTO events (id, site, device, type, priority, time_ms, seq, received_ms, plate, plate_hash, envelope, arrival)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(arrival), 0) + 1 FROM events)) ON CONFLICT (id) DO NOTHING`,
    );
    this.#touch = this.#db.prepare(
      `INSERT INTO devices (site, device, last_event_ms, last_seq) VALUES (?, ?, ?, ?)
       ON CONFLICT (site, device) DO UPDATE SET last_event_ms = excluded.last_event_ms, last_seq = max(coalesce(last_seq, 0), excluded.last_seq)`,
    );
    this.#facts = this.#db.prepare(
      `UPDATE devices SET health = coalesce(@health, health), geo = coalesce(@geo, geo), hotlist = coalesce(@hotlist, hotlist),
         cameras = CASE WHEN @cameras IS NULL THEN cameras ELSE json_patch(coalesce(cameras, '{}'), @cameras) END WHERE site = @site AND device = @device`,
    );
    // A configured position stands until a GPS fix: a fix is where the device is now.
    this.#status = this.#db.prepare(
      `INSERT INTO devices (site, device, state, reason, boot_id, version, profile, status_ms, geo) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (site, device) DO UPDATE SET state = excluded.state, reason = excluded.reason, boot_id = coalesce(excluded.boot_id, boot_id),
         version = coalesce(excluded.version, version), profile = coalesce(excluded.profile, profile), status_ms = excluded.status_ms,
         geo = CASE WHEN excluded.geo IS NOT NULL AND (geo IS NULL OR json_extract(geo, '$.source') = 'configured') THEN excluded.geo ELSE geo END`,
    );
    const addOne = (e: VigiaEvent, receivedAt: number): AddResult => {
      const { plate, plateHash } = plateOf(e);
      const info = this.#insert.run(e.id, e.site, e.device, e.type, e.priority, Date.parse(e.time), e.seq, receivedAt, plate, plateHash, JSON.stringify(e));
      if (info.changes === 0) return 'duplicate';
      this.#touch.run(e.site, e.device, receivedAt, e.seq);
      const f = deviceFactsOf(e);
      if (f.health || f.geo || f.hotlist || f.cameras) this.#facts.run({ ...f, site: e.site, device: e.device });
      return 'stored';
    };
    this.#addMany = this.#db.transaction((batch: ReadonlyArray<{ event: VigiaEvent; receivedAt: number }>) => batch.map((b) => addOne(b.event, b.receivedAt)));
  }

  /**
   * Group commit: the events added in one turn of the event loop (all that the ingest's
   * connections received meanwhile, up to their in-flight windows) are committed in one
   * transaction, one WAL sync for all.
   */
  addEvent(event: VigiaEvent, receivedAt: number): Promise<AddResult> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ event, receivedAt, resolve, reject });
      if (this.#pending.length === 1) setImmediate(() => this.#flush());
    });
  }

  #flush(): void {
    const batch = this.#pending;
    this.#pending = [];
    let results: AddResult[];
    try {
      results = this.#addMany(batch);
    } catch (err) {
      for (const p of batch) p.reject(err);
      return;
    }
    for (const [i, p] of batch.entries()) p.resolve(results[i]!);
  }

  async setStatus(site: string, device: string, status: DeviceStatus | null, receivedAt: number): Promise<void> {
    this.#status.run(
      site,
      device,
      status?.state ?? null,
      status?.reason ?? null,
      status?.boot_id ?? null,
      status?.version ?? null,
      status?.profile ?? null,
      receivedAt,
      configuredGeo(status, receivedAt),
    );
  }

  async events(q: EventQuery = {}): Promise<StoredEvent[]> {
    const { sql, args } = eventsQuery(q, 'sqlite');
    const rows = this.#db.prepare(sql).all(...args) as Array<{ envelope: string; received_ms: number; arrival: number }>;
    return rows.map((r) => ({ event: JSON.parse(r.envelope) as VigiaEvent, received_at: r.received_ms, arrival: r.arrival }));
  }

  async eventsSince(arrival: number, limit = 1000): Promise<StoredEvent[]> {
    const rows = this.#db
      .prepare('SELECT envelope, received_ms, arrival FROM events WHERE arrival > ? ORDER BY arrival LIMIT ?')
      .all(arrival, Math.min(10_000, Math.max(1, Math.floor(limit)))) as Array<{ envelope: string; received_ms: number; arrival: number }>;
    return rows.map((r) => ({ event: JSON.parse(r.envelope) as VigiaEvent, received_at: r.received_ms, arrival: r.arrival }));
  }

  async devices(): Promise<DeviceRow[]> {
    return (this.#db.prepare('SELECT * FROM devices ORDER BY site, device').all() as DeviceDbRow[]).map(deviceFromRow);
  }

  async addAudit(e: AuditEntry): Promise<void> {
    this.#db
      .prepare('INSERT INTO audit (at_ms, username, role, action, target, remote, detail) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(e.at, e.user, e.role, e.action, e.target, e.remote, e.detail ? JSON.stringify(e.detail) : null);
  }

  async audit(limit = 100): Promise<Array<AuditEntry & { id: number }>> {
    return (this.#db.prepare('SELECT * FROM audit ORDER BY id DESC LIMIT ?').all(Math.min(10_000, Math.max(1, Math.floor(limit)))) as AuditDbRow[]).map(
      auditFromRow,
    );
  }

  async countEvents(): Promise<number> {
    return (this.#db.prepare('SELECT count(*) AS n FROM events').get() as { n: number }).n;
  }

  async purge(retention: Retention, now: number): Promise<number> {
    let deleted = 0;
    const purge = this.#db.transaction(() => {
      const types = Object.keys(retention.byType);
      for (const [type, ms] of Object.entries(retention.byType)) {
        deleted += this.#db.prepare('DELETE FROM events WHERE type = ? AND received_ms < ?').run(type, now - ms).changes;
      }
      const notTypes = types.length ? ` AND type NOT IN (${types.map(() => '?').join(', ')})` : '';
      for (const p of PRIORITIES) {
        deleted += this.#db
          .prepare(`DELETE FROM events WHERE priority = ? AND received_ms < ?${notTypes}`)
          .run(p, now - retention.byPriority[p], ...types).changes;
      }
    });
    purge();
    return deleted;
  }

  async close(): Promise<void> {
    if (this.#pending.length > 0) this.#flush();
    if (this.#db.open) this.#db.close();
  }
}
