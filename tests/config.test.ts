import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  configJsonSchema,
  formatProblem,
  loadConfig,
  PROFILE_DEFAULTS,
  runConfigCheck,
  type Config,
  type LoadOptions,
} from '../src/config/index.js';

const CONFIG_DIR = join(import.meta.dirname, '..', 'config');
const tmp = mkdtempSync(join(tmpdir(), 'vigia-config-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let counter = 0;
/** Writes a config file into the temp dir and returns its path. */
function write(text: string, name = `c${++counter}.yaml`): string {
  const file = join(tmp, name);
  writeFileSync(file, text);
  return file;
}

const MINIMAL = `device:
  id: pole-0001
  site: la-serena
  profile: pole
mqtt:
  url: mqtt://127.0.0.1:1883
`;

/** The formatted problems loadConfig reports; fails the test if it loads. */
function problems(file: string, opts?: LoadOptions): string[] {
  try {
    loadConfig(file, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map(formatProblem);
  }
  throw new Error(`${file} loaded, expected problems`);
}

/** Copies a bundled example, pointing its /etc/vigia files at temp files with known contents. */
function redirectedExample(name: string): { file: string; secrets: Record<string, string> } {
  const etc = join(tmp, `etc-${name}`);
  mkdirSync(etc, { recursive: true });
  const secrets: Record<string, string> = {
    'mqtt-password': `pw-${name}-s3cr3t`,
    'command-key': `cmdkey-${name}-s3cr3t`,
    'client.key': `-----BEGIN PRIVATE KEY-----\nkey-${name}-s3cr3t\n-----END PRIVATE KEY-----`,
  };
  for (const [f, v] of Object.entries(secrets)) writeFileSync(join(etc, f), `${v}\n`, { mode: 0o600 });
  writeFileSync(join(etc, 'camera-password'), 'camera-pw\n', { mode: 0o600 });
  writeFileSync(join(etc, 'plate-hash-key'), `hash-${name}-0123456789abcdef\n`, { mode: 0o600 });
  writeFileSync(join(etc, 'hotlist.pub'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString());
  writeFileSync(join(etc, 'ca.pem'), 'ca');
  writeFileSync(join(etc, 'client.pem'), 'cert');
  const text = readFileSync(join(CONFIG_DIR, name), 'utf8');
  expect(text).toContain('/etc/vigia/');
  return { file: write(text.replaceAll('/etc/vigia/', `${etc}/`), name), secrets };
}

const load = (text: string, opts?: LoadOptions): Config => loadConfig(write(text), opts);
const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

describe('bundled configs', () => {
  it.each(['demo.yaml', 'pole.example.yaml', 'gantry.example.yaml', 'patrol.example.yaml', 'community.example.yaml'])(
    '%s points editors at the schema',
    (name) => {
      expect(readFileSync(join(CONFIG_DIR, name), 'utf8').split('\n')[0]).toBe('# yaml-language-server: $schema=./vigia.schema.json');
    },
  );

  it('demo.yaml loads as a simulated pole with an embedded broker', () => {
    const config = loadConfig(join(CONFIG_DIR, 'demo.yaml'));
    expect(config.device).toEqual({ id: 'pole-demo', site: 'la-serena', profile: 'pole', location: { lat: -29.9027, lon: -71.2519 } });
    expect(config.hardware.backend).toBe('sim');
    expect(config.demo.embedded_broker).toEqual({ enabled: true, host: '127.0.0.1', port: 1883 });
    expect(config.mqtt.url).toBe('mqtt://127.0.0.1:1883');
    expect(config.paths).toEqual({ data_dir: '.vigia-demo/data', runtime_dir: '.vigia-demo/run' });
    expect(config.telemetry.interval).toBe(10_000);
    expect(config.clock.sync_source).toBe('assume-synced');
    expect(config.commands.key?.reveal()).toBe('demo-only-key-change-me');
    expect(config.commands.key?.origin).toBe('inline');
  });

  it('demo.yaml passes `config check`', () => {
    const stdout: string[] = [];
    const stderr: string[] = [];
    const file = join(CONFIG_DIR, 'demo.yaml');
    expect(runConfigCheck(file, { stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) })).toBe(0);
    expect(stdout).toEqual([`${file}: ok (profile pole, device la-serena/pole-demo)`]);
    expect(stderr).toEqual([]);
  });

  it.each([
    ['pole.example.yaml', 'pole'],
    ['gantry.example.yaml', 'gantry'],
    ['patrol.example.yaml', 'patrol'],
    ['community.example.yaml', 'community'],
  ] as const)('%s loads once its secret files exist', (name, profile) => {
    const { file, secrets } = redirectedExample(name);
    const config = loadConfig(file);
    expect(config.device.profile).toBe(profile);
    expect(config.mqtt.url).toMatch(/^mqtts:\/\//);
    expect(config.mqtt.password?.reveal()).toBe(secrets['mqtt-password']);
    expect(config.mqtt.tls?.key?.reveal()).toBe(secrets['client.key']);
    expect(config.mqtt.tls?.ca).toMatch(/ca\.pem$/);
    expect(config.mqtt.tls?.reject_unauthorized).toBe(true);
    expect(config.commands.key?.reveal()).toBe(secrets['command-key']);
    expect(config.hardware.backend).toBe('auto');
    expect(config.demo.embedded_broker.enabled).toBe(false);
    // Poles and kits use their camera for alarm snapshots only.
    const reads = profile !== 'pole' && profile !== 'community';
    expect(config.anpr.enabled).toBe(reads);
    expect(config.anpr.cameras.length > 0).toBe(reads || config.pole.snapshot_camera !== undefined);
  });

  it.each(['pole.example.yaml', 'gantry.example.yaml', 'patrol.example.yaml', 'community.example.yaml'])(
    '%s writes only where the shipped unit lets the daemon write',
    (name) => {
      const { file } = redirectedExample(name);
      const stdout: string[] = [];
      const unit = join(CONFIG_DIR, '..', 'systemd', 'vigia.service');
      expect(runConfigCheck(file, { stdout: (s) => stdout.push(s), stderr: () => {} }, unit)).toBe(0);
      expect(stdout).toEqual([expect.stringMatching(/: ok \(profile \w+, .*\); every directory it writes is writable under .*vigia\.service$/)]);
    },
  );

  it('the examples fail on a machine without their secret files', () => {
    const file = join(CONFIG_DIR, 'pole.example.yaml');
    const found = problems(file);
    expect(found.length).toBeGreaterThan(0);
    for (const p of found) expect(p).toMatch(/cannot read secret file \/etc\/vigia\//);
  });
});

describe('profiles', () => {
  it('pole uses the schema defaults', () => {
    const config = load(MINIMAL);
    expect(config.outbox.quota_bytes).toEqual({ alarm: 256 * MiB, hit: 64 * MiB, read: 128 * MiB, telemetry: 16 * MiB });
    expect(config.mqtt.drain_rate).toBe(0);
    expect(config.telemetry.interval).toBe(60_000);
  });

  it('gantry gets a large read quota and a drain rate', () => {
    const config = load(MINIMAL.replace('profile: pole', 'profile: gantry'));
    expect(config.outbox.max_bytes).toBe(4 * GiB);
    expect(config.outbox.quota_bytes.read).toBe(3 * GiB);
    expect(config.outbox.quota_bytes.telemetry).toBe(16 * MiB);
    expect(config.mqtt.drain_rate).toBe(200);
  });

  it('patrol keeps reads longer and reports more often, clock still auto', () => {
    const config = load(MINIMAL.replace('profile: pole', 'profile: patrol'));
    expect(config.outbox.ttl).toEqual({ alarm: 'never', hit: 30 * 86_400_000, read: 14 * 86_400_000, telemetry: 86_400_000 });
    expect(config.telemetry.interval).toBe(15_000);
    expect(config.clock.sync_source).toBe('auto');
  });

  it('user values override the overlay, deep-merged field by field', () => {
    const before = structuredClone(PROFILE_DEFAULTS);
    const config = load(
      `${MINIMAL.replace('profile: pole', 'profile: gantry')}  drain_rate: 50
outbox:
  quota_bytes:
    read: 1GiB
`,
    );
    expect(config.mqtt.drain_rate).toBe(50);
    expect(config.outbox.quota_bytes.read).toBe(GiB);
    expect(config.outbox.quota_bytes.hit).toBe(256 * MiB); // sibling still from the overlay
    expect(config.outbox.max_bytes).toBe(4 * GiB);
    expect(PROFILE_DEFAULTS).toEqual(before);
  });
});

describe('synthetic events', () => {
  it('are accepted with the simulated backend, and with real GPIO only when asked for', async () => {
    const { EXTENSIONS } = await import('../src/extensions.js');
    const sim = EXTENSIONS.find((e) => e.name === 'sim')!;
    expect(load(MINIMAL).hardware.synthetic_events).toBe(false);
    expect(sim.enabled(load(`${MINIMAL}hardware:\n  backend: chardev\n`))).toBe(false);
    expect(sim.enabled(load(`${MINIMAL}hardware:\n  backend: sim\n`))).toBe(true);
    expect(sim.enabled(load(`${MINIMAL}hardware:\n  backend: chardev\n  synthetic_events: true\n`))).toBe(true);
  });
});

describe('defaults and units', () => {
  it('fills every default from a minimal file', () => {
    const config = load(MINIMAL);
    expect(config.paths).toEqual({ data_dir: '/var/lib/vigia', runtime_dir: '/run/vigia' });
    expect(config.log.level).toBe('info');
    expect(config.clock).toEqual({ sync_source: 'auto', sync_file: '/run/systemd/timesync/synchronized', poll_interval: 5000 });
    expect(config.outbox).toMatchObject({
      max_bytes: 256 * MiB,
      alarm_reserve_bytes: 16 * MiB,
      commit_interval: 25,
      commit_max_events: 2000,
      synchronous: 'full',
      disk_reserve_bytes: 8 * MiB,
    });
    expect(config.outbox.ttl.alarm).toBe('never');
    expect(config.mqtt).toMatchObject({ protocol: 'auto', topic_prefix: 'vigia', keepalive: 30_000, connect_timeout: 15_000, inflight_window: 64 });
    expect(config.mqtt.reconnect).toEqual({ min_delay: 1000, max_delay: 60_000, jitter: 0.3 });
    expect(config.commands).toEqual({ auth: 'hmac-sha256', key: undefined, replay_window: 300_000 });
    expect(config.hardware.backend).toBe('auto');
    expect(config.demo.embedded_broker.enabled).toBe(false);
  });

  it('parses durations and sizes', () => {
    const config = load(`${MINIMAL}  keepalive: 30s
  connect_timeout: 2m
outbox:
  max_bytes: 64MiB
  alarm_reserve_bytes: 500kB
  commit_interval: 250ms
  quota_bytes: {read: 1048576, hit: 1GB}
  ttl: {read: 2h, hit: 7d}
`);
    expect(config.mqtt.keepalive).toBe(30_000);
    expect(config.mqtt.connect_timeout).toBe(120_000);
    expect(config.outbox.max_bytes).toBe(64 * MiB);
    expect(config.outbox.alarm_reserve_bytes).toBe(500_000);
    expect(config.outbox.commit_interval).toBe(250);
    expect(config.outbox.quota_bytes).toMatchObject({ read: MiB, hit: 1e9 });
    expect(config.outbox.ttl).toMatchObject({ read: 7_200_000, hit: 7 * 86_400_000 });
  });
});

describe('problems', () => {
  it('formats as FILE:LINE:COL path: message', () => {
    expect(formatProblem({ file: 'a.yaml', line: 3, col: 5, path: 'mqtt.url', message: 'required' })).toBe('a.yaml:3:5 mqtt.url: required');
    expect(formatProblem({ file: 'a.yaml', line: 1, col: 1, path: '', message: 'empty' })).toBe('a.yaml:1:1: empty');
  });

  it('reports YAML syntax errors with their position', () => {
    const tab = write(`${MINIMAL}outbox:\n\tmax_bytes: 1GiB\n`);
    expect(problems(tab)).toEqual([`${tab}:8:1: YAML syntax error: Tabs are not allowed as indentation`]);
    const unclosed = write(`${MINIMAL}outbox:\n  ttl: [1\n  max_bytes: 1GiB\n`);
    expect(problems(unclosed)).toEqual([
      `${unclosed}:9:3: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    ]);
  });

  it('reports duplicate keys as a YAML error', () => {
    const file = write(`${MINIMAL}log: {level: info}\nlog: {level: debug}\n`);
    expect(problems(file)).toEqual([`${file}:8:1: YAML syntax error: Map keys must be unique`]);
  });

  it('points at an unknown key and suggests the close one', () => {
    const file = write(`${MINIMAL}outbox:\n  max_byts: 1GiB\n`);
    expect(problems(file)).toEqual([`${file}:8:3 outbox.max_byts: unknown field (did you mean "max_bytes"?)`]);
  });

  it('lists the known keys when no key is close', () => {
    const file = write(`${MINIMAL}log:\n  colour: true\n`);
    expect(problems(file)).toEqual([`${file}:8:3 log.colour: unknown field (expected one of level)`]);
  });

  it('points at a value of the wrong type', () => {
    const file = write(`${MINIMAL}demo:\n  embedded_broker:\n    port: "1883"\n`);
    expect(problems(file)).toEqual([`${file}:9:11 demo.embedded_broker.port: expected a number, got text`]);
  });

  it('points an empty section at its key', () => {
    const file = write(`${MINIMAL}outbox:\nlog: {}\n`);
    expect(problems(file)).toEqual([`${file}:7:1 outbox: expected a map of settings, got an empty value`]);
  });

  it('hints at quoting when YAML read text as a number', () => {
    const file = write(MINIMAL.replace('id: pole-0001', 'id: 0142'));
    expect(problems(file)).toEqual([`${file}:2:7 device.id: expected text, got a whole number (put it in quotes)`]);
  });

  it('lists the choices of a bad enum', () => {
    const file = write(MINIMAL.replace('profile: pole', 'profile: pol'));
    expect(problems(file)).toEqual([`${file}:4:12 device.profile: expected one of pole, gantry, patrol, community`]);
  });

  it('points a missing field at the map that should contain it', () => {
    const file = write(MINIMAL.replace('  site: la-serena\n', ''));
    expect(problems(file)).toEqual([`${file}:2:3 device.site: required`]);
  });

  it('points a missing section at the top-level map', () => {
    const file = write('# comment\ndevice: {id: a, site: b, profile: pole}\n');
    expect(problems(file)).toEqual([`${file}:2:1 mqtt: required`]);
  });

  it('reports a bad duration', () => {
    const file = write(`${MINIMAL}  reconnect:\n    max_delay: 1 minute\n`);
    expect(problems(file)).toEqual([`${file}:8:16 mqtt.reconnect.max_delay: invalid duration "1 minute" (use e.g. 500ms, 30s, 5m, 2h, 7d)`]);
  });

  it('reports a bad duration in a field that also accepts "never"', () => {
    const file = write(`${MINIMAL}outbox:\n  ttl:\n    hit: 3w\n`);
    expect(problems(file)).toEqual([`${file}:9:10 outbox.ttl.hit: invalid duration "3w" (use e.g. 500ms, 30s, 5m, 2h, 7d)`]);
  });

  it('reports a bad size', () => {
    const file = write(`${MINIMAL}outbox:\n  max_bytes: 64MB!\n`);
    expect(problems(file)).toEqual([`${file}:8:14 outbox.max_bytes: invalid size "64MB!" (use e.g. 512kB, 64MiB, 1GB)`]);
  });

  it('reports a cross-field check at the field it names', () => {
    const file = write(`${MINIMAL}outbox:\n  max_bytes: 64MiB\n  alarm_reserve_bytes: 64MiB\n`);
    expect(problems(file)).toEqual([`${file}:9:24 outbox.alarm_reserve_bytes: must be smaller than outbox.max_bytes`]);
  });

  it('points a cross-field check on a defaulted field at its parent map', () => {
    const file = write(`${MINIMAL}outbox:\n  max_bytes: 8MiB\n`);
    expect(problems(file)).toEqual([`${file}:8:3 outbox.alarm_reserve_bytes: must be smaller than outbox.max_bytes`]);
  });

  it('checks the plate-reading section: cameras, grammar, privacy key, hotlist key', () => {
    const file = write(
      `${MINIMAL}anpr:\n  enabled: true\n  grammar: xx\n  cameras:\n    - id: lane-1\n      kind: stream\n    - id: lane-1\n      kind: directory\n      dir: /srv/ftp/lane1\n` +
        `      roi: [[0, 0], [1, 0], [1.5, 1]]\n  privacy:\n    reads: hashed\n  hotlist:\n    url: https://lists.example/hotlist.csv\n`,
    );
    expect(problems(file)).toEqual([
      `${file}:9:12 anpr.grammar: unknown grammar (known: cl, ar, bo, pe, br, eu, generic)`,
      `${file}:11:7 anpr.cameras.0.url: a stream camera needs url`,
      `${file}:13:11 anpr.cameras.1.id: camera id lane-1 is used twice`,
      `${file}:16:30 anpr.cameras.1.roi.2.0: must be at most 1`,
      `${file}:18:5 anpr.privacy.hash_key: reads: hashed needs a hash_key (e.g. {file: /etc/vigia/plate-hash-key})`,
      `${file}:20:5 anpr.hotlist.public_key: a hotlist url needs the public_key that signs the list`,
    ]);
  });

  it('checks secondary grammars: known, not generic, not the primary, none twice, per camera too', () => {
    const file = write(
      `${MINIMAL}anpr:\n  grammar: cl\n  secondary_grammars: [ar, uy, generic, cl, ar]\n  cameras:\n` +
        `    - {id: a, kind: directory, dir: /srv/a, grammar: pe, secondary_grammars: [pe, bo]}\n` +
        `    - {id: b, kind: directory, dir: /srv/b, grammar: ar}\n` +
        `    - {id: c, kind: directory, dir: /srv/c, secondary_grammars: [bo, bo]}\n`,
    );
    expect(problems(file)).toEqual([
      `${file}:9:28 anpr.secondary_grammars.1: unknown grammar (known: cl, ar, bo, pe, br, eu, generic)`,
      `${file}:9:32 anpr.secondary_grammars.2: generic cannot be a secondary grammar: it accepts any text`,
      `${file}:9:41 anpr.secondary_grammars.3: cl is the primary grammar already`,
      `${file}:9:45 anpr.secondary_grammars.4: ar is listed twice`,
      `${file}:11:79 anpr.cameras.0.secondary_grammars.0: pe is the primary grammar already`,
      `${file}:12:54 anpr.cameras.1.grammar: ar is also in anpr.secondary_grammars; give this camera its own secondary_grammars`,
      `${file}:13:70 anpr.cameras.2.secondary_grammars.1: bo is listed twice`,
    ]);
  });

  it('loads secondary grammars, none by default', () => {
    expect(load(`${MINIMAL}anpr:\n  enabled: false\n`).anpr.secondary_grammars).toEqual([]);
    const cfg = load(
      `${MINIMAL}anpr:\n  secondary_grammars: [ar, bo, pe, br]\n  cameras:\n    - {id: a, kind: directory, dir: /srv/a, grammar: ar, secondary_grammars: [cl]}\n`,
    );
    expect(cfg.anpr.secondary_grammars).toEqual(['ar', 'bo', 'pe', 'br']);
    expect(cfg.anpr.cameras[0]).toMatchObject({ grammar: 'ar', secondary_grammars: ['cl'] });
  });

  it('loads a camera with its defaults and resolves the plate-reading defaults', () => {
    const file = write(
      `${MINIMAL}anpr:\n  enabled: true\n  cameras:\n    - {id: gate, kind: snapshot, url: "http://10.0.0.9/snap.jpg", username: admin, password: secret-pass}\n`,
    );
    const cfg = loadConfig(file);
    expect(cfg.anpr).toMatchObject({
      grammar: 'cl',
      workers: 1,
      detector: 'ppocr',
      recogniser: 'ppocr',
      privacy: { reads: 'off' },
      hits: { fuzzy: true, dedup_window: 300_000 },
    });
    expect(cfg.anpr.cameras[0]).toMatchObject({ id: 'gate', kind: 'snapshot', interval: 1000, auth: 'auto' });
    expect(JSON.stringify(cfg)).not.toContain('secret-pass');
  });

  it('reports a missing secret file', () => {
    const file = write(`${MINIMAL}  password: {file: ${tmp}/no-such-password}\n`);
    expect(problems(file)).toEqual([`${file}:7:13 mqtt.password: cannot read secret file ${tmp}/no-such-password: ENOENT`]);
  });

  it('reads {env:} secrets from the given environment', () => {
    const file = write(`${MINIMAL}commands:\n  key: {env: VIGIA_TEST_COMMAND_KEY}\n`);
    const envBefore = process.env;
    expect(problems(file, { env: {} })).toEqual([`${file}:8:8 commands.key: environment variable VIGIA_TEST_COMMAND_KEY is not set`]);
    const config = loadConfig(file, { env: { VIGIA_TEST_COMMAND_KEY: 'k3y-from-the-environment' } });
    expect(config.commands.key?.reveal()).toBe('k3y-from-the-environment');
    expect(process.env).toBe(envBefore);
    expect(process.env.VIGIA_TEST_COMMAND_KEY).toBeUndefined();
  });

  it('explains a malformed secret reference', () => {
    const file = write(`${MINIMAL}  password: 1234\ncommands:\n  key: {fil: /etc/vigia/command-key}\n`);
    expect(problems(file)).toEqual([
      `${file}:7:13 mqtt.password: expected text, {file: ...} or {env: ...}, got a whole number`,
      `${file}:9:8 commands.key.file: required`,
      `${file}:9:9 commands.key.fil: unknown field (did you mean "file"?)`,
    ]);
  });

  it('reports a file that cannot be read', () => {
    const file = join(tmp, 'missing.yaml');
    expect(problems(file)).toEqual([`${file}:1:1: cannot read file: ENOENT: no such file or directory`]);
  });

  it('reports a path that is a directory', () => {
    expect(problems(tmp)).toEqual([`${tmp}:1:1: cannot read file: EISDIR: illegal operation on a directory, read`]);
  });

  it('reports an empty file', () => {
    const empty = write('');
    const commentsOnly = write('# yaml-language-server: $schema=./vigia.schema.json\n\n');
    expect(problems(empty)).toEqual([`${empty}:1:1: the file is empty; expected settings such as device: and mqtt:`]);
    expect(problems(commentsOnly)).toEqual([`${commentsOnly}:1:1: the file is empty; expected settings such as device: and mqtt:`]);
  });

  it('reports a top level that is not a map', () => {
    const file = write('# settings\n- device\n- mqtt\n');
    expect(problems(file)).toEqual([`${file}:2:1: expected a map of settings (key: value lines), got a list`]);
  });

  it('reports every problem of a file, in file order', () => {
    const file = write(`device:
  id: pole 1
  profile: lamp
outbox:
  max_bytes: lots
mqtt:
  url: http://broker
  reconect: {}
telemetry:
  interval: 0.5 minutes
`);
    expect(problems(file)).toEqual([
      `${file}:2:3 device.site: required`,
      `${file}:2:7 device.id: letters, digits, - and _ only (it is an MQTT topic level)`,
      `${file}:3:12 device.profile: expected one of pole, gantry, patrol, community`,
      `${file}:5:14 outbox.max_bytes: invalid size "lots" (use e.g. 512kB, 64MiB, 1GB)`,
      `${file}:7:8 mqtt.url: expected mqtt://host:port or mqtts://host:port`,
      `${file}:8:3 mqtt.reconect: unknown field (did you mean "reconnect"?)`,
      `${file}:10:13 telemetry.interval: invalid duration "0.5 minutes" (use e.g. 500ms, 30s, 5m, 2h, 7d)`,
    ]);
  });

  it('`config check` prints each problem to stderr and exits 78', () => {
    const file = write(`${MINIMAL}  password: {file: ${tmp}/nope}\nlog:\n  levl: debug\n`);
    const stdout: string[] = [];
    const stderr: string[] = [];
    expect(runConfigCheck(file, { stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) })).toBe(78);
    expect(stdout).toEqual([]);
    expect(stderr).toEqual([
      `${file}:7:13 mqtt.password: cannot read secret file ${tmp}/nope: ENOENT`,
      `${file}:9:3 log.levl: unknown field (did you mean "level"?)`,
    ]);
  });
});

describe('secrets', () => {
  it('never appear when the config is serialised, inspected or checked', () => {
    const { file, secrets } = redirectedExample('patrol.example.yaml');
    const config = loadConfig(file);
    const env = { VIGIA_TEST_MQTT_PASSWORD: 'env-pw-s3cr3t' };
    const fromEnv = loadConfig(write(`${MINIMAL}  password: {env: VIGIA_TEST_MQTT_PASSWORD}\n`), { env });
    const lines: string[] = [];
    runConfigCheck(file, { stdout: (s) => lines.push(s), stderr: (s) => lines.push(s) });
    const dumps = [JSON.stringify(config), inspect(config, { depth: Infinity }), JSON.stringify(fromEnv), inspect(fromEnv, { depth: Infinity }), ...lines];
    expect(dumps[0]).toContain('[secret from file ');
    for (const dump of dumps) {
      for (const value of [...Object.values(secrets), 's3cr3t', env.VIGIA_TEST_MQTT_PASSWORD]) expect(dump).not.toContain(value);
    }
  });
});

describe('camera credentials', () => {
  it('take a camera url and password from {file} and {env}, and never show them', () => {
    writeFileSync(join(tmp, 'cam-url'), 'rtsp://10.0.0.5:554/live?token=tok-url-s3cr3t\n', { mode: 0o600 });
    writeFileSync(join(tmp, 'cam-pw'), 'cam-pw-s3cr3t\n', { mode: 0o600 });
    const file = write(
      `${MINIMAL}anpr:\n  enabled: true\n  cameras:\n` +
        `    - {id: lane-1, kind: stream, url: {file: ${tmp}/cam-url}}\n` +
        `    - {id: lane-2, kind: stream, url: "rtsp://10.0.0.6/s1", username: admin, password: {file: ${tmp}/cam-pw}}\n` +
        `    - {id: lane-3, kind: stream, url: {env: VIGIA_TEST_CAM_URL}, username: admin, password: {env: VIGIA_TEST_CAM_PW}}\n` +
        `    - {id: gate, kind: snapshot, url: {env: VIGIA_TEST_CAM_URL}, username: admin, password: {env: VIGIA_TEST_CAM_PW}}\n`,
    );
    const env = { VIGIA_TEST_CAM_URL: 'http://10.0.0.7/mjpg?key=env-url-s3cr3t', VIGIA_TEST_CAM_PW: 'env-pw-s3cr3t' };
    const config = loadConfig(file, { env });
    const [one, two, three, gate] = config.anpr.cameras as Array<Config['anpr']['cameras'][number] & { url: unknown }>;
    const reveal = (value: unknown) => (value as { reveal(): string }).reveal();
    expect(reveal(one!.url)).toBe('rtsp://10.0.0.5:554/live?token=tok-url-s3cr3t');
    expect(two).toMatchObject({ url: 'rtsp://10.0.0.6/s1', username: 'admin' });
    expect(reveal(two!.password)).toBe('cam-pw-s3cr3t');
    expect(reveal(three!.url)).toBe(env.VIGIA_TEST_CAM_URL);
    expect(reveal(three!.password)).toBe(env.VIGIA_TEST_CAM_PW);
    expect(reveal(gate!.url)).toBe(env.VIGIA_TEST_CAM_URL);
    const lines: string[] = [];
    const saved = process.env;
    process.env = { ...saved, ...env };
    try {
      expect(runConfigCheck(file, { stdout: (s) => lines.push(s), stderr: (s) => lines.push(s) })).toBe(0);
    } finally {
      process.env = saved;
    }
    expect(lines).toEqual([`${file}: ok (profile pole, device la-serena/pole-0001)`]);
    for (const dump of [JSON.stringify(config), inspect(config, { depth: Infinity }), ...lines]) expect(dump).not.toMatch(/s3cr3t/);
    expect(JSON.stringify(config.anpr.cameras[0])).toContain(`[secret from file ${tmp}/cam-url]`);
  });

  it('warn about a password written inside a plain url, and refuse a password without a user or a network url', () => {
    const file = write(`${MINIMAL}anpr:\n  enabled: true\n  cameras:\n    - {id: lane-1, kind: stream, url: "rtsp://admin:inline-pw@10.0.0.5/s1"}\n`);
    const stdout: string[] = [];
    const stderr: string[] = [];
    expect(runConfigCheck(file, { stdout: (s) => stdout.push(s), stderr: (s) => stderr.push(s) })).toBe(0);
    expect(stdout).toEqual([`${file}: ok (profile pole, device la-serena/pole-0001)`]);
    expect(stderr).toEqual([
      `${file} anpr.cameras.0.url: warning: camera lane-1: the url carries a password that anyone who can read this file can see; use username + password: {file: ...} (or url: {file: ...})`,
    ]);
    expect(stderr.join('\n')).not.toContain('inline-pw');
    const bad = write(
      `${MINIMAL}anpr:\n  enabled: true\n  cameras:\n    - {id: a, kind: stream, url: "rtsp://10.0.0.5/s1", password: pw}\n    - {id: b, kind: stream, url: /dev/video0, username: u}\n`,
    );
    expect(problems(bad)).toEqual([
      `${bad}:10:66 anpr.cameras.0.password: a stream camera password needs username`,
      `${bad}:11:57 anpr.cameras.1.username: username/password need a network url (rtsp://, http://...)`,
    ]);
  });
});

describe('JSON Schema', () => {
  it('committed config/vigia.schema.json is up to date (regenerate: npm run schema)', () => {
    const committed = readFileSync(join(CONFIG_DIR, 'vigia.schema.json'), 'utf8');
    expect(committed).toBe(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  });

  it('describes the input side: units as text, secrets as references, strict maps', () => {
    const schema = configJsonSchema() as {
      $schema: string;
      $id: string;
      title: string;
      required: string[];
      additionalProperties: boolean;
      properties: Record<string, { properties: Record<string, { type?: unknown; anyOf?: unknown[]; default?: unknown }> }>;
    };
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.$id).toBeTruthy();
    expect(schema.title).toBeTruthy();
    expect(schema.required).toEqual(['device', 'mqtt']);
    expect(schema.additionalProperties).toBe(false);
    expect(schema.properties.mqtt!.properties.keepalive).toMatchObject({ type: ['string', 'number'], default: '30s' });
    expect(schema.properties.mqtt!.properties.password!.anyOf).toHaveLength(3);
  });
});

describe('command key checks', () => {
  it('refuses a short HMAC key and an Ed25519 private key, pointing at commands.key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-key-'));
    const base = 'device:\n  id: p1\n  site: s1\n  profile: pole\nmqtt:\n  url: mqtt://h:1883\ncommands:\n';
    const short = join(dir, 'short.yaml');
    writeFileSync(short, `${base}  key: tooshort\n`);
    expect(() => loadConfig(short)).toThrow(/short\.yaml:8:8 commands\.key: an HMAC key needs at least 16 bytes/);
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const priv = join(dir, 'cc.key');
    writeFileSync(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const pub = join(dir, 'cc.pub');
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    const withPriv = join(dir, 'priv.yaml');
    writeFileSync(withPriv, `${base}  auth: ed25519\n  key: {file: ${priv}}\n`);
    expect(() => loadConfig(withPriv)).toThrow(/commands\.key: the key is a private key/);
    const withPub = join(dir, 'pub.yaml');
    writeFileSync(withPub, `${base}  auth: ed25519\n  key: {file: ${pub}}\n`);
    expect(loadConfig(withPub).commands.auth).toBe('ed25519');
  });
});
