// Runs in the hardware rig's VM after tests/hardware/ble-job.sh brought up bluetoothd and two
// virtual LE controllers (btvirt): the daemon's controller (dist/) scans on hci0 through BlueZ, and
// this runner makes hci1 advertise as personal alarm tags with btmgmt (the kernel's management
// interface, as a tag's firmware would fill its advertising data). Events go to a real Mosquitto
// on the host (QEMU user networking, $VIGIA_BLE_BROKER), which this runner also subscribes to.
// What happened goes to $VIGIA_RIG_OUT/results.json; the checks are in ble.test.ts.

import { execFile, execFileSync, spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';

const ROOT = resolve(import.meta.dirname, '../..');
const OUT = process.env.VIGIA_RIG_OUT ?? '/tmp/rig-out';
const BROKER = process.env.VIGIA_BLE_BROKER;
const PRESSES = Number(process.env.VIGIA_BLE_PRESSES ?? 10);
/** The fleet's tag UUID (iBeacon layout, as personal.format reads it by default). */
const UUID = 'f7826da64fa24e988024bc5b71e0893e';
const OTHER_UUID = '00112233445566778899aabbccddeeff';

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const progress = (msg) => process.stdout.write(`[vm ${round(now() / 1000)}] ble: ${msg}\n`);
const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);

/** Advertising data: flags, then an iBeacon frame (Apple 0x004c, 02 15, UUID, major, minor, tx power). */
function ibeacon(major, pressed, counter, uuid = UUID) {
  const minor = (pressed ? 0x8000 : 0) | (counter & 0xff);
  const hex = (n) => n.toString(16).padStart(4, '0');
  return `0201061aff4c000215${uuid}${hex(major)}${hex(minor)}c5`;
}

const execBtmgmt = (args) =>
  new Promise((resolvePromise, reject) => {
    execFile('btmgmt', ['--index', '1', ...args], { timeout: 10_000 }, (err) => (err ? reject(err) : resolvePromise()));
  });

/**
 * hci1 as a tag's radio. btvirt's virtual radio delivers one advertising report each time
 * advertising is enabled, never on its own, so a tag's repeated advert is made by adding the
 * instance again (each add-adv re-enables advertising), as often as btmgmt manages (~0.3-0.5 s
 * under emulation). Async throughout: the daemon runs in this process and must not be blocked.
 * `fixedAddress`: the controller's public address (add-adv -c), like a tag with a fixed address;
 * otherwise each enable draws a new random address, like a tag with address privacy.
 */
class Radio {
  #data = null;
  #fixed = true;
  #pump = null;

  /** Starts advertising `data`, repeated until the next call; resolves once the first advert is on. */
  async advertise(data, { fixedAddress = true } = {}) {
    this.#data = data;
    this.#fixed = fixedAddress;
    await this.#add();
    this.#pump ??= (async () => {
      while (this.#data !== null) {
        await sleep(150);
        if (this.#data !== null) await this.#add().catch(() => undefined);
      }
    })();
  }

  async silence() {
    this.#data = null;
    await this.#pump;
    this.#pump = null;
    await execBtmgmt(['rm-adv', '1']).catch(() => undefined); // nothing advertised: fine
  }

  #add() {
    return execBtmgmt(['add-adv', ...(this.#fixed ? ['-c'] : []), '-d', this.#data, '1']);
  }
}

async function until(what, fn, timeoutMs = 20_000) {
  const started = now();
  for (;;) {
    const value = fn();
    if (value) return value;
    if (now() - started > timeoutMs) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await sleep(20);
  }
}

async function main() {
  const results = { errors: [], presses: [] };
  const [{ Controller }, { configSchema, applyProfileDefaults }] = await Promise.all([dist('controller.js'), dist('config/index.js')]);
  const mqtt = createRequire(join(ROOT, 'package.json'))('mqtt');

  // The host's broker, as the call center sees it: every alarm.personal that arrives, with when.
  const arrived = [];
  const watcher = await mqtt.connectAsync(BROKER, { clientId: 'ble-rig-watch', reconnectPeriod: 500 });
  await watcher.subscribeAsync('vigia/rig/#', { qos: 1 });
  watcher.on('message', (_topic, payload) => {
    const event = JSON.parse(payload.toString());
    if (event.type === 'alarm.personal') arrived.push({ at: now(), event });
  });

  const dir = '/tmp/vigia-ble';
  rmSync(dir, { recursive: true, force: true });
  const config = configSchema.parse(
    applyProfileDefaults({
      device: { id: 'kit-ble', site: 'rig', profile: 'community', location: { lat: -29.9045, lon: -71.2489 } },
      paths: { data_dir: join(dir, 'data'), runtime_dir: join(dir, 'run') },
      log: { level: 'warn' },
      clock: { sync_source: 'assume-synced' },
      mqtt: { url: BROKER, reconnect: { min_delay: '500ms', max_delay: '2s' } },
      telemetry: { interval: '1h' },
      hardware: { backend: 'sim', outputs: { siren: { line: 'GPIO24', kind: 'siren' }, strobe: { line: 'GPIO23', kind: 'strobe' } } },
      pole: { siren_output: 'siren', strobe_output: 'strobe', siren_for: '5s', strobe_for: '5s' },
      radio: { receiver: 'none' },
      personal: { enabled: true, adapter: 'hci0', format: { prefix: `0215${UUID}` }, press_gap: '2s' },
      tags: {
        'ana-perez': { id: '002a', person: { name: 'Ana Pérez', phone: '+56 9 8765 4321', notes: 'Colegio San Joaquín' } },
        'luis-diaz': { id: '002b', person: { name: 'Luis Díaz' } },
      },
    }),
  );
  const controller = new Controller(config);
  const accepted = [];
  controller.bus.on('event.accepted', (event) => {
    if (event.type === 'alarm.personal') accepted.push({ at: now(), event });
  });
  const tags = () => controller.status()['field-io'].tags;
  await controller.start();
  const radio = new Radio();
  try {
    await until('scanning on hci0', () => tags()?.scanner.scanning);
    results.scannerAtStart = tags().scanner;
    progress('scanning');

    /** One press: the tag advertises its flag for `holdMs` (repeated), then goes back to idle adverts. */
    const press = async (major, counter, { holdMs = 1500, uuid = UUID, expectAlarm = true, fixedAddress = true } = {}) => {
      const before = accepted.length;
      const oursBefore = tags().ours;
      const t = now();
      await radio.advertise(ibeacon(major, true, counter, uuid), { fixedAddress });
      let alarm = null;
      if (expectAlarm) {
        alarm = await until(`alarm.personal for tag ${major.toString(16)}`, () => accepted[before], 20_000);
        await until('the alarm at the broker', () => arrived.find((a) => a.event.id === alarm.event.id), 20_000);
      }
      const left = holdMs - (now() - t);
      if (left > 0) await sleep(left);
      await radio.advertise(ibeacon(major, false, counter, uuid), { fixedAddress });
      const atBroker = alarm ? arrived.find((a) => a.event.id === alarm.event.id) : null;
      return {
        major,
        counter,
        toAcceptedMs: alarm ? round(alarm.at - t) : null,
        toBrokerMs: atBroker ? round(atBroker.at - t) : null,
        alarmsDuringPress: accepted.length - before,
        advertsOfTags: tags().ours - oursBefore,
      };
    };

    // 1. A registered tag, pressed for 3 s, its advert repeated all along: one alarm.
    results.first = await press(0x2a, 1, { holdMs: 3000 });
    await sleep(1000);
    results.first.alarmsAfter = accepted.length;
    results.firstEvent = accepted[0]?.event;
    progress(
      `first press: ${results.first.advertsOfTags} adverts, alarm stored after ${results.first.toAcceptedMs} ms, at the broker after ${results.first.toBrokerMs} ms`,
    );

    // 2. An unregistered tag of the fleet, and a registered id under another UUID: no alarm.
    const beforeOthers = accepted.length;
    await press(0x0bad, 1, { holdMs: 2500, expectAlarm: false });
    await press(0x2a, 2, { holdMs: 2500, uuid: OTHER_UUID, expectAlarm: false });
    await sleep(1500);
    results.others = { alarms: accepted.length - beforeOthers, status: tags() };
    progress(`unregistered tag and other beacon: ${results.others.alarms} alarms`);

    // 3. The same press again, byte for byte (a tag whose counter did not move), after the gap.
    await radio.silence();
    await sleep(2500);
    results.identicalAgain = await press(0x2a, 1, { holdMs: 1000 });
    progress(`identical press again: alarm after ${results.identicalAgain.toAcceptedMs} ms`);

    // 4. A tag with address privacy: a new random address at every advert, one press all the same.
    await radio.silence();
    await sleep(2500);
    const devicesBefore = tags().scanner.adverts;
    results.randomAddress = await press(0x2b, 5, { holdMs: 3000, fixedAddress: false });
    results.randomAddress.scannerAdverts = tags().scanner.adverts - devicesBefore;
    await sleep(1000);
    results.randomAddress.alarmsAfter = accepted.length;
    progress(`random addresses: ${results.randomAddress.advertsOfTags} adverts, ${results.randomAddress.alarmsDuringPress} alarm`);

    // 5. bluetoothd restarts: the scanner comes back by itself, and the next press is an alarm.
    await radio.silence();
    const restartsBefore = tags().scanner.restarts;
    execFileSync('sh', ['-c', 'kill $(cat /tmp/bluetoothd.pid)']);
    await sleep(1000);
    const child = spawn('/usr/libexec/bluetooth/bluetoothd', ['-n'], { stdio: 'ignore', detached: true });
    writeFileSync('/tmp/bluetoothd.pid', String(child.pid));
    child.unref();
    await until('scanning again after bluetoothd restarted', () => tags().scanner.scanning && tags().scanner.restarts > restartsBefore, 60_000);
    results.afterRestart = { scanner: tags().scanner, press: await press(0x2b, 6, { holdMs: 1000 }) };
    progress(`after a bluetoothd restart: alarm after ${results.afterRestart.press.toAcceptedMs} ms`);

    // 6. Latency: press to alarm stored and to the broker, one press per counter value.
    for (let i = 0; i < PRESSES; i++) {
      results.presses.push(await press(0x2a, 10 + i, { holdMs: 300 }));
      await sleep(300);
    }
    progress(`latency over ${PRESSES} presses done`);
    results.status = tags();
  } catch (err) {
    results.errors.push(err.stack ?? String(err));
    progress(`FAILED: ${err.message}`);
  } finally {
    await radio.silence();
    await controller.stop();
    await watcher.endAsync();
  }
  results.acceptedTotal = accepted.length;
  results.arrivedIds = arrived.map((a) => a.event.id);
  results.acceptedIds = accepted.map((a) => a.event.id);
  writeFileSync(join(OUT, 'results.json'), JSON.stringify(results, null, 2));
  process.exit(results.errors.length ? 1 : 0);
}

main().catch((err) => {
  writeFileSync(join(OUT, 'results.json'), JSON.stringify({ errors: [err.stack ?? String(err)] }));
  process.exit(1);
});
