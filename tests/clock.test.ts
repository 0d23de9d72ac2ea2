import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { ClockSync } from '../src/core/clock-sync.js';
import { readCpuTemperature } from '../src/gateway/telemetry.js';

describe('clock sync', () => {
  it('becomes synced when the flag file appears and corrects times recorded before', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-clock-'));
    const flag = join(dir, 'synchronized');
    const clock = new ManualClock(Date.UTC(1970, 0, 1), 5_000); // booted with no RTC
    const sync = new ClockSync(clock, { source: 'file', syncFile: flag, pollIntervalMs: 10 });
    const seen: string[] = [];
    sync.on('synced', (s) => seen.push(s));
    sync.start();
    await new Promise((r) => setTimeout(r, 40));
    expect(sync.synced()).toBe(false);
    const eventMono = clock.monoNow(); // an event happens now, while the wall clock says 1970
    clock.advance(2_000);
    clock.setWall(Date.UTC(2026, 10, 22, 12, 0, 0)); // NTP steps the clock
    writeFileSync(flag, '');
    await new Promise((r) => setTimeout(r, 60));
    expect(sync.synced()).toBe(true);
    expect(seen).toEqual(['file']);
    expect(sync.correctedWall(eventMono)).toBe(Date.UTC(2026, 10, 22, 12, 0, 0) - 2_000);
    sync.stop();
  });

  it('auto asks timedatectl when there is no flag file; never waits for markSynced', async () => {
    const clock = new ManualClock();
    let answer = false;
    const auto = new ClockSync(clock, { source: 'auto', syncFile: '/nonexistent/flag', pollIntervalMs: 10, probeTimedatectl: async () => answer });
    auto.start();
    await new Promise((r) => setTimeout(r, 30));
    expect(auto.synced()).toBe(false);
    answer = true;
    await new Promise((r) => setTimeout(r, 30));
    expect(auto.synced()).toBe(true);
    const never = new ClockSync(clock, { source: 'never', syncFile: '/nonexistent/flag', pollIntervalMs: 10, probeTimedatectl: async () => true });
    never.start();
    await new Promise((r) => setTimeout(r, 30));
    expect(never.synced()).toBe(false);
    never.markSynced('gps');
    expect(never.source()).toBe('gps');
  });
});

describe('CPU temperature', () => {
  const zone = (root: string, name: string, type: string, temp: string) => {
    mkdirSync(join(root, 'class/thermal', name), { recursive: true });
    writeFileSync(join(root, 'class/thermal', name, 'type'), `${type}\n`);
    writeFileSync(join(root, 'class/thermal', name, 'temp'), `${temp}\n`);
  };

  it('reads the CPU zone of a Raspberry Pi thermal tree', () => {
    const root = mkdtempSync(join(tmpdir(), 'vigia-sys-'));
    zone(root, 'thermal_zone0', 'pmic-thermal', '41000');
    zone(root, 'thermal_zone1', 'cpu-thermal', '52617');
    expect(readCpuTemperature(root)).toBe(52.6);
  });

  it('falls back to the first zone, and is null without thermal zones', () => {
    const root = mkdtempSync(join(tmpdir(), 'vigia-sys-'));
    zone(root, 'thermal_zone0', 'acpitz', '38000');
    expect(readCpuTemperature(root)).toBe(38);
    expect(readCpuTemperature(mkdtempSync(join(tmpdir(), 'vigia-empty-')))).toBeNull();
  });
});
