import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { VigiaEvent } from '../../core/event.js';
import type { CentralStore, StoredEvent } from '../store.js';
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
    return alarms.map((s) => {
      const id = alarmIdOf(s.event);
      return { ...s, alarm_id: id, answer: state.get(id) ?? null };
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
              res.write(`id: ${s.arrival}\nevent: vigia\ndata: ${JSON.stringify({ ...s, alarm_id: alarmIdOf(s.event) })}\n\n`);
              last = s.arrival;
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

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(header(req, 'content-type') ?? '').startsWith('application/json')) throw new HttpError(415, 'send JSON');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new HttpError(413, 'request too large');
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
