import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DaemonProcess, runCli, writeDeviceConfig } from './helpers/daemon.js';
import { startMosquitto, type Broker } from './helpers/mosquitto.js';

const run = (...args: string[]) => runCli(args);

describe('vigia command line', () => {
  let broker: Broker;
  let daemon: DaemonProcess;
  let cfg: ReturnType<typeof writeDeviceConfig>;

  beforeAll(async () => {
    broker = await startMosquitto();
    cfg = writeDeviceConfig(broker.url);
    daemon = new DaemonProcess(cfg.file, cfg.socket);
    await daemon.start();
  });
  afterAll(async () => {
    await daemon?.kill('SIGTERM');
    await broker?.stop();
  });

  it('config check: 0 for a good file, 78 with FILE:LINE:COL lines for a bad one', async () => {
    const ok = await run('config', 'check', cfg.file);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('ok (profile pole, device test-site/pole-0001)');
    const bad = join(mkdtempSync(join(tmpdir(), 'vigia-cli-')), 'bad.yaml');
    writeFileSync(bad, 'device:\n  id: pole-1\n  site: x\n  profile: tower\nmqtt:\n  url: mqtt://h:1883\n  inflight_windw: 3\n');
    const r = await run('config', 'check', bad);
    expect(r.code).toBe(78);
    expect(r.stderr.trim().split('\n')).toEqual([
      `${bad}:4:12 device.profile: expected one of pole, gantry, patrol, community`,
      `${bad}:7:3 mqtt.inflight_windw: unknown field (did you mean "inflight_window"?)`,
    ]);
  });

  it('run refuses a bad config with exit 78 and the problem', async () => {
    const bad = join(mkdtempSync(join(tmpdir(), 'vigia-cli-')), 'bad.yaml');
    writeFileSync(bad, 'device:\n  id: pole-1\n  site: x\n  profile: pole\n');
    const r = await run('run', '--config', bad);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`${bad}:1:1 mqtt: required`);
  });

  it('status shows link, outbox per priority, clock and uptime; --json is machine-readable', async () => {
    await run('sim', 'burst', '-s', cfg.socket, '-n', '50', '-t', 'sim.cli', '-p', 'hit');
    const human = await run('status', '-c', cfg.file);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^link\s+online/m);
    expect(human.stdout).toMatch(/^clock\s+synced/m);
    expect(human.stdout).toMatch(/^\s+alarm\s+\d+ events/m);
    expect(human.stdout).toContain('sim.cli=50');
    const json = JSON.parse((await run('status', '--json', '-s', cfg.socket)).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ device: 'pole-0001', link: { state: 'online' }, clock: { synced: true }, events: { accepted_by_type: { 'sim.cli': 50 } } });
    expect(json).toHaveProperty('uptime_s');
    expect(json).toHaveProperty('outbox.oldest_unsent_age_s');
  });

  it('sim burst reports what was accepted, and rejects bad arguments clearly', async () => {
    const r = await run('sim', 'burst', '-s', cfg.socket, '--count', '500', '--type', 'sim.x', '--priority', 'read');
    expect(r.stdout).toMatch(/^accepted 500 events \(seq \d+\.\.\d+\)/);
    const ids = await run('sim', 'burst', '-s', cfg.socket, '-n', '3', '--ids');
    expect(ids.stdout.trim().split('\n')).toHaveLength(3);
    const badPriority = await run('sim', 'burst', '-s', cfg.socket, '-n', '1', '-p', 'urgent');
    expect(badPriority.code).not.toBe(0);
    expect(badPriority.stderr).toContain('expected alarm, hit, read or telemetry');
    const badType = await run('sim', 'event', '-s', cfg.socket, '-t', 'Bad Type!');
    expect(badType.code).toBe(1);
    expect(badType.stderr).toContain('invalid event type');
  });

  it('says clearly when no daemon is running', async () => {
    const r = await run('status', '-s', join(tmpdir(), 'no-such-vigia.sock'));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the daemon is not running');
  });
});
