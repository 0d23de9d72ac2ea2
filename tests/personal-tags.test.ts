import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { ConfigError, loadConfig } from '../src/config/index.js';
import { ManualClock } from '../src/core/clock.js';
import { EVENT_TYPES, type EventPayload, type EventType } from '../src/core/events.js';
import { createLogger } from '../src/core/logger.js';
import { BluezScanner } from '../src/drivers/ble/bluez.js';
import type { Advert, AdvertScanner, ScannerStats } from '../src/drivers/ble/types.js';
import { PersonalTags, type PersonalTagsContext, readTagAdvert, type TagPressReport } from '../src/features/personal-tags.js';
import type { VigiaEvent } from '../src/core/event.js';
import { CommandClient } from './helpers/commander.js';
import { CLI, DaemonProcess, writeDeviceConfig } from './helpers/daemon.js';
import { type Broker, startMosquitto } from './helpers/mosquitto.js';
import { Subscriber } from './helpers/subscriber.js';

// Personal alarm tags in process: adverts from a scanner become presses, a registered tag's press
// raises alarm.personal with the person and the device's location, the repeats of one press are
// one alarm, and unregistered tags, other beacons and weak adverts raise nothing. The BlueZ
// scanner itself runs on a real kernel and bluetoothd in the hardware rig (tests/hardware).

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const UUID = 'f7826da64fa24e988024bc5b71e0893e';
const PREFIX = `0215${UUID}`;

class FakeScanner extends EventEmitter<{ advert: [Advert]; error: [Error] }> implements AdvertScanner {
  readonly id = 'hci0';
  async start() {}
  async stop() {}
  stats(): ScannerStats {
    return { adverts: 0, restarts: 0, scanning: true };
  }
}

/** An iBeacon frame as the default format reads it: major = tag id, minor = button bit + counter. */
function ibeacon(major: number, pressed: boolean, counter: number, uuid = UUID): Map<number, Uint8Array> {
  const minor = (pressed ? 0x8000 : 0) | (counter & 0xff);
  const hex = `0215${uuid}${major.toString(16).padStart(4, '0')}${minor.toString(16).padStart(4, '0')}c5`;
  return new Map([[0x004c, Uint8Array.from(Buffer.from(hex, 'hex'))]]);
}

const person = { name: 'Ana Pérez', phone: '+56 9 8765 4321', notes: 'Colegio San Joaquín, 3° medio' };

function setup(over: Record<string, unknown> = {}, dataDir?: string) {
  const { dir, file } = writeDeviceConfig('mqtt://127.0.0.1:1', {
    device: { profile: 'community', location: { lat: -29.9045, lon: -71.2489 } },
    personal: { enabled: true, format: { prefix: PREFIX }, press_gap: '5s', learn_window: 2, min_rssi_dbm: -95 },
    tags: { 'ana-perez': { id: '002a', person } },
    ...(dataDir ? { paths: { data_dir: dataDir } } : {}),
    ...over,
  });
  dirs.push(dir);
  const config = loadConfig(file);
  mkdirSync(config.paths.data_dir, { recursive: true }); // the controller's job in the daemon
  const clock = new ManualClock();
  const events: Array<{ type: EventType; payload: Record<string, unknown> }> = [];
  const commands = new Map<string, { args: z.ZodType; handler: (args: unknown) => unknown }>();
  const streams = new Map<string, (args: Record<string, unknown>, send: (item: unknown) => void) => () => void>();
  const ctx = {
    config,
    logger: createLogger('silent'),
    clock,
    paths: { dataDir: config.paths.data_dir, runtimeDir: config.paths.runtime_dir },
    emit<T extends EventType>(type: T, payload: EventPayload<T>) {
      EVENT_TYPES[type].payload.parse(payload); // what the real sink checks
      events.push({ type, payload: payload as Record<string, unknown> });
      return Promise.resolve({ id: `e${events.length}`, type, payload });
    },
    commands: { register: (name: string, args: z.ZodType, handler: (args: unknown) => unknown) => commands.set(name, { args, handler }) },
    control: { handle: () => undefined, handleStream: (op: string, h: never) => streams.set(op, h) },
  } as unknown as PersonalTagsContext;
  const scanner = new FakeScanner();
  const tags = new PersonalTags(ctx, scanner, undefined);
  const advert = async (data: Map<number, Uint8Array>, rssiDbm: number | null = -61, address = 'C3:11:22:33:44:55') => {
    const a: Advert = { address, rssiDbm, manufacturerData: data, monoMs: clock.monoNow() };
    scanner.emit('advert', a);
    await new Promise((r) => setImmediate(r));
  };
  const command = async (name: string, args: unknown) => {
    const c = commands.get(name)!;
    return c.handler(c.args.parse(args));
  };
  return { config, clock, events, tags, scanner, advert, streams, commands, command, dataDir: config.paths.data_dir };
}

describe('personal alarm tags', () => {
  it('raises one alarm.personal per press, with the person, RSSI and the pole location, and a new counter is a new press', async () => {
    const t = setup();
    await t.tags.start();
    // Idle adverts: nothing.
    await t.advert(ibeacon(0x2a, false, 6));
    t.clock.advance(1000);
    // Pressed: the flag set and the counter moved; repeated every 100 ms for 3 s.
    for (let i = 0; i < 30; i++) {
      await t.advert(ibeacon(0x2a, true, 7), -61 - (i % 5));
      t.clock.advance(100);
    }
    expect(t.events).toHaveLength(1);
    expect(t.events[0]).toMatchObject({
      type: 'alarm.personal',
      payload: {
        tag: 'ana-perez',
        tag_id: '002a',
        person: { name: 'Ana Pérez', phone: '+56 9 8765 4321', address: null, notes: person.notes },
        adapter: 'hci0',
        address: 'C3:11:22:33:44:55',
        rssi_dbm: -61,
        location: { lat: -29.9045, lon: -71.2489 },
        alarm_id: null,
        press: 1,
      },
    });
    // Pressed again within the gap: the counter moved, so it is a new press at once.
    await t.advert(ibeacon(0x2a, true, 8));
    expect(t.events).toHaveLength(2);
    // The same counter after a pause longer than the gap: a new press too (a tag that wrapped or restarted).
    t.clock.advance(6000);
    await t.advert(ibeacon(0x2a, true, 8));
    expect(t.events).toHaveLength(3);
    expect(t.tags.status()).toMatchObject({ ours: 33, presses: 3, alarms: 3, unknown_presses: 0, registered: 1 });
  });

  it('folds a tag without a counter by the gap alone', async () => {
    const t = setup({ personal: { enabled: true, format: { prefix: PREFIX, counter_offset: null }, press_gap: '2s' } });
    await t.tags.start();
    for (let i = 0; i < 10; i++) {
      await t.advert(ibeacon(0x2a, true, i)); // the counter byte is not read
      t.clock.advance(500);
    }
    expect(t.events).toHaveLength(1);
    t.clock.advance(2500);
    await t.advert(ibeacon(0x2a, true, 0));
    expect(t.events).toHaveLength(2);
  });

  it('ignores other beacons, weak adverts and unregistered tags, and shows the unregistered ones for learning', async () => {
    const t = setup();
    await t.tags.start();
    const seen: unknown[] = [];
    t.streams.get('tags.learn')!({}, (item) => seen.push(item));
    // Another fleet's iBeacon (other UUID), an iPhone's Apple data, another company's data.
    await t.advert(ibeacon(0x2a, true, 1, '00112233445566778899aabbccddeeff'));
    await t.advert(new Map([[0x004c, Uint8Array.from([0x10, 0x05, 0x01, 0x18, 0x00, 0x00, 0x00])]]));
    await t.advert(new Map([[0x0059, Uint8Array.from(Buffer.from(PREFIX, 'hex'))]]));
    // A registered tag too far away.
    await t.advert(ibeacon(0x2a, true, 1), -99);
    // Unregistered tags of our fleet: remembered (learn_window 2), pressed or not.
    await t.advert(ibeacon(0x0101, false, 1), -70, 'D0:00:00:00:01:01');
    t.clock.advance(1000);
    await t.advert(ibeacon(0x0102, true, 2), -72, 'D0:00:00:00:01:02');
    t.clock.advance(1000);
    await t.advert(ibeacon(0x0103, true, 3), -74, 'D0:00:00:00:01:03');
    expect(t.events).toHaveLength(0);
    expect(t.tags.list().unknown.map((u) => u.id)).toEqual(['0102', '0103']);
    expect(t.tags.list().unknown[1]).toMatchObject({ address: 'D0:00:00:00:01:03', pressed: true, presses: 1, rssi_dbm: -74 });
    expect(seen.map((s) => (s as { press: TagPressReport }).press.id)).toEqual(['0102', '0103']);
    expect(t.tags.status()).toMatchObject({ adverts: 7, ours: 4, weak: 1, presses: 2, alarms: 0, unknown_presses: 2, unknown_tags: 2 });
  });

  it('enrols a tag by command: it raises alarms with its person at once and after a restart, until removed', async () => {
    const t = setup();
    await t.tags.start();
    // Heard before it is enrolled: unregistered, no alarm.
    await t.advert(ibeacon(0x0b0e, true, 1), -70);
    expect(t.events).toHaveLength(0);
    expect(t.tags.list().unknown.map((u) => u.id)).toEqual(['0b0e']);

    const sofia = { name: 'Sofía Rojas', phone: '+56 9 1111 2222' };
    expect(await t.command('tags.enroll', { name: 'sofia-rojas', id: '0B0E', person: sofia })).toEqual({ name: 'sofia-rojas', id: '0b0e', enrolled: 1 });
    expect(t.tags.list().unknown).toEqual([]);
    expect(t.tags.list().tags).toEqual([
      { name: 'sofia-rojas', id: '0b0e', person: sofia, source: 'command' },
      { name: 'ana-perez', id: '002a', person, source: 'config' },
    ]);
    t.clock.advance(6000);
    await t.advert(ibeacon(0x0b0e, true, 2), -66);
    expect(t.events).toHaveLength(1);
    expect(t.events[0]!.payload).toMatchObject({
      tag: 'sofia-rojas',
      tag_id: '0b0e',
      person: { name: 'Sofía Rojas', phone: '+56 9 1111 2222', address: null },
    });

    // Refused: a tag the configuration names, an id another tag has, an id of the wrong length, a bad name.
    await expect(t.command('tags.enroll', { name: 'ana-perez', id: '0c0c', person: sofia })).rejects.toMatchObject({ code: 'in_config' });
    await expect(t.command('tags.enroll', { name: 'otra', id: '002a', person: sofia })).rejects.toMatchObject({ code: 'id_taken' });
    await expect(t.command('tags.enroll', { name: 'otra', id: '0c0c0c', person: sofia })).rejects.toMatchObject({ code: 'bad_id' });
    await expect(t.command('tags.enroll', { name: 'otra tag', id: '0c0c', person: sofia })).rejects.toThrow();
    await expect(t.command('tags.remove', { name: 'ana-perez' })).rejects.toMatchObject({ code: 'in_config' });
    await expect(t.command('tags.remove', { name: 'nadie' })).rejects.toMatchObject({ code: 'unknown_tag' });

    // Kept in the data directory: a restarted daemon knows it.
    const again = setup({}, t.dataDir);
    await again.tags.start();
    expect(again.tags.status()).toMatchObject({ registered: 2 });
    await again.advert(ibeacon(0x0b0e, true, 3), -66);
    expect(again.events).toHaveLength(1);
    expect(await again.command('tags.remove', { name: 'sofia-rojas' })).toEqual({ name: 'sofia-rojas', removed: true });
    again.clock.advance(6000);
    await again.advert(ibeacon(0x0b0e, true, 4), -66);
    expect(again.events).toHaveLength(1);
    expect(again.tags.status()).toMatchObject({ registered: 1, unknown_presses: 1 });
    expect(JSON.parse(readFileSync(join(t.dataDir, 'tags.json'), 'utf8'))).toEqual({});
  });

  it('sets a damaged enrolment file aside, and ignores an enrolled id that no longer fits the format', async () => {
    const first = setup();
    writeFileSync(join(first.dataDir, 'tags.json'), '{"sofia": {"id": ');
    await first.tags.start();
    expect(first.tags.status()).toMatchObject({ registered: 1 });
    expect(readdirSync(first.dataDir).some((f) => f.startsWith('tags.json.damaged-'))).toBe(true);
    // Enrolled when tag ids were 2 bytes; the fleet has since moved to 4-byte ids.
    writeFileSync(join(first.dataDir, 'tags.json'), JSON.stringify({ sofia: { id: '0b0e', person: { name: 'Sofía' } } }));
    const wider = setup(
      {
        personal: { enabled: true, format: { prefix: PREFIX, id_length: 4, button_offset: 22, counter_offset: null }, press_gap: '5s' },
        tags: { 'ana-perez': { id: '002a0000', person } },
      },
      first.dataDir,
    );
    await wider.tags.start();
    expect(wider.tags.status()).toMatchObject({ registered: 1 });
    expect(wider.tags.list().tags.map((tag) => tag.name)).toEqual(['sofia', 'ana-perez']);
  });

  it('reads a configured layout: another company, the flag and counter in one byte', () => {
    const t = setup({
      personal: {
        enabled: true,
        format: { company_id: 0xffff, prefix: '5647', id_offset: 2, id_length: 4, button_offset: 6, button_mask: 0x01, counter_offset: 6 },
      },
      tags: {},
    });
    const data = (b: number[]) => new Map([[0xffff, Uint8Array.from(b)]]);
    expect(readTagAdvert(t.config.personal.format, data([0x56, 0x47, 0xde, 0xad, 0xbe, 0xef, 0x0b]))).toEqual({ id: 'deadbeef', pressed: true, counter: 0x0a });
    expect(readTagAdvert(t.config.personal.format, data([0x56, 0x47, 0xde, 0xad, 0xbe, 0xef, 0x0a]))).toEqual({
      id: 'deadbeef',
      pressed: false,
      counter: 0x0a,
    });
    // Too short, wrong prefix: not a tag.
    expect(readTagAdvert(t.config.personal.format, data([0x56, 0x47, 0xde, 0xad]))).toBeNull();
    expect(readTagAdvert(t.config.personal.format, data([0x56, 0x48, 0xde, 0xad, 0xbe, 0xef, 0x0b]))).toBeNull();
  });

  it('rejects a configuration that would read every beacon as a tag, or tags it cannot match', () => {
    const bad = (over: Record<string, unknown>) => {
      const { dir, file } = writeDeviceConfig('mqtt://127.0.0.1:1', { device: { profile: 'community' }, ...over });
      dirs.push(dir);
      try {
        loadConfig(file);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad({ personal: { enabled: true } })).toMatch(/personal\.format\.prefix/);
    expect(bad({ personal: { enabled: true, format: { prefix: PREFIX } }, tags: { a: { id: '2a', person } } })).toMatch(/tags\.a\.id.*4 hex digits/s);
    expect(bad({ personal: { enabled: true, format: { prefix: PREFIX } }, tags: { a: { id: '002a', person }, b: { id: '002A', person } } })).toMatch(
      /already registered as a/,
    );
    expect(bad({ tags: { a: { id: '002a', person } } })).toMatch(/personal alarms are not enabled/);
    expect(bad({ personal: { enabled: true, format: { prefix: PREFIX, button_offset: 18 } } })).toMatch(/overlaps the tag id/);
  });
});

describe('personal alarm tags in the daemon (simulated adapter, real Mosquitto)', () => {
  let broker: Broker;
  let sub: Subscriber;
  let daemon: DaemonProcess;
  let commander: CommandClient;
  let cfg: ReturnType<typeof writeDeviceConfig>;
  const events = (type: string) => sub.events.filter((e) => e.event.type === type).map((e) => e.event as VigiaEvent<Record<string, any>>);
  const hear = (data: Map<number, Uint8Array>, address = 'C3:11:22:33:44:55') =>
    daemon.request('sim.advert', {
      manufacturer_data: Object.fromEntries([...data].map(([company, bytes]) => [company, Buffer.from(bytes).toString('hex')])),
      address,
      rssi_dbm: -70,
    });

  beforeAll(async () => {
    broker = await startMosquitto();
    sub = new Subscriber(broker.url);
    await sub.connect();
    cfg = writeDeviceConfig(broker.url, {
      device: { id: 'kit-0040', profile: 'community', location: { lat: -29.9045, lon: -71.2489 } },
      hardware: { outputs: { siren: { line: 'GPIO24', kind: 'siren' }, strobe: { line: 'GPIO23', kind: 'strobe' } } },
      pole: { siren_output: 'siren', strobe_output: 'strobe', siren_pattern: 'on' },
      radio: { receiver: 'none' },
      personal: { enabled: true, adapter: 'sim', format: { prefix: PREFIX }, press_gap: '2s' },
      tags: { 'ana-perez': { id: '002a', person } },
    });
    daemon = new DaemonProcess(cfg.file, cfg.socket);
    await daemon.start();
    commander = new CommandClient(broker.url, 'test-site', 'kit-0040');
    await commander.connect();
    await commander.ready();
  }, 60_000);

  afterAll(async () => {
    commander?.close();
    await daemon?.kill('SIGTERM');
    await sub?.close();
    await broker?.stop();
  });

  it('a press is one alarm.personal at the broker, the kit sounds its siren, and `vigia tags learn` shows an unregistered tag with its registration', async () => {
    const learn = spawn(process.execPath, [CLI, 'tags', 'learn', '-c', cfg.file], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    learn.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    const exited = new Promise<number | null>((resolve) => learn.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      learn.stderr.setEncoding('utf8').on('data', (s: string) => s.includes('listening on sim') && resolve());
      learn.once('exit', () => reject(new Error('tags learn exited early')));
    });
    for (let i = 0; i < 8; i++) await hear(ibeacon(0x2a, true, 3));
    await hear(ibeacon(0x2a, false, 3));
    await hear(ibeacon(0x0bad, true, 1), 'D0:00:00:00:0B:AD');
    await sub.waitFor(() => events('alarm.personal').length === 1 && out.includes('0bad'), 10_000, 'alarm.personal and the unregistered tag');
    learn.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(events('alarm.personal')[0]!.payload).toMatchObject({
      tag: 'ana-perez',
      person: { name: 'Ana Pérez' },
      rssi_dbm: -70,
      location: { lat: -29.9045, lon: -71.2489 },
      press: 1,
    });
    expect(out).toContain('tag 002a  ana-perez  C3:11:22:33:44:55  -70 dBm  counter 3');
    expect(out).toContain('tag 0bad  UNREGISTERED');
    expect(out).toContain('id: "0bad"');
    const outputs = await daemon.request<Record<string, { value: boolean }>>('sim.outputs');
    expect(outputs.siren, JSON.stringify(outputs)).toMatchObject({ value: true });
    // A malformed advert is refused with a reason; the daemon goes on.
    await expect(daemon.request('sim.advert', { manufacturer_data: { '76': 'xyz' } })).rejects.toThrow(/not hex bytes/);
    await new Promise((r) => setTimeout(r, 300));
    expect(events('alarm.personal')).toHaveLength(1);
  }, 30_000);
  it('the call center enrols a new tag by signed command; its press raises the alarm with the person; `vigia tags list` shows both', async () => {
    const student = { name: 'Sofía Rojas', phone: '+56 9 1111 2222', notes: 'Liceo Gregorio Cordovez' };
    expect(await commander.call('tags.enroll', { name: 'sofia-rojas', id: 'xyz', person: student })).toMatchObject({ ok: false, error: { code: 'bad_args' } });
    expect(await commander.call('tags.enroll', { name: 'sofia-rojas', id: '0B0E', person: student })).toMatchObject({
      ok: true,
      result: { name: 'sofia-rojas', id: '0b0e', enrolled: 1 },
    });
    const before = events('alarm.personal').length;
    for (let i = 0; i < 4; i++) await hear(ibeacon(0x0b0e, true, 9), 'D0:00:00:00:0B:0E');
    await sub.waitFor(() => events('alarm.personal').length === before + 1, 10_000, "the enrolled tag's alarm");
    expect(events('alarm.personal')[before]!.payload).toMatchObject({
      tag: 'sofia-rojas',
      tag_id: '0b0e',
      person: { name: 'Sofía Rojas', notes: student.notes },
    });
    const list = spawnSync(process.execPath, [CLI, 'tags', 'list', '-c', cfg.file], { encoding: 'utf8' });
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^ana-perez\s+002a\s+Ana Pérez {2}\(config\)$/m);
    expect(list.stdout).toMatch(/^sofia-rojas\s+0b0e\s+Sofía Rojas {2}\(command\)$/m);
    expect(await commander.call('tags.remove', { name: 'sofia-rojas' })).toMatchObject({ ok: true, result: { removed: true } });
  }, 30_000);
});

describe('the BlueZ scanner without BlueZ', () => {
  it('starts and stops without hanging when there is no bus, and when bluetoothd is not on it; it says why and keeps retrying', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-ble-'));
    dirs.push(dir);
    const errors: string[] = [];
    const noBus = new BluezScanner({ clock: new ManualClock(), busAddress: `unix:path=${join(dir, 'none')}`, backoff: { minDelayMs: 50, maxDelayMs: 50 } });
    noBus.on('error', (err) => errors.push(err.message));
    await noBus.start();
    await new Promise((r) => setTimeout(r, 300));
    await noBus.stop();
    expect(errors[0]).toMatch(/^D-Bus: connect ENOENT/);
    expect(noBus.stats()).toMatchObject({ scanning: false });
    expect(noBus.stats().restarts).toBeGreaterThanOrEqual(2);
    // Once per attempt, not once per symptom.
    expect(errors.length).toBe(noBus.stats().restarts + 1);

    const out = execFileSync('dbus-daemon', ['--session', '--fork', '--print-address=1', '--print-pid=1', `--address=unix:path=${join(dir, 'bus')}`], {
      encoding: 'utf8',
    });
    const [address, pid] = out.trim().split('\n');
    try {
      const noBluez = new BluezScanner({ clock: new ManualClock(), busAddress: address! });
      const said = new Promise<string>((resolve) => noBluez.once('error', (err) => resolve(err.message)));
      await noBluez.start();
      expect(await said).toBe('bluetoothd is not running (no org.bluez on the system bus)');
      await noBluez.stop();
    } finally {
      process.kill(Number(pid), 'SIGTERM');
    }
  });
});
