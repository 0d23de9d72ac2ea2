import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kernelModules, prepareRig, runInVm } from '../../scripts/hardware-rig.mjs';
import { type Broker, startMosquitto } from '../helpers/mosquitto.js';
import { REPO_ROOT } from '../helpers/repo.js';

// Personal alarm tags over Bluetooth LE, for real: the rig's kernel (Debian 6.1) with its
// bluetooth and hci_vhci modules, Debian's bluetoothd on a system D-Bus, and two virtual LE
// controllers on one virtual radio (btvirt). The daemon scans on hci0 through BlueZ (dbus-native);
// hci1 advertises iBeacon frames as the tags (btmgmt add-adv, re-added to repeat them: btvirt's
// radio delivers one report per enable); alarms go to a Mosquitto on this machine. tests/hardware/ble-job.sh brings the stack up, ble-runner.mjs drives it and writes
// results.json; the checks are here. Latencies are printed, not asserted (QEMU's TCG emulation).

/** What the VM runner wrote (plain JSON). */
type Json = any;

let results: Json;
let broker: Broker;
const outDir = join(tmpdir(), 'vigia-ble-last-run');

beforeAll(async () => {
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const rig = prepareRig();
  const modules = kernelModules(rig);
  broker = await startMosquitto();
  let partial = '';
  const run = await runInVm(rig, ['sh', 'tests/hardware/ble-job.sh'], {
    cwd: REPO_ROOT,
    outDir,
    net: true,
    timeoutMs: 15 * 60_000,
    env: { VIGIA_BLE_MODULES: modules, VIGIA_BLE_BROKER: `mqtt://10.0.2.2:${broker.port}` },
    onConsole: (text) => {
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (/^\[vm [\d.]+\] ble:/.test(line)) process.stderr.write(`${line}\n`);
    },
  });
  results = JSON.parse(readFileSync(join(outDir, 'results.json'), 'utf8'));
  if (run.status !== 0) throw new Error(`the BLE run failed (exit ${run.status}): ${results.errors?.join('\n')}\nconsole: ${run.consoleFile}`);
});

afterAll(async () => {
  await broker?.stop();
  if (results?.presses?.length) {
    const ms = (k: string) =>
      results.presses
        .map((p: Json) => p[k])
        .sort((a: number, b: number) => a - b)
        .map((x: number) => Math.round(x));
    process.stdout.write(
      `BLE tag press (advertising starts) to alarm.personal stored: ${ms('toAcceptedMs').join(', ')} ms; at the broker: ${ms('toBrokerMs').join(', ')} ms (TCG)\n`,
    );
  }
  process.stdout.write(`VM console and results: ${outDir}\n`);
});

describe('personal alarm tags through BlueZ on a real kernel', () => {
  it('a registered tag held for 3 s raises one alarm.personal with the person, the location and the tag, and it reaches the broker', () => {
    expect(results.errors).toEqual([]);
    // The tag's advert was reported again and again while held (btvirt: once per re-enable), one alarm.
    expect(results.first.advertsOfTags).toBeGreaterThan(2);
    expect(results.first.alarmsDuringPress).toBe(1);
    expect(results.first.alarmsAfter).toBe(1);
    expect(results.firstEvent).toMatchObject({
      type: 'alarm.personal',
      priority: 'alarm',
      payload: {
        tag: 'ana-perez',
        tag_id: '002a',
        person: { name: 'Ana Pérez', phone: '+56 9 8765 4321', notes: 'Colegio San Joaquín', address: null },
        adapter: 'hci0',
        location: { lat: -29.9045, lon: -71.2489 },
        press: 1,
        alarm_id: null,
      },
    });
    // btvirt's controllers give addresses 00:AA:01:xx:00:0y; the virtual radio has no RSSI (127: none).
    expect(results.firstEvent.payload.address).toMatch(/^[0-9A-F]{2}(:[0-9A-F]{2}){5}$/);
    expect(results.firstEvent.payload.rssi_dbm).toBeNull();
    expect(results.first.toBrokerMs).toBeGreaterThan(0);
  });

  it('an unregistered tag and a beacon of another fleet raise nothing; the unregistered tag is kept for learning', () => {
    expect(results.others.alarms).toBe(0);
    expect(results.others.status).toMatchObject({ unknown_tags: 1, unknown_presses: 1 });
  });

  it('a press identical byte for byte to the last one, after the gap, is a new alarm', () => {
    expect(results.identicalAgain.alarmsDuringPress).toBe(1);
  });

  it('a tag with address privacy (a new random address at every advert) is one alarm per press, found by its id', () => {
    expect(results.randomAddress.advertsOfTags).toBeGreaterThan(1);
    expect(results.randomAddress.alarmsDuringPress).toBe(1);
    expect(results.randomAddress.alarmsAfter).toBe(results.first.alarmsAfter + 2);
  });

  it('scanning comes back by itself after bluetoothd restarts', () => {
    expect(results.afterRestart.scanner).toMatchObject({ scanning: true });
    expect(results.afterRestart.scanner.restarts).toBeGreaterThanOrEqual(1);
    expect(results.afterRestart.press.alarmsDuringPress).toBe(1);
  });

  it('every press of the latency run is one alarm, and every alarm stored reached the broker', () => {
    expect(results.presses).toHaveLength(10);
    for (const p of results.presses) expect(p.alarmsDuringPress).toBe(1);
    expect(new Set(results.arrivedIds)).toEqual(new Set(results.acceptedIds));
    expect(results.acceptedTotal).toBe(14);
  });
});
