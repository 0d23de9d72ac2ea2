import bcrypt from 'bcryptjs';
import { type Broker, startMosquitto } from './mosquitto.js';
import { DaemonProcess, writeDeviceConfig } from './daemon.js';
import { Subscriber } from './subscriber.js';

export const NR_USER = 'tecnico';
export const NR_PASSWORD = 'correct horse battery';
export const NR_READER = 'observer';
export const NR_READER_PASSWORD = 'only looking here';
// Cost 4: the tests log in often, and the hash's strength is not what they check.
const hash = (p: string) => bcrypt.hashSync(p, 4);

type Plain = Record<string, unknown>;

/** The simulated pole every Node-RED test runs: a panic button, two PIRs, a strobe, a siren, an LED and a relay. */
export const NR_HARDWARE = {
  backend: 'sim',
  inputs: {
    panic: { line: 'GPIO17', kind: 'panic' },
    pir: { line: 'GPIO27', kind: 'motion', active_low: false, bias: 'pull-down', hold: '300ms', min_interval: '0s' },
    pir_street: { line: 'GPIO5', kind: 'motion', active_low: false, bias: 'pull-down', hold: '300ms', min_interval: '0s' },
  },
  outputs: {
    strobe: { line: 'GPIO23', kind: 'strobe' },
    siren: { line: 'GPIO24', kind: 'siren' },
    button_led: { line: 'GPIO25', kind: 'led' },
    barrier: { line: 'GPIO6', kind: 'relay' },
  },
};

export interface NodeRedRig {
  broker: Broker;
  sub: Subscriber;
  daemon: DaemonProcess;
  /** The editor's address, from the daemon's status. */
  url: string;
  dir: string;
  configFile: string;
  stop(): Promise<void>;
}

export async function nodeRedStatus(daemon: DaemonProcess): Promise<Record<string, any>> {
  const status = await daemon.request<Record<string, any>>('status');
  return status.nodered;
}

/** Waits until the daemon's Node-RED serves (or fails the test with its status). */
export async function nodeRedUrl(daemon: DaemonProcess, timeoutMs = 30_000): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const nr = await nodeRedStatus(daemon);
    if (nr?.state === 'running' && nr.url) return nr.url as string;
    if (Date.now() > end) throw new Error(`Node-RED not running: ${JSON.stringify(nr)}\n${daemon.output.slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A real Mosquitto, a subscriber on vigia/#, and the daemon with Node-RED on an ephemeral loopback port. */
export async function startNodeRedRig(over: Plain = {}, nodered: Plain = {}, broker?: Broker): Promise<NodeRedRig> {
  const ownBroker = !broker;
  broker ??= await startMosquitto();
  const sub = new Subscriber(broker.url);
  await sub.connect();
  const cfg = writeDeviceConfig(broker.url, {
    hardware: NR_HARDWARE,
    pole: { led_output: 'button_led', strobe_output: 'strobe', siren_output: 'siren' },
    nodered: {
      enabled: true,
      port: 0,
      users: [
        { username: NR_USER, password: hash(NR_PASSWORD) },
        { username: NR_READER, password: hash(NR_READER_PASSWORD), permissions: 'read' },
      ],
      credential_secret: 'test-credential-secret',
      ...nodered,
    },
    ...over,
  });
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  await daemon.start();
  const url = await nodeRedUrl(daemon);
  const b = broker;
  return {
    broker: b,
    sub,
    daemon,
    url,
    dir: cfg.dir,
    configFile: cfg.file,
    async stop() {
      await daemon.kill('SIGTERM');
      await sub.close();
      if (ownBroker) await b.stop();
    },
  };
}

let nextId = 0;
/** A node id, unique within a test file. */
export const nid = (prefix: string) => `${prefix}${(++nextId).toString(16).padStart(16 - prefix.length, '0')}`;
