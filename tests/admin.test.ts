import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { CommandClient, type Reply } from './helpers/commander.js';
import { DaemonProcess, TEST_KEY, writeDeviceConfig } from './helpers/daemon.js';
import { startMosquitto } from './helpers/mosquitto.js';
import { Subscriber } from './helpers/subscriber.js';

// Remote administration end to end: the real daemon (started again by a supervisor, as systemd's
// Restart=always does), a real Mosquitto, and the call center's signed commands.

const EXIT_RESTART = 75;
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(over: Record<string, unknown> = {}) {
  const broker = await startMosquitto();
  cleanups.push(() => broker.stop());
  const sub = new Subscriber(broker.url);
  await sub.connect();
  cleanups.push(() => sub.close());
  const cfg = writeDeviceConfig(broker.url, over);
  const daemon = new DaemonProcess(cfg.file, cfg.socket, [], true);
  cleanups.push(() => daemon.kill('SIGKILL'));
  await daemon.start();
  const commander = new CommandClient(broker.url, 'test-site', 'pole-0001');
  await commander.connect();
  cleanups.push(() => commander.close());
  await commander.ready();
  const events = (type: string) => sub.events.filter((e) => e.event.type === type).map((e) => e.event.payload as Record<string, any>);
  return { broker, sub, cfg, daemon, commander, events };
}

const expectRefused = (reply: Reply, code: string) => {
  expect(reply.ok, JSON.stringify(reply)).toBe(false);
  expect(reply.error?.code).toBe(code);
  return reply.error!.message;
};

describe('remote administration (real daemon, real Mosquitto)', () => {
  it('config.set with a bad config rolls back', async () => {
    const { cfg, daemon, commander, sub, events } = await setup();
    const original = readFileSync(cfg.file, 'utf8');
    const got = await commander.call('config.get');
    expect(got.result!.sha256).toBe(sha256(original));

    // Refused before anything is written: the problems are listed with their lines.
    const invalid = `${original}telemetry:\n  interval: soon\n`;
    const problems = expectRefused(await commander.call('config.set', { yaml: 'device: {id: pole-0001}\nmqtt: {url: nope}\n' }), 'bad_config');
    expect(problems).toMatch(/vigia\.yaml:2:\d+ mqtt\.url: expected mqtt:\/\/host:port/);
    expect(problems).toMatch(/device\.site: required/);
    expectRefused(await commander.call('config.set', { yaml: invalid }), 'bad_config');
    expectRefused(await commander.call('config.set', { yaml: original, expect_sha256: sha256('something else') }), 'conflict');
    expect(readFileSync(cfg.file, 'utf8')).toBe(original);
    expect(existsSync(`${cfg.file}.previous`)).toBe(false);

    // Valid, but it cannot start: its data directory would lie inside a regular file.
    const blocker = join(cfg.dir, 'not-a-directory');
    writeFileSync(blocker, 'x');
    const doc = parse(original) as { paths: Record<string, string> };
    doc.paths.data_dir = join(blocker, 'data');
    const broken = stringify(doc);
    const set = await commander.call('config.set', { yaml: broken, expect_sha256: sha256(original) });
    expect(set.ok, JSON.stringify(set)).toBe(true);
    expect(set.result).toMatchObject({ changed: true, restart: true, sha256: sha256(broken), previous_sha256: sha256(original) });

    // The daemon restarts with it, fails to start, restores the previous file and comes back with it.
    await sub.waitFor(() => events('system.config_rolled_back').length > 0, 40_000, 'system.config_rolled_back');
    expect(events('system.config_rolled_back')[0]).toMatchObject({
      reason: 'start_failed',
      rejected_sha256: sha256(broken),
      restored_sha256: sha256(original),
    });
    expect(events('system.config_rolled_back')[0]!.error).toMatch(/ENOTDIR|not a directory/);
    expect(readFileSync(cfg.file, 'utf8')).toBe(original);
    expect(readFileSync(`${cfg.file}.previous`, 'utf8')).toBe(original);
    // The marker goes once the report is stored, which may be just after it reached the broker.
    await sub.waitFor(() => !existsSync(`${cfg.file}.apply`), 10_000, 'the rollback marker removed');
    expect(daemon.exits.slice(0, 2)).toEqual([EXIT_RESTART, EXIT_RESTART]);
    await commander.ready();
    expect((await commander.call('config.get')).result!.sha256).toBe(sha256(original));
    expect(events('system.config_applied')).toEqual([]);

    // A configuration that comes up is confirmed once the daemon is back on the broker.
    const better = stringify({ ...(parse(original) as object), telemetry: { interval: '30m' } });
    expect((await commander.call('config.set', { yaml: better })).ok).toBe(true);
    await sub.waitFor(() => events('system.config_applied').length > 0, 60_000, 'system.config_applied');
    expect(events('system.config_applied')[0]).toMatchObject({ sha256: sha256(better), previous_sha256: sha256(original) });
    await commander.ready();
    const after = await commander.call('config.get');
    expect(after.result).toMatchObject({ sha256: sha256(better), config: { telemetry: { interval: 1_800_000 } } });
    expect(readFileSync(`${cfg.file}.previous`, 'utf8')).toBe(original);
    expect(existsSync(`${cfg.file}.apply`)).toBe(false);
  }, 120_000);

  it('config.get never shows a secret, and config.set refuses the placeholders back', async () => {
    const passwordFile = join(mkdtempSync(join(tmpdir(), 'vigia-secret-')), 'mqtt-password');
    writeFileSync(passwordFile, 'file-secret-value\n');
    const { commander } = await setup({
      mqtt: { username: 'pole', password: { file: passwordFile } },
      anpr: { cameras: [{ id: 'gate', kind: 'snapshot', url: 'http://admin:camera-pass@127.0.0.1:9/snap.jpg' }] },
    });
    const reply = await commander.call('config.get');
    expect(reply.ok).toBe(true);
    const text = JSON.stringify(reply);
    for (const secret of [TEST_KEY, 'file-secret-value', 'camera-pass']) expect(text).not.toContain(secret);
    expect(reply.result!.config.mqtt.password).toBe(`[secret from file ${passwordFile}]`);
    expect(reply.result!.config.anpr.cameras[0].url).toBe('http://admin:***@127.0.0.1:9/snap.jpg');
    expect(reply.result!.document).toContain('[redacted]');
    expect(reply.result!.writable).toBe(true);
    const message = expectRefused(await commander.call('config.set', { yaml: reply.result!.document }), 'bad_config');
    expect(message).toContain('[redacted]');
  });

  it('restart: replies, stops cleanly and is started again', async () => {
    const { daemon, commander, sub } = await setup();
    const reply = await commander.call('restart');
    expect(reply).toMatchObject({ ok: true, result: { restart: true } });
    await sub.waitFor(() => daemon.exits.length > 0, 20_000, 'the daemon to exit');
    expect(daemon.exits).toEqual([EXIT_RESTART]);
    await sub.waitFor(() => sub.other.some((m) => m.topic.endsWith('/status') && m.payload.toString().includes('"shutdown"')), 10_000, 'clean goodbye');
    await commander.ready();
    expectRefused(await commander.call('restart', { now: true }), 'bad_args');
  });

  it('log.level: changes the level at run time and reverts after the duration', async () => {
    const { commander } = await setup();
    const set = await commander.call('log.level', { level: 'debug', for: '2s' });
    expect(set.result).toMatchObject({ level: 'debug', previous: 'warn' });
    expect(Date.parse(set.result!.until)).toBeGreaterThan(Date.now());
    expect((await commander.call('diag')).result!.log).toMatchObject({ level: 'debug', reverts_to: 'warn' });
    const deadline = Date.now() + 30_000;
    while ((await commander.call('diag')).result!.log.level !== 'warn') {
      if (Date.now() > deadline) throw new Error('the log level did not revert');
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await commander.call('log.level', { level: 'error' })).result).toMatchObject({ level: 'error', until: null });
    expect((await commander.call('diag')).result!.log).toEqual({ level: 'error', until: null, reverts_to: null });
    expectRefused(await commander.call('log.level', { level: 'loud' }), 'bad_args');
    expect(expectRefused(await commander.call('log.level', { level: 'debug', for: '48h' }), 'bad_args')).toMatch(/24h/);
  });

  it('snapshot: stores a frame by reference and publishes it; diag judges the daemon check by check', async () => {
    const jpeg = await sharp({ create: { width: 1280, height: 720, channels: 3, background: '#336699' } })
      .jpeg()
      .toBuffer();
    const camera: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(jpeg);
    });
    await new Promise<void>((r) => camera.listen(0, '127.0.0.1', r));
    cleanups.push(() => camera.close());
    const url = `http://127.0.0.1:${(camera.address() as { port: number }).port}/snap.jpg`;
    const { cfg, commander, sub, events } = await setup({ anpr: { cameras: [{ id: 'street', kind: 'snapshot', url }] } });

    const reply = await commander.call('snapshot');
    expect(reply.ok, JSON.stringify(reply)).toBe(true);
    const ref = reply.result!.ref as string;
    expect(reply.result).toMatchObject({ camera: 'street' });
    expect(readFileSync(join(cfg.dir, 'data', 'evidence', ref))).toEqual(jpeg);
    await sub.waitFor(() => events('camera.snapshot').length > 0, 10_000, 'camera.snapshot');
    const event = events('camera.snapshot')[0]!;
    expect(event).toMatchObject({ camera: 'street', ref, image: { content_type: 'image/jpeg', width: 960, height: 540 } });
    expect(sub.events.find((e) => e.event.type === 'camera.snapshot')!.event.id).toBe(reply.result!.event_id);
    expect(expectRefused(await commander.call('snapshot', { camera: 'nope' }), 'unknown_camera')).toContain('street');

    const diag = await commander.call('diag');
    expect(diag.ok).toBe(true);
    const checks = Object.fromEntries((diag.result!.checks as Array<{ check: string; level: string; detail: string }>).map((c) => [c.check, c]));
    expect(Object.keys(checks)).toEqual(['outbox', 'link', 'clock', 'disk_space', 'gpio']);
    expect(checks.link!.level).toBe('ok');
    expect(checks.clock).toMatchObject({ level: 'ok' });
    expect(checks.gpio!.detail).toMatch(/^backend sim/);
    expect(diag.result!.status).toMatchObject({ device: 'pole-0001', link: { state: 'online' } });
  });
});
