#!/usr/bin/env node
// `npm run release`: the tarball a technician copies to a device, vigia-VERSION.tgz, laid out like
// `npm pack`'s (everything under package/). It holds what `npm pack` would publish (the `files` of
// package.json, with dist/ as built) plus package-lock.json, which `npm pack` leaves out and which
// the device's `npm ci --omit=dev` needs to install exactly the dependencies tested here.
//
// `npm run release -- --with-deps` makes the bundle, vigia-VERSION-linux-ARCH-nodeMAJOR.tgz: the
// same files plus package/node_modules, the production dependencies installed and compiled here
// (`npm ci --omit=dev` in a staging directory, as scripts/install.sh runs it on a device), with
// node_modules/.vigia-installed-for naming what they were built for. The installer copies them
// when that matches the device (same lockfile, Node ABI and architecture): no network, no
// compiler. They are built for the machine this runs on, its architecture and Node.js ABI: for
// the Raspberry Pis' arm64 bundle, run it on an arm64 Linux machine with Node.js 20 (a Pi 4 or 5
// with 64-bit Raspberry Pi OS, or any arm64 build host). The native addons link against this
// machine's C library, so build on the oldest system the poles run (Debian or Raspberry Pi OS
// bookworm): a bundle built on trixie can need a newer glibc than a bookworm pole has.
//
// Usage: node scripts/release.mjs [--out DIR] [--with-deps [--cache DIR]]
//   --out DIR     where the tarball goes (default: .); `npm run release` builds dist/ first
//   --with-deps   the bundle, with the dependencies (needs npm, make, g++ and python3 here)
//   --cache DIR   keep the dependencies built for a lockfile, Node ABI and architecture in
//                 DIR/<hash> and reuse them next time (without it they are always built afresh)
// The last line of stdout is the tarball's path and size; progress goes to stderr.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: { out: { type: 'string', default: '.' }, 'with-deps': { type: 'boolean', default: false }, cache: { type: 'string' } },
});
const log = (message) => process.stderr.write(`release: ${message}\n`);
const fail = (message) => {
  log(message);
  process.exit(1);
};
/** Directories removed when this script exits, however it does. */
const temporary = new Set();
process.on('exit', () => {
  for (const dir of temporary) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(1));
const sha256 = (data) => createHash('sha256').update(data).digest('hex');
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

if (values.cache !== undefined && !values['with-deps']) fail('--cache goes with --with-deps');
if (!existsSync(join(root, 'dist', 'cli.js'))) fail('dist/ is not built: run `npm run release` (or `npm run build` first)');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// The file list npm would publish, without running any lifecycle script.
const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
const pack = spawnSync(npm[0], [...npm.slice(1), 'pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
if (pack.status !== 0) fail(`npm pack --dry-run failed:\n${pack.stderr}`);
const files = JSON.parse(pack.stdout)[0].files.map((f) => f.path);
files.push('package-lock.json');
files.sort();

/** Packs `files` of root, and node_modules of `depsDir` if given, under package/, reproducibly. */
function packTarball(tarball, depsDir) {
  // S: the symbolic links' targets (node_modules/.bin) are relative and stay as they are.
  const options = ['-czf', tarball, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '--transform=s,^,package/,S'];
  const deps = depsDir ? ['-C', depsDir, 'node_modules'] : [];
  const tar = spawnSync('tar', [...options, ...deps, '-C', root, '--', ...files], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (tar.status !== 0) fail(`tar failed (exit ${tar.status})`);
}

if (!values['with-deps']) {
  const tarball = resolve(values.out, `vigia-${version}.tgz`);
  packTarball(tarball);
  process.stdout.write(`${tarball} (${files.length} files)\n`);
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The bundle

if (process.platform !== 'linux') fail(`the bundle is built for the machine that builds it, and this one runs ${process.platform}: build it on Linux`);
const KEY_FILE = join('node_modules', '.vigia-installed-for');
// scripts/install.sh's deps_key, which it compares with the key file before using the bundled dependencies.
const depsKey = `${sha256(readFileSync(join(root, 'package-lock.json')))} node-abi-${process.versions.modules} ${process.arch}`;
const built = (dir) => existsSync(join(dir, KEY_FILE)) && readFileSync(join(dir, KEY_FILE), 'utf8') === `${depsKey}\n`;

/** Installs the production dependencies into `stage` (created) as the installer would on a device. */
function installDependencies(stage) {
  mkdirSync(stage);
  // The whole release, not just the lockfile: npm ci runs scripts/prepare.mjs, which looks for dist/.
  for (const f of files) cpSync(join(root, f), join(stage, f));
  log(`installing the production dependencies in ${stage} (npm ci --omit=dev, compiling better-sqlite3)...`);
  // As install.sh runs it; `npm run`'s npm_* variables would steer this npm (its omit, its prefix).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'));
  Object.assign(env, { ONNXRUNTIME_NODE_INSTALL: 'skip', npm_config_update_notifier: 'false' });
  const ci = spawnSync(npm[0], [...npm.slice(1), 'ci', '--omit=dev', '--no-audit', '--no-fund'], { cwd: stage, env, stdio: ['ignore', 2, 2] });
  if (ci.status !== 0) fail(`npm ci --omit=dev failed in ${stage} (exit ${ci.status})`);

  // onnxruntime-node ships its prebuilt binding for every platform and architecture it supports
  // (bin/napi-vN/<platform>/<arch>, about 245 MiB of which a Linux device uses one directory), and
  // loads the one for the running system. The bundle is for this system only, so the others go.
  const ortBin = join(stage, 'node_modules', 'onnxruntime-node', 'bin');
  if (!existsSync(ortBin)) fail(`${ortBin} is missing: has onnxruntime-node moved its binaries? (the bundle would carry every platform's)`);
  let pruned = 0;
  const remove = (dir) => {
    pruned += Number(spawnSync('du', ['-sb', dir], { encoding: 'utf8' }).stdout.split('\t')[0]) || 0;
    rmSync(dir, { recursive: true });
  };
  for (const napi of readdirSync(ortBin)) {
    for (const platform of readdirSync(join(ortBin, napi))) {
      if (platform !== 'linux') remove(join(ortBin, napi, platform));
      else for (const arch of readdirSync(join(ortBin, napi, platform))) if (arch !== process.arch) remove(join(ortBin, napi, platform, arch));
    }
    if (!existsSync(join(ortBin, napi, 'linux', process.arch))) fail(`onnxruntime-node has no binary for linux/${process.arch} in ${join(ortBin, napi)}`);
  }
  log(`removed onnxruntime-node's binaries for other systems (${mib(pruned)})`);
  writeFileSync(join(stage, KEY_FILE), `${depsKey}\n`);
}

/** A directory holding node_modules built for depsKey. */
function dependencies() {
  if (values.cache === undefined) {
    const tmp = mkdtempSync(join(tmpdir(), 'vigia-release-'));
    temporary.add(tmp);
    installDependencies(join(tmp, 'stage'));
    return join(tmp, 'stage');
  }
  const cache = resolve(values.cache);
  const entry = join(cache, sha256(depsKey).slice(0, 16));
  if (built(entry)) {
    log(`dependencies for ${depsKey} from the cache ${entry}`);
    return entry;
  }
  mkdirSync(cache, { recursive: true });
  // Built beside the entry and renamed into place: a run that is stopped leaves no half entry.
  const tmp = mkdtempSync(join(cache, '.tmp-'));
  temporary.add(tmp);
  installDependencies(join(tmp, 'stage'));
  mkdirSync(join(tmp, 'entry'));
  renameSync(join(tmp, 'stage', 'node_modules'), join(tmp, 'entry', 'node_modules'));
  rmSync(entry, { recursive: true, force: true });
  try {
    renameSync(join(tmp, 'entry'), entry);
  } catch (err) {
    // Another run with the same key got there first.
    if (!built(entry)) throw err;
  }
  log(`dependencies for ${depsKey} cached in ${entry}`);
  return entry;
}

const depsDir = dependencies();
const tarball = resolve(values.out, `vigia-${version}-linux-${process.arch}-node${process.versions.node.split('.')[0]}.tgz`);
log(`packing ${tarball}...`);
packTarball(tarball, depsDir);
process.stdout.write(`${tarball} (${mib(statSync(tarball).size)}, dependencies for linux-${process.arch}, Node.js ABI ${process.versions.modules})\n`);
