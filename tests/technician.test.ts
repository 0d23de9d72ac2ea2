import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import type { EdgeReport } from '../src/technician/gpio-watch.js';
import { watchLines } from '../src/technician/gpio-watch.js';
import { testHere, testPattern } from '../src/technician/output-test.js';
import { CLI, DaemonProcess, runCli, writeDeviceConfig } from './helpers/daemon.js';
import { readLines, waitUntil, writeFakeTools } from './helpers/fake-gpio.js';
import { GPIODETECT_PI4, V1_GPIOINFO_PI4 } from './helpers/libgpiod-samples.js';
import { type Gate, startGate } from './helpers/gate.js';
import { type Broker, startMosquitto } from './helpers/mosquitto.js';
import { Subscriber } from './helpers/subscriber.js';

const tmp = mkdtempSync(join(tmpdir(), 'vigia-technician-'));
const run = (...args: string[]) => runCli(args);

async function until(cond: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A long-running `vigia ...` (gpio watch): its output so far, and a way to end it as Ctrl-C would. */
function start(...args: string[]) {
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (b: Buffer) => (out.stdout += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out.stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { out, exited, interrupt: () => child.kill('SIGINT') };
}

/** The pole: a panic button, a strobe and its LED, a barrier relay; a stream camera read by the daemon (a looping video stands in for it). */
function poleConfig(brokerUrl: string, dir = mkdtempSync(join(tmpdir(), 'vigia-pole-'))) {
  const camera = join(tmp, 'street.mp4');
  execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc=size=320x240:rate=10', '-t', '2', '-c:v', 'mpeg4', camera]);
  return writeDeviceConfig(
    brokerUrl,
    {
      hardware: {
        backend: 'sim',
        inputs: { panic: { line: 'GPIO17', kind: 'panic' } },
        outputs: { strobe: { line: 'GPIO23', kind: 'strobe' }, button_led: { line: 'GPIO25', kind: 'led' }, barrier: { line: 'GPIO5', kind: 'relay' } },
      },
      pole: { enabled: true, led_output: 'button_led', strobe_output: 'strobe' },
      anpr: { enabled: true, cameras: [{ id: 'street', kind: 'stream', url: camera, loop: true, fps: 2 }], motion: { enabled: false } },
    },
    dir,
  );
}

describe('technician commands with the daemon running', () => {
  let broker: Broker;
  // The daemon reaches the broker through a gate, so a test can cut its link while the subscriber stays on.
  let gate: Gate;
  let daemon: DaemonProcess;
  let cfg: ReturnType<typeof writeDeviceConfig>;
  const outputs = () => daemon.request<Record<string, { value: boolean; pattern: { mode: string } }>>('sim.outputs');

  beforeAll(async () => {
    broker = await startMosquitto();
    gate = await startGate(broker.port);
    cfg = poleConfig(`mqtt://127.0.0.1:${gate.port}`);
    daemon = new DaemonProcess(cfg.file, cfg.socket);
    await daemon.start(60_000);
  });
  afterAll(async () => {
    await daemon?.kill('SIGTERM');
    await gate?.stop();
    await broker?.stop();
  });

  it('gpio watch prints each edge the daemon sees until Ctrl-C', async () => {
    const watch = start('gpio', 'watch', '--json', '-c', cfg.file, 'panic');
    await waitUntil(() => watch.out.stderr.includes('watching panic (through the daemon)'), 'the watch to start', 10_000);
    await run('sim', 'press', '-c', cfg.file);
    await run('sim', 'release', '-c', cfg.file);
    const edges = () =>
      watch.out.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as EdgeReport);
    await waitUntil(() => edges().length === 2, 'two edges', 10_000);
    expect(edges()).toMatchObject([
      { input: 'panic', line: 'GPIO17', value: true },
      { input: 'panic', line: 'GPIO17', value: false },
    ]);
    expect(Date.parse(edges()[0]!.time)).not.toBeNaN();
    watch.interrupt();
    expect(await watch.exited).toBe(0);

    const unknown = await run('gpio', 'watch', '-c', cfg.file, 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no input named nope (configured: panic)');
  });

  it('outputs test plays a pattern through the daemon, and not on the alarm strobe during an alarm', async () => {
    const r = await run('outputs', 'test', 'barrier', '--for', '300ms', '-c', cfg.file);
    expect(r).toMatchObject({ code: 0, stdout: 'barrier: {"mode":"on","for_ms":300} through the daemon\n' });
    expect((await outputs()).barrier).toMatchObject({ value: true, pattern: { mode: 'on' } });
    await until(async () => (await outputs()).barrier!.value === false, 'the barrier to go off when the test ends');

    expect((await run('outputs', 'test', 'barrier', '--pattern', '{"mode":"wobble"}', '-c', cfg.file)).code).toBe(2);
    expect((await run('outputs', 'test', 'horn', '-c', cfg.file)).code).toBe(2);

    // A press raises the pole's alarm: its strobe is the alarm's until the call center clears it.
    await run('sim', 'press', '-c', cfg.file);
    await run('sim', 'release', '-c', cfg.file);
    const refused = await run('outputs', 'test', 'strobe', '-c', cfg.file);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('strobe belongs to the panic alarm until the call center clears it');
  });

  it("camera snapshot saves a frame from the daemon's own source", async () => {
    const out = join(tmp, 'street.jpg');
    const r = await run('camera', 'snapshot', 'street', out, '-c', cfg.file);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^.*street\.jpg: \d+ bytes, from the daemon's source/);
    expect(await sharp(readFileSync(out)).metadata()).toMatchObject({ format: 'jpeg', width: 320, height: 240 });
    const unknown = await run('camera', 'snapshot', 'gate', out, '-c', cfg.file);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('no camera "gate" in anpr.cameras (configured: street)');
  });

  it('outbox list shows what waits for the broker; purge deletes it, asks first, and reports it evicted', async () => {
    const sub = new Subscriber(broker.url);
    await sub.connect();
    try {
      await gate.close();
      await daemon.request('sim.burst', { count: 30, type: 'sim.backlog', priority: 'read' });
      const list = await run('outbox', 'list', '--json', '-p', 'read', '-c', cfg.file);
      const events = list.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { type: string; priority: string; seq: number });
      expect(events.filter((e) => e.type === 'sim.backlog')).toHaveLength(30);
      expect(events.every((e) => e.priority === 'read')).toBe(true);
      expect((await run('outbox', 'list', '-n', '5', '-c', cfg.file)).stdout.trim().split('\n')).toHaveLength(5);

      const noTty = await run('outbox', 'purge', '-p', 'read', '-c', cfg.file);
      expect(noTty.code).toBe(2);
      expect(noTty.stderr).toContain('refusing to purge without a terminal to ask on: add --yes');
      expect((await run('outbox', 'purge', '-p', 'alarm', '--yes', '-c', cfg.file)).code).toBe(2);

      const purged = await run('outbox', 'purge', '-p', 'read', '--yes', '-c', cfg.file);
      expect(purged).toMatchObject({ code: 0, stdout: `purged ${events.length} read events\n` });
      expect((await run('outbox', 'list', '-p', 'read', '-c', cfg.file)).stdout).toBe('');

      const retry = await run('outbox', 'retry', '-c', cfg.file);
      expect(retry.stdout).toMatch(/^0 refused events retried now/);
      gate.open();
      await sub.waitFor(() => sub.events.some((e) => e.event.type === 'system.outbox_evicted'), 30_000, 'the eviction report');
      const report = sub.events.find((e) => e.event.type === 'system.outbox_evicted')!.event;
      expect(report.payload).toEqual({ evicted: { read: { purged: events.length } } });
      expect(sub.events.some((e) => e.event.type === 'sim.backlog')).toBe(false);
    } finally {
      await sub.close();
    }
  });
});

describe('technician commands with the daemon stopped', () => {
  it('outbox list and purge open the outbox; the purge is reported when the daemon starts', async () => {
    const broker = await startMosquitto();
    const sub = new Subscriber(broker.url);
    await sub.connect();
    const cfg = writeDeviceConfig(broker.url);
    const daemon = new DaemonProcess(cfg.file, cfg.socket);
    try {
      expect((await run('outbox', 'list', '-c', cfg.file)).stderr).toContain('no outbox at');
      await broker.kill();
      await daemon.start();
      await daemon.request('sim.burst', { count: 12, type: 'sim.stopped', priority: 'telemetry' });
      await daemon.kill('SIGTERM');

      const listed = await run('outbox', 'list', '-p', 'telemetry', '-c', cfg.file);
      expect(listed.code).toBe(0);
      expect(listed.stdout.match(/ sim\.stopped /g)).toHaveLength(12);
      const purged = await run('outbox', 'purge', '-p', 'telemetry', '-y', '-c', cfg.file);
      expect(purged.stdout).toMatch(/^purged (1[2-9]|[2-9]\d) telemetry events \(reported when the daemon starts\)\n$/);
      const count = Number(/purged (\d+)/.exec(purged.stdout)![1]);
      expect((await run('outbox', 'retry', '-c', cfg.file)).code).toBe(1);

      await broker.restart();
      // Subscribed again before the daemon is back: the report is not kept for a subscriber that is not there.
      await sub.resubscribed();
      await daemon.start();
      await sub.waitFor(() => sub.events.some((e) => e.event.type === 'system.outbox_evicted'), 30_000, 'the eviction report');
      expect(sub.events.find((e) => e.event.type === 'system.outbox_evicted')!.event.payload).toEqual({ evicted: { telemetry: { purged: count } } });
    } finally {
      await daemon.kill('SIGTERM');
      await sub.close();
      await broker.stop();
    }
  });

  describe('on the GPIO lines themselves (libgpiod v1 tools)', () => {
    const tools = join(tmp, 'bin');
    const dev = join(tmp, 'dev');
    const gpio = { toolsDir: tools, devDir: dev };
    const config = () =>
      loadConfig(
        writeDeviceConfig('mqtt://127.0.0.1:1', {
          hardware: { backend: 'chardev', inputs: { panic: { line: 'GPIO17', kind: 'panic' } }, outputs: { strobe: { line: 'GPIO23', kind: 'strobe' } } },
        }).file,
      );

    beforeAll(() => {
      mkdirSync(dev, { recursive: true });
      writeFileSync(join(dev, 'gpiochip0'), '');
    });

    it('gpio watch reports the edges gpiomon sees, with their line', async () => {
      // The button is pressed (falling edge: active low) once gpiomon holds the line.
      writeFakeTools(tools, {
        version: '1.6.3',
        gpiodetect: GPIODETECT_PI4,
        gpioinfo: V1_GPIOINFO_PI4,
        gpioget: 'echo 1',
        gpiomon: ['hold "$@"', 'echo "17 0 5000 250000000"', 'exec sleep 60'].join('\n'),
      });
      const edges: EdgeReport[] = [];
      const watch = await watchLines(config(), ['panic'], (e) => edges.push(e), gpio);
      await waitUntil(() => edges.length === 1, 'the press');
      expect(edges[0]).toMatchObject({ input: 'panic', line: 'pinctrl-bcm2711:17 (GPIO17)', value: true });
      expect(readLines(tools, 'gpiomon.args')[0]).toContain('gpiochip0 17');
      await watch.stop();
    });

    it('outputs test drives the line for the time asked, then leaves it off', async () => {
      writeFakeTools(tools, { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4 });
      const cutoff = await testHere(config(), 'strobe', testPattern('on', 100), new AbortController().signal, gpio);
      expect(cutoff).toBe(15 * 60_000);
      expect(readLines(tools, 'gpioset.args')).toEqual(['--mode=signal gpiochip0 23=0', '--mode=signal gpiochip0 23=1', '--mode=signal gpiochip0 23=0']);
    });
  });
});
