import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VigiaEvent } from '../src/core/event.js';
import { CommandClient } from './helpers/commander.js';
import { CLI, DaemonProcess, writeDeviceConfig } from './helpers/daemon.js';
import { startMosquitto, type Broker } from './helpers/mosquitto.js';
import { Subscriber } from './helpers/subscriber.js';
import { startPtyLink, type PtyLink } from './helpers/socat.js';
import { nmeaSentence } from '../src/drivers/serial/nmea.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The smart pole end to end: the real daemon with simulated GPIO lines, a real Mosquitto, a camera
// answering snapshots over HTTP, and the call center's signed commands.

const base = 'vigia/test-site/pole-0001';
type Outputs = Record<string, { value: boolean; pattern: { mode: string } }>;

describe('smart pole (simulated GPIO, real Mosquitto)', () => {
  let broker: Broker;
  let sub: Subscriber;
  let daemon: DaemonProcess;
  let commander: CommandClient;
  let camera: Server;
  let snapshots = 0;
  let gps: PtyLink;
  let feeding: NodeJS.Timeout | undefined;

  const events = (type: string) => sub.events.filter((e) => e.event.type === type).map((e) => e.event as VigiaEvent<Record<string, any>>);
  const input = (name: string, active: boolean) => daemon.request('sim.input', { input: name, active });
  const outputs = () => daemon.request<Outputs>('sim.outputs');

  beforeAll(async () => {
    const jpeg = await sharp({ create: { width: 1280, height: 720, channels: 3, background: '#556677' } })
      .jpeg()
      .toBuffer();
    camera = createServer((_req, res) => {
      snapshots++;
      res.writeHead(200, { 'content-type': 'image/jpeg' });
      res.end(jpeg);
    });
    await new Promise<void>((r) => camera.listen(0, '127.0.0.1', r));
    // A GPS receiver on a pseudo-terminal, sending a fix in La Serena once a second, as a real one does.
    gps = await startPtyLink(mkdtempSync(join(tmpdir(), 'vigia-pole-gps-')), 'gps');
    const feed = () => {
      const t = new Date();
      const hhmmss = `${String(t.getUTCHours()).padStart(2, '0')}${String(t.getUTCMinutes()).padStart(2, '0')}${String(t.getUTCSeconds()).padStart(2, '0')}.00`;
      const ddmmyy = `${String(t.getUTCDate()).padStart(2, '0')}${String(t.getUTCMonth() + 1).padStart(2, '0')}${String(t.getUTCFullYear() % 100).padStart(2, '0')}`;
      void gps
        .write(
          `${nmeaSentence(`GPGGA,${hhmmss},2954.162,S,07115.114,W,1,09,0.9,28.0,M,28.5,M,,`)}\r\n` +
            `${nmeaSentence(`GPRMC,${hhmmss},A,2954.162,S,07115.114,W,0.0,0.0,${ddmmyy},,,A`)}\r\n`,
        )
        .catch(() => undefined);
    };
    feed();
    feeding = setInterval(feed, 1000);
    broker = await startMosquitto();
    sub = new Subscriber(broker.url);
    await sub.connect();
    const cfg = writeDeviceConfig(broker.url, {
      hardware: {
        backend: 'sim',
        inputs: {
          panic: { line: 'GPIO17', kind: 'panic', stuck: '1500ms' },
          pir: { line: 'GPIO27', kind: 'motion', active_low: false, bias: 'pull-down', hold: '300ms', min_interval: '0s' },
          door: { line: 'GPIO22', kind: 'door' },
        },
        outputs: {
          strobe: { line: 'GPIO23', kind: 'strobe' },
          siren: { line: 'GPIO24', kind: 'siren', max_on: '2s' },
          button_led: { line: 'GPIO25', kind: 'led' },
        },
        gps: { port: gps.devicePath, sync_clock: false, max_fix_age: '5s' },
      },
      pole: { led_output: 'button_led', strobe_output: 'strobe', siren_output: 'siren', snapshot_camera: 'pole-cam' },
      anpr: { cameras: [{ id: 'pole-cam', kind: 'snapshot', url: `http://127.0.0.1:${(camera.address() as { port: number }).port}/snap.jpg` }] },
    });
    daemon = new DaemonProcess(cfg.file, cfg.socket);
    await daemon.start();
    commander = new CommandClient(broker.url, 'test-site', 'pole-0001');
    await commander.connect();
    await new Promise((r) => setTimeout(r, 300)); // the daemon's command subscription
    await sub.waitFor(() => events('gps.fix_acquired').length > 0, 15_000, 'GPS fix');
  }, 60_000);

  afterAll(async () => {
    commander?.close();
    await daemon?.kill('SIGTERM');
    await sub?.close();
    await broker?.stop();
    camera?.close();
    clearInterval(feeding);
    await gps?.close();
  });

  it('starts with every output in its safe state', async () => {
    expect(await outputs()).toEqual({
      strobe: { value: false, pattern: { mode: 'off' } },
      siren: { value: false, pattern: { mode: 'off' } },
      button_led: { value: false, pattern: { mode: 'off' } },
    });
  });

  it('press → alarm.panic on the broker, LED "received" and strobe on, snapshot attached by reference', async () => {
    await input('panic', true);
    await sub.waitFor(() => events('alarm.panic').length === 1, 10_000, 'alarm.panic');
    const got = sub.events.find((e) => e.event.type === 'alarm.panic')!;
    expect(got.topic).toBe(`${base}/events/alarm/alarm.panic`);
    const alarm = got.event as VigiaEvent<Record<string, any>>;
    expect(alarm.payload).toMatchObject({ input: 'panic', press: 1, alarm_id: null, snapshot: { camera: 'pole-cam' } });
    expect(alarm.payload.snapshot.ref).toMatch(/^panic-\d+-pole-cam\.jpg$/);
    // Geotagged with the GPS fix (sync_clock is off here: the test never sets this machine's clock).
    expect(alarm.geo).toMatchObject({ satellites: 9, hdop: 0.9 });
    expect(alarm.geo!.lat).toBeCloseTo(-29.9027, 3);
    expect(alarm.geo!.lon).toBeCloseTo(-71.2519, 3);
    expect(alarm.geo!.age_ms).toBeLessThan(5000);
    const out = await outputs();
    expect(out.button_led!.pattern).toMatchObject({ mode: 'blink', period_ms: 250 });
    expect(out.strobe).toMatchObject({ value: true, pattern: { mode: 'on' } });

    await sub.waitFor(() => events('alarm.snapshot').length === 1, 15_000, 'alarm.snapshot');
    const snap = events('alarm.snapshot')[0]!;
    expect(snap.payload).toMatchObject({ alarm_id: alarm.id, camera: 'pole-cam', ref: alarm.payload.snapshot.ref });
    expect(await sharp(Buffer.from(snap.payload.image.data, 'base64')).metadata()).toMatchObject({ format: 'jpeg', width: 960, height: 540 });
    expect(snapshots).toBe(1);

    await input('panic', false);
    // A second press during the alarm is part of the same incident.
    await new Promise((r) => setTimeout(r, 100));
    await input('panic', true);
    await input('panic', false);
    await sub.waitFor(() => events('alarm.panic').length === 2, 10_000, 'second press');
    expect(events('alarm.panic')[1]!.payload).toMatchObject({ alarm_id: alarm.id, press: 2 });
  }, 30_000);

  it('a signed alarm.ack switches the LED to "acknowledged"; output.set drives the siren, cut off by its safety limit', async () => {
    const alarmId = events('alarm.panic')[0]!.id;
    expect(await commander.call('alarm.ack', { alarm_id: 'someone-else' })).toMatchObject({ ok: false, error: { code: 'wrong_alarm' } });
    // Arguments are checked against the command's schema before any handler runs, with one error code for all.
    expect(await commander.call('alarm.ack', { alarm_id: alarmId, operator: 7 })).toMatchObject({
      ok: false,
      error: { code: 'bad_args', message: /^operator: / },
    });
    expect(await commander.call('alarm.ack', { alarm_id: alarmId, operatr: 'op-7' })).toMatchObject({
      ok: false,
      error: { code: 'bad_args', message: /operatr/ },
    });
    expect(await commander.call('ping', { verbose: true })).toMatchObject({ ok: false, error: { code: 'bad_args' } });
    expect(await commander.call('output.set', { pattern: 'on' })).toMatchObject({ ok: false, error: { code: 'bad_args', message: /^output: / } });
    expect((await outputs()).button_led!.pattern.mode).toBe('blink');
    expect(await commander.call('alarm.ack', { alarm_id: alarmId, operator: 'op-7' })).toMatchObject({
      ok: true,
      result: { alarm_id: alarmId, state: 'acknowledged' },
    });
    expect((await outputs()).button_led).toEqual({ value: true, pattern: { mode: 'on' } });
    await sub.waitFor(() => events('alarm.acknowledged').length === 1, 10_000, 'alarm.acknowledged');
    expect(events('alarm.acknowledged')[0]!.payload).toEqual({ alarm_id: alarmId, operator: 'op-7' });

    expect(await commander.call('output.set', { output: 'siren', pattern: { mode: 'blink', period_ms: 400 } })).toMatchObject({
      ok: true,
      result: { output: 'siren' },
    });
    expect((await outputs()).siren!.pattern.mode).toBe('blink');
    expect(await commander.call('output.set', { output: 'horn', pattern: 'on' })).toMatchObject({ ok: false, error: { code: 'unknown_output' } });
    expect(await commander.call('output.set', { output: 'siren', pattern: { mode: 'wail' } })).toMatchObject({ ok: false, error: { code: 'bad_pattern' } });
    await sub.waitFor(() => events('fault.output_cutoff').length === 1, 10_000, 'siren cut off');
    expect(events('fault.output_cutoff')[0]!.payload).toMatchObject({ output: 'siren', kind: 'siren', pattern: { mode: 'blink' } });
    expect((await outputs()).siren).toEqual({ value: false, pattern: { mode: 'off' } });
  }, 30_000);

  it('a crash during the alarm: the pole comes back with it, LED and all, and the call center is told', async () => {
    const alarmId = events('alarm.panic')[0]!.id;
    await daemon.kill('SIGKILL');
    await daemon.start();
    await commander.ready();
    await sub.waitFor(() => events('alarm.restored').length === 1, 10_000, 'alarm.restored');
    expect(events('alarm.restored')[0]!.payload).toMatchObject({ alarm_id: alarmId, input: 'panic', state: 'acknowledged', presses: 2 });
    const out = await outputs();
    expect(out.button_led).toEqual({ value: true, pattern: { mode: 'on' } }); // "acknowledged" again
    expect(out.strobe!.value).toBe(false);
    // A press now belongs to the same incident.
    await input('panic', true);
    await input('panic', false);
    await sub.waitFor(() => events('alarm.panic').length === 3, 10_000, 'a press after the restart');
    expect(events('alarm.panic')[2]!.payload).toMatchObject({ alarm_id: alarmId, press: 3 });
  }, 30_000);

  it('alarm.clear turns the pole back to rest', async () => {
    const alarmId = events('alarm.panic')[0]!.id;
    expect(await commander.call('alarm.clear', { alarm_id: alarmId })).toMatchObject({ ok: true, result: { state: 'idle' } });
    const out = await outputs();
    expect(Object.values(out).every((o) => o.value === false && o.pattern.mode === 'off')).toBe(true);
    await sub.waitFor(() => events('alarm.cleared').length === 1, 10_000, 'alarm.cleared');
    expect(events('alarm.cleared')[0]!.payload).toMatchObject({ alarm_id: alarmId, presses: 3 });
    expect(await commander.call('alarm.clear')).toMatchObject({ ok: false, error: { code: 'no_alarm' } });
    // Cleared is cleared, also after a restart.
    await daemon.kill('SIGKILL');
    await daemon.start();
    await commander.ready();
    expect(await commander.call('alarm.clear')).toMatchObject({ ok: false, error: { code: 'no_alarm' } });
    expect(events('alarm.restored')).toHaveLength(1);
    expect((await outputs()).button_led!.value).toBe(false);
  }, 30_000);

  it('a jammed button is one fault, not an endless alarm; motion and the cabinet door are reported', async () => {
    const before = events('alarm.panic').length;
    await input('panic', true);
    await sub.waitFor(() => events('fault.input_stuck').length === 1, 10_000, 'stuck fault');
    expect(events('fault.input_stuck')[0]!.payload).toMatchObject({ input: 'panic', held_ms: 1500 });
    expect(events('alarm.panic')).toHaveLength(before + 1);
    await input('panic', false);
    await sub.waitFor(() => events('fault.input_recovered').length === 1, 10_000, 'recovered');

    await input('pir', true);
    await input('pir', false);
    await sub.waitFor(() => events('motion.ended').length === 1, 10_000, 'motion period');
    expect(events('motion.detected')).toHaveLength(1);
    expect(events('motion.detected')[0]!.priority).toBe('read');

    await input('door', true);
    await sub.waitFor(() => events('tamper.opened').length === 1, 10_000, 'door open');
    expect(events('tamper.opened')[0]).toMatchObject({ priority: 'hit', payload: { input: 'door', kind: 'door' } });
  }, 30_000);

  it('vigia status shows the GPIO backend, inputs, outputs, the alarm and the GPS fix', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'status', '-s', daemon.socket]);
    expect(stdout).toMatch(/^gpio {7}sim \(hardware\.backend is sim\)$/m);
    expect(stdout).toMatch(/^ {2}inputs {3}.*panic=(idle|pressed|STUCK) pir=\S+ door=OPEN$/m);
    expect(stdout).toMatch(/^ {2}outputs {2}strobe=\S+ siren=off button_led=\S+$/m);
    expect(stdout).toMatch(/^pole {7}alarm (raised|acknowledged|idle)/m);
    expect(stdout).toMatch(/^gps {8}running: -29\.902\d+, -71\.251\d+ \(\w+, 9 satellites, \d+s old\)$/m);
  });
});
