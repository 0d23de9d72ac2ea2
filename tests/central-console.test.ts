import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CommandSender } from '../src/central/commands.js';
import { ConsoleServer } from '../src/central/console/server.js';
import { UsersFile } from '../src/central/console/users.js';
import { Ingest } from '../src/central/ingest.js';
import { openStore } from '../src/central/service.js';
import type { CentralStore } from '../src/central/store.js';
import { newEventId, type VigiaEvent } from '../src/core/event.js';
import { createLogger } from '../src/core/logger.js';
import { CommandVerifier, MemoryNonceStore } from '../src/gateway/command-auth.js';
import { CLI, runCli } from './helpers/daemon.js';
import { type Broker, startMosquitto } from './helpers/mosquitto.js';
import { freePort } from './helpers/ports.js';

// The console's API against a real broker and store: sessions, CSRF, roles, the live stream and
// its resumption, an acknowledgement signed on the server and verified as a device verifies it,
// and the audit trail. (The browser side is tested in Chromium once the page exists.)

const KEY = 'central-command-key-0123456789abcdef';
const logLines: string[] = [];
const logger = createLogger('info', { write: (l: string) => void logLines.push(l) });

let broker: Broker;
let store: CentralStore;
let ingest: Ingest;
let sender: CommandSender;
let server: ConsoleServer;
let base: string;
let usersFile: string;
const commands: Array<{ topic: string; payload: Buffer }> = [];
let device: mqtt.MqttClient;

function alarm(over: Partial<VigiaEvent> = {}): VigiaEvent {
  return {
    id: newEventId(),
    device: 'pole-1',
    site: 'la-serena',
    type: 'alarm.panic',
    priority: 'alarm',
    time: new Date().toISOString(),
    clock: 'synced',
    boot_id: 'b1',
    mono_ms: 1,
    seq: Math.floor(Math.random() * 1e9),
    payload: { input: 'panic', alarm_id: null, press: 1 },
    geo: { lat: -29.9045, lon: -71.2489, fix: '3d', age_ms: 100 },
    ...over,
  };
}
const publish = (e: VigiaEvent) => device.publishAsync(`vigia/${e.site}/${e.device}/events/${e.priority}/${e.type}`, JSON.stringify(e), { qos: 1 });

/** A browser-like client: keeps the cookie, sends the CSRF token when told to. */
class Client {
  cookie = '';
  csrf = '';
  async req(method: string, path: string, body?: unknown, opts: { csrf?: boolean; origin?: string } = {}) {
    const headers: Record<string, string> = {};
    if (this.cookie) headers.cookie = this.cookie;
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (opts.csrf !== false && this.csrf) headers['x-csrf-token'] = this.csrf;
    if (opts.origin) headers.origin = opts.origin;
    const res = await fetch(`${base}${path}`, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    const set = res.headers.get('set-cookie');
    if (set) this.cookie = set.split(';')[0]!;
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as Record<string, any>) : {}, text, setCookie: set };
  }
  async login(user: string, password: string) {
    const r = await this.req('POST', '/api/login', { user, password });
    if (r.status === 200) this.csrf = r.body.csrf;
    return r;
  }
}

/** Reads a Server-Sent Events stream until `until` says it has enough. */
async function readStream(client: Client, headers: Record<string, string>, until: (events: Array<{ id: string; event: string; data: any }>) => boolean) {
  const ac = new AbortController();
  const res = await fetch(`${base}/api/stream`, { headers: { cookie: client.cookie, ...headers }, signal: ac.signal });
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const reader = res.body!.getReader();
  const events: Array<{ id: string; event: string; data: any }> = [];
  let buf = '';
  const deadline = Date.now() + 10_000;
  while (!until(events)) {
    if (Date.now() > deadline) throw new Error(`stream: timed out with ${events.length} events`);
    const { value, done } = await reader.read();
    if (done) break;
    buf += Buffer.from(value).toString('utf8');
    let at: number;
    while ((at = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, at);
      buf = buf.slice(at + 2);
      const f: Record<string, string> = {};
      for (const line of block.split('\n')) {
        const i = line.indexOf(': ');
        if (i > 0) f[line.slice(0, i)] = line.slice(i + 2);
      }
      if (f.event) events.push({ id: f.id ?? '', event: f.event, data: f.data ? JSON.parse(f.data) : null });
    }
  }
  ac.abort();
  return events;
}

async function until(pred: () => Promise<boolean> | boolean, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeAll(async () => {
  broker = await startMosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'vigia-console-'));
  store = await openStore(`sqlite:${join(dir, 'central.db')}`);
  usersFile = join(dir, 'users.json');
  const users = new UsersFile(usersFile, 4); // a low bcrypt cost keeps the test fast
  await users.add('ada', 'admin', 'ada-password-1');
  await users.add('oscar', 'operator', 'oscar-password-1');
  await users.add('sara', 'supervisor', 'sara-password-1');
  sender = new CommandSender({ url: broker.url, auth: 'hmac-sha256', key: KEY });
  await sender.start();
  server = new ConsoleServer({ store, users, commands: sender, logger });
  base = `http://127.0.0.1:${await server.listen(0)}`;
  ingest = new Ingest({ url: broker.url, store, logger, clientId: 'console-test', onStored: () => server.feed.notify() });
  await ingest.start();
  device = await mqtt.connectAsync(broker.url, { clientId: 'pole-1', protocolVersion: 5 });
  await device.subscribeAsync('vigia/la-serena/pole-1/cmd/#', { qos: 1 });
  device.on('message', (topic, payload) => commands.push({ topic, payload }));
}, 30_000);

afterAll(async () => {
  await device?.endAsync();
  await ingest?.stop();
  await server?.close();
  await sender?.stop();
  await store?.close();
  await broker?.stop();
});

describe('operator console API', () => {
  it('refuses everything but the login without a session', async () => {
    const anon = new Client();
    for (const [method, path] of [
      ['GET', '/api/alarms'],
      ['GET', '/api/devices'],
      ['GET', '/api/stream'],
      ['GET', '/api/audit'],
      ['POST', '/api/commands/alarm.ack'],
      ['POST', '/api/users'],
    ] as const) {
      const r = await anon.req(method, path, method === 'POST' ? {} : undefined);
      expect(r.status, `${method} ${path}`).toBe(401);
    }
    expect((await anon.req('GET', '/nowhere')).status).toBe(404);
  });

  it('logs in with the right password only, limits failed attempts, and sets a safe cookie', async () => {
    const c = new Client();
    expect((await c.login('oscar', 'wrong-password')).status).toBe(401);
    expect((await c.login('nobody', 'whatever-password')).status).toBe(401);
    // A guesser on one account: five failures, then refused even with the right password.
    const g = new Client();
    for (let i = 0; i < 5; i++) expect((await g.login('sara', `guess-${i}-xxxxxx`)).status).toBe(401);
    expect((await g.login('sara', 'sara-password-1')).status).toBe(429);
    for (let i = 0; i < 20; i++) expect((await g.login('sara', `flood-${i}-xxxxxx`)).status).toBe(429);
    // Others behind the same address are not held back by it.
    const ok = await c.login('oscar', 'oscar-password-1');
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ user: 'oscar', role: 'operator' });
    expect(ok.setCookie).toMatch(/^vigia_session=[A-Za-z0-9_-]{40,}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=86400$/);
    expect((await c.req('GET', '/api/me')).body).toMatchObject({ user: 'oscar', role: 'operator', csrf: ok.body.csrf });
    expect(statSync(usersFile).mode & 0o777).toBe(0o600);
  });

  it('streams a press live, takes an acknowledgement (CSRF and origin checked), signs it as the pole verifies it, and shows the pole’s answer', async () => {
    const c = new Client();
    await c.login('oscar', 'oscar-password-1');
    const press = alarm();
    const live = readStream(c, {}, (evs) => evs.some((e) => e.event === 'vigia' && e.data.event.id === press.id));
    await sleep(200); // the stream is open
    await publish(press);
    const events = await live;
    const got = events.find((e) => e.event === 'vigia')!;
    expect(got.data).toMatchObject({ alarm_id: press.id, event: { type: 'alarm.panic', device: 'pole-1', geo: { lat: -29.9045 } } });
    expect(Number(got.id)).toBeGreaterThan(0);

    const listed = await c.req('GET', '/api/alarms');
    expect(listed.body.alarms[0]).toMatchObject({ alarm_id: press.id, answer: null });

    const ack = { site: 'la-serena', device: 'pole-1', alarm_id: press.id };
    expect((await c.req('POST', '/api/commands/alarm.ack', ack, { csrf: false })).status).toBe(403);
    expect((await c.req('POST', '/api/commands/alarm.ack', ack, { origin: 'https://evil.example' })).status).toBe(403);
    expect((await c.req('POST', '/api/commands/alarm.ack', { ...ack, alarm_id: newEventId() })).status).toBe(404);
    expect(commands).toHaveLength(0);
    const sent = await c.req('POST', '/api/commands/alarm.ack', ack);
    expect(sent.status).toBe(202);
    await until(() => commands.length === 1, 'the command at the pole');
    const verifier = new CommandVerifier(
      { auth: 'hmac-sha256', key: KEY, replayWindowMs: 60_000, site: 'la-serena', device: 'pole-1' },
      new MemoryNonceStore(),
      { wallNow: () => Date.now(), synced: () => true },
    );
    expect(commands[0]!.topic).toBe('vigia/la-serena/pole-1/cmd/alarm.ack');
    expect(verifier.verify('alarm.ack', commands[0]!.payload)).toMatchObject({ ok: true, cmd: 'alarm.ack', args: { alarm_id: press.id, operator: 'oscar' } });

    // The pole answers; the console shows it, and a stream resumed after the press gets the answer.
    const answer = alarm({ type: 'alarm.acknowledged', priority: 'hit', payload: { alarm_id: press.id, operator: 'oscar' } });
    await publish(answer);
    await until(async () => (await c.req('GET', '/api/alarms')).body.alarms[0]?.answer?.state === 'acknowledged', 'the answer listed');
    const resumed = await readStream(c, { 'last-event-id': got.id }, (evs) => evs.some((e) => e.data?.event?.id === answer.id));
    expect(resumed.filter((e) => e.event === 'vigia').map((e) => e.data.event.id)).toEqual([answer.id]);
  });

  it('gives each role what it may do, and audits every action with who, when and from where', async () => {
    const op = new Client();
    await op.login('oscar', 'oscar-password-1');
    expect((await op.req('GET', '/api/audit')).status).toBe(403);
    expect((await op.req('GET', '/api/users')).status).toBe(403);
    expect((await op.req('POST', '/api/users', { name: 'mallory', role: 'admin', password: 'mallory-password' })).status).toBe(403);

    const admin = new Client();
    expect((await admin.login('ada', 'ada-password-1')).status).toBe(200);
    expect((await admin.req('POST', '/api/users', { name: 'sofia', role: 'operator', password: 'short' })).status).toBe(400);
    expect((await admin.req('POST', '/api/users', { name: 'sofia', role: 'operator', password: 'sofia-password-1' })).status).toBe(201);
    expect((await new Client().login('sofia', 'sofia-password-1')).status).toBe(200);
    expect((await admin.req('DELETE', '/api/users/sofia')).status).toBe(200);

    const trail = (await admin.req('GET', '/api/audit?limit=100')).body.audit as Array<Record<string, any>>;
    const actions = trail.map((a) => `${a.user}:${a.action}:${a.target}`);
    expect(actions).toEqual(
      expect.arrayContaining([
        'oscar:login:oscar',
        'oscar:alarm.ack:la-serena/pole-1',
        'ada:user.add:sofia',
        'ada:user.remove:sofia',
        'sofia:login:sofia',
        'oscar:login_failed:oscar',
        'sara:login_limited:sara',
      ]),
    );
    // The flood of refused attempts left one row, not twenty-one.
    expect(trail.filter((a) => a.action === 'login_limited')).toHaveLength(1);
    const ackRow = trail.find((a) => a.action === 'alarm.ack')!;
    expect(ackRow).toMatchObject({ role: 'operator', remote: expect.stringMatching(/127\.0\.0\.1/) });
    expect(ackRow.at).toBeGreaterThan(Date.now() - 60_000);
  });

  it('searches plate reads and hits by plate, hash, device and time, refuses a search without criteria, and audits each', async () => {
    const read = alarm({
      type: 'plate.read',
      priority: 'read',
      device: 'gantry-9',
      payload: { camera: 'lane-1', plate: 'KXTR45', confidence: 0.93, hit: false },
    });
    const hashed = alarm({
      type: 'plate.read',
      priority: 'read',
      device: 'gantry-9',
      payload: { camera: 'lane-1', plate_hash: 'e'.repeat(64), hash: 'hmac-sha256', confidence: 0.9 },
    });
    await publish(read);
    await publish(hashed);
    await until(async () => (await store.events({ device: 'gantry-9' })).length === 2, 'the reads stored');
    const c = new Client();
    await c.login('oscar', 'oscar-password-1');
    expect((await c.req('GET', '/api/search')).status).toBe(400);
    expect((await c.req('GET', '/api/search?plate_hash=xyz')).status).toBe(400);
    expect((await c.req('GET', '/api/search?plate=KX%20TR')).status).toBe(400);
    expect((await c.req('GET', '/api/search?device=gantry-9&from=yesterday')).status).toBe(400);
    const byPlate = await c.req('GET', '/api/search?plate=kxtr45');
    expect(byPlate.body.results.map((r: any) => r.event.id)).toEqual([read.id]);
    const byHash = await c.req('GET', `/api/search?plate_hash=${'E'.repeat(64)}`);
    expect(byHash.body.results.map((r: any) => r.event.id)).toEqual([hashed.id]);
    const byDevice = await c.req('GET', `/api/search?site=la-serena&device=gantry-9&from=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}`);
    expect(byDevice.body.results).toHaveLength(2);
    const trail = (await store.audit(20)).filter((a) => a.action === 'search' && a.user === 'oscar');
    expect(trail.map((a) => a.target)).toEqual(['la-serena/gantry-9', 'hash', 'KXTR45']);
    expect(trail[0]!.detail).toMatchObject({ results: 2 });
  });

  it('keeps passing cars out of the live stream (the search finds them); its ids still move past them', async () => {
    const c = new Client();
    await c.login('oscar', 'oscar-password-1');
    const read = alarm({ type: 'plate.read', priority: 'read', device: 'gantry-9', payload: { camera: 'lane-1', plate: 'GHJK23', confidence: 0.9 } });
    const press = alarm();
    const live = readStream(c, {}, (evs) => evs.some((e) => e.event === 'vigia' && e.data.event.id === press.id));
    await sleep(200);
    await publish(read);
    await until(async () => (await store.events({ plate: 'GHJK23' })).length === 1, 'the read stored');
    await publish(press);
    const events = (await live).filter((e) => e.event === 'vigia');
    expect(events.map((e) => e.data.event.id)).toEqual([press.id]);
  });

  it('without a hotlist key the list is read-only, and only a supervisor may change it', async () => {
    const op = new Client();
    await op.login('oscar', 'oscar-password-1');
    expect((await op.req('GET', '/api/hotlist')).body).toMatchObject({ enabled: false });
    expect((await op.req('POST', '/api/hotlist/changes', { remove: ['BBCL12'] })).status).toBe(403);
    expect((await op.req('POST', '/api/hotlist/send', { devices: [{ site: 'la-serena', device: 'pole-1' }] })).status).toBe(403);
    const sup = new Client(); // an admin (sara is held back by the login limit of an earlier test)
    await sup.login('ada', 'ada-password-1');
    const r = await sup.req('POST', '/api/hotlist/changes', { remove: ['BBCL12'] });
    expect(r.status).toBe(409);
    expect(r.body.error).toMatch(/--hotlist-key/);
  });

  it('never shows the command key or a password: not in a response, the audit trail or the log', async () => {
    const admin = new Client();
    await admin.login('ada', 'ada-password-1');
    const bodies = await Promise.all(['/api/me', '/api/alarms', '/api/devices', '/api/audit', '/api/users'].map(async (p) => (await admin.req('GET', p)).text));
    const all = [...bodies, ...logLines, readFileSync(usersFile, 'utf8')].join('\n');
    for (const secret of [KEY, 'oscar-password-1', 'ada-password-1', 'sofia-password-1']) expect(all).not.toContain(secret);
  });
});

describe('vigia central user and serve', () => {
  it('manages operators from the command line, and serves the console until SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-serve-'));
    const users = join(dir, 'users.json');
    expect((await runCli(['central', 'user', 'add', 'ana', '--role', 'supervisor', '--users', users], { input: 'ana-password-1\n' })).code).toBe(0);
    expect((await runCli(['central', 'user', 'add', 'bob', '--users', users], { input: 'short\n' })).stderr).toMatch(/at least 10 characters/);
    expect((await runCli(['central', 'user', 'add', 'ana', '--users', users], { input: 'ana-password-2\n' })).stderr).toMatch(/exists already/);
    const list = await runCli(['central', 'user', 'list', '--users', users]);
    expect(list.stdout).toMatch(/^ana\tsupervisor\t/);
    expect(list.stdout).not.toContain('$2');
    expect(statSync(users).mode & 0o777).toBe(0o600);

    const hotlistKey = join(dir, 'hotlist.key');
    const hotlistPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileSync(hotlistKey, hotlistPem, { mode: 0o600 });
    const keyFile = join(dir, 'command.key');
    writeFileSync(keyFile, `${KEY}\n`, { mode: 0o600 });
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [
        CLI,
        'central',
        'serve',
        '--broker',
        broker.url,
        '--store',
        `sqlite:${join(dir, 'c.db')}`,
        '--client-id',
        'serve-test',
        '--users',
        users,
        '--command-key-file',
        keyFile,
        '--listen',
        `127.0.0.1:${port}`,
        '--hotlist-key',
        hotlistKey,
        '--hotlist-dir',
        join(dir, 'hotlist'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    await until(() => out.includes('console and ingest running'), 'the console started');
    const url = `http://127.0.0.1:${port}`;
    expect((await fetch(`${url}/api/alarms`)).status).toBe(401);
    const login = await fetch(`${url}/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: 'ana', password: 'ana-password-1' }),
    });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const csrf = ((await login.json()) as { csrf: string }).csrf;
    const change = await fetch(`${url}/api/hotlist/changes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, 'x-csrf-token': csrf },
      body: JSON.stringify({ text: 'plate,reason,source,added,expires\nBBCL12,encargo por robo,Carabineros,2026-11-01,\n' }),
    });
    expect(change.status).toBe(201);
    expect(readFileSync(join(dir, 'hotlist', 'hotlist.csv'), 'utf8')).toContain('BBCL12');
    child.kill('SIGTERM');
    expect(await new Promise((r) => child.once('exit', (code) => r(code)))).toBe(0);
    expect(out).not.toContain(KEY);
    expect(out).not.toContain(hotlistPem.split('\n')[1]);
    expect((await runCli(['central', 'user', 'remove', 'ana', '--users', users])).code).toBe(0);
    expect((await runCli(['central', 'user', 'remove', 'ana', '--users', users])).code).toBe(1);
  });
});
