import { chmodSync, existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { Logger } from 'pino';
import { Backoff, type BackoffOptions } from '../core/backoff.js';
import type { Clock } from '../core/clock.js';
import { type DB_LOCKING, type EventPayload, HEAVY_FIELDS, isCatalogued } from '../core/events.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../core/private-files.js';
import { SeqReservation } from './seq-reservation.js';
import { type EventDraft, isPriority, type Priority, type VigiaEvent, newEventId, PRIORITIES, priorityRank } from '../core/event.js';
import { DiskReserve, type ReserveState } from './disk-reserve.js';
import { DEFAULT_HELD_LIMITS, DEFAULT_HELD_RETRY, HeldAlarms, type HeldLimits } from './held-alarms.js';

export interface OutboxOptions {
  file: string;
  maxBytes: number;
  alarmReserveBytes: number;
  quotaBytes: Record<Priority, number>;
  /** Time to live per class in ms, or "never". */
  ttlMs: Record<Priority, number | 'never'>;
  commitIntervalMs: number;
  commitMaxEvents: number;
  synchronous: 'full' | 'normal';
  /**
   * Checkpoint the WAL from a worker thread instead of inside commits (keeps fsync tails off the
   * alarm path). Needs the compiled worker next to this file, so the daemon sets it; unit tests
   * running the TypeScript sources use SQLite's automatic checkpoints.
   */
  checkpointInWorker?: boolean;
  /** The checkpoint worker's script (default: checkpoint-worker.js beside this file). Tests point it at the build or at a failing script. */
  checkpointWorkerUrl?: URL;
  /** Delays before restarting a checkpoint worker that died (default: core/backoff's). */
  checkpointRestartBackoff?: BackoffOptions;
  /**
   * With no checkpoint worker running, a WAL larger than this is checkpointed on the main
   * connection (default 64 MiB): a fsync on the alarm path is better than a WAL without bound.
   */
  walLimitBytes?: number;
  /** Bytes kept in a file beside the database and released when the disk is full (default 0: none). */
  diskReserveBytes?: number;
  /** While the disk is full, how often its free space is looked at (default 2 s). */
  diskCheckIntervalMs?: number;
  /** Alarms kept in memory when they cannot be stored (default 1024 events, 16 MiB). */
  heldLimits?: HeldLimits;
  /** Delays between attempts to store the alarms held in memory (default 250 ms growing to 5 s). */
  heldRetryBackoff?: BackoffOptions;
  site: string;
  device: string;
  bootId: string;
  clock: Clock;
  clockSynced: () => boolean;
  logger: Logger;
}

/** An event as the uplink reads it back: the serialised envelope plus what it needs to finish it. */
export interface StoredEvent {
  rowid: number;
  priority: Priority;
  id: string;
  type: string;
  body: string;
  synced: boolean;
  bootId: string;
  mono: number;
  /** Remaining time to live in ms, or undefined if it never expires. */
  ttlLeftMs: number | undefined;
}

/** `purged`: removed by a technician (`vigia outbox purge`). */
export type EvictionReason = 'quota' | 'ttl' | 'capacity' | 'corrupt' | 'purged';

/** Evicted events not yet reported, by priority and reason (the `system.outbox_evicted` payload). */
export type EvictionCounts = Partial<Record<Priority, Partial<Record<EvictionReason, number>>>>;

/**
 * The event that reports evictions. Storing it settles the counts it reports in the same
 * transaction, so after a crash the counts are either still pending or durably queued as a report.
 */
export const EVICTION_REPORT_TYPE = 'system.outbox_evicted';

export interface PriorityStats {
  depth: number;
  bytes: number;
  oldestAgeMs: number | null;
}

export interface OutboxStats {
  depth: number;
  bytes: number;
  byPriority: Record<Priority, PriorityStats>;
  evicted: Record<Priority, Record<EvictionReason, number>>;
  /** Evictions recorded (durably) and not yet covered by a stored `system.outbox_evicted` report. */
  unreportedEvictions: EvictionCounts;
  commits: number;
  accepted: number;
  acked: number;
  lastSeq: number;
  checkpointer: CheckpointerStats;
  disk: DiskStats;
}

export type DbLocking = (typeof DB_LOCKING)[number];

export interface DiskStats {
  /** SQLite found the disk full and no reserve could be written again since: only alarms are stored. */
  full: boolean;
  /** Monotonic ms when it filled up (null while not full). */
  since: number | null;
  /** The error that said so. */
  error: string | null;
  /** `exclusive` after a start on a full disk: the WAL index in memory, checkpoints on the main connection. */
  locking: DbLocking;
  reserve: { bytes: number; state: ReserveState };
  freeBytes: number | null;
  /** Events refused because the disk was full, per priority, since the start. */
  refused: Record<Priority, number>;
  /** Alarms in memory waiting to be stored. */
  held: { events: number; bytes: number };
  /** Alarms stored after waiting in memory, and alarms given up (memory bound, shutdown). */
  heldStored: number;
  heldLost: number;
  episodes: number;
}

/** An event as `vigia outbox list` shows it: what it is, not its payload. */
export interface QueuedEvent {
  seq: number;
  id: string;
  priority: Priority;
  type: string;
  /** When it was accepted (its `time`, provisional if the clock was not synced). */
  time: string;
  clock: 'synced' | 'unsynced';
  bytes: number;
}

/** An alarm held in memory, as the uplink publishes it directly. */
export type HeldEvent = Pick<StoredEvent, 'priority' | 'id' | 'type' | 'body' | 'synced' | 'bootId' | 'mono'>;

export type OutboxErrorCode = 'disk_full' | 'commit_failed' | 'held_full' | 'closed';

/** Why the outbox did not store an event; `event` is the envelope it had stamped, when it got that far. */
export class OutboxError extends Error {
  constructor(
    readonly code: OutboxErrorCode,
    message: string,
    readonly event?: VigiaEvent,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface CheckpointerStats {
  /** Whether a checkpoint worker has its connection open now. */
  running: boolean;
  /** Checkpoint workers restarted after dying. */
  restarts: number;
  /** Checkpoints run on the main connection because the WAL outgrew walLimitBytes with no worker running. */
  mainCheckpoints: number;
  /** Checkpoints the worker ran, the WAL frames they copied, and how long the last and the longest took (ms). */
  checkpoints: number;
  framesCheckpointed: number;
  lastMs: number | null;
  maxMs: number | null;
}

export interface RecoveryReport {
  movedTo: string;
  error: string;
  /** Wall time of the recovery, ms since the epoch. */
  at: number;
}

/** Bytes a row costs beyond its JSON body: SQLite row header, index entry, metadata columns. */
const ROW_OVERHEAD = 64;
const CHECKPOINT_INTERVAL_MS = 1000;
const DEFAULT_WAL_LIMIT_BYTES = 64 * 1024 * 1024;
/** The WAL's size is looked at once every this many commits: a stat per commit would cost more than it guards. */
const WAL_CHECK_EVERY_COMMITS = 16;
/** Beside the outbox file: the highest sequence number reserved (see SeqReservation). */
export const SEQ_RESERVATION_FILE = 'outbox.seq';

/** What the checkpoint worker posts around each checkpoint. */
type CheckpointMessage = { checkpoint: 'start' } | { checkpoint: 'done'; ms: number; frames: number };

function isCheckpointMessage(msg: unknown): msg is CheckpointMessage {
  return typeof msg === 'object' && msg !== null && ((msg as CheckpointMessage).checkpoint === 'start' || (msg as CheckpointMessage).checkpoint === 'done');
}

/** How long a recovery waits for the checkpoint worker to close the corrupt file before moving it anyway. */
const CHECKPOINTER_CLOSE_WAIT_MS = 2000;
const CORRUPTION_CODES = new Set(['SQLITE_CORRUPT', 'SQLITE_NOTADB', 'SQLITE_CORRUPT_INDEX', 'SQLITE_CORRUPT_VTAB', 'SQLITE_CORRUPT_SEQUENCE']);
/** SQLITE_IOERR_SHMSIZE: the -shm file could not grow (at open, or when the WAL outgrows its index). */
const DISK_FULL_CODES = new Set(['SQLITE_FULL', 'SQLITE_IOERR_SHMSIZE', 'ENOSPC']);
const DEFAULT_DISK_CHECK_INTERVAL_MS = 2000;
/** The reserve comes back only with at least this much free beside it (and at least its own size). */
const MIN_FREE_AFTER_RESERVE = 1024 * 1024;

const errorCode = (err: unknown): string => (err as { code?: unknown } | null)?.code?.toString() ?? '';

export const isCorruptionError = (err: unknown): boolean => CORRUPTION_CODES.has(errorCode(err)) || /malformed|not a database/i.test(String(err));

export const isDiskFullError = (err: unknown): boolean => DISK_FULL_CODES.has(errorCode(err)) || /disk is full|no space left/i.test(String(err));

const describeError = (err: unknown): string => `${errorCode(err) || 'error'}: ${(err as Error)?.message ?? String(err)}`;

interface Pending {
  event: VigiaEvent;
  body: string;
  size: number;
  rank: number;
  /** For an eviction report: the counts it reports, settled when it is stored. */
  settles?: EvictionCounts;
  /** Monotonic ms since when an alarm that could not be stored waits in memory. */
  heldSince?: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

/** Depth and bytes per class as a transaction changes them; apply() once it has committed. */
interface Tally {
  readonly depth: number[];
  readonly bytes: number[];
  add(rank: number, bytes: number): void;
  remove(rank: number, bytes: number, count: number): void;
  apply(): void;
}

type Json = Record<string, unknown>;

/**
 * A copy of `payload` without the fields at `paths` (dotted), each parent marked `dropped: reason`;
 * undefined when none of them was there (nothing to gain). The caller's object is never modified.
 */
export function withoutHeavyFields(payload: Json, paths: readonly string[], reason: 'quota' | 'disk_full' = 'quota'): Json | undefined {
  const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
  const out: Json = { ...payload };
  let removed = false;
  for (const path of paths) {
    const keys = path.split('.');
    const leaf = keys.pop()!;
    let parent: Json | undefined = out;
    for (const key of keys) {
      const child: unknown = parent[key];
      if (!isObject(child)) {
        parent = undefined;
        break;
      }
      parent = parent[key] = { ...child }; // copied along the path: the caller's payload stays whole
    }
    if (!parent || !(leaf in parent)) continue;
    delete parent[leaf];
    parent.dropped = reason;
    removed = true;
  }
  return removed ? out : undefined;
}

const zeroCounts = (): Record<EvictionReason, number> => ({ quota: 0, ttl: 0, capacity: 0, corrupt: 0, purged: 0 });

/**
 * The durable store-and-forward queue. An event counts as accepted only once its transaction has
 * been committed (fsynced with synchronous=full). Commits are grouped: many events per fsync spare
 * the SD card, while an alarm triggers a commit on the next turn of the event loop.
 *
 * Delivery order is priority, then age. Each priority has a byte quota; when space runs out the
 * lowest priority's oldest events go first and alarms keep a reserve nobody else may use.
 */
export class Outbox {
  #db!: Database.Database;
  #stmts!: ReturnType<Outbox['prepare']>;
  #pending: Pending[] = [];
  #acks: number[] = [];
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  #seq = 0;
  #seqReservation!: SeqReservation;
  #seqReservationFailed = false;
  /** The highest row position handed out: a fresh file replacing a corrupt one goes on above it. */
  #lastPos = 0;
  #depth = PRIORITIES.map(() => 0);
  #bytes = PRIORITIES.map(() => 0);
  #cursor = PRIORITIES.map(() => 0);
  #evicted = Object.fromEntries(PRIORITIES.map((p) => [p, zeroCounts()])) as Record<Priority, Record<EvictionReason, number>>;
  #commits = 0;
  #accepted = 0;
  #acked = 0;
  #listeners: Array<() => void> = [];
  #evictionListeners: Array<(priority: Priority, reason: EvictionReason, count: number) => void> = [];
  #reopenListeners: Array<(report: RecoveryReport) => void> = [];
  #closed = true;
  #checkpointer: { worker: Worker; closed: Int32Array; ready: boolean } | undefined;
  #checkpointerBackoff: Backoff;
  #checkpointerRestart: NodeJS.Timeout | undefined;
  #checkpointerRestarts = 0;
  #mainCheckpoints = 0;
  #checkpoints = { count: 0, frames: 0, lastMs: null as number | null, maxMs: null as number | null };
  #commitsSinceWalCheck = 0;
  #locking: DbLocking = 'normal';
  readonly #reserve: DiskReserve;
  readonly #held: HeldAlarms<Pending>;
  #disk = { full: false, since: 0, error: '', atStart: false, episodes: 0, refused: PRIORITIES.map(() => 0), refusedHere: PRIORITIES.map(() => 0) };
  #diskTimer: NodeJS.Timeout | undefined;
  #checkingDisk = false;
  #heldStored = 0;
  #heldLost = 0;
  #diskFullListeners: Array<(report: EventPayload<'system.disk_full'>) => void> = [];
  #diskRecoveredListeners: Array<(report: EventPayload<'system.disk_recovered'>) => void> = [];
  #heldListeners: Array<() => void> = [];

  constructor(private readonly opts: OutboxOptions) {
    this.#checkpointerBackoff = new Backoff(opts.checkpointRestartBackoff);
    this.#reserve = new DiskReserve(opts.file, opts.diskReserveBytes ?? 0, opts.logger);
    this.#held = new HeldAlarms<Pending>(opts.heldLimits ?? DEFAULT_HELD_LIMITS, opts.heldRetryBackoff ?? DEFAULT_HELD_RETRY, () => this.#retryHeld());
  }

  /**
   * Opens (or creates) the database. A corrupt file is moved aside and reported, never deleted. A
   * full disk does not keep it from opening (see #openOnFullDisk); the reserve is written if missing.
   */
  open(): RecoveryReport | undefined {
    mkdirSync(dirname(this.opts.file), { recursive: true, mode: PRIVATE_DIR_MODE });
    this.#seqReservation = new SeqReservation(join(dirname(this.opts.file), SEQ_RESERVATION_FILE));
    let recovery: RecoveryReport | undefined;
    this.#reserve.inspect();
    try {
      this.#openOnFullDisk(true);
    } catch (err) {
      if (!isCorruptionError(err)) throw err;
      recovery = this.#moveAside(err);
      this.#openOnFullDisk(true);
    }
    this.#makePrivate();
    this.#closed = false;
    if (!this.#disk.full && this.#reserve.state() === 'missing' && this.#reserve.createNow() === 'no_room') {
      this.#enterDiskFull(Object.assign(new Error(`no room for the ${this.#reserve.bytes}-byte disk reserve`), { code: 'ENOSPC' }));
    }
    return recovery;
  }

  #nextSeq(): number {
    const seq = this.#seq + 1;
    try {
      this.#seqReservation.ensure(seq);
      this.#seqReservationFailed = false;
    } catch (err) {
      // Numbers stay unique while this file lives; only a later replacement of a corrupt file could repeat one.
      if (!this.#seqReservationFailed) this.opts.logger.error({ err: (err as Error).message }, 'cannot reserve event sequence numbers');
      this.#seqReservationFailed = true;
    }
    this.#seq = seq;
    return seq;
  }

  /**
   * On a full disk SQLite cannot grow the -shm file it needs for WAL (SQLITE_IOERR_SHMSIZE). First
   * the reserve goes; if that is not enough, EXCLUSIVE locking keeps the WAL index in this
   * process's memory (no -shm at all): no checkpoint worker can share the file then, so SQLite
   * checkpoints on this connection until the space is back and the database is opened normally.
   */
  #openOnFullDisk(atStart: boolean): void {
    const when = atStart ? 'disk full at start' : 'disk full';
    let error: unknown;
    try {
      this.#openDb('normal');
      return;
    } catch (err) {
      if (!isDiskFullError(err)) throw err;
      error = err;
    }
    if (this.#reserve.release()) {
      this.opts.logger.error({ err: error, reserve_bytes: this.#reserve.bytes }, `${when}: released the disk reserve to open the outbox`);
      try {
        this.#openDb('normal');
        this.#enterDiskFull(error, atStart);
        return;
      } catch (err) {
        if (!isDiskFullError(err)) throw err;
      }
    }
    try {
      this.#openDb('exclusive');
    } catch (err) {
      if (!isDiskFullError(err)) throw err;
      throw new Error(
        `disk full: cannot open the outbox ${this.opts.file}, not even with exclusive locking (${describeError(err)}); free space on its file system`,
        {
          cause: err,
        },
      );
    }
    this.opts.logger.error(
      { err: error },
      `${when}: outbox opened with exclusive locking (WAL index in memory, no checkpoint worker); it is opened normally again once space is freed`,
    );
    this.#enterDiskFull(error, atStart);
  }

  /** The events are personal data (plate reads): SQLite creates its files world-readable, an older version left them so. */
  #makePrivate(): void {
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        chmodSync(this.opts.file + suffix, PRIVATE_FILE_MODE);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
          this.opts.logger.warn({ err: (err as Error).message, file: this.opts.file + suffix }, 'cannot make the outbox file private');
      }
    }
  }

  #openDb(locking: DbLocking): void {
    const db = new Database(this.opts.file);
    try {
      // Before the first WAL access: then SQLite keeps the WAL index in heap memory and never maps a -shm file.
      if (locking === 'exclusive') db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${this.opts.synchronous.toUpperCase()}`);
      db.pragma('journal_size_limit = 8388608');
      db.pragma('cache_size = -4000'); // 4 MB: rows are written once and read once, in order
      if (this.opts.checkpointInWorker && locking === 'normal') db.pragma('wal_autocheckpoint = 0');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw Object.assign(new Error(`quick_check: ${String(check)}`), { code: 'SQLITE_CORRUPT' });
      db.exec(`
        CREATE TABLE IF NOT EXISTS events (
          -- AUTOINCREMENT: positions are never reused, so the uplink's read cursor never skips a new row.
          pos INTEGER PRIMARY KEY AUTOINCREMENT,
          id TEXT NOT NULL,
          priority INTEGER NOT NULL,
          type TEXT NOT NULL,
          size INTEGER NOT NULL,
          wall INTEGER NOT NULL,
          mono INTEGER NOT NULL,
          boot_id TEXT NOT NULL,
          synced INTEGER NOT NULL,
          body TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS events_by_priority ON events (priority);
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires INTEGER NOT NULL);
      `);
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;
    this.#locking = locking;
    this.#stmts = this.prepare(db);
    if (this.opts.checkpointInWorker && locking === 'normal') this.#startCheckpointer();
    const positions = db.prepare("SELECT seq FROM sqlite_sequence WHERE name = 'events'").get() as { seq: number } | undefined;
    this.#lastPos = Math.max(this.#lastPos, positions?.seq ?? 0);
    // A fresh file (new device, or a corrupt one replaced) numbers on above every reserved number.
    this.#seq = (this.#stmts.getMeta.get('seq') as { value: number } | undefined)?.value ?? this.#seqReservation.through;
    this.#depth.fill(0);
    this.#bytes.fill(0);
    this.#cursor.fill(0);
    for (const row of db.prepare('SELECT priority, count(*) AS n, coalesce(sum(size), 0) AS bytes FROM events GROUP BY priority').all() as {
      priority: number;
      n: number;
      bytes: number;
    }[]) {
      this.#depth[row.priority] = row.n;
      this.#bytes[row.priority] = row.bytes;
    }
  }

  #startCheckpointer(): void {
    void this.#stopCheckpointer();
    clearTimeout(this.#checkpointerRestart);
    this.#checkpointerRestart = undefined;
    const closed = new Int32Array(new SharedArrayBuffer(4));
    const startedAt = performance.now();
    let worker: Worker;
    try {
      worker = new Worker(this.opts.checkpointWorkerUrl ?? new URL('./checkpoint-worker.js', import.meta.url), {
        workerData: { file: this.opts.file, intervalMs: CHECKPOINT_INTERVAL_MS, closed },
        resourceLimits: { maxOldGenerationSizeMb: 16 },
      });
    } catch (err) {
      this.opts.logger.error({ err }, 'cannot start the WAL checkpoint worker');
      this.#scheduleCheckpointerRestart(0);
      return;
    }
    worker.unref();
    const checkpointer = { worker, closed, ready: false };
    worker.on('message', (msg: unknown) => {
      if (msg === 'ready') checkpointer.ready = true;
      else if (isCheckpointMessage(msg)) this.#onCheckpoint(msg);
    });
    worker.on('error', (err) => this.opts.logger.error({ err }, 'WAL checkpoint worker failed'));
    // A stop (close, recovery) forgets the worker before ending it: an exit of the current one is a death.
    worker.on('exit', (code) => {
      if (this.#checkpointer !== checkpointer) return;
      this.#checkpointer = undefined;
      this.opts.logger.error({ code }, 'WAL checkpoint worker exited; restarting it');
      this.#scheduleCheckpointerRestart(performance.now() - startedAt);
    });
    this.#checkpointer = checkpointer;
  }

  #onCheckpoint(msg: CheckpointMessage): void {
    if (msg.checkpoint === 'start') return void this.opts.logger.debug('WAL checkpoint started');
    const ms = Math.round(msg.ms * 100) / 100;
    const stats = this.#checkpoints;
    stats.count++;
    stats.frames += msg.frames;
    stats.lastMs = ms;
    stats.maxMs = Math.max(stats.maxMs ?? 0, ms);
    this.opts.logger.debug({ ms, frames: msg.frames }, 'WAL checkpoint done');
  }

  #scheduleCheckpointerRestart(upForMs: number): void {
    clearTimeout(this.#checkpointerRestart);
    this.#checkpointerRestart = setTimeout(() => {
      this.#checkpointerRestart = undefined;
      if (this.#closed || this.#checkpointer || this.#locking === 'exclusive') return;
      this.#checkpointerRestarts++;
      this.#startCheckpointer();
    }, this.#checkpointerBackoff.next(upForMs));
    this.#checkpointerRestart.unref();
  }

  /**
   * The last resort against a WAL without bound: with no checkpoint worker running (dead, waiting
   * for its restart), a WAL past walLimitBytes is checkpointed here, on the main connection.
   */
  #boundWal(): void {
    if (!this.opts.checkpointInWorker || ++this.#commitsSinceWalCheck < WAL_CHECK_EVERY_COMMITS) return;
    this.#commitsSinceWalCheck = 0;
    if (this.#checkpointer?.ready) return;
    let walBytes: number;
    try {
      walBytes = statSync(`${this.opts.file}-wal`).size;
    } catch {
      return;
    }
    if (walBytes <= (this.opts.walLimitBytes ?? DEFAULT_WAL_LIMIT_BYTES)) return;
    try {
      this.#db.pragma('wal_checkpoint(PASSIVE)');
      this.#mainCheckpoints++;
      this.opts.logger.warn({ wal_bytes: walBytes }, 'no WAL checkpoint worker running: checkpointed on the main connection');
    } catch (err) {
      this.opts.logger.error({ err }, 'WAL checkpoint on the main connection failed');
    }
  }

  /**
   * Before a corrupt file is moved aside, every connection to it must be closed: SQLite deletes
   * the -wal and -shm of the last connection to close by name, which after the rename are the
   * fresh database's. Blocks (briefly, only during a recovery) until the worker has closed.
   */
  #closeCheckpointerNow(): void {
    const checkpointer = this.#checkpointer;
    this.#checkpointer = undefined;
    if (!checkpointer) return;
    checkpointer.worker.postMessage('close-now');
    if (Atomics.wait(checkpointer.closed, 0, 0, CHECKPOINTER_CLOSE_WAIT_MS) === 'timed-out') {
      this.opts.logger.error('the WAL checkpoint worker did not close the corrupt database in time');
    }
    void checkpointer.worker.terminate();
  }

  async #stopCheckpointer(): Promise<void> {
    const worker = this.#checkpointer?.worker;
    this.#checkpointer = undefined;
    if (!worker) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => void worker.terminate().then(() => resolve()), 2000);
      worker.on('message', (msg) => {
        if (msg !== 'stopped') return;
        clearTimeout(t);
        void worker.terminate().then(() => resolve());
      });
      worker.postMessage('stop');
    });
  }

  private prepare(db: Database.Database) {
    // Evicted but not yet reported counts, kept here so a crash before the report cannot lose them.
    db.exec('CREATE TABLE IF NOT EXISTS evictions (priority INTEGER NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, PRIMARY KEY (priority, reason))');
    return {
      insert: db.prepare('INSERT INTO events (id, priority, type, size, wall, mono, boot_id, synced, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)'),
      // One statement for a whole batch of acknowledgements; rows evicted meanwhile simply don't return.
      delMany: db.prepare('DELETE FROM events WHERE pos IN (SELECT value FROM json_each(?)) RETURNING priority, size'),
      evictOldest: db.prepare('DELETE FROM events WHERE pos IN (SELECT pos FROM events WHERE priority = ? ORDER BY pos LIMIT ?) RETURNING size'),
      next: db.prepare('SELECT pos AS rowid, id, type, wall, mono, boot_id, synced, body FROM events WHERE priority = ? AND pos > ? ORDER BY pos LIMIT ?'),
      oldest: db.prepare('SELECT wall, mono, boot_id, synced FROM events WHERE priority = ? ORDER BY pos LIMIT 1'),
      oldestRows: db.prepare('SELECT pos, size, mono, wall, boot_id, synced FROM events WHERE priority = ? ORDER BY pos LIMIT ?'),
      deleteUpTo: db.prepare('DELETE FROM events WHERE priority = ? AND pos <= ?'),
      getMeta: db.prepare('SELECT value FROM meta WHERE key = ?'),
      setMeta: db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value'),
      addEvicted: db.prepare(
        'INSERT INTO evictions (priority, reason, count) VALUES (?, ?, ?) ON CONFLICT (priority, reason) DO UPDATE SET count = count + excluded.count',
      ),
      // Never below zero: a report can only settle what was counted.
      settleEvicted: db.prepare('UPDATE evictions SET count = max(0, count - ?) WHERE priority = ? AND reason = ?'),
      dropSettled: db.prepare('DELETE FROM evictions WHERE count <= 0'),
      unreported: db.prepare('SELECT priority, reason, count FROM evictions WHERE count > 0 ORDER BY priority, reason'),
      queued: db.prepare(
        "SELECT priority, id, type, size, wall, synced, json_extract(body, '$.seq') AS seq FROM events WHERE priority BETWEEN ? AND ? ORDER BY priority, pos LIMIT ?",
      ),
      purge: db.prepare('DELETE FROM events WHERE priority = ? RETURNING size'),
    };
  }

  #moveAside(err: unknown): RecoveryReport {
    const at = this.opts.clock.wallNow();
    const movedTo = `${this.opts.file}.corrupt-${new Date(at).toISOString().replace(/[:.]/g, '-')}`;
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(this.opts.file + suffix)) renameSync(this.opts.file + suffix, movedTo + suffix);
    }
    this.opts.logger.error({ err, movedTo }, 'outbox database is corrupt: moved aside, starting a fresh one');
    return { movedTo, error: String((err as Error)?.message ?? err), at };
  }

  /**
   * Stamps a draft into a full event and resolves once it is durable on disk. Rejects if it could
   * not be stored (the caller still holds it and may retry or raise a fault).
   */
  accept<P extends Record<string, unknown>>(draft: EventDraft<P>): Promise<VigiaEvent<P>> {
    if (this.#closed) return Promise.reject(new OutboxError('closed', 'outbox is closed'));
    const synced = this.opts.clockSynced();
    const wall = this.opts.clock.wallNow();
    const event: VigiaEvent<P> = {
      id: newEventId(),
      device: this.opts.device,
      site: this.opts.site,
      type: draft.type,
      priority: draft.priority,
      time: new Date(wall).toISOString(),
      clock: synced ? 'synced' : 'unsynced',
      boot_id: this.opts.bootId,
      mono_ms: Math.round(this.opts.clock.monoNow()),
      seq: this.#nextSeq(),
      ...(draft.geo ? { geo: draft.geo } : {}),
      payload: draft.payload,
    };
    const body = JSON.stringify(event);
    return new Promise<VigiaEvent<P>>((resolve, reject) => {
      this.#pending.push({
        event: event as VigiaEvent,
        body,
        size: Buffer.byteLength(body) + ROW_OVERHEAD,
        rank: priorityRank(draft.priority),
        ...(draft.type === EVICTION_REPORT_TYPE ? { settles: (draft.payload as { evicted?: EvictionCounts }).evicted ?? {} } : {}),
        resolve: () => resolve(event),
        reject,
      });
      this.#schedule(draft.priority === 'alarm' || this.#pending.length >= this.opts.commitMaxEvents);
    });
  }

  #schedule(urgent: boolean): void {
    if (urgent) {
      this.#immediate ??= setImmediate(() => this.flush());
    } else if (!this.#timer && !this.#immediate) {
      this.#timer = setTimeout(() => this.flush(), this.opts.commitIntervalMs);
    }
  }

  /** Commits everything pending (new events and acknowledged deletions) in one transaction. */
  flush(): void {
    clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    if (this.#closed || (this.#pending.length === 0 && this.#acks.length === 0)) return;
    let batch = this.#pending;
    const acks = this.#acks;
    this.#pending = [];
    this.#acks = [];
    // The room the reserve freed is the alarms': nothing else is written until the reserve is back.
    if (this.#disk.full) batch = this.#refuseBelowAlarms(batch);
    try {
      this.#commit(batch, acks);
    } catch (err) {
      if (isCorruptionError(err)) {
        this.#recoverFromCorruption(err, batch);
        return;
      }
      this.#acks = [...acks, ...this.#acks]; // still in the database: deleted with a later commit
      this.#commitFailed(err, batch);
      return;
    }
    this.#committed(batch);
    this.#boundWal();
  }

  #committed(batch: Pending[]): void {
    this.#commits++;
    this.#accepted += batch.length;
    if (batch.some((p) => p.rank === 0)) this.#held.stored();
    const now = this.opts.clock.monoNow();
    for (const p of batch) {
      if (p.heldSince === undefined) continue;
      this.#heldStored++;
      this.opts.logger.warn({ id: p.event.id, type: p.event.type, waited_ms: Math.round(now - p.heldSince) }, 'alarm that waited in memory is stored');
    }
    for (const p of batch) p.resolve();
    if (batch.length > 0) for (const l of this.#listeners) l();
  }

  /**
   * The batch is not on disk. Lower classes are refused with the reason; alarms are not let go: on
   * a full disk the reserve makes room for them (once), and whatever still fails waits in memory.
   */
  #commitFailed(err: unknown, batch: Pending[]): void {
    const diskFull = isDiskFullError(err);
    if (diskFull) this.#enterDiskFull(err);
    else this.opts.logger.error({ err, events: batch.length }, 'outbox commit failed');
    const alarms = batch.filter((p) => p.rank === 0);
    for (const p of batch) {
      if (p.rank === 0) continue;
      if (diskFull) this.#refuseForFullDisk(p, err);
      else p.reject(new OutboxError('commit_failed', `event not stored: ${describeError(err)}`, p.event, { cause: err }));
    }
    if (alarms.length === 0) return;
    if (diskFull && this.#reserve.release()) {
      this.opts.logger.error({ reserve_bytes: this.#reserve.bytes, alarms: alarms.length }, 'disk full: released the disk reserve for the alarms');
      try {
        this.#commit(alarms, []);
        this.#committed(alarms);
        return;
      } catch (again) {
        err = again;
      }
    }
    this.#hold(alarms, err);
  }

  #hold(alarms: Pending[], err: unknown): void {
    const fresh = alarms.filter((p) => p.heldSince === undefined);
    const now = this.opts.clock.monoNow();
    for (const p of fresh) p.heldSince = now;
    const overflow = this.#held.hold(alarms);
    for (const p of overflow) {
      this.#heldLost++;
      this.opts.logger.fatal({ id: p.event.id, type: p.event.type, held: this.#held.size }, 'ALARM NOT STORED: too many alarms already waiting in memory');
      p.reject(new OutboxError('held_full', `alarm not stored (${describeError(err)}) and too many already wait in memory`, p.event, { cause: err }));
    }
    for (const p of fresh) {
      if (overflow.includes(p)) continue;
      this.opts.logger.error({ err, id: p.event.id, type: p.event.type }, 'alarm could not be stored: kept in memory and retried until it is');
    }
    for (const l of this.#heldListeners) l();
  }

  /** The held alarms go first into the next commit; what fails again comes back with a longer delay. */
  #retryHeld(): void {
    if (this.#closed) return;
    this.#pending.unshift(...this.#held.takeAll());
    this.flush();
  }

  #refuseBelowAlarms(batch: Pending[]): Pending[] {
    const kept: Pending[] = [];
    for (const p of batch) {
      if (p.rank === 0) kept.push(p);
      else this.#refuseForFullDisk(p);
    }
    return kept;
  }

  #refuseForFullDisk(p: Pending, cause?: unknown): void {
    this.#disk.refused[p.rank]!++;
    this.#disk.refusedHere[p.rank]!++;
    p.reject(new OutboxError('disk_full', 'the disk is full: event not stored (only alarms are, until space is freed)', p.event, { cause }));
  }

  /** SQLite found the disk full: only alarms are written from now on, until the reserve can be written again. */
  #enterDiskFull(err: unknown, atStart = false): void {
    if (this.#disk.full) return;
    const disk = this.#disk;
    Object.assign(disk, { full: true, since: this.opts.clock.monoNow(), error: describeError(err), atStart, episodes: disk.episodes + 1 });
    disk.refusedHere.fill(0);
    this.opts.logger.error(
      { err, free_bytes: this.#reserve.freeBytes(), reserve: this.#reserve.state() },
      'disk full: only alarms are stored until space is freed, other events are refused',
    );
    this.#diskTimer = setInterval(() => void this.#checkDisk(), this.opts.diskCheckIntervalMs ?? DEFAULT_DISK_CHECK_INTERVAL_MS);
    this.#diskTimer.unref();
    // On a later turn: the report is an event stored through this outbox (not from inside a failing commit, nor before open() returns).
    setImmediate(() => {
      if (this.#closed || !disk.full) return;
      const report = {
        error: disk.error,
        at_start: disk.atStart,
        reserve: this.#reserve.state(),
        locking: this.#locking,
        free_bytes: this.#reserve.freeBytes(),
      };
      for (const l of this.#diskFullListeners) l(report);
    });
  }

  /** The reserve comes back once there is room for it and as much again: then every class is stored again. */
  async #checkDisk(): Promise<void> {
    if (!this.#disk.full || this.#checkingDisk) return;
    const free = this.#reserve.freeBytes();
    const present = this.#reserve.state() === 'present';
    if (free === null || free < (present ? 0 : this.#reserve.bytes) + Math.max(this.#reserve.bytes, MIN_FREE_AFTER_RESERVE)) return;
    this.#checkingDisk = true;
    try {
      if (!present && (await this.#reserve.create()) !== 'written') return;
      if (!this.#closed && this.#disk.full) this.#leaveDiskFull(free);
    } finally {
      this.#checkingDisk = false;
    }
  }

  #leaveDiskFull(free: number): void {
    clearInterval(this.#diskTimer);
    this.#diskTimer = undefined;
    const disk = this.#disk;
    const refused = Object.fromEntries(PRIORITIES.flatMap((p, rank) => (disk.refusedHere[rank] ? [[p, disk.refusedHere[rank]!]] : [])));
    const report = { full_ms: Math.round(this.opts.clock.monoNow() - disk.since), refused, free_bytes: free };
    disk.full = false;
    disk.error = '';
    if (this.#locking === 'exclusive') this.#reopenNormally();
    this.opts.logger.warn({ ...report, reserve: this.#reserve.state() }, 'disk space is back: the reserve is written again and every event is stored again');
    for (const l of this.#diskRecoveredListeners) l(report);
    if (this.#held.size > 0) this.#held.retryNow();
  }

  /** After a start on a full disk: the WAL index back in a -shm file, and the checkpoint worker back. */
  #reopenNormally(): void {
    this.flush();
    const cursor = [...this.#cursor];
    const seq = this.#seq;
    this.#db.close();
    try {
      this.#openDb('normal');
    } catch (err) {
      this.opts.logger.error({ err }, 'cannot open the outbox normally again: it keeps exclusive locking');
      this.#openDb('exclusive');
    }
    this.#cursor = cursor;
    this.#seq = Math.max(this.#seq, seq);
    this.#makePrivate();
  }

  /**
   * One transaction. The depth and byte counts (and the eviction counts) change only once it has
   * committed: a COMMIT that fails (SQLITE_FULL, SQLITE_IOERR...) rolls back everything in it.
   */
  #commit(batch: Pending[], acks: number[]): void {
    const { insert, delMany, setMeta } = this.#stmts;
    this.#stripOverBudget(batch);
    const evictions: Array<[number, EvictionReason, number]> = [];
    const tally = this.#tally();
    this.#db.transaction(() => {
      if (acks.length > 0) {
        for (const gone of delMany.all(JSON.stringify(acks)) as { priority: number; size: number }[]) tally.remove(gone.priority, gone.size, 1);
      }
      if (batch.length === 0) return;
      const incoming = PRIORITIES.map(() => 0);
      for (const p of batch) incoming[p.rank]! += p.size;
      this.#makeRoom(tally, incoming, evictions);
      this.#recordEvictions(evictions);
      let lastSeq = 0;
      for (const p of batch) {
        const e = p.event;
        const row = insert.run(e.id, p.rank, e.type, p.size, Date.parse(e.time), e.mono_ms, e.boot_id, e.clock === 'synced' ? 1 : 0, p.body);
        this.#lastPos = Math.max(this.#lastPos, Number(row.lastInsertRowid));
        tally.add(p.rank, p.size);
        lastSeq = Math.max(lastSeq, e.seq);
        if (p.settles) this.#settleEvictions(p.settles);
      }
      setMeta.run('seq', lastSeq);
    })();
    tally.apply();
    this.#acked += acks.length;
    for (const [rank, reason, count] of evictions) this.#noteEviction(rank, reason, count);
  }

  #tally(): Tally {
    const depth = [...this.#depth];
    const bytes = [...this.#bytes];
    return {
      depth,
      bytes,
      add(rank, size) {
        depth[rank]!++;
        bytes[rank]! += size;
      },
      remove(rank, size, count) {
        depth[rank]! -= count;
        bytes[rank]! -= size;
      },
      apply: () => {
        this.#depth = depth;
        this.#bytes = bytes;
      },
    };
  }

  /**
   * Alarms are never evicted, so a burst of hits with evidence images could fill the disk. Past the
   * alarm class's quota (and never into the reserve), alarm-priority events are stored without their
   * heavy fields (HEAVY_FIELDS), marked `dropped: "quota"`; the event itself is always stored, and
   * panic presses, which carry none, keep the room. The caller's event reflects what was stored.
   */
  #stripOverBudget(batch: Pending[]): void {
    const { quotaBytes, maxBytes, alarmReserveBytes } = this.opts;
    // On a full disk the room left is for panic presses: no pictures at all.
    const reason = this.#disk.full ? 'disk_full' : 'quota';
    const cap = this.#disk.full ? 0 : Math.min(quotaBytes.alarm, maxBytes - alarmReserveBytes);
    let alarmBytes = this.#bytes[0]!;
    let stripped = 0;
    for (const p of batch) {
      if (p.rank !== 0) continue;
      const heavy = isCatalogued(p.event.type) ? HEAVY_FIELDS[p.event.type] : undefined;
      if (heavy && alarmBytes + p.size > cap) {
        const payload = withoutHeavyFields(p.event.payload, heavy, reason);
        if (payload) {
          p.event.payload = payload;
          p.body = JSON.stringify(p.event);
          p.size = Buffer.byteLength(p.body) + ROW_OVERHEAD;
          stripped++;
        }
      }
      alarmBytes += p.size;
    }
    if (stripped > 0) {
      const why = reason === 'disk_full' ? 'disk full' : 'alarm class over its quota';
      this.opts.logger.warn({ events: stripped, alarm_bytes: alarmBytes, cap }, `${why}: evidence images left out`);
    }
  }

  /**
   * Frees space for the incoming bytes, inside the commit's transaction: first each class's own
   * quota, then the shared capacity, lowest priority oldest first. Alarms are never evicted; only
   * they may use the last alarm_reserve_bytes.
   */
  #makeRoom(tally: Tally, incoming: number[], evictions: Array<[number, EvictionReason, number]>): void {
    const { quotaBytes, maxBytes, alarmReserveBytes } = this.opts;
    const { bytes } = tally;
    for (let rank = 1; rank < PRIORITIES.length; rank++) {
      const excess = bytes[rank]! + incoming[rank]! - quotaBytes[PRIORITIES[rank]!];
      if (excess > 0) this.#evict(tally, rank, excess, 'quota', evictions);
    }
    const total = () => bytes.reduce((a, b) => a + b, 0) + incoming.reduce((a, b) => a + b, 0);
    const nonAlarm = () => total() - bytes[0]! - incoming[0]!;
    for (let rank = PRIORITIES.length - 1; rank >= 1; rank--) {
      const excess = Math.max(total() - maxBytes, nonAlarm() - (maxBytes - alarmReserveBytes));
      if (excess <= 0) break;
      this.#evict(tally, rank, excess, 'capacity', evictions);
    }
  }

  #evict(tally: Tally, rank: number, bytesNeeded: number, reason: EvictionReason, evictions: Array<[number, EvictionReason, number]>): void {
    let freed = 0;
    let count = 0;
    while (freed < bytesNeeded && tally.depth[rank]! > 0) {
      // Enough rows to cover what is missing at this class's average size: no over-eviction.
      const avg = tally.bytes[rank]! / tally.depth[rank]!;
      const want = Math.min(256, Math.max(1, Math.ceil((bytesNeeded - freed) / avg)));
      const rows = this.#stmts.evictOldest.all(rank, want) as { size: number }[];
      if (rows.length === 0) break;
      for (const r of rows) {
        freed += r.size;
        count++;
      }
      tally.remove(
        rank,
        rows.reduce((a, r) => a + r.size, 0),
        rows.length,
      );
    }
    if (count > 0) evictions.push([rank, reason, count]);
  }

  /** Inside the evicting transaction: the counts are durable exactly when the eviction is. */
  #recordEvictions(evictions: Array<[number, EvictionReason, number]>): void {
    for (const [rank, reason, count] of evictions) this.#stmts.addEvicted.run(rank, reason, count);
  }

  /** Inside the transaction that stores the report: what it reports is no longer pending. */
  #settleEvictions(reported: EvictionCounts): void {
    for (const [priority, byReason] of Object.entries(reported)) {
      if (!isPriority(priority)) continue;
      for (const [reason, count] of Object.entries(byReason ?? {})) {
        if (typeof count === 'number' && count > 0) this.#stmts.settleEvicted.run(count, priorityRank(priority), reason);
      }
    }
    this.#stmts.dropSettled.run();
  }

  /** Evictions recorded but not yet covered by a stored `system.outbox_evicted` report (also those from before a restart). */
  unreportedEvictions(): EvictionCounts {
    const out: EvictionCounts = {};
    if (this.#closed) return out;
    for (const r of this.#stmts.unreported.all() as { priority: number; reason: EvictionReason; count: number }[]) {
      const priority = PRIORITIES[r.priority];
      if (priority) (out[priority] ??= {})[r.reason] = r.count;
    }
    return out;
  }

  #noteEviction(rank: number, reason: EvictionReason, count: number): void {
    const priority = PRIORITIES[rank]!;
    // Events lost with a corrupt file are counted in the fresh one (the only place left to keep them).
    if (reason === 'corrupt') this.#recordCorruptLoss(rank, count);
    this.#evicted[priority][reason] += count;
    this.opts.logger.warn({ priority, reason, count }, 'outbox evicted events');
    for (const l of this.#evictionListeners) l(priority, reason, count);
  }

  #recordCorruptLoss(rank: number, count: number): void {
    try {
      this.#stmts.addEvicted.run(rank, 'corrupt', count);
    } catch (err) {
      this.opts.logger.error({ err, rank, count }, 'could not record the events lost with a corrupt outbox');
    }
  }

  #recoverFromCorruption(err: unknown, batch: Pending[]): void {
    this.#replaceCorruptDatabase(err);
    // The batch never reached the bad file: store it in the fresh one, once; a second failure is final (alarms wait in memory).
    try {
      this.#commit(batch, []);
    } catch (again) {
      this.#commitFailed(again, batch);
      return;
    }
    this.#committed(batch);
  }

  /**
   * For neighbours keeping state in this database (the nonces): corruption they run into is
   * handled as the outbox's own, so the next use finds a fresh database instead of the same error.
   */
  recoverFromCorruption(err: unknown): void {
    if (!this.#closed) this.#replaceCorruptDatabase(err);
  }

  #replaceCorruptDatabase(err: unknown): void {
    const lost = [...this.#depth];
    this.#closeCheckpointerNow();
    try {
      this.#db.close();
    } catch {
      /* the handle may already be unusable */
    }
    const report = this.#moveAside(err);
    const lastSeq = this.#seq;
    this.#openOnFullDisk(false);
    // Sequence numbers never repeat: the fresh file goes on from the last one handed out.
    this.#seq = Math.max(this.#seq, lastSeq);
    this.#stmts.setMeta.run('seq', this.#seq);
    // Neither do row positions: PUBACKs still due for the old file's events name their positions,
    // and must find nothing in the fresh file rather than one of its events.
    this.#db.prepare("DELETE FROM sqlite_sequence WHERE name = 'events'").run();
    this.#db.prepare("INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)").run(this.#lastPos);
    this.opts.logger.error({ lost, movedTo: report.movedTo }, 'outbox corrupted while running; undelivered events stay in the old file');
    for (const [rank, count] of lost.entries()) if (count > 0) this.#noteEviction(rank, 'corrupt', count);
    for (const listener of this.#reopenListeners) {
      try {
        listener(report);
      } catch (listenerErr) {
        this.opts.logger.error({ err: listenerErr }, 'outbox reopen listener failed');
      }
    }
  }

  /**
   * Up to `limit` durable events, highest priority first, oldest first within a priority, that
   * have not been handed out since the last rewind(). The uplink calls rewind() after a reconnect
   * so that anything published but not acknowledged is sent again. Ranks for which `skip` says so
   * are not read (their cursor stays put).
   */
  next(limit: number, maxRank = PRIORITIES.length - 1, skip?: (rank: number) => boolean): StoredEvent[] {
    if (this.#closed) return [];
    const out: StoredEvent[] = [];
    const now = this.opts.clock.monoNow();
    for (let rank = 0; rank <= maxRank && out.length < limit; rank++) {
      if (this.#depth[rank] === 0 || skip?.(rank)) continue;
      const rows = this.#stmts.next.all(rank, this.#cursor[rank], limit - out.length) as {
        rowid: number;
        id: string;
        type: string;
        wall: number;
        mono: number;
        boot_id: string;
        synced: number;
        body: string;
      }[];
      const ttl = this.opts.ttlMs[PRIORITIES[rank]!];
      for (const r of rows) {
        out.push({
          rowid: r.rowid,
          priority: PRIORITIES[rank]!,
          id: r.id,
          type: r.type,
          body: r.body,
          synced: r.synced === 1,
          bootId: r.boot_id,
          mono: r.mono,
          ttlLeftMs: ttl === 'never' ? undefined : r.boot_id === this.opts.bootId ? ttl - (now - r.mono) : ttl,
        });
        this.#cursor[rank] = r.rowid;
      }
    }
    return out;
  }

  rewind(): void {
    this.#cursor.fill(0);
  }

  /** The broker has the event (PUBACK): delete it with the next commit. */
  ack(rowid: number): void {
    this.#acks.push(rowid);
    this.#schedule(false);
  }

  /**
   * Drops expired events. Age comes from the monotonic clock when the event is from this boot, from
   * the wall clock only for older boots and only once it is trusted. Rows are stored in creation
   * order, so the expired ones are a prefix of each class: the cost is the number expired, not the
   * depth (a minute's sweep must not stall the event loop with a million events buffered). A
   * sweep that cannot commit (a full disk) changes nothing and is tried again next time.
   */
  expire(): number {
    if (this.#closed) return 0;
    const evictions: Array<[number, EvictionReason, number]> = [];
    const monoNow = this.opts.clock.monoNow();
    const wallNow = this.opts.clock.wallNow();
    const wallTrusted = this.opts.clockSynced();
    const { oldestRows, deleteUpTo } = this.#stmts;
    const tally = this.#tally();
    const sweep = this.#db.transaction(() => {
      PRIORITIES.forEach((p, rank) => {
        const ttl = this.opts.ttlMs[p];
        if (ttl === 'never') return;
        const expired = (r: { mono: number; wall: number; boot_id: string; synced: number }) =>
          r.boot_id === this.opts.bootId ? monoNow - r.mono > ttl : wallTrusted && r.synced === 1 && wallNow - r.wall > ttl;
        let count = 0;
        let bytes = 0;
        for (;;) {
          const rows = oldestRows.all(rank, 512) as { pos: number; size: number; mono: number; wall: number; boot_id: string; synced: number }[];
          let last = -1;
          for (const r of rows) {
            if (!expired(r)) break;
            last = r.pos;
            count++;
            bytes += r.size;
          }
          if (last < 0) break;
          deleteUpTo.run(rank, last);
          if (last !== rows.at(-1)!.pos) break;
        }
        if (count === 0) return;
        tally.remove(rank, bytes, count);
        evictions.push([rank, 'ttl', count]);
      });
      this.#recordEvictions(evictions);
    });
    try {
      sweep();
    } catch (err) {
      if (isCorruptionError(err)) this.recoverFromCorruption(err);
      else if (isDiskFullError(err)) this.#enterDiskFull(err);
      else this.opts.logger.error({ err }, 'outbox expiry sweep failed');
      return 0;
    }
    tally.apply();
    for (const [rank, reason, count] of evictions) this.#noteEviction(rank, reason, count);
    return evictions.reduce((a, [, , n]) => a + n, 0);
  }

  /** Events waiting to be sent, in the order they will go (priority, then age); `priority` narrows it to one class. */
  list(opts: { priority?: Priority; limit: number }): QueuedEvent[] {
    if (this.#closed) return [];
    this.flush();
    const [from, to] = opts.priority ? [priorityRank(opts.priority), priorityRank(opts.priority)] : [0, PRIORITIES.length - 1];
    return (
      this.#stmts.queued.all(from, to, opts.limit) as { priority: number; id: string; type: string; size: number; wall: number; synced: number; seq: number }[]
    ).map((r) => ({
      seq: r.seq,
      id: r.id,
      priority: PRIORITIES[r.priority]!,
      type: r.type,
      time: new Date(r.wall).toISOString(),
      clock: r.synced === 1 ? 'synced' : 'unsynced',
      bytes: r.size,
    }));
  }

  /**
   * Deletes every event of one class, for a technician who decided they are not worth sending (a
   * backlog of reads the central side does not want). They are counted as evicted (`purged`) in
   * the same transaction and reported in `system.outbox_evicted`, like any other eviction. Alarms
   * are never evicted, so never purged either.
   */
  purge(priority: Priority): number {
    if (priority === 'alarm') throw new Error('alarms are never purged: they wait for the broker (vigia doctor says why it does not take them)');
    if (this.#closed) throw new OutboxError('closed', 'outbox is closed');
    this.flush();
    const rank = priorityRank(priority);
    const tally = this.#tally();
    let count = 0;
    this.#db.transaction(() => {
      const rows = this.#stmts.purge.all(rank) as { size: number }[];
      count = rows.length;
      if (count === 0) return;
      tally.remove(
        rank,
        rows.reduce((a, r) => a + r.size, 0),
        count,
      );
      this.#recordEvictions([[rank, 'purged', count]]);
    })();
    if (count === 0) return 0;
    tally.apply();
    this.#noteEviction(rank, 'purged', count);
    return count;
  }

  /** Called after every commit that stored new events. */
  onCommitted(listener: () => void): void {
    this.#listeners.push(listener);
  }

  onEvicted(listener: (priority: Priority, reason: EvictionReason, count: number) => void): void {
    this.#evictionListeners.push(listener);
  }

  /** Called after a database found corrupt while running was moved aside and a fresh one opened. */
  onReopened(listener: (report: RecoveryReport) => void): void {
    this.#reopenListeners.push(listener);
  }

  /** Called (on a later turn) when SQLite finds the disk full, at start too: the `system.disk_full` report. */
  onDiskFull(listener: (report: EventPayload<'system.disk_full'>) => void): void {
    this.#diskFullListeners.push(listener);
  }

  /** Called when the space is back and the reserve written again: the `system.disk_recovered` report. */
  onDiskRecovered(listener: (report: EventPayload<'system.disk_recovered'>) => void): void {
    this.#diskRecoveredListeners.push(listener);
  }

  /** Called when alarms that could not be stored are kept in memory (see held()). */
  onHeld(listener: () => void): void {
    this.#heldListeners.push(listener);
  }

  /** The alarms kept in memory because they could not be stored yet, oldest first. */
  held(): HeldEvent[] {
    return this.#held.items().map(({ event, body }) => ({
      priority: event.priority,
      id: event.id,
      type: event.type,
      body,
      synced: event.clock === 'synced',
      bootId: event.boot_id,
      mono: event.mono_ms,
    }));
  }

  depth(): number {
    return this.#depth.reduce((a, b) => a + b, 0);
  }

  /** Events of one priority waiting to be sent. */
  depthOf(priority: Priority): number {
    return this.#depth[priorityRank(priority)] ?? 0;
  }

  stats(): OutboxStats {
    const monoNow = this.opts.clock.monoNow();
    const wallNow = this.opts.clock.wallNow();
    const byPriority = {} as Record<Priority, PriorityStats>;
    PRIORITIES.forEach((p, rank) => {
      let oldestAgeMs: number | null = null;
      if (!this.#closed && this.#depth[rank]! > 0) {
        const o = this.#stmts.oldest.get(rank) as { wall: number; mono: number; boot_id: string; synced: number } | undefined;
        if (o) oldestAgeMs = o.boot_id === this.opts.bootId ? monoNow - o.mono : Math.max(0, wallNow - o.wall);
      }
      byPriority[p] = { depth: this.#depth[rank]!, bytes: this.#bytes[rank]!, oldestAgeMs };
    });
    return {
      depth: this.depth(),
      bytes: this.#bytes.reduce((a, b) => a + b, 0),
      byPriority,
      evicted: structuredClone(this.#evicted),
      unreportedEvictions: this.unreportedEvictions(),
      commits: this.#commits,
      accepted: this.#accepted,
      acked: this.#acked,
      lastSeq: this.#seq,
      checkpointer: {
        running: this.#checkpointer?.ready ?? false,
        restarts: this.#checkpointerRestarts,
        mainCheckpoints: this.#mainCheckpoints,
        checkpoints: this.#checkpoints.count,
        framesCheckpointed: this.#checkpoints.frames,
        lastMs: this.#checkpoints.lastMs,
        maxMs: this.#checkpoints.maxMs,
      },
      disk: this.#diskStats(),
    };
  }

  #diskStats(): DiskStats {
    const disk = this.#disk;
    return {
      full: disk.full,
      since: disk.full ? disk.since : null,
      error: disk.full ? disk.error : null,
      locking: this.#locking,
      reserve: { bytes: this.#reserve.bytes, state: this.#reserve.state() },
      freeBytes: this.#reserve.freeBytes(),
      refused: Object.fromEntries(PRIORITIES.map((p, rank) => [p, disk.refused[rank]!])) as Record<Priority, number>,
      held: { events: this.#held.size, bytes: this.#held.bytes },
      heldStored: this.#heldStored,
      heldLost: this.#heldLost,
      episodes: disk.episodes,
    };
  }

  /**
   * The database handle, for small neighbours that keep state next to the events (nonces). A
   * recovery replaces it (and closes the old one): ask for it at each use, never keep it.
   */
  database(): Database.Database {
    return this.#db;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.flush();
    if (this.#held.size > 0) this.#retryHeld(); // a last attempt
    for (const p of this.#held.takeAll()) {
      this.#heldLost++;
      this.opts.logger.fatal({ id: p.event.id, type: p.event.type }, 'ALARM NOT STORED: the daemon stopped while it still waited for disk space');
      p.reject(new OutboxError('closed', 'alarm not stored: the outbox closed while the disk was full', p.event));
    }
    this.#held.stop();
    clearInterval(this.#diskTimer);
    this.#diskTimer = undefined;
    this.#closed = true;
    clearTimeout(this.#checkpointerRestart);
    this.#checkpointerRestart = undefined;
    await this.#stopCheckpointer();
    this.#db.close();
  }
}
