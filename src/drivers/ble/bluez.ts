import { EventEmitter } from 'node:events';
import dbus from '@homebridge/dbus-native';
import { Backoff, type BackoffOptions } from '../../core/backoff.js';
import type { Clock } from '../../core/clock.js';
import { systemTimers, type TimerHandle, type Timers } from '../../core/timers.js';
import type { Advert, AdvertScanner, ScannerStats } from './types.js';

/**
 * Bluetooth LE advertisements through BlueZ (`bluetoothd`, Debian package `bluez`), over its
 * documented D-Bus API (org.bluez.Adapter1, org.bluez.Device1, the object manager at `/`), with
 * dbus-native (pure JavaScript; homebridge's maintained fork).
 *
 * Scanning: `SetDiscoveryFilter({Transport: le, DuplicateData: true})`, then `StartDiscovery`.
 * BlueZ keeps one object per advertiser (`/org/bluez/hci0/dev_AA_BB_...`) and reports an
 * advertisement as that object appearing (`InterfacesAdded`) or its `ManufacturerData` or `RSSI`
 * changing (`PropertiesChanged`). With `DuplicateData` it emits `PropertiesChanged` for every
 * advertisement report, identical or not (measured on the rig's kernel: one signal per report,
 * also after the advertiser was silent), so repeats of a press reach the feature.
 *
 * At start, advertisers BlueZ already knew from an earlier scan are removed (unless paired,
 * trusted or connected): their properties are what they said then, not now. Scanning restarts,
 * with backoff, when bluetoothd restarts (its bus name changes owner), when the adapter stops
 * discovering (powered off, reset), and when the bus connection fails. The adapter is powered on
 * if it is off.
 */

const BLUEZ = 'org.bluez';
const DBUS = 'org.freedesktop.DBus';
const PROPS = 'org.freedesktop.DBus.Properties';
const OBJECT_MANAGER = 'org.freedesktop.DBus.ObjectManager';
const ADAPTER = 'org.bluez.Adapter1';
const DEVICE = 'org.bluez.Device1';

export interface BluezLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface BluezScannerOptions {
  clock: Clock;
  /** The adapter (default `hci0`). */
  adapter?: string;
  /** A D-Bus address instead of the system bus (`unix:path=...`), for a private bus. */
  busAddress?: string;
  timers?: Timers;
  logger?: BluezLogger;
  backoff?: BackoffOptions;
  random?: () => number;
}

interface DeviceState {
  address: string;
  rssiDbm: number | null;
  manufacturerData: Map<number, Uint8Array>;
}

/** A D-Bus connection as dbus-native gives it (its typings cover less than it does). */
interface Bus {
  connection: NodeJS.EventEmitter & { end(): void };
  invoke(msg: DbusMessage, callback: (err: { name: string; message: string } | null | undefined, ...body: unknown[]) => void): void;
}
interface DbusMessage {
  type?: number;
  destination?: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}
const SIGNAL = 4;
/** How long a call to bluetoothd or the bus may take before the attempt is given up and retried. */
const CALL_TIMEOUT_MS = 10_000;
/** dbus-native reads a variant as [signature tree, [value]]. */
type Variant = [unknown, [unknown]];
type Props = Record<string, unknown>;

const createClient = (dbus as unknown as { createClient(opts: { busAddress: string }): Bus }).createClient;

function openBus(busAddress: string | undefined): Bus {
  return createClient({ busAddress: busAddress ?? process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'unix:path=/var/run/dbus/system_bus_socket' });
}

/** a{sv} as read: [[name, variant]...] → {name: value}. */
function props(pairs: unknown): Props {
  const out: Props = {};
  if (Array.isArray(pairs)) for (const [key, variant] of pairs as Array<[string, Variant]>) out[key] = variant?.[1]?.[0];
  return out;
}

/** a{sa{sv}} as read → {interface: props}. */
function interfaces(pairs: unknown): Record<string, Props> {
  const out: Record<string, Props> = {};
  if (Array.isArray(pairs)) for (const [iface, p] of pairs as Array<[string, unknown]>) out[iface] = props(p);
  return out;
}

/** a{oa{sa{sv}}} as read (GetManagedObjects) → {path: {interface: props}}. */
function managedObjects(triples: unknown): Record<string, Record<string, Props>> {
  const out: Record<string, Record<string, Props>> = {};
  if (Array.isArray(triples)) for (const [path, ifaces] of triples as Array<[string, unknown]>) out[path] = interfaces(ifaces);
  return out;
}

/** One method call; rejects with the D-Bus error, or when nothing answers within CALL_TIMEOUT_MS. */
function call(bus: Bus, path: string, iface: string, member: string, signature?: string, body?: unknown[], destination = BLUEZ): Promise<unknown[]> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`${member}: no answer from ${destination} within ${CALL_TIMEOUT_MS / 1000} s`)), CALL_TIMEOUT_MS);
    timer.unref();
    bus.invoke({ destination, path, interface: iface, member, ...(signature ? { signature, body: body ?? [] } : {}) }, (err, ...reply) => {
      clearTimeout(timer);
      if (err) reject(new Error(`${err.name}: ${err.message}`));
      else resolvePromise(reply);
    });
  });
}

function closeBus(bus: Bus): void {
  try {
    bus.connection.end();
  } catch {
    // already closed
  }
}

export class BluezScanner extends EventEmitter<{ advert: [Advert]; error: [Error] }> implements AdvertScanner {
  readonly id: string;
  readonly #opts: BluezScannerOptions;
  readonly #timers: Timers;
  readonly #backoff: Backoff;
  readonly #adapterPath: string;
  #bus: Bus | undefined;
  #devices = new Map<string, DeviceState>();
  #running = false;
  #scanning = false;
  #starting: Promise<void> | undefined;
  #retry: TimerHandle | undefined;
  #stats = { adverts: 0, restarts: 0 };

  constructor(opts: BluezScannerOptions) {
    super();
    this.#opts = opts;
    this.id = opts.adapter ?? 'hci0';
    this.#adapterPath = `/org/bluez/${this.id}`;
    this.#timers = opts.timers ?? systemTimers;
    this.#backoff = new Backoff({ minDelayMs: 1000, maxDelayMs: 30_000, ...opts.backoff }, opts.random);
  }

  /** Resolves once scanning, or once the first attempt failed (then retried in the background). */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#attempt();
  }

  async stop(): Promise<void> {
    this.#running = false;
    this.#timers.clearTimeout(this.#retry);
    this.#retry = undefined;
    await this.#starting?.catch(() => undefined);
    const bus = this.#bus;
    this.#bus = undefined;
    this.#scanning = false;
    if (!bus) return;
    await call(bus, this.#adapterPath, ADAPTER, 'StopDiscovery').catch(() => undefined);
    closeBus(bus);
  }

  stats(): ScannerStats {
    return { ...this.#stats, scanning: this.#scanning };
  }

  async #attempt(): Promise<void> {
    this.#starting = this.#connect();
    try {
      await this.#starting;
      this.#backoff.reset();
    } catch (err) {
      this.#fail(err as Error);
    } finally {
      this.#starting = undefined;
    }
  }

  /** A failure: reported, the bus dropped, and a new attempt later. */
  #fail(err: Error): void {
    this.#scanning = false;
    const bus = this.#bus;
    this.#bus = undefined;
    if (bus) closeBus(bus);
    // Once per attempt: the bus's own error and the call it fails both land here.
    if (!this.#running || this.#retry) return;
    this.emit('error', err);
    const delay = this.#backoff.next();
    this.#opts.logger?.warn({ adapter: this.id, err: err.message, retry_ms: delay }, 'Bluetooth scanning stopped; retrying');
    this.#retry = this.#timers.setTimeout(() => {
      this.#retry = undefined;
      if (!this.#running) return;
      this.#stats.restarts++;
      void this.#attempt();
    }, delay);
  }

  async #connect(): Promise<void> {
    const opened = openBus(this.#opts.busAddress);
    this.#bus = opened;
    // The bus going away answers no call: each call of this attempt fails with it at once.
    let broken: (err: Error) => void = () => undefined;
    const brokenBus = new Promise<never>((_, reject) => {
      broken = reject;
    });
    brokenBus.catch(() => undefined);
    const guarded = (path: string, iface: string, member: string, signature?: string, body?: unknown[], destination?: string) =>
      Promise.race([call(opened, path, iface, member, signature, body, destination), brokenBus]);
    opened.connection.on('error', (err: Error) => {
      broken(new Error(`D-Bus: ${err.message}`));
      if (this.#bus === opened) this.#fail(new Error(`D-Bus: ${err.message}`));
    });
    opened.connection.on('end', () => {
      broken(new Error('the D-Bus connection closed'));
      if (this.#bus === opened) this.#fail(new Error('the D-Bus connection closed'));
    });
    opened.connection.on('message', (msg: DbusMessage) => {
      if (this.#bus === opened && msg.type === SIGNAL) this.#signal(msg);
    });
    this.#devices.clear();
    for (const rule of [
      `type='signal',sender='${DBUS}',interface='${DBUS}',member='NameOwnerChanged',arg0='${BLUEZ}'`,
      `type='signal',sender='${BLUEZ}',interface='${OBJECT_MANAGER}',path='/'`,
      `type='signal',sender='${BLUEZ}',interface='${PROPS}',member='PropertiesChanged',path_namespace='${this.#adapterPath}'`,
    ]) {
      await guarded('/org/freedesktop/DBus', DBUS, 'AddMatch', 's', [rule], DBUS);
    }
    try {
      await guarded('/org/freedesktop/DBus', DBUS, 'GetNameOwner', 's', [BLUEZ], DBUS);
    } catch {
      throw new Error('bluetoothd is not running (no org.bluez on the system bus)');
    }
    const objects = managedObjects((await guarded('/', OBJECT_MANAGER, 'GetManagedObjects'))[0]);
    const adapter = objects[this.#adapterPath]?.[ADAPTER];
    if (!adapter) {
      const present = Object.keys(objects)
        .filter((p) => objects[p]?.[ADAPTER])
        .map((p) => p.split('/').pop());
      throw new Error(`no Bluetooth adapter ${this.id} (present: ${present.length ? present.join(', ') : 'none'})`);
    }
    if (adapter.Powered !== true) {
      this.#opts.logger?.info({ adapter: this.id }, 'Bluetooth adapter is off: powering it on');
      await guarded(this.#adapterPath, PROPS, 'Set', 'ssv', [ADAPTER, 'Powered', ['b', true]]);
    }
    // What BlueZ remembers from before is stale: removed, so each advertiser is reported afresh.
    for (const [path, ifaces] of Object.entries(objects)) {
      const device = ifaces[DEVICE];
      if (!device || !path.startsWith(`${this.#adapterPath}/`)) continue;
      if (device.Paired === true || device.Trusted === true || device.Connected === true) continue;
      await guarded(this.#adapterPath, ADAPTER, 'RemoveDevice', 'o', [path]).catch(() => undefined);
    }
    await guarded(this.#adapterPath, ADAPTER, 'SetDiscoveryFilter', 'a{sv}', [
      [
        ['Transport', ['s', 'le']],
        ['DuplicateData', ['b', true]],
      ],
    ]);
    try {
      await guarded(this.#adapterPath, ADAPTER, 'StartDiscovery');
    } catch (err) {
      // Our own session already running (a restart raced): scanning is on.
      if (!/InProgress/.test((err as Error).message)) throw err;
    }
    this.#scanning = true;
    this.#opts.logger?.info({ adapter: this.id }, 'Bluetooth LE scanning');
  }

  #signal(msg: DbusMessage): void {
    if (msg.member === 'NameOwnerChanged') {
      const [, , owner] = msg.body as [string, string, string];
      // bluetoothd stopped or started again: our discovery session died with the old one.
      this.#fail(new Error(owner ? 'bluetoothd restarted' : 'bluetoothd stopped'));
      return;
    }
    if (msg.member === 'InterfacesAdded') {
      const [path, added] = msg.body as [string, unknown];
      const device = interfaces(added)[DEVICE];
      if (device && path.startsWith(`${this.#adapterPath}/`)) this.#update(path, device, true);
      return;
    }
    if (msg.member === 'InterfacesRemoved') {
      const [path, ifaces] = msg.body as [string, string[]];
      if (ifaces.includes(DEVICE)) this.#devices.delete(path);
      else if (path === this.#adapterPath && ifaces.includes(ADAPTER)) this.#fail(new Error(`adapter ${this.id} removed`));
      return;
    }
    if (msg.member === 'PropertiesChanged') {
      const [iface, pairs] = msg.body as [string, unknown, string[]];
      const changed = props(pairs);
      if (iface === DEVICE && msg.path.startsWith(`${this.#adapterPath}/`)) this.#update(msg.path, changed, false);
      else if (iface === ADAPTER && msg.path === this.#adapterPath && changed.Discovering === false && this.#scanning) {
        this.#fail(new Error(`adapter ${this.id} stopped discovering (powered off or reset)`));
      }
    }
  }

  #update(path: string, changed: Props, added: boolean): void {
    let device = this.#devices.get(path);
    if (!device || added) {
      const address = changed.Address;
      device = {
        address: typeof address === 'string' ? address : path.slice(path.lastIndexOf('/dev_') + 5).replaceAll('_', ':'),
        rssiDbm: null,
        manufacturerData: new Map(),
      };
      this.#devices.set(path, device);
    }
    const rssi = changed.RSSI;
    // 127 is HCI's "not available" (virtual controllers report it).
    if (typeof rssi === 'number') device.rssiDbm = rssi === 127 ? null : rssi;
    // a{qv}, each value an ay: [[company, [signature, [bytes]]]...].
    const data = changed.ManufacturerData as Array<[number, Variant]> | undefined;
    if (data) {
      device.manufacturerData = new Map();
      for (const [company, variant] of data) device.manufacturerData.set(Number(company), new Uint8Array(variant[1][0] as Buffer));
    }
    // An advertisement is new data or a new signal strength; anything else (Connected, Name...) is not one.
    if (!added && !data && rssi === undefined) return;
    this.#stats.adverts++;
    this.emit('advert', { address: device.address, rssiDbm: device.rssiDbm, manufacturerData: device.manufacturerData, monoMs: this.#opts.clock.monoNow() });
  }
}

/** What `probeBluez` found: the adapter as BlueZ sees it. */
export interface BluezAdapterInfo {
  address: string;
  powered: boolean;
  discovering: boolean;
}

/**
 * Asks bluetoothd about one adapter and lets go (for `vigia doctor` while the daemon is stopped):
 * rejects with what is missing - the system bus, bluetoothd, the adapter.
 */
export async function probeBluez(opts: { adapter?: string; busAddress?: string; timeoutMs?: number } = {}): Promise<BluezAdapterInfo> {
  const adapter = opts.adapter ?? 'hci0';
  let bus: Bus;
  try {
    bus = openBus(opts.busAddress);
  } catch (err) {
    throw new Error(`cannot reach the system D-Bus: ${(err as Error).message}`);
  }
  const failed = new Promise<never>((_, reject) => {
    bus.connection.on('error', (err: Error) => reject(new Error(`cannot reach the system D-Bus: ${err.message}`)));
  });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the system D-Bus did not answer')), opts.timeoutMs ?? 5000);
  });
  const ask = async (): Promise<BluezAdapterInfo> => {
    try {
      await call(bus, '/org/freedesktop/DBus', DBUS, 'GetNameOwner', 's', [BLUEZ], DBUS);
    } catch {
      throw new Error('bluetoothd is not running (no org.bluez on the system bus)');
    }
    const objects = managedObjects((await call(bus, '/', OBJECT_MANAGER, 'GetManagedObjects'))[0]);
    const found = objects[`/org/bluez/${adapter}`]?.[ADAPTER];
    if (!found) {
      const present = Object.keys(objects).filter((p) => objects[p]?.[ADAPTER]);
      throw new Error(`no Bluetooth adapter ${adapter} (present: ${present.map((p) => p.split('/').pop()).join(', ') || 'none'})`);
    }
    return { address: String(found.Address ?? ''), powered: found.Powered === true, discovering: found.Discovering === true };
  };
  try {
    return await Promise.race([ask(), failed, timeout]);
  } finally {
    clearTimeout(timer);
    closeBus(bus);
  }
}
