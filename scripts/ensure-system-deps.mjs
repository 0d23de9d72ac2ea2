#!/usr/bin/env node
// Checks that the system programs the test suite drives (real broker, TLS
// material, fault injection, ANPR fixtures) are installed. Installs them with
// apt-get when running as root; otherwise prints the command to run and fails.
//
// Usage: node scripts/ensure-system-deps.mjs   (also runs as `pretest`)

import { spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Program needed on the machine → Debian/Ubuntu package that provides it. */
const REQUIRED = [
  { program: 'mosquitto', pkg: 'mosquitto' },
  { program: 'mosquitto_sub', pkg: 'mosquitto-clients' },
  { program: 'mosquitto_pub', pkg: 'mosquitto-clients' },
  { program: 'openssl', pkg: 'openssl' },
  { program: 'socat', pkg: 'socat' },
  { program: 'ffmpeg', pkg: 'ffmpeg' },
  { program: 'mosquitto_passwd', pkg: 'mosquitto' },
  // `vigia logs` runs journalctl; the pretty-log test gives the daemon a terminal with script(1).
  { program: 'journalctl', pkg: 'systemd' },
  { program: 'script', pkg: 'bsdutils' },
  // The ANPR tests render synthetic plates with this font (sharp/librsvg).
  { file: '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf', program: 'DejaVu Sans Bold font', pkg: 'fonts-dejavu-core' },
  // The Node-RED editor test drives Debian's browser through playwright-core (no browser download).
  { program: 'chromium', pkg: 'chromium' },
  // The installer test: shellcheck on scripts/install.sh, and the user it declares checked by sysusers.
  { program: 'shellcheck', pkg: 'shellcheck' },
  { program: 'systemd-sysusers', pkg: 'systemd' },
  // The unit test checks systemd/*.service with `systemd-analyze verify` and `security --offline=yes`.
  { program: 'systemd-analyze', pkg: 'systemd' },
  // The call center's ingest is tested against a real PostgreSQL server (Debian keeps it in
  // /usr/lib/postgresql/VERSION/bin, off the PATH).
  { program: 'postgres', pkg: 'postgresql', versionedDir: '/usr/lib/postgresql' },
  // The fleet tests run the central side on a three-node RabbitMQ cluster (MQTT plugin, quorum
  // queues), started by the tests on loopback ports.
  { program: 'rabbitmq-server', pkg: 'rabbitmq-server' },
  // The 433 MHz remote tests decode synthesised IQ files with the real rtl_433 (the RTL-SDR receiver drives it).
  { program: 'rtl_433', pkg: 'rtl-433' },
  // The community kit's RTSP camera in the tests: a relay on loopback that ffmpeg publishes into.
  { program: 'rtsp-server-perl', pkg: 'rtsp-server-perl' },
  // vigia doctor's Bluetooth check is tested against a real (private) D-Bus without bluetoothd.
  { program: 'dbus-daemon', pkg: 'dbus' },
];

/** Daemons such as mosquitto live in sbin on Debian, which is often not on PATH for non-root users. */
const EXTRA_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function isExecutable(file) {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findProgram(name) {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(EXTRA_DIRS);
  for (const dir of dirs) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return null;
}

/** A program in DIR/VERSION/bin (any version), as Debian installs PostgreSQL. */
function inVersionedDir(dir, program) {
  if (!existsSync(dir)) return false;
  return readdirSync(dir).some((v) => isExecutable(join(dir, v, 'bin', program)));
}

function missingEntries() {
  return REQUIRED.filter(({ program, file, versionedDir }) => {
    if (file) return !existsSync(file);
    if (versionedDir) return !inVersionedDir(versionedDir, program) && findProgram(program) === null;
    return findProgram(program) === null;
  });
}

function packagesFor(entries) {
  return [...new Set(entries.map((e) => e.pkg))];
}

function describe(entries) {
  return entries.map((e) => e.program).join(', ');
}

function run(cmd, args, env) {
  const res = spawnSync(cmd, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (res.error) {
    process.stderr.write(`ensure-system-deps: failed to run ${cmd}: ${res.error.message}\n`);
    return false;
  }
  return res.status === 0;
}

let missing = missingEntries();
if (missing.length === 0) process.exit(0);

const pkgs = packagesFor(missing);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

if (!isRoot) {
  process.stderr.write(`ensure-system-deps: missing programs: ${describe(missing)}. Install them with:\n`);
  process.stderr.write(`sudo apt-get install -y ${pkgs.join(' ')}\n`);
  process.exit(1);
}

if (findProgram('apt-get') === null) {
  process.stderr.write(
    `ensure-system-deps: missing programs: ${describe(missing)}, and apt-get is not available; ` +
      `install the packages providing them (${pkgs.join(' ')}) with the system package manager.\n`,
  );
  process.exit(1);
}

process.stderr.write(`ensure-system-deps: installing ${pkgs.join(' ')}\n`);
const env = { DEBIAN_FRONTEND: 'noninteractive' };
const ok = run('apt-get', ['update'], env) && run('apt-get', ['install', '-y', ...pkgs], env);

missing = missingEntries();
if (!ok || missing.length > 0) {
  process.stderr.write(`ensure-system-deps: still missing after apt-get install: ${describe(missing) || '(apt-get failed)'}\n`);
  process.exit(1);
}
process.exit(0);
