import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from './config/index.js';
import type { Config } from './config/schema.js';
import { Secret } from './config/secret.js';
import type { Extension, ExtensionContext } from './core/extension.js';
import { createLogger } from './core/logger.js';
import { ev1527Train } from './drivers/radio/ook.js';
import { controlRequest } from './gateway/control.js';
import { runDaemon } from './daemon.js';
import { AdminClient } from './nodered/admin-client.js';
import { adminUrl, deployFlows, flowDevice, importFlows } from './nodered/tool.js';

/** The demo user's password; config/demo.yaml holds its bcrypt hash. */
const DEMO_NODERED_PASSWORD = 'vigia-demo';
const FLOWS_DIR = fileURLToPath(new URL('../config/flows/', import.meta.url));

/**
 * `npm start`: the daemon on config/demo.yaml with simulated hardware and an embedded broker, plus a
 * little scripted street life so a newcomer sees every priority class flow.
 */
class DemoScenario implements Extension {
  readonly name = 'demo-scenario';
  #timers: NodeJS.Timeout[] = [];
  #cars = 0;

  constructor(private readonly ctx: Pick<ExtensionContext<Config>, 'config' | 'logger' | 'paths'>) {}

  start(): void {
    const every = (ms: number, fn: () => Promise<unknown>) =>
      this.#timers.push(setInterval(() => void fn().catch((err) => this.ctx.logger.error({ err }, 'demo event failed')), ms));
    // Through the simulated GPIO lines, exactly as `vigia sim` would: the real input logic runs.
    const socket = join(this.ctx.paths.runtimeDir, 'vigia.sock');
    const input = (name: string, active: boolean) => controlRequest(socket, 'sim.input', { input: name, active });
    every(7_000, async () => {
      await input('pir', true);
      await input('pir', false);
    });
    // Now and then both of the community kit's sensors see someone: its flow raises one alarm.
    every(45_000, async () => {
      await input('pir_street', true);
      await input('pir_street', false);
    });
    // A neighbour's remote, as its receiver module would hear it: one alarm.remote per press.
    if (this.ctx.config.radio.receiver === 'gpio') {
      const [remote] = Object.values(this.ctx.config.remotes);
      const id = remote?.code.startsWith('ev1527:') ? Number.parseInt(remote.code.slice('ev1527:'.length), 16) : undefined;
      if (id !== undefined) every(50_000, () => controlRequest(socket, 'sim.radio', { pulses_us: ev1527Train((id << 4) | 1, { repeats: 12 }) }));
    }
    // A student's tag near the pole, as the adapter would hear it: adverts with the button flag for
    // two seconds (one alarm.personal), then idle ones.
    const [tag] = Object.values(this.ctx.config.tags);
    const prefix = this.ctx.config.personal.format.prefix;
    if (this.ctx.config.personal.enabled && tag && prefix !== undefined) {
      let counter = 0;
      const advert = (pressed: boolean) => {
        const minor = ((pressed ? 0x80 : 0) << 8) | (counter & 0xff);
        const data = `${prefix}${tag.id.padStart(4, '0')}${minor.toString(16).padStart(4, '0')}c5`;
        return controlRequest(socket, 'sim.advert', { manufacturer_data: { [this.ctx.config.personal.format.company_id]: data }, rssi_dbm: -64 });
      };
      every(55_000, async () => {
        counter++;
        for (let i = 0; i < 10; i++) {
          await advert(true);
          await new Promise((r) => setTimeout(r, 200));
        }
        await advert(false);
      });
    }
    every(30_000, async () => {
      await input('panic', true);
      await new Promise((r) => setTimeout(r, 300));
      await input('panic', false);
    });
    if (this.ctx.config.anpr.enabled) every(6_000, () => this.#passingCar());
    if (this.ctx.config.nodered.enabled) void this.#deployExampleFlows();
  }

  /** The three example flows, through the admin API as a technician would (`vigia flows deploy|import`). */
  async #deployExampleFlows(): Promise<void> {
    const { config, logger } = this.ctx;
    const url = adminUrl(config);
    const username = config.nodered.users[0]?.username;
    if (!url || !username) return;
    const target = { url, username, password: DEMO_NODERED_PASSWORD };
    for (let attempt = 0; attempt < 60; attempt++) {
      try {
        await new AdminClient(url).login(username, DEMO_NODERED_PASSWORD);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    try {
      const device = flowDevice(config);
      await deployFlows(target, join(FLOWS_DIR, 'pole.json'), device);
      await importFlows(target, join(FLOWS_DIR, 'gantry.json'), device);
      await importFlows(target, join(FLOWS_DIR, 'community.json'), device);
      logger.info({ url }, 'example flows deployed (config/flows): log in as demo / vigia-demo');
    } catch (err) {
      logger.error({ err: (err as Error).message }, 'could not deploy the example flows');
    }
  }

  /** A car passes the demo gate: a picture lands in the camera's upload directory, as over FTP. */
  async #passingCar(): Promise<void> {
    const cam = this.ctx.config.anpr.cameras.find((c) => c.kind === 'directory');
    if (!cam?.dir) return;
    const { chileanPlate, scene } = await import('./anpr/synthetic.js');
    const pairs: [string, string, string] = this.#cars++ % 2 === 0 ? ['BB', 'CL', '12'] : randomPlate();
    const jpeg = await scene(chileanPlate(pairs, { x: 470, y: 420, w: 330, h: 110 }));
    const name = join(cam.dir, `car-${Date.now()}`);
    writeFileSync(`${name}.tmp`, jpeg);
    renameSync(`${name}.tmp`, `${name}.jpg`);
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
  }
}

/** A plate of the 2007 series (letters without vowels or look-alikes), not on the demo hotlist. */
function randomPlate(): [string, string, string] {
  const letters = 'BCDFGHJKLPRSTVWXYZ';
  const l = () => letters[Math.floor(Math.random() * letters.length)]!;
  const d = () => String(Math.floor(Math.random() * 10));
  return [l() + l(), l() + l(), d() + d()];
}

const DEMO_OPERATOR = 'operador';
const DEMO_OPERATOR_PASSWORD = 'vigia-demo-1457';
const DEMO_CONSOLE_PORT = 8080;

const DEMO_HOTLIST = 'plate,reason,source,added,expires\nBBCL12,encargo por robo (demo),Carabineros,2026-11-01,\n';

const file = fileURLToPath(new URL('../config/demo.yaml', import.meta.url));
const config = loadConfig(file);
const publisherKey = demoPublisherKey();
if (config.anpr.enabled) {
  // The demo's camera directory and hotlist, made here so a fresh clone needs nothing else.
  for (const cam of config.anpr.cameras) if (cam.dir) mkdirSync(resolve(cam.dir), { recursive: true });
  if (config.anpr.hotlist.file) writeFileSync(config.anpr.hotlist.file, DEMO_HOTLIST);
  // The console beside it signs list changes with the demo's own key pair, made on the first run.
  config.anpr.hotlist.public_key = new Secret(publisherKey.publicKey, 'the demo list publisher');
}
const { port, host } = config.demo.embedded_broker;
process.stderr.write(
  `${[
    '',
    `Vigía demo: device ${config.device.site}/${config.device.id}, simulated hardware, embedded broker on ${host}:${port}.`,
    'Watch the events in another terminal:',
    `  npx mqtt sub -h ${host} -p ${port} -t 'vigia/#' -v        (or: mosquitto_sub -h ${host} -p ${port} -t 'vigia/#' -v)`,
    'Try the control socket:',
    `  npx vigia status -c config/demo.yaml`,
    `  npx vigia sim burst -c config/demo.yaml --count 1000 --type sim.test --priority read`,
    'A synthetic car passes the demo gate camera every 6 s; BB·CL·12 is on the hotlist (plate.hit, alarm priority).',
    "A neighbour's radio remote is pressed every 50 s (alarm.remote, with the household): npx vigia remotes learn -c config/demo.yaml",
    "A student's Bluetooth alarm tag is pressed every 55 s (alarm.personal, with the person): npx vigia tags learn -c config/demo.yaml",
    'The panic button is pressed every 30 s (alarm.panic, then alarm.snapshot). Answer as the call center would:',
    `  npx vigia cmd sign -c config/demo.yaml -n alarm.ack | npx mqtt pub -h ${host} -p ${port} -t vigia/la-serena/pole-demo/cmd/alarm.ack -s`,
    `  npx vigia cmd sign -c config/demo.yaml -n alarm.clear | npx mqtt pub -h ${host} -p ${port} -t vigia/la-serena/pole-demo/cmd/alarm.clear -s`,
    '  npx vigia sim press -c config/demo.yaml; npx vigia sim release -c config/demo.yaml; npx vigia sim door open -c config/demo.yaml',
    `Node-RED with the example flows of config/flows/: ${config.nodered.enabled ? `http://127.0.0.1:${config.nodered.port}/ (user demo, password ${DEMO_NODERED_PASSWORD})` : 'off'}`,
    'Ctrl-C stops the demo.',
    '',
  ].join('\n')}\n`,
);
await runDaemon(config, { extra: [{ name: 'demo-scenario', create: (ctx) => new DemoScenario(ctx) }] });
await startDemoConsole();

/** The demo list publisher's Ed25519 key pair (PEM), kept in .vigia-demo from run to run. */
function demoPublisherKey(): { privateKey: string; publicKey: string } {
  const dir = resolve('.vigia-demo');
  mkdirSync(dir, { recursive: true });
  const keyFile = join(dir, 'hotlist-publisher.pem');
  if (!existsSync(keyFile)) {
    const pair = generateKeyPairSync('ed25519');
    writeFileSync(keyFile, pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), { mode: 0o600 });
  }
  const privateKey = readFileSync(keyFile, 'utf8');
  return { privateKey, publicKey: createPublicKey(privateKey).export({ type: 'spki', format: 'pem' }).toString() };
}

/**
 * The call center beside the demo pole: the ingest and the operator console on the embedded
 * broker (MQTT 3.1.1: aedes has no MQTT 5), events in `.vigia-demo/central.db`, one operator.
 */
async function startDemoConsole(): Promise<void> {
  const { startConsoleService } = await import('./central/service.js');
  const { UsersFile } = await import('./central/console/users.js');
  const dir = resolve('.vigia-demo');
  mkdirSync(dir, { recursive: true });
  const usersFile = join(dir, 'users.json');
  const users = new UsersFile(usersFile, 10);
  if (!users.list().some((u) => u.name === DEMO_OPERATOR)) await users.add(DEMO_OPERATOR, 'admin', DEMO_OPERATOR_PASSWORD);
  const logger = createLogger(config.log.level);
  try {
    const service = await startConsoleService(
      {
        url: config.mqtt.url,
        protocolVersion: 4,
        store: `sqlite:${join(dir, 'central.db')}`,
        clientId: 'demo-central',
        usersFile,
        commandAuth: config.commands.auth,
        commandKeyFile: { key: config.commands.key?.reveal() ?? '' },
        listen: { host: '127.0.0.1', port: DEMO_CONSOLE_PORT },
        hotlist: { keyFile: { key: publisherKey.privateKey }, dir: join(dir, 'central-hotlist') },
      },
      logger,
    );
    // The center's list starts as the pole's, so the pole is up to date and takes the changes made in the console.
    if (service.hotlist && service.hotlist.current().size === 0) service.hotlist.change({ text: DEMO_HOTLIST, replace: true }, 'demo');
    process.stderr.write(
      `\nCall center console: http://127.0.0.1:${service.port}/  (user ${DEMO_OPERATOR}, password ${DEMO_OPERATOR_PASSWORD}): the panic presses and hits appear live; Reconocer / Despejar answer the pole.\n\n`,
    );
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'the demo call center console could not start; the pole runs on');
  }
}
