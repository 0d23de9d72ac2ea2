import type { AuditEntry, DeviceRow, EventQuery } from './store.js';

/**
 * The call center's tables, in the two SQL dialects of its stores: one list of columns, so SQLite
 * and PostgreSQL stay the same database. `events` holds each event once (its id the key) with the
 * columns searched on and `arrival`, its place in the order the center stored them (increasing,
 * with gaps on PostgreSQL: a console that lost its connection asks for what came after the last
 * one it saw); `devices` the
 * state of each device.
 */

type Dialect = 'sqlite' | 'postgres';

const T = {
  sqlite: { id: 'TEXT', text: 'TEXT', int: 'INTEGER', json: 'TEXT', suffix: ' WITHOUT ROWID', arrival: 'INTEGER NOT NULL', serial: 'INTEGER PRIMARY KEY' },
  postgres: {
    id: 'uuid',
    text: 'text',
    int: 'bigint',
    json: 'jsonb',
    suffix: '',
    arrival: 'bigint GENERATED ALWAYS AS IDENTITY',
    serial: 'bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY',
  },
} as const;

/**
 * Columns added to `devices` after its first release, so a store made before gets them on open
 * (SQLite has no `ADD COLUMN IF NOT EXISTS`: its store adds the missing ones itself).
 */
export const LATER_DEVICE_COLUMNS = ['hotlist', 'cameras'] as const;

export function schemaSql(dialect: Dialect): string {
  const t = T[dialect];
  return `
CREATE TABLE IF NOT EXISTS events (
  id ${t.id} PRIMARY KEY,
  site ${t.text} NOT NULL, device ${t.text} NOT NULL, type ${t.text} NOT NULL, priority ${t.text} NOT NULL,
  time_ms ${t.int} NOT NULL, seq ${t.int} NOT NULL, received_ms ${t.int} NOT NULL,
  plate ${t.text}, plate_hash ${t.text},
  envelope ${t.json} NOT NULL,
  arrival ${t.arrival}
)${t.suffix};
CREATE UNIQUE INDEX IF NOT EXISTS events_arrival ON events (arrival);
CREATE INDEX IF NOT EXISTS events_device ON events (site, device, time_ms);
CREATE INDEX IF NOT EXISTS events_type ON events (type, time_ms);
CREATE INDEX IF NOT EXISTS events_received ON events (received_ms);
CREATE INDEX IF NOT EXISTS events_plate ON events (plate) WHERE plate IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_plate_hash ON events (plate_hash) WHERE plate_hash IS NOT NULL;
CREATE TABLE IF NOT EXISTS devices (
  site ${t.text} NOT NULL, device ${t.text} NOT NULL,
  state ${t.text}, reason ${t.text}, boot_id ${t.text}, version ${t.text}, profile ${t.text},
  status_ms ${t.int}, last_event_ms ${t.int}, last_seq ${t.int},
  health ${t.json}, geo ${t.json}, ${LATER_DEVICE_COLUMNS.map((c) => `${c} ${t.json}`).join(', ')},
  PRIMARY KEY (site, device)
)${t.suffix};
CREATE TABLE IF NOT EXISTS audit (
  id ${t.serial},
  at_ms ${t.int} NOT NULL, username ${t.text} NOT NULL, role ${t.text} NOT NULL, action ${t.text} NOT NULL,
  target ${t.text} NOT NULL, remote ${t.text} NOT NULL, detail ${t.json}
);
${dialect === 'postgres' ? LATER_DEVICE_COLUMNS.map((c) => `ALTER TABLE devices ADD COLUMN IF NOT EXISTS ${c} jsonb;`).join('\n') : ''}
${appendOnly(dialect)}`;
}

/** Triggers that make the audit table append-only: an UPDATE or DELETE fails in the database itself. */
function appendOnly(dialect: Dialect): string {
  if (dialect === 'sqlite')
    return ['UPDATE', 'DELETE']
      .map(
        (op) =>
          `CREATE TRIGGER IF NOT EXISTS audit_no_${op.toLowerCase()} BEFORE ${op} ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;`,
      )
      .join('\n');
  return `CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
DROP TRIGGER IF EXISTS audit_append_only ON audit;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();`;
}

export interface AuditDbRow {
  id: unknown;
  at_ms: unknown;
  username: string;
  role: string;
  action: string;
  target: string;
  remote: string;
  detail: unknown;
}

export function auditFromRow(r: AuditDbRow): AuditEntry & { id: number } {
  const detail = json<Record<string, unknown>>(r.detail);
  return {
    id: Number(r.id),
    at: Number(r.at_ms),
    user: r.username,
    role: r.role,
    action: r.action,
    target: r.target,
    remote: r.remote,
    ...(detail ? { detail } : {}),
  };
}

/** A `devices` row as either driver returns it (numbers as text from PostgreSQL, JSON as text from SQLite). */
export type DeviceDbRow = Record<
  | 'site'
  | 'device'
  | 'state'
  | 'reason'
  | 'boot_id'
  | 'version'
  | 'profile'
  | 'status_ms'
  | 'last_event_ms'
  | 'last_seq'
  | 'health'
  | 'geo'
  | 'hotlist'
  | 'cameras',
  unknown
>;

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const json = <T>(v: unknown): T | null => (v === null || v === undefined ? null : typeof v === 'string' ? (JSON.parse(v) as T) : (v as T));
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function deviceFromRow(r: DeviceDbRow): DeviceRow {
  return {
    site: String(r.site),
    device: String(r.device),
    state: r.state === 'online' || r.state === 'offline' ? r.state : null,
    reason: str(r.reason),
    boot_id: str(r.boot_id),
    version: str(r.version),
    profile: str(r.profile),
    status_at: num(r.status_ms),
    last_event_at: num(r.last_event_ms),
    last_seq: num(r.last_seq),
    health: json(r.health),
    geo: json(r.geo),
    hotlist: json(r.hotlist),
    cameras: json(r.cameras),
  };
}

/**
 * The events query for a search, newest first: SQL with `?` placeholders (numbered `$1`... for
 * PostgreSQL) and its arguments.
 */
export function eventsQuery(q: EventQuery, dialect: Dialect): { sql: string; args: unknown[] } {
  const where: string[] = [];
  const args: unknown[] = [];
  const add = (column: string, op: string, v: unknown) => {
    args.push(v);
    where.push(`${column} ${op} ${dialect === 'postgres' ? `$${args.length}` : '?'}`);
  };
  if (q.site !== undefined) add('site', '=', q.site);
  if (q.device !== undefined) add('device', '=', q.device);
  if (q.type !== undefined) add('type', '=', q.type);
  if (q.types !== undefined && q.types.length > 0) {
    const marks = q.types.map((t) => {
      args.push(t);
      return dialect === 'postgres' ? `$${args.length}` : '?';
    });
    where.push(`type IN (${marks.join(', ')})`);
  }
  if (q.priority !== undefined) add('priority', '=', q.priority);
  if (q.plate !== undefined) add('plate', '=', q.plate.toUpperCase());
  if (q.plateHash !== undefined) add('plate_hash', '=', q.plateHash.toLowerCase());
  if (q.from !== undefined) add('time_ms', '>=', q.from);
  if (q.to !== undefined) add('time_ms', '<=', q.to);
  const limit = Math.min(10_000, Math.max(1, Math.floor(q.limit ?? 100)));
  return {
    sql: `SELECT envelope, received_ms, arrival FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY time_ms DESC, seq DESC LIMIT ${limit}`,
    args,
  };
}
