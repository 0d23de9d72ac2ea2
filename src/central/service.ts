import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { PRIORITIES, type Priority } from '../core/event.js';
import type { CommandAuthAlgorithm } from '../gateway/command-auth.js';
import { CommandSender } from './commands.js';
import { ConsoleServer } from './console/server.js';
import { HotlistPublisher } from './hotlist.js';
import { UsersFile } from './console/users.js';
import { Ingest, type IngestOptions } from './ingest.js';
import { PgCentralStore } from './pg-store.js';
import { SqliteCentralStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { CentralStore, Retention } from './store.js';

/**
 * The call center's ingest as a service: the store chosen by URL, the ingest, and the retention
 * purge, started and stopped together.
 */

const DAY = 24 * 3600 * 1000;

/**
 * Default retention by priority: alarms (panic presses, plate hits) two years, the rest of what
 * a device reports a year, passing cars (reads) and telemetry 30 days. Reads are personal data
 * (law 21.719): keep them no longer than the municipality needs, and only as the devices sent
 * them (a hashed read stays hashed).
 */
export const DEFAULT_RETENTION: Retention = {
  byPriority: { alarm: 730 * DAY, hit: 365 * DAY, read: 30 * DAY, telemetry: 30 * DAY },
  byType: {},
};

/** How often old events are purged. */
const PURGE_INTERVAL_MS = 3600 * 1000;

/** A store from its URL: `sqlite:PATH` (or a plain path), or `postgres://USER@HOST:PORT/DB`. */
export async function openStore(url: string, opts: SqliteStoreOptions = {}): Promise<CentralStore> {
  if (/^postgres(ql)?:\/\//.test(url)) return PgCentralStore.open(url);
  const path = url.startsWith('sqlite:') ? url.slice('sqlite:'.length) : url;
  if (path === '' || /^[a-z]+:\/\//.test(path)) throw new Error(`unknown store URL ${JSON.stringify(url)}: use sqlite:PATH or postgres://...`);
  return new SqliteCentralStore(path, opts);
}

/**
 * `alarm=730d,read=30d,plate.read=7d`: per priority or per event type, in days (`d`) or hours
 * (`h`), over the defaults.
 */
export function parseRetention(spec: string, base: Retention = DEFAULT_RETENTION): Retention {
  const out: Retention = { byPriority: { ...base.byPriority }, byType: { ...base.byType } };
  for (const part of spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([a-z][a-z0-9_.]*)=(\d+)([dh])$/.exec(part);
    if (!m) throw new Error(`retention ${JSON.stringify(part)}: expected NAME=Nd or NAME=Nh (e.g. read=30d)`);
    const ms = Number(m[2]) * (m[3] === 'd' ? DAY : 3600 * 1000);
    if (ms <= 0) throw new Error(`retention ${JSON.stringify(part)}: must be more than 0`);
    if ((PRIORITIES as readonly string[]).includes(m[1]!)) out.byPriority[m[1] as Priority] = ms;
    else out.byType[m[1]!] = ms;
  }
  return out;
}

export interface IngestServiceOptions extends Omit<IngestOptions, 'store' | 'password' | 'logger' | 'onStored'> {
  store: string;
  synchronous?: SqliteStoreOptions['synchronous'];
  passwordFile?: string;
  retention?: Retention;
}

export async function startIngestService(
  opts: IngestServiceOptions,
  logger: Logger,
  onStored?: IngestOptions['onStored'],
): Promise<{ ingest: Ingest; store: CentralStore; stop(): Promise<void> }> {
  const store = await openStore(opts.store, opts.synchronous ? { synchronous: opts.synchronous } : {});
  const password = brokerPassword(opts.passwordFile);
  const ingest = new Ingest({ ...opts, store, logger, ...(password !== undefined ? { password } : {}), ...(onStored ? { onStored } : {}) });
  const retention = opts.retention ?? DEFAULT_RETENTION;
  const purge = async () => {
    try {
      const n = await store.purge(retention, Date.now());
      if (n > 0) logger.info({ mod: 'ingest', deleted: n }, 'old events purged');
    } catch (err) {
      logger.error({ mod: 'ingest', err: (err as Error).message }, 'purge failed');
    }
  };
  try {
    await ingest.start();
  } catch (err) {
    await ingest.stop().catch(() => undefined);
    await store.close();
    throw err;
  }
  await purge();
  const timer = setInterval(() => void purge(), PURGE_INTERVAL_MS);
  timer.unref();
  return {
    ingest,
    store,
    async stop() {
      clearInterval(timer);
      await ingest.stop();
      await store.close();
    },
  };
}

const brokerPassword = (file: string | undefined) => (file ? readFileSync(file, 'utf8').trim() : undefined);

export interface ConsoleServiceOptions extends IngestServiceOptions {
  listen: { host: string; port: number };
  usersFile: string;
  commandAuth: CommandAuthAlgorithm;
  /** The file holding the command key (or the key itself, for the demo only). */
  commandKeyFile: string | { key: string };
  secureCookies?: boolean;
  /** The list publisher's Ed25519 private key (a PEM file, or the key itself) and where the center keeps its list. */
  hotlist?: { keyFile: string | { key: string }; dir: string; scope?: string[] };
}

/** The ingest, the command sender and the operator console in one process (`vigia central serve`). */
export async function startConsoleService(opts: ConsoleServiceOptions, logger: Logger) {
  const key = typeof opts.commandKeyFile === 'string' ? readFileSync(opts.commandKeyFile, 'utf8').trim() : opts.commandKeyFile.key;
  const users = new UsersFile(opts.usersFile);
  const password = brokerPassword(opts.passwordFile);
  const sender = new CommandSender({
    url: opts.url,
    ...(opts.servers?.length ? { servers: opts.servers } : {}),
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    auth: opts.commandAuth,
    key,
    clientId: `${opts.clientId ?? 'vigia-central-ingest'}-commands`,
    ...(opts.protocolVersion ? { protocolVersion: opts.protocolVersion } : {}),
    ...(opts.username !== undefined ? { username: opts.username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
  let hotlist: HotlistPublisher | undefined;
  if (opts.hotlist) {
    const h = opts.hotlist;
    hotlist = new HotlistPublisher({
      dir: h.dir,
      privateKey: typeof h.keyFile === 'string' ? readFileSync(h.keyFile, 'utf8') : h.keyFile.key,
      ...(h.scope ? { scope: h.scope } : {}),
    });
    hotlist.open();
  }
  await sender.start();
  let server: ConsoleServer | undefined;
  const ingest = await startIngestService(opts, logger, () => server?.feed.notify()).catch(async (err: unknown) => {
    await sender.stop();
    throw err;
  });
  server = new ConsoleServer({
    store: ingest.store,
    users,
    commands: sender,
    logger,
    ...(opts.secureCookies ? { secureCookies: true } : {}),
    ...(hotlist ? { hotlist } : {}),
  });
  let port: number;
  try {
    port = await server.listen(opts.listen.port, opts.listen.host);
  } catch (err) {
    await sender.stop();
    await ingest.stop();
    throw err;
  }
  return {
    ...ingest,
    port,
    hotlist,
    async stop() {
      await server?.close();
      await sender.stop();
      await ingest.stop();
    },
  };
}
