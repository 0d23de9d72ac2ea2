import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { VigiaEvent } from '../../core/event.js';
import { HotlistChangeError, type HotlistPublisher } from '../hotlist.js';
import type { CentralStore, DeviceRow, EventQuery, StoredEvent } from '../store.js';
import { APP_CSS, APP_JS, INDEX_HTML, PAGE_CSP } from './page.js';
import { LoginLimiter, type Session, Sessions, sameToken } from './sessions.js';
import { type Role, ROLES, roleRank, type UsersFile } from './users.js';

/**
 * The operator console's HTTP API, served next to the ingest. JSON in and out; the live feed is
 * Server-Sent Events whose ids are the store's arrival numbers, so a browser that reconnects
 * (EventSource sends `Last-Event-ID` by itself) gets exactly what it missed. Every change needs a
 * session cookie and the session's CSRF token in `X-CSRF-Token`; every action is audited.
 */

export interface CommandPort {
  send(site: string, device: string, cmd: string, args: Record<string, unknown>): Promise<void>;
}

export interface ConsoleOptions {
  store: CentralStore;
  users: UsersFile;
  commands: CommandPort;
  logger: Logger;
  /** Mark cookies Secure (behind TLS). */
  secureCookies?: boolean;
  /** The stolen-vehicle list the center signs and sends; without it the page's list tab is read-only and empty. */
  hotlist?: HotlistPublisher;
  now?: () => number;
}

/** Wakes the live streams when the ingest stored something. */
export class LiveFeed {
  readonly #listeners = new Set<() => void>();
  notify(): void {
    for (const l of this.#listeners) l();
  }
  subscribe(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const COOKIE = 'vigia_session';
const STATIC: Record<string, [string, string]> = {
  '/': ['text/html; charset=utf-8', INDEX_HTML],
  '/app.js': ['text/javascript; charset=utf-8', APP_JS],
  '/app.css': ['text/css; charset=utf-8', APP_CSS],
};
const MAX_BODY = 64 * 1024;
/** A hotlist upload: a list of 100,000 plates is about 6 MB of CSV. */
const MAX_HOTLIST_BODY = 16 * 1024 * 1024;
/** Event types a plate search looks in. */
const PLATE_TYPES = ['plate.read', 'plate.hit'];

export class ConsoleServer {
  readonly feed = new LiveFeed();
  readonly #sessions: Sessions;
  readonly #limiter: LoginLimiter;
  readonly #now: () => number;
  #server: Server | null = null;
  readonly #streams = new Set<ServerResponse>();

  constructor(private readonly opts: ConsoleOptions) {
    this.#now = opts.now ?? Date.now;
    this.#sessions = new Sessions(this.#now);
    this.#limiter = new LoginLimiter(this.#now);
  }

  async listen(port: number, host = '127.0.0.1'): Promise<number> {
    const server = createServer((req, res) => void this.#handle(req, res));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    for (const s of this.#streams) s.end();
    const server = this.#server;
    this.#server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cache-Control', 'no-store');
    try {
      await this.#route(req, res);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.opts.logger.error({ mod: 'console', err: (err as Error).message, url: req.url }, 'request failed');
      if (!res.headersSent) json(res, status, { error: err instanceof HttpError ? err.message : 'internal error' });
      else res.end();
    }
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/api/login' && method === 'POST') return this.#login(req, res);
    if (method === 'GET' && STATIC[path]) {
      const [type, body] = STATIC[path];
      res.writeHead(200, { 'Content-Type': type, 'Content-Security-Policy': PAGE_CSP });
      res.end(body);
      return;
    }
    if (!path.startsWith('/api/')) throw new HttpError(404, 'not found');

    const session = this.#sessions.get(cookie(req, COOKIE));
    if (!session) throw new HttpError(401, 'log in first');
    if (method !== 'GET') this.#checkCsrf(req, session);

    if (path === '/api/me' && method === 'GET') return json(res, 200, { user: session.user, role: session.role, csrf: session.csrf });
    if (path === '/api/logout' && method === 'POST') {
      this.#sessions.end(session.id);
      res.setHeader('Set-Cookie', this.#cookie('', 0));
      await this.#audit(req, session, 'logout', session.user);
      return json(res, 200, { ok: true });
    }
    if (path === '/api/alarms' && method === 'GET') return json(res, 200, { alarms: await this.#alarms(Number(url.searchParams.get('limit') ?? 200)) });
    if (path === '/api/devices' && method === 'GET') return json(res, 200, { devices: await this.opts.store.devices() });
    if (path === '/api/stream' && method === 'GET') return this.#stream(req, res, url);
    if (path.startsWith('/api/commands/') && method === 'POST') return this.#command(req, res, session, path.slice('/api/commands/'.length));
    if (path === '/api/audit' && method === 'GET') {
      need(session, 'supervisor');
      return json(res, 200, { audit: await this.opts.store.audit(Number(url.searchParams.get('limit') ?? 100)) });
    }
    if (path === '/api/search' && method === 'GET') return this.#search(req, res, session, url);
    if (path === '/api/hotlist' && method === 'GET') return json(res, 200, await this.#hotlistState());
    if (path === '/api/hotlist/changes' && method === 'POST') return this.#hotlistChange(req, res, session);
    if (path === '/api/hotlist/send' && method === 'POST') return this.#hotlistSend(req, res, session);
    if (path === '/api/users' && method === 'GET') {
      need(session, 'admin');
      return json(res, 200, { users: this.opts.users.list() });
    }
    if (path === '/api/users' && method === 'POST') {
      need(session, 'admin');
      const body = await readJson(req);
      const name = str(body.name, 'name');
      const role = str(body.role, 'role') as Role;
      if (!ROLES.includes(role)) throw new HttpError(400, `role must be one of ${ROLES.join(', ')}`);
      try {
        await this.opts.users.add(name, role, str(body.password, 'password'));
      } catch (err) {
        throw new HttpError(400, (err as Error).message);
      }
      await this.#audit(req, session, 'user.add', name, { role });
      return json(res, 201, { user: name, role });
    }
    const remove = /^\/api\/users\/([^/]+)$/.exec(path);
    if (remove && method === 'DELETE') {
      need(session, 'admin');
      const name = decodeURIComponent(remove[1]!);
      if (name === session.user) throw new HttpError(400, 'you cannot remove yourself');
      if (!this.opts.users.remove(name)) throw new HttpError(404, `no user ${name}`);
      this.#sessions.endUser(name);
      await this.#audit(req, session, 'user.remove', name);
      return json(res, 200, { removed: name });
    }
    throw new HttpError(404, 'not found');
  }

  async #login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readJson(req);
    const user = str(body.user, 'user');
    const password = str(body.password, 'password');
    const remote = remoteOf(req);
    if (!this.#limiter.allow(remote, user)) {
      // Audited once per name and address while it lasts: a flood of refused attempts must not fill the trail.
      if (this.#limiter.firstRefusal(remote, user))
        await this.opts.store.addAudit({ at: this.#now(), user, role: '-', action: 'login_limited', target: user, remote });
      throw new HttpError(429, 'too many failed attempts: wait a few minutes');
    }
    const found = await this.opts.users.check(user, password);
    if (!found) {
      this.#limiter.fail(remote, user);
      await this.opts.store.addAudit({ at: this.#now(), user, role: '-', action: 'login_failed', target: user, remote });
      throw new HttpError(401, 'wrong user or password');
    }
    const session = this.#sessions.create(found.name, found.role);
    res.setHeader('Set-Cookie', this.#cookie(session.id, 24 * 3600));
    await this.#audit(req, session, 'login', found.name);
    json(res, 200, { user: found.name, role: found.role, csrf: session.csrf });
  }

  #checkCsrf(req: IncomingMessage, session: Session): void {
    const origin = req.headers.origin;
    if (origin && req.headers.host && new URL(origin).host !== req.headers.host) throw new HttpError(403, 'cross-site request refused');
    if (!sameToken(session.csrf, header(req, 'x-csrf-token'))) throw new HttpError(403, 'missing or wrong CSRF token');
  }

  #cookie(value: string, maxAgeS: number): string {
    return `${COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${this.opts.secureCookies ? '; Secure' : ''}`;
  }

  async #audit(req: IncomingMessage, s: Session, action: string, target: string, detail?: Record<string, unknown>): Promise<void> {
    await this.opts.store.addAudit({ at: this.#now(), user: s.user, role: s.role, action, target, remote: remoteOf(req), ...(detail ? { detail } : {}) });
  }

  /** Alarm-priority events, newest first, each with its state from the pole's answers. */
  async #alarms(limit: number) {
    const store = this.opts.store;
    const alarms = await store.events({ priority: 'alarm', limit });
    const answers = [...(await store.events({ type: 'alarm.acknowledged', limit: 1000 })), ...(await store.events({ type: 'alarm.cleared', limit: 1000 }))];
    const state = new Map<string, { state: string; operator: unknown; at: string }>();
    for (const a of answers.sort((x, y) => Date.parse(x.event.time) - Date.parse(y.event.time))) {
      const id = (a.event.payload as { alarm_id?: string }).alarm_id;
      if (id)
        state.set(id, {
          state: a.event.type === 'alarm.cleared' ? 'cleared' : 'acknowledged',
          operator: (a.event.payload as { operator?: unknown }).operator,
          at: a.event.time,
        });
    }
    const snapshots = new Map<string, unknown>();
    for (const s of await store.events({ type: 'alarm.snapshot', limit: Math.max(limit, 100) })) {
      const p = s.event.payload as { alarm_id?: string; image?: unknown };
      if (p.alarm_id && !snapshots.has(p.alarm_id)) snapshots.set(p.alarm_id, p.image);
    }
    return alarms.map((s) => {
      const id = alarmIdOf(s.event);
      return { ...s, alarm_id: id, answer: state.get(id) ?? null, ...(snapshots.has(id) ? { snapshot: snapshots.get(id) } : {}) };
    });
  }

  async #command(req: IncomingMessage, res: ServerResponse, session: Session, cmd: string): Promise<void> {
    if (cmd !== 'alarm.ack' && cmd !== 'alarm.clear') throw new HttpError(404, `no command ${cmd}`);
    need(session, 'operator');
    const body = await readJson(req);
    const site = str(body.site, 'site');
    const device = str(body.device, 'device');
    const alarmId = str(body.alarm_id, 'alarm_id');
    const known = (await this.opts.store.events({ site, device, priority: 'alarm', limit: 1000 })).some((s) => alarmIdOf(s.event) === alarmId);
    if (!known) throw new HttpError(404, `no alarm ${alarmId} from ${site}/${device}`);
    await this.opts.commands.send(site, device, cmd, { alarm_id: alarmId, operator: session.user });
    await this.#audit(req, session, cmd, `${site}/${device}`, { alarm_id: alarmId });
    json(res, 202, { sent: cmd, site, device, alarm_id: alarmId });
  }

  /**
   * Plate reads and hits by plate (as read), plate hash (hashed reads: the browser hashes the
   * typed plate with the key the operator holds, so the key never reaches the server), device and
   * time. Every search is audited: plates are personal data.
   */
  async #search(req: IncomingMessage, res: ServerResponse, session: Session, url: URL): Promise<void> {
    const p = url.searchParams;
    const q: EventQuery = { types: PLATE_TYPES, limit: Math.min(1000, Number(p.get('limit') ?? 200) || 200) };
    const plate = p.get('plate')?.trim();
    const hash = p.get('plate_hash')?.trim().toLowerCase();
    if (plate) {
      if (!/^[\p{L}\p{N}]{1,10}$/u.test(plate)) throw new HttpError(400, 'plate: letters and digits, at most 10');
      q.plate = plate;
    }
    if (hash) {
      if (!/^[0-9a-f]{64}$/.test(hash)) throw new HttpError(400, 'plate_hash: 64 hex digits');
      q.plateHash = hash;
    }
    const site = p.get('site')?.trim();
    const device = p.get('device')?.trim();
    if (site) q.site = site;
    if (device) q.device = device;
    for (const k of ['from', 'to'] as const) {
      const v = p.get(k);
      if (!v) continue;
      const ms = Date.parse(v);
      if (Number.isNaN(ms)) throw new HttpError(400, `${k}: a date and time (ISO 8601)`);
      q[k] = ms;
    }
    if (!plate && !hash && !device && q.from === undefined) throw new HttpError(400, 'give a plate, a plate hash, a device or a time');
    const found = await this.opts.store.events(q);
    await this.#audit(req, session, 'search', plate ? plate.toUpperCase() : hash ? 'hash' : `${site ?? '*'}/${device ?? '*'}`, {
      ...(hash ? { plate_hash: hash } : {}),
      ...(q.from !== undefined ? { from: new Date(q.from).toISOString() } : {}),
      ...(q.to !== undefined ? { to: new Date(q.to).toISOString() } : {}),
      results: found.length,
    });
    json(res, 200, { results: found });
  }

  /** The center's list, its latest changes, and where each device stands with it. */
  async #hotlistState() {
    const hl = this.opts.hotlist;
    const devices = await this.opts.store.devices();
    if (!hl)
      return { enabled: false, devices: devices.map((d) => ({ site: d.site, device: d.device, version: d.hotlist?.version ?? null, standing: 'unknown' })) };
    const current = hl.current();
    return {
      enabled: true,
      current,
      history: hl.history(20),
      devices: devices.filter((d) => d.hotlist !== null || d.profile !== 'pole').map((d) => ({ ...this.#standing(d), size: d.hotlist?.size ?? null })),
    };
  }

  #standing(d: DeviceRow): { site: string; device: string; version: string | null; standing: 'current' | 'behind' | 'foreign' | 'none'; behind: number } {
    const version = d.hotlist?.version ?? null;
    if (version === null) return { site: d.site, device: d.device, version, standing: 'none', behind: 0 };
    const chain = this.opts.hotlist!.chainFrom(version);
    return {
      site: d.site,
      device: d.device,
      version,
      standing: chain === null ? 'foreign' : chain.length === 0 ? 'current' : 'behind',
      behind: chain?.length ?? 0,
    };
  }

  async #hotlistChange(req: IncomingMessage, res: ServerResponse, session: Session): Promise<void> {
    need(session, 'supervisor');
    const hl = this.#hotlistOrFail();
    const body = await readJson(req, MAX_HOTLIST_BODY);
    const text = body.text === undefined ? undefined : typeof body.text === 'string' ? body.text : null;
    if (text === null) throw new HttpError(400, 'text must be the CSV or JSON text of entries');
    const remove = body.remove === undefined ? [] : body.remove;
    if (!Array.isArray(remove) || !remove.every((p) => typeof p === 'string')) throw new HttpError(400, 'remove must be a list of plates');
    const format = body.format === 'json' ? 'json' : 'csv';
    let issued: ReturnType<HotlistPublisher['change']>;
    try {
      issued = hl.change({ ...(text !== undefined ? { text } : {}), format, replace: body.replace === true, remove: remove as string[] }, session.user);
    } catch (err) {
      if (err instanceof HotlistChangeError) {
        json(res, 400, { error: err.message, errors: err.errors.slice(0, 50) });
        return;
      }
      throw err;
    }
    const current = hl.current();
    const added = issued.reduce((n, d) => n + d.added, 0);
    const removed = issued.reduce((n, d) => n + d.removed, 0);
    await this.#audit(req, session, 'hotlist.change', `hotlist ${current.version.slice(0, 12)}`, {
      replace: body.replace === true,
      added,
      removed,
      serials: issued.map((d) => d.serial),
      version: current.version,
    });
    json(res, 201, { current, added, removed, deltas: issued.length });
  }

  /** Sends each chosen device the deltas from its version to the center's (signed, in order). */
  async #hotlistSend(req: IncomingMessage, res: ServerResponse, session: Session): Promise<void> {
    need(session, 'supervisor');
    const hl = this.#hotlistOrFail();
    const body = await readJson(req);
    if (!Array.isArray(body.devices) || body.devices.length === 0 || body.devices.length > 1000) throw new HttpError(400, 'devices: a list of {site, device}');
    const known = new Map((await this.opts.store.devices()).map((d) => [`${d.site}/${d.device}`, d]));
    const results: Array<{ site: string; device: string; sent: number; result: string }> = [];
    for (const item of body.devices as unknown[]) {
      const { site, device } = (item ?? {}) as { site?: unknown; device?: unknown };
      const row = known.get(`${String(site)}/${String(device)}`);
      if (!row) throw new HttpError(404, `no device ${String(site)}/${String(device)}`);
      const standing = this.#standing(row);
      if (standing.standing === 'foreign' || standing.standing === 'none') {
        results.push({ site: row.site, device: row.device, sent: 0, result: standing.standing });
        continue;
      }
      const chain = hl.chainFrom(standing.version!)!;
      for (const d of chain) await this.opts.commands.send(row.site, row.device, 'hotlist.delta', d.args);
      await this.#audit(req, session, 'hotlist.send', `${row.site}/${row.device}`, {
        deltas: chain.length,
        serials: chain.map((d) => d.serial),
        version: hl.current().version,
      });
      results.push({ site: row.site, device: row.device, sent: chain.length, result: chain.length === 0 ? 'current' : 'sent' });
    }
    json(res, 202, { results });
  }

  #hotlistOrFail(): HotlistPublisher {
    if (!this.opts.hotlist) throw new HttpError(409, 'no hotlist key is configured on the server (vigia central serve --hotlist-key)');
    return this.opts.hotlist;
  }

  async #stream(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    let last = Number(header(req, 'last-event-id') ?? url.searchParams.get('after') ?? Number.NaN);
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    this.#streams.add(res);
    if (!Number.isFinite(last)) {
      // A new page: start from now (the page loads the lists itself), with the last arrival as the id.
      const latest = await this.opts.store.events({ limit: 1 });
      last = latest[0]?.arrival ?? 0;
      res.write(`retry: 2000\nid: ${last}\nevent: hello\ndata: {}\n\n`);
    }
    let sending = false;
    let again = false;
    const send = async () => {
      if (sending) {
        again = true;
        return;
      }
      sending = true;
      try {
        do {
          again = false;
          for (;;) {
            const batch: StoredEvent[] = await this.opts.store.eventsSince(last, 500);
            for (const s of batch) {
              last = s.arrival;
              if (shownLive(s.event)) res.write(`id: ${s.arrival}\nevent: vigia\ndata: ${JSON.stringify({ ...s, alarm_id: alarmIdOf(s.event) })}\n\n`);
            }
            if (batch.length < 500) break;
          }
        } while (again);
      } finally {
        sending = false;
      }
    };
    const unsubscribe = this.feed.subscribe(() => void send().catch(() => res.end()));
    const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    res.on('close', () => {
      clearInterval(heartbeat);
      unsubscribe();
      this.#streams.delete(res);
    });
    await send();
  }
}

/**
 * What the page follows live: alarms, what happens to them, and the device changes it shows.
 * Passing cars and routine telemetry (thousands a second in a city) stay out of the stream;
 * the search finds them.
 */
function shownLive(e: VigiaEvent): boolean {
  if (e.priority === 'alarm' || e.priority === 'hit') return true;
  return e.type === 'health' || e.type === 'hotlist.updated';
}

/** The alarm an event belongs to: its own id for the press that raised it, else the payload's `alarm_id`. */
export function alarmIdOf(e: VigiaEvent): string {
  const id = (e.payload as { alarm_id?: unknown }).alarm_id;
  return typeof id === 'string' && id ? id : e.id;
}

function need(s: Session, role: Role): void {
  if (roleRank(s.role) < roleRank(role)) throw new HttpError(403, `needs the ${role} role`);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function cookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

function remoteOf(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

function str(v: unknown, field: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > 1000) throw new HttpError(400, `${field} is required`);
  return v;
}

async function readJson(req: IncomingMessage, maxBytes = MAX_BODY): Promise<Record<string, unknown>> {
  if (!(header(req, 'content-type') ?? '').startsWith('application/json')) throw new HttpError(415, 'send JSON');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new HttpError(413, 'request too large');
    chunks.push(chunk as Buffer);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'the body is not a JSON object');
  }
}
