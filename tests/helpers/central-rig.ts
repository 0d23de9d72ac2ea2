import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { CommandSender } from '../../src/central/commands.js';
import { ConsoleServer } from '../../src/central/console/server.js';
import { UsersFile } from '../../src/central/console/users.js';
import { HotlistPublisher } from '../../src/central/hotlist.js';
import { Ingest } from '../../src/central/ingest.js';
import { openStore } from '../../src/central/service.js';
import type { CentralStore } from '../../src/central/store.js';
import { createLogger } from '../../src/core/logger.js';
import { DaemonProcess, TEST_KEY, writeDeviceConfig } from './daemon.js';
import { type Broker, startMosquitto } from './mosquitto.js';

/**
 * The call center and one pole, all real: Mosquitto as the central broker, the ingest and the
 * console on SQLite, a daemon with simulated GPIO as the pole (panic input, strobe, siren, button
 * LED), and Debian's Chromium for the operators. Shared by the end-to-end test and the benchmark.
 */

export const CHROMIUM = '/usr/bin/chromium';
export type Outputs = Record<string, { value: boolean; pattern: { mode: string } }>;

export interface CentralRig {
  broker: Broker;
  store: CentralStore;
  /** The center's list, seeded with the pole's (so the pole starts up to date). */
  hotlist: HotlistPublisher;
  server: ConsoleServer;
  daemon: DaemonProcess;
  browser: Browser;
  base: string;
  /** Console errors and page errors of every page opened (a 401 before login excepted). */
  problems: string[];
  /** A logged-in operator's page, with the live stream up. */
  operatorPage(user: string, password: string): Promise<Page>;
  outputs(): Promise<Outputs>;
  press(active: boolean): Promise<unknown>;
  stop(): Promise<void>;
}

export const OPERATORS = [
  ['oscar', 'operator', 'oscar-password-1'],
  ['sara', 'supervisor', 'sara-password-1'],
  ['ana', 'admin', 'ana-password-01'],
] as const;

/** The pole hashes its reads with this key (`privacy.reads: hashed`); operators type it to search them. */
export const RIG_HASH_KEY = 'plate-hash-key-of-the-rig-0123456789';
/** Where the rig's pole stands (La Serena, Avenida del Mar), from its configuration. */
export const RIG_LOCATION = { lat: -29.9045, lon: -71.2735 };
export const RIG_HOTLIST_CSV = 'plate,reason,source,added,expires\nBBCL12,encargo por robo,Carabineros,2026-11-01,\n';

export async function startCentralRig(): Promise<CentralRig> {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run \`node scripts/ensure-system-deps.mjs\` (it installs Debian's chromium)`);
  const broker = await startMosquitto();
  const dir = mkdtempSync(join(tmpdir(), 'vigia-central-rig-'));
  const store = await openStore(`sqlite:${join(dir, 'central.db')}`);
  const users = new UsersFile(join(dir, 'users.json'), 4); // a low bcrypt cost keeps logins fast
  for (const [name, role, password] of OPERATORS) await users.add(name, role, password);
  const logger = createLogger('warn');
  const sender = new CommandSender({ url: broker.url, auth: 'hmac-sha256', key: TEST_KEY });
  await sender.start();
  const keys = generateKeyPairSync('ed25519');
  const hotlist = new HotlistPublisher({ dir: join(dir, 'hotlist'), privateKey: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() });
  hotlist.open();
  hotlist.change({ text: RIG_HOTLIST_CSV, replace: true }, 'setup');
  const server = new ConsoleServer({ store, users, commands: sender, logger, hotlist });
  const base = `http://127.0.0.1:${await server.listen(0)}`;
  const ingest = new Ingest({ url: broker.url, store, logger, clientId: 'rig', onStored: () => server.feed.notify() });
  await ingest.start();
  const camera = join(dir, 'camera');
  mkdirSync(camera);
  const poleHotlist = join(dir, 'pole-hotlist.csv');
  writeFileSync(poleHotlist, RIG_HOTLIST_CSV);
  const cfg = writeDeviceConfig(broker.url, {
    device: { id: 'pole-0001', site: 'test-site', profile: 'pole', location: RIG_LOCATION },
    // Often, so the console shows the health report's cameras and list soon.
    telemetry: { interval: '2s' },
    anpr: {
      enabled: true,
      workers: 1,
      cameras: [{ id: 'street', kind: 'directory', dir: camera }],
      hotlist: { file: poleHotlist, public_key: hotlist.publicKey() },
      privacy: { reads: 'hashed', hash_key: RIG_HASH_KEY },
    },
    hardware: {
      backend: 'sim',
      inputs: { panic: { line: 'GPIO17', kind: 'panic' } },
      outputs: { strobe: { line: 'GPIO23', kind: 'strobe' }, siren: { line: 'GPIO24', kind: 'siren' }, button_led: { line: 'GPIO25', kind: 'led' } },
    },
    pole: { led_output: 'button_led', strobe_output: 'strobe', siren_output: 'siren' },
  });
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  await daemon.start();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-sync'],
  });
  const problems: string[] = [];
  return {
    broker,
    store,
    hotlist,
    server,
    daemon,
    browser,
    base,
    problems,
    async operatorPage(user, password) {
      const page = await browser.newPage({ viewport: { width: 1300, height: 850 } });
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error' && !/401/.test(msg.text())) problems.push(`console: ${msg.text()}`);
      });
      await page.goto(base);
      await page.fill('#login input[name=user]', user);
      await page.fill('#login input[name=password]', password);
      await page.click('#login button[type=submit]');
      await page.waitForSelector('#console:not([hidden])');
      await page.waitForSelector('#link[data-state="live"]');
      return page;
    },
    outputs: () => daemon.request<Outputs>('sim.outputs'),
    press: (active) => daemon.request('sim.input', { input: 'panic', active }),
    async stop() {
      await browser.close();
      await daemon.kill('SIGTERM');
      await ingest.stop();
      await server.close();
      await sender.stop();
      await store.close();
      await broker.stop();
    },
  };
}
