import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { doctorReport, type DoctorReport } from '../src/technician/doctor/index.js';
import { formatDoctorReport } from '../src/technician/doctor/format.js';
import { DaemonProcess, runCli, writeDeviceConfig } from './helpers/daemon.js';
import { startRtlTcpDongle } from './helpers/rtl-tcp.js';
import { type Broker, startMosquitto } from './helpers/mosquitto.js';
import { makeTlsFiles, type TlsFiles } from './helpers/tls.js';

const run = (...args: string[]) => runCli(args);

const tmp = mkdtempSync(join(tmpdir(), 'vigia-doctor-'));
const byName = (r: DoctorReport) => Object.fromEntries(r.checks.map((c) => [c.name, c]));

/** A short video standing in for a stream camera: ffmpeg reads it as it would read an RTSP stream. */
function video(): string {
  const file = join(tmp, 'street.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=10', '-t', '2', '-c:v', 'mpeg4', file]);
  return file;
}

/** A pole with its panic button, strobe, TLS broker with client certificates, and a camera for the alarm snapshot. */
const pole = (tls: TlsFiles, camera: string) => ({
  mqtt: { tls: { ca: tls.caFile, cert: tls.clientCert, key: { file: tls.clientKey } } },
  hardware: {
    backend: 'sim',
    inputs: { panic: { line: 'GPIO17', kind: 'panic' } },
    outputs: { strobe: { line: 'GPIO23', kind: 'strobe' }, button_led: { line: 'GPIO25', kind: 'led' } },
  },
  pole: { enabled: true, led_output: 'button_led', strobe_output: 'strobe', snapshot_camera: 'street' },
  anpr: { cameras: [{ id: 'street', kind: 'stream', url: camera, loop: true }] },
});

describe('vigia doctor', () => {
  let broker: Broker;
  let tls: TlsFiles;
  let good: ReturnType<typeof writeDeviceConfig>;
  let camera: string;

  beforeAll(async () => {
    tls = makeTlsFiles();
    camera = video();
    broker = await startMosquitto({ tls: { ...tls, requireCertificate: true } });
    good = writeDeviceConfig(broker.url, pole(tls, camera));
  });
  afterAll(async () => {
    await broker?.stop();
  });

  it('passes a good setup with the daemon running, asking the daemon what it holds', async () => {
    const daemon = new DaemonProcess(good.file, good.socket);
    await daemon.start();
    try {
      const r = await run('doctor', '--json', '-c', good.file);
      const report = JSON.parse(r.stdout) as DoctorReport;
      expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
      expect(r.code).toBe(0);
      expect(report).toMatchObject({ ok: true, daemon: 'running', device: 'pole-0001', site: 'test-site' });
      const checks = byName(report);
      expect(checks.daemon!.status).toBe('pass');
      // The test CA issues certificates for two days: close enough to their end to be worth a warning.
      expect(checks['broker TLS']).toMatchObject({ status: 'warn', detail: expect.stringMatching(/^localhost's certificate verifies, but expires in 1 day /) });
      expect(checks['client certificate']).toMatchObject({ status: 'warn', detail: expect.stringMatching(/^expires in 1 day /) });
      expect(checks['broker login']!.detail).toMatch(/^the daemon is online/);
      expect(checks['input panic']!.detail).toBe('GPIO17, held by the daemon');
      expect(checks['output strobe']!.detail).toMatch(/held by the daemon, off$/);
      expect(checks['camera street']!.detail).toMatch(/^320x240 JPEG, .* opened here$/);
      for (const c of report.checks) expect(c.fix === null).toBe(c.status === 'pass');

      const human = await run('doctor', '-c', good.file);
      expect(human.code).toBe(0);
      expect(human.stdout).toMatch(
        /^ {2}WARN {2}broker TLS +localhost's certificate verifies, but expires in 1 day .*\n +fix: ask for the broker certificate/m,
      );
      expect(human.stdout).toMatch(/\d+ passed, \d+ warnings?, 0 failed\n$/);
    } finally {
      await daemon.kill('SIGTERM');
    }
  });

  it('passes a good setup with the daemon stopped, logging in to the broker itself', async () => {
    const r = await run('doctor', '--json', '-c', good.file);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report.checks.filter((c) => c.status === 'fail')).toEqual([]);
    expect(r.code).toBe(0);
    const checks = byName(report);
    expect(checks.daemon).toMatchObject({ status: 'warn', fix: expect.stringContaining('systemctl start vigia') });
    expect(checks['broker login']!.detail).toMatch(/^logged in as anonymous \(MQTT 5, client id vigia-test-site-pole-0001\)/);
    expect(checks.gpio!.detail).toBe('3 simulated lines (hardware.backend: sim)');
  });

  it('fails a broken setup, naming each problem and its fix', async () => {
    const otherCa = makeTlsFiles();
    const dir = mkdtempSync(join(tmpdir(), 'vigia-broken-'));
    const setup = pole(otherCa, join(dir, 'no-such-camera.mp4'));
    const broken = writeDeviceConfig(
      broker.url,
      { ...setup, clock: { sync_source: 'file', sync_file: join(dir, 'never-synced') }, hardware: { ...setup.hardware, backend: 'chardev' } },
      dir,
    );
    const r = await run('doctor', '--json', '-c', broken.file, '--timeout', '2s');
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report.ok).toBe(false);
    const failed = Object.fromEntries(report.checks.filter((c) => c.status === 'fail').map((c) => [c.name, c]));
    expect(Object.keys(failed).sort()).toEqual(['broker TLS', 'broker login', 'camera street', 'clock', 'gpio']);
    expect(failed['broker TLS']!.detail).toMatch(/does not verify/);
    expect(failed['broker TLS']!.fix).toMatch(/mqtt\.tls\.ca must be the CA/);
    expect(failed.clock!.detail).toContain('never-synced');
    expect(failed.gpio!.detail).toMatch(/chardev is not available/);
    expect(failed.gpio!.fix).toContain('apt install gpiod');
    expect(failed['camera street']!.fix).toContain('ffmpeg -rtsp_transport tcp');
    const human = await run('doctor', '-c', broken.file, '--timeout', '2s');
    expect(human.code).toBe(1);
    expect(human.stdout).toMatch(/^ {2}FAIL {2}gpio .*\n {2,}fix: install the libgpiod tools/m);
  });

  it('reports an unreadable configuration as a failure, and bad usage with exit 2', async () => {
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(bad, 'device:\n  id: pole-1\n');
    const r = await run('doctor', '--json', '-c', bad);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(report).toMatchObject({ ok: false, daemon: null, checks: [{ name: 'config', status: 'fail' }] });
    expect(report.checks[0]!.detail).toContain(`${bad}:1:1 mqtt: required`);
    expect((await run('doctor', '--timeout', 'soon', '-c', good.file)).code).toBe(2);
    expect((await run('doctor', '--no-such-flag')).code).toBe(2);
  });
});

describe('vigia doctor on the SD card', () => {
  /** A /proc as a Pi shows it: the data directory on the card's second partition. */
  function fakeProc(options: string): string {
    const proc = mkdtempSync(join(tmpdir(), 'vigia-proc-'));
    mkdirSync(join(proc, 'self'));
    writeFileSync(
      join(proc, 'self/mountinfo'),
      [
        '22 1 179:2 / / rw,noatime shared:1 - ext4 /dev/mmcblk0p2 rw',
        `30 22 179:2 /var/lib/vigia ${tmp.replace(/ /g, '\\040')} ${options} shared:9 - ext4 /dev/mmcblk0p2 ${options},errors=remount-ro`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(proc, 'diskstats'), ' 179       2 mmcblk0p2 5133 1612 312386 6140 48211 51345 12582912 183560 0 81540 189700 0 0 0 0\n');
    writeFileSync(join(proc, 'uptime'), '86400.00 300000.00\n');
    return proc;
  }

  const config = () => {
    const { file } = writeDeviceConfig('mqtt://127.0.0.1:1', { paths: { data_dir: tmp } });
    return loadConfig(file);
  };

  it('fails a card the kernel remounted read-only, and says what it wrote', async () => {
    const report = await doctorReport(config(), { daemon: null, procRoot: fakeProc('ro,noatime'), timeoutMs: 1000 });
    const checks = byName(report);
    expect(checks.filesystem).toMatchObject({ status: 'fail', detail: expect.stringMatching(/^read-only: ext4 on \/dev\/mmcblk0p2/) });
    expect(checks.filesystem!.fix).toContain('fsck');
    // 12582912 sectors of 512 bytes in a day of uptime.
    expect(checks['card writes']).toMatchObject({ status: 'warn', detail: 'SD card mmcblk0p2: 6.0 GiB written since boot, about 6.0 GiB a day' });
    expect(formatDoctorReport(report)).toMatch(/FAIL {2}filesystem/);
  });

  it('passes a card mounted read-write', async () => {
    const checks = byName(await doctorReport(config(), { daemon: null, procRoot: fakeProc('rw,noatime'), timeoutMs: 1000 }));
    expect(checks.filesystem).toMatchObject({ status: 'pass', detail: `ext4 on /dev/mmcblk0p2, mounted at ${tmp} (rw,noatime,errors=remount-ro)` });
  });

  it('warns when the GPS may set the clock but no clock helper listens, and passes once one does', async () => {
    const { file } = writeDeviceConfig('mqtt://127.0.0.1:1', { paths: { data_dir: tmp }, hardware: { gps: { port: join(tmp, 'no-such-tty') } } });
    const socketPath = join(tmp, 'clock.sock');
    const opts = { daemon: null, procRoot: fakeProc('rw,noatime'), timeoutMs: 500, clockHelperSocket: socketPath };
    const before = byName(await doctorReport(loadConfig(file), opts));
    expect(before.gps!.status).toBe('fail');
    expect(before['gps clock']).toMatchObject({ status: 'warn', fix: expect.stringContaining('systemctl enable --now vigia-clock.socket') });

    const helper = createServer();
    await new Promise<void>((r) => helper.listen(socketPath, r));
    try {
      expect(byName(await doctorReport(loadConfig(file), opts))['gps clock']).toMatchObject({ status: 'pass', fix: null });
    } finally {
      await new Promise<void>((r) => helper.close(() => r()));
    }
    const { file: noSync } = writeDeviceConfig('mqtt://127.0.0.1:1', {
      paths: { data_dir: tmp },
      hardware: { gps: { port: join(tmp, 'no-such-tty'), sync_clock: false } },
    });
    expect(byName(await doctorReport(loadConfig(noSync), opts))['gps clock']).toBeUndefined();
  });
});

describe('vigia doctor on a community kit (daemon stopped)', () => {
  const kit = (rtl: Record<string, unknown>, remotes: Record<string, unknown> = {}) => {
    const { file } = writeDeviceConfig('mqtt://127.0.0.1:1', {
      device: { profile: 'community' },
      paths: { data_dir: tmp },
      hardware: { outputs: { siren: { line: 'GPIO24', kind: 'siren' } } },
      pole: { siren_output: 'siren' },
      radio: { receiver: 'rtl_433', rtl_433: rtl },
      remotes,
    });
    return loadConfig(file);
  };
  const opts = { daemon: null, timeoutMs: 5_000 };

  it('runs rtl_433 on the dongle for a moment: passes a dongle that streams, names the tuner', async () => {
    const dongle = await startRtlTcpDongle();
    try {
      const checks = byName(await doctorReport(kit({ device: `rtl_tcp:127.0.0.1:${dongle.port}` }, { a: { code: 'ev1527:a3f5c' } }), opts));
      expect(checks.radio).toMatchObject({
        status: 'pass',
        detail: expect.stringMatching(/^rtl_433 opened the dongle rtl_tcp:.* \(R820T tuner\) and listened 2 s$/),
      });
      expect(checks.remotes).toBeUndefined();
      expect(dongle.connections).toBe(1);
    } finally {
      await dongle.close();
    }
  });

  it('fails a missing dongle and a missing rtl_433 with what to do, and warns when no remote is registered', async () => {
    const none = byName(await doctorReport(kit({ device: '7' }), opts));
    expect(none.radio).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/could not use the dongle 7: .*No supported devices found/),
      fix: expect.stringContaining('plugdev'),
    });
    expect(none.remotes).toMatchObject({ status: 'warn', fix: expect.stringContaining('vigia remotes learn') });
    const missing = byName(await doctorReport(kit({ command: join(tmp, 'no-rtl_433') }), opts));
    expect(missing.radio).toMatchObject({ status: 'fail', detail: `${join(tmp, 'no-rtl_433')} is not installed`, fix: 'sudo apt install rtl-433' });
  });
});

describe('vigia doctor with personal alarm tags (daemon stopped)', () => {
  const kit = (tags: Record<string, unknown> = {}) => {
    const { file } = writeDeviceConfig('mqtt://127.0.0.1:1', {
      device: { profile: 'community' },
      paths: { data_dir: tmp },
      radio: { receiver: 'none' },
      hardware: { outputs: { siren: { line: 'GPIO24', kind: 'siren' } } },
      pole: { siren_output: 'siren' },
      personal: { enabled: true, format: { prefix: '0215f7826da64fa24e988024bc5b71e0893e' } },
      tags,
    });
    return loadConfig(file);
  };

  it('asks bluetoothd about the adapter: says when there is no bus, or no bluetoothd on it, and warns when no tag is registered', async () => {
    const noBus = byName(await doctorReport(kit(), { daemon: null, timeoutMs: 5_000, dbusAddress: `unix:path=${join(tmp, 'no-bus')}` }));
    expect(noBus.bluetooth).toMatchObject({
      status: 'fail',
      detail: expect.stringMatching(/^cannot reach the system D-Bus/),
      fix: expect.stringContaining('bluez'),
    });
    expect(noBus.tags).toMatchObject({ status: 'warn', fix: expect.stringContaining('vigia tags learn') });

    // A real bus without bluetoothd on it.
    const bus = execFileSync('dbus-daemon', ['--session', '--fork', '--print-address=1', '--print-pid=1', `--address=unix:path=${join(tmp, 'bus')}`], {
      encoding: 'utf8',
    });
    const [address, pid] = bus.trim().split('\n');
    try {
      const person = { name: 'Ana' };
      const noBluez = byName(await doctorReport(kit({ ana: { id: '002a', person } }), { daemon: null, timeoutMs: 5_000, dbusAddress: address! }));
      expect(noBluez.bluetooth).toMatchObject({ status: 'fail', detail: 'bluetoothd is not running (no org.bluez on the system bus)' });
      expect(noBluez.tags).toBeUndefined();
    } finally {
      process.kill(Number(pid), 'SIGTERM');
    }
  });
});
