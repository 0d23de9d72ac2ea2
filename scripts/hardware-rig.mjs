#!/usr/bin/env node
// The hardware test rig: a real Linux kernel with the kernel's GPIO simulator (gpio-sim), booted
// in QEMU, running this machine's own programs (node, the libgpiod tools, the project) from its
// root file system shared read-only over 9p.
//
// Debian's kernels are built without CONFIG_GPIO_SIM, so the driver is built out of tree from
// the `linux-source-6.1` package (drivers/gpio/gpio-sim.c with kernel/irq/irq_sim.c in the same
// module, against the headers of the very kernel the VM boots). The kernel image comes from
// Debian's `linux-image-<abi>` package, unpacked into the cache (it is not installed: the host's
// boot setup is left alone), and is booted uncompressed under QEMU's TCG with a busybox initramfs.
//
// Debian 12's libgpiod tools are v1; Raspberry Pi OS trixie ships v2, whose command lines and
// output differ. So the rig also builds the libgpiod v2 tools of Debian 13 (trixie) from that
// release's source tarball (checked against a pinned SHA-256) with interactive gpioset, as Debian
// builds them, and passes their directory to the command in the VM as $VIGIA_RIG_GPIOD2.
//
// Everything built is cached in ~/.cache/vigia-hardware-rig/<abi>_<version>/ and, for the tools,
// libgpiod-<version>/ (VIGIA_RIG_CACHE overrides the directory); missing system packages are
// installed with apt-get (root needed).
// Any step that cannot be done fails with the reason: nothing is ever skipped.
//
// Usage:
//   node scripts/hardware-rig.mjs build
//       Prepares the rig and prints where it is, as JSON.
//   node scripts/hardware-rig.mjs run [--out DIR] [--timeout SECONDS] [--env NAME=VALUE]... -- COMMAND [ARGS...]
//       Boots the VM and runs COMMAND in it as root, in the host's file system (read-only, with
//       tmpfs on /tmp and /run), in the current directory. Inside, $VIGIA_RIG_OUT is a directory
//       shared with DIR on the host (default: a new temporary directory, printed), for results,
//       and $VIGIA_RIG_GPIOD2 the directory of the libgpiod v2 tools.
//       Exits with COMMAND's status; fails if the VM does not get that far.
//
// Environment: VIGIA_RIG_CACHE (cache directory), VIGIA_RIG_KERNEL_ABI (e.g. 6.1.0-57-amd64:
// a given kernel instead of the one linux-headers-amd64 points to), VIGIA_RIG_MEMORY (MiB, 1536),
// VIGIA_RIG_CPUS (2).

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';

/** Bumped when what the rig builds changes in a way the cache keys would not notice. */
const RIG_FORMAT = 1;

const SOURCE_PACKAGE = 'linux-source-6.1';
const SOURCE_TARBALL = `/usr/src/${SOURCE_PACKAGE}.tar.xz`;
const SOURCE_ROOT = SOURCE_PACKAGE;
/** Files taken from the kernel sources. */
const SOURCE_FILES = ['drivers/gpio/gpio-sim.c', 'drivers/gpio/gpiolib.h', 'kernel/irq/irq_sim.c', 'scripts/extract-vmlinux'];
/** irq_sim.c calls irq_to_desc(), which the kernel does not export; generic_handle_irq() does the same for this call. */
const IRQ_SIM_PATCH = { from: 'handle_simple_irq(irq_to_desc(irqnum));', to: 'generic_handle_irq(irqnum);' };
const MODULE_NAME = 'gpio-sim-rig';

/**
 * Modules the initramfs loads (with their dependencies): virtio PCI, the 9p file system over
 * virtio, configfs; for the power-cut run a virtio disk with ext4 (crc32c for its metadata
 * checksums: nothing in the initramfs could load it on demand) and a virtio network card.
 */
const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'configfs', 'virtio_blk', 'crc32c_generic', 'ext4', 'virtio_net'];

/** The libgpiod v2 tools of Debian 13 (trixie, package gpiod 2.2.1-2+deb13u1), from its source. */
const LIBGPIOD2 = {
  version: '2.2.1',
  url: 'http://deb.debian.org/debian/pool/main/libg/libgpiod/libgpiod_2.2.1.orig.tar.xz',
  sha256: '0e948049c309b87c220fb24ee0d605d7cd5b72f22376e608470903fffa2d4b18',
  /** As Debian's build: the tools, interactive gpioset (libedit); static, so nothing to install. */
  configure: ['--enable-tools', '--enable-gpioset-interactive', '--disable-shared', '--enable-static', '--disable-bindings-cxx'],
};

/** Tool packages: command → Debian package. */
const TOOL_PACKAGES = [
  { path: '/usr/bin/qemu-system-x86_64', pkg: 'qemu-system-x86' },
  // The initramfs needs the static build (Debian's `busybox` package is linked dynamically).
  { path: '/bin/busybox', pkg: 'busybox-static', check: () => existsSync('/bin/busybox') && dpkgVersion('busybox-static') !== undefined },
  { path: '/usr/bin/gpiomon', pkg: 'gpiod' },
  { path: '/sbin/depmod', pkg: 'kmod' },
  { path: '/usr/bin/make', pkg: 'make' },
  { path: '/usr/bin/gcc', pkg: 'build-essential' },
  { path: '/usr/bin/xz', pkg: 'xz-utils' },
  { path: '/usr/bin/dpkg-deb', pkg: 'dpkg' },
  // To build the libgpiod v2 tools.
  { path: '/usr/bin/curl', pkg: 'curl' },
  { path: '/usr/bin/pkg-config', pkg: 'pkg-config' },
  { path: '/usr/include/histedit.h', pkg: 'libedit-dev' },
  // Personal alarm tags (tests/hardware/ble.test.ts): bluetoothd and btmgmt, the system bus, and
  // btvirt's virtual controllers; the guest runs them from this machine's root.
  { path: '/usr/libexec/bluetooth/bluetoothd', pkg: 'bluez' },
  { path: '/usr/bin/btvirt', pkg: 'bluez-test-tools' },
  { path: '/usr/bin/dbus-daemon', pkg: 'dbus' },
  { path: '/usr/bin/busctl', pkg: 'systemd' },
];

const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /proc /sys /dev /host
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say() { echo "rig: $*"; }
fail() { say "FAILED: $*"; sync; poweroff -f; sleep 5; reboot -f; }
for m in $(cat /lib/modules/order); do
  insmod "/lib/modules/$m" || fail "insmod $m"
done
OPTS=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /hostfs /rigout
mount -t 9p -o "$OPTS,ro,cache=loose" hostroot /hostfs || fail "mounting the host's root over 9p"
mount -t 9p -o "$OPTS" rigout /rigout || fail "mounting the results directory"
# A new root on tmpfs: the host's directories bound into it, the VM's own proc, sys, dev, tmp, run.
mount -t tmpfs -o mode=755 tmpfs /host || fail "tmpfs root"
for e in /hostfs/* /hostfs/.[!.]*; do
  n=\${e#/hostfs/}
  case "$n" in proc|sys|dev|tmp|run|'*'|'.[!.]*') continue ;; esac
  if [ -L "$e" ]; then
    ln -s "$(readlink "$e")" "/host/$n"
  elif [ -d "$e" ]; then
    mkdir "/host/$n" && mount --bind "$e" "/host/$n" || fail "binding /$n"
  fi
done
mkdir -p /host/proc /host/sys /host/dev /host/tmp /host/run
mount -t proc proc /host/proc || fail "proc"
mount -t sysfs sysfs /host/sys || fail "sysfs"
mount -t configfs configfs /host/sys/kernel/config || fail "configfs"
mount -t debugfs debugfs /host/sys/kernel/debug || fail "debugfs"
mount -t devtmpfs devtmpfs /host/dev || fail "devtmpfs"
mkdir -p /host/dev/shm /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "tmpfs on /tmp"
mount -t tmpfs -o mode=755 tmpfs /host/run || fail "tmpfs on /run"
# Host directories under /tmp or /run the job needs (a checkout in /tmp), bound over the tmpfs.
if [ -f /rigout/binds ]; then
  while IFS= read -r p; do
    [ -n "$p" ] || continue
    mkdir -p "/host$p" && mount --bind "/hostfs$p" "/host$p" || fail "binding $p"
  done < /rigout/binds
fi
mkdir -p /host/tmp/rig-out
mount --bind /rigout /host/tmp/rig-out || fail "binding the results directory"
# A disk image given to the job (virtio), mounted as Raspberry Pi OS mounts its root: ext4, noatime.
if [ -f /rigout/disk ]; then
  d=$(cat /rigout/disk)
  mkdir -p "/host$d" && mount -t ext4 -o noatime /dev/vda "/host$d" || fail "mounting the disk image on $d"
fi
# QEMU's user networking: the host's loopback is 10.0.2.2.
ip link set lo up
if [ -d /sys/class/net/eth0 ]; then
  ip addr add 10.0.2.15/24 dev eth0 && ip link set eth0 up && ip route add default via 10.0.2.2 || fail "network"
fi
insmod /lib/modules/${MODULE_NAME}.ko || fail "insmod ${MODULE_NAME}.ko"
[ -d /host/sys/kernel/config/gpio-sim ] || fail "no gpio-sim in configfs"
hostname vigia-rig
say "ready in $(cut -d' ' -f1 /proc/uptime) s"
chroot /host /bin/sh /tmp/rig-out/job.sh
status=$?
echo "$status" > /host/tmp/rig-out/exit-status
say "job exited with $status after $(cut -d' ' -f1 /proc/uptime) s"
sync
umount /host/tmp/rig-out
umount /rigout
poweroff -f
sleep 5
reboot -f
`;

// ---------------------------------------------------------------------------------------------

function log(msg) {
  process.stderr.write(`hardware-rig: ${msg}\n`);
}

/** A step that cannot be done: its message says why (the command line prints it without a stack). */
export class RigError extends Error {}

export function fail(msg) {
  throw new RigError(msg);
}

/** Runs a command; fails with its output when it fails. Returns stdout. */
export function run(cmd, args, { env, cwd } = {}) {
  const res = spawnSync(cmd, args, { cwd, env: { ...process.env, ...env }, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (res.error) fail(`cannot run ${cmd}: ${res.error.message}`);
  if (res.status !== 0) {
    const out = `${res.stdout ?? ''}${res.stderr ?? ''}`.trim().split('\n').slice(-30).join('\n');
    fail(`${cmd} ${args.join(' ')} failed (exit ${res.status ?? res.signal})${out ? `:\n${out}` : ''}`);
  }
  return res.stdout ?? '';
}

function dpkgVersion(pkg) {
  const res = spawnSync('dpkg-query', ['-W', '-f=${Status}\t${Version}', pkg], { encoding: 'utf8' });
  if (res.status !== 0) return undefined;
  const [status, version] = res.stdout.split('\t');
  return status === 'install ok installed' ? version : undefined;
}

export function sha256(data) {
  return createHash('sha256').update(data).digest('hex');
}

export function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

const APT_ENV = { DEBIAN_FRONTEND: 'noninteractive' };
let aptUpdated = false;

function aptUpdate() {
  if (aptUpdated) return;
  log('apt-get update');
  run('apt-get', ['update'], { env: APT_ENV });
  aptUpdated = true;
}

export function aptInstall(pkgs) {
  if (pkgs.length === 0) return;
  if (!isRoot()) {
    fail(`missing packages: ${pkgs.join(' ')}; install them with: sudo apt-get install -y --no-install-recommends ${pkgs.join(' ')} (or run as root)`);
  }
  const attempt = () =>
    spawnSync('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], {
      env: { ...process.env, ...APT_ENV },
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
  log(`apt-get install ${pkgs.join(' ')}`);
  let res = attempt();
  if (res.status !== 0 && !aptUpdated) {
    aptUpdate();
    res = attempt();
  }
  if (res.status !== 0) {
    fail(`apt-get install ${pkgs.join(' ')} failed:\n${`${res.stdout}${res.stderr}`.trim().split('\n').slice(-20).join('\n')}`);
  }
}

/** apt-cache output, updating the lists first if they know nothing. */
function aptCache(args) {
  let res = spawnSync('apt-cache', args, { encoding: 'utf8' });
  if (res.status !== 0 || !res.stdout.trim()) {
    aptUpdate();
    res = spawnSync('apt-cache', args, { encoding: 'utf8' });
  }
  if (res.status !== 0) fail(`apt-cache ${args.join(' ')} failed: ${res.stderr.trim()}`);
  return res.stdout;
}

function packageVersion(pkg) {
  const out = aptCache(['show', '--no-all-versions', pkg]);
  const m = /^Version:\s*(\S+)/m.exec(out);
  if (!m) fail(`apt knows no version of ${pkg}`);
  return m[1];
}

/** The kernel the VM boots: the ABI linux-headers-amd64 points to (or VIGIA_RIG_KERNEL_ABI), and its package version. */
function chooseKernel() {
  let abi = process.env.VIGIA_RIG_KERNEL_ABI;
  if (!abi) {
    const deps = aptCache(['depends', 'linux-headers-amd64']);
    const m = /Depends:\s*linux-headers-(6\.1\.0-\d+-amd64)\b/.exec(deps);
    if (!m) fail(`cannot tell which kernel linux-headers-amd64 is for (a Debian 12 kernel 6.1 is needed):\n${deps}`);
    abi = m[1];
  }
  if (!/^6\.1\.0-\d+-amd64$/.test(abi)) fail(`kernel ABI ${abi}: the rig builds gpio-sim from ${SOURCE_PACKAGE}, so it needs a 6.1.0-N-amd64 kernel`);
  const version = packageVersion(`linux-headers-${abi}`);
  return { abi, version };
}

/** `~/.cache/<name>` (or under $XDG_CACHE_HOME), unless `override` names a directory. */
export function cacheDirectory(name, override) {
  if (override) return resolve(override);
  const base = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(base, name);
}

function cacheRoot() {
  return cacheDirectory('vigia-hardware-rig', process.env.VIGIA_RIG_CACHE);
}

export function readJson(path) {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

export function writeFileAtomic(path, data) {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

// ---------------------------------------------------------------------------------------------
// The newc cpio format, for the initramfs.

export function cpioArchive(entries) {
  const chunks = [];
  let ino = 1;
  const pad4 = (n) => (4 - (n % 4)) % 4;
  const hex = (n) => n.toString(16).padStart(8, '0');
  const add = ({ name, mode, data = Buffer.alloc(0), rdevMajor = 0, rdevMinor = 0 }) => {
    const nameBuf = Buffer.from(`${name}\0`);
    const header = `070701${[ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdevMajor, rdevMinor, nameBuf.length, 0].map(hex).join('')}`;
    chunks.push(Buffer.from(header), nameBuf, Buffer.alloc(pad4(110 + nameBuf.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) add(e);
  add({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(chunks);
}

export const DIR = 0o040755;
export const FILE = 0o100644;
export const EXEC = 0o100755;
export const CHR = 0o020600;

// ---------------------------------------------------------------------------------------------
// Building the rig.

function ensureTools() {
  const missing = [...new Set(TOOL_PACKAGES.filter((t) => !(t.check ? t.check() : existsSync(t.path))).map((t) => t.pkg))];
  aptInstall(missing);
  const still = TOOL_PACKAGES.filter((t) => !(t.check ? t.check() : existsSync(t.path)));
  if (still.length > 0) fail(`still missing after apt-get install: ${still.map((t) => `${t.path} (${t.pkg})`).join(', ')}`);
}

/** Unpacks the kernel image package (downloaded, not installed) into `dir`. */
function unpackKernelImage(kernel, dir) {
  const dl = mkdtempSync(join(tmpdir(), 'vigia-rig-deb-'));
  try {
    chmodSync(dl, 0o755);
    const pkg = `linux-image-${kernel.abi}`;
    log(`downloading ${pkg}=${kernel.version}`);
    const get = () =>
      spawnSync('apt-get', ['download', '-o', 'APT::Sandbox::User=root', `${pkg}=${kernel.version}`], {
        cwd: dl,
        encoding: 'utf8',
        env: { ...process.env, ...APT_ENV },
      });
    let res = get();
    if (res.status !== 0) {
      aptUpdate();
      res = get();
    }
    if (res.status !== 0) fail(`apt-get download ${pkg}=${kernel.version} failed: ${`${res.stdout}${res.stderr}`.trim()}`);
    const deb = readdirSync(dl).find((f) => f.endsWith('.deb'));
    if (!deb) fail(`apt-get download ${pkg} left no .deb`);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    log(`unpacking ${deb}`);
    run('dpkg-deb', ['-x', join(dl, deb), dir]);
  } finally {
    rmSync(dl, { recursive: true, force: true });
  }
  const vmlinuz = join(dir, 'boot', `vmlinuz-${kernel.abi}`);
  if (!existsSync(vmlinuz)) fail(`the image package has no ${vmlinuz}`);
  return vmlinuz;
}

/** Extracts the few files the rig needs from the kernel source tarball. */
function extractSources(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  log(`extracting ${SOURCE_FILES.join(', ')} from ${SOURCE_TARBALL}`);
  run('tar', ['-xJf', SOURCE_TARBALL, '-C', dir, ...SOURCE_FILES.map((f) => `${SOURCE_ROOT}/${f}`)]);
  return join(dir, SOURCE_ROOT);
}

function buildModule(kernel, src, dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const f of ['drivers/gpio/gpio-sim.c', 'drivers/gpio/gpiolib.h', 'kernel/irq/irq_sim.c']) {
    writeFileSync(join(dir, basename(f)), readFileSync(join(src, f)));
  }
  const irqSim = readFileSync(join(dir, 'irq_sim.c'), 'utf8');
  const uses = irqSim.split(IRQ_SIM_PATCH.from).length - 1;
  if (uses !== 1) fail(`irq_sim.c: expected one "${IRQ_SIM_PATCH.from}", found ${uses}: the sources changed, the rig needs updating`);
  writeFileSync(join(dir, 'irq_sim.c'), irqSim.replace(IRQ_SIM_PATCH.from, IRQ_SIM_PATCH.to));
  writeFileSync(join(dir, 'Kbuild'), `obj-m := ${MODULE_NAME}.o\n${MODULE_NAME}-y := gpio-sim.o irq_sim.o\n`);
  const headers = `/usr/src/linux-headers-${kernel.abi}`;
  if (!existsSync(join(headers, 'Makefile'))) fail(`no kernel headers in ${headers}`);
  log(`building ${MODULE_NAME}.ko against ${headers}`);
  run('make', ['-C', headers, `M=${dir}`, 'modules']);
  const ko = join(dir, `${MODULE_NAME}.ko`);
  if (!existsSync(ko)) fail(`the build produced no ${ko}`);
  const vermagic = run('/sbin/modinfo', ['-F', 'vermagic', ko]).trim();
  if (!vermagic.startsWith(`${kernel.abi} `)) fail(`${ko} is for ${vermagic}, not ${kernel.abi}`);
  return ko;
}

function extractVmlinux(script, vmlinuz, out) {
  log('extracting the uncompressed kernel');
  const res = spawnSync('sh', [script, vmlinuz], { maxBuffer: 512 * 1024 * 1024 });
  if (res.status !== 0 || !res.stdout || res.stdout.length < 1024 * 1024) {
    fail(`extract-vmlinux ${vmlinuz} failed: ${res.stderr?.toString().trim() || 'no output'}`);
  }
  if (res.stdout.subarray(0, 4).toString('latin1') !== '\x7fELF') fail('extract-vmlinux did not produce an ELF kernel');
  writeFileAtomic(out, res.stdout);
}

/** The boot modules in load order (dependencies first), as paths under the unpacked image. */
function bootModules(kernel, imageDir) {
  run('/sbin/depmod', ['-b', imageDir, kernel.abi]);
  const order = moduleLoadOrder(join(imageDir, 'lib', 'modules', kernel.abi), BOOT_MODULES);
  for (const p of order) if (/\.ko\.\w+$/.test(p)) fail(`${p} is compressed; the initramfs loads plain .ko files`);
  return order;
}

/**
 * The modules `names` need, in load order (dependencies first), as paths under `modDir` (a
 * /lib/modules/<abi> tree depmod has run on). Names built into the kernel need nothing.
 */
export function moduleLoadOrder(modDir, names) {
  const dep = new Map();
  for (const line of readFileSync(join(modDir, 'modules.dep'), 'utf8').split('\n')) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) dep.set(m[1], m[2].split(/\s+/).filter(Boolean));
  }
  const builtin = new Set(
    readFileSync(join(modDir, 'modules.builtin'), 'utf8')
      .split('\n')
      .map((l) => basename(l).replace(/\.ko$/, '').replace(/-/g, '_')),
  );
  const byName = new Map(
    [...dep.keys()].map((k) => [
      basename(k)
        .replace(/\.ko(\.\w+)?$/, '')
        .replace(/-/g, '_'),
      k,
    ]),
  );
  const order = [];
  const visit = (path) => {
    if (order.includes(path)) return;
    // modules.dep lists every dependency, nearest last: load from the end.
    for (const d of [...(dep.get(path) ?? [])].reverse()) visit(d);
    order.push(path);
  };
  for (const name of names) {
    if (builtin.has(name)) continue;
    const path = byName.get(name);
    if (!path) fail(`${modDir} has no module ${name}`);
    visit(path);
  }
  return order.map((p) => join(modDir, p));
}

/** Where the rig keeps the kernel's module tree (/lib/modules/<abi> of the image package, depmod run). */
function moduleTreeOf(rig) {
  return join(rig.cacheDir, 'modules', rig.abi);
}

/**
 * The module tree of the rig's kernel, for jobs that boot a root file system of their own. Kept
 * in the rig's cache; a cache built before it was kept gets it from the image package again.
 */
export function kernelModules(rig) {
  const tree = moduleTreeOf(rig);
  if (existsSync(join(tree, 'modules.dep'))) return tree;
  const work = mkdtempSync(join(rig.cacheDir, 'modules-'));
  try {
    unpackKernelImage(rig, work);
    keepModuleTree(rig, work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return tree;
}

/** Moves the module tree out of an unpacked image package (depmod already run on it) into the rig's cache. */
function keepModuleTree(rig, imageDir) {
  const from = join(imageDir, 'lib', 'modules', rig.abi);
  if (!existsSync(join(from, 'modules.dep'))) run('/sbin/depmod', ['-b', imageDir, rig.abi]);
  const tree = moduleTreeOf(rig);
  rmSync(join(rig.cacheDir, 'modules'), { recursive: true, force: true });
  mkdirSync(join(rig.cacheDir, 'modules'), { recursive: true });
  renameSync(from, tree);
}

function buildInitramfs(modules, simKo, out) {
  const busybox = readFileSync('/bin/busybox');
  const names = modules.map((p) => basename(p));
  const entries = [
    ...['bin', 'dev', 'lib', 'lib/modules', 'proc', 'sys', 'host', 'tmp'].map((name) => ({ name, mode: DIR })),
    { name: 'dev/console', mode: CHR, rdevMajor: 5, rdevMinor: 1 },
    { name: 'dev/null', mode: 0o020666, rdevMajor: 1, rdevMinor: 3 },
    { name: 'bin/busybox', mode: EXEC, data: busybox },
    { name: 'init', mode: EXEC, data: Buffer.from(INIT_SCRIPT) },
    { name: 'lib/modules/order', mode: FILE, data: Buffer.from(`${names.join('\n')}\n`) },
    ...modules.map((p) => ({ name: `lib/modules/${basename(p)}`, mode: FILE, data: readFileSync(p) })),
    { name: `lib/modules/${MODULE_NAME}.ko`, mode: FILE, data: readFileSync(simKo) },
  ];
  writeFileAtomic(out, cpioArchive(entries));
}

/**
 * Prepares the rig (cached). Returns the paths QEMU needs.
 */
export function prepareRig() {
  if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the rig runs on x86-64 Linux (this is ${process.platform}/${process.arch})`);
  if (!existsSync('/usr/bin/apt-get') && !existsSync('/bin/apt-get')) fail('the rig needs a Debian-style system with apt-get');
  ensureTools();
  const root = cacheRoot();
  const gpiod2 = buildLibgpiod2(root);
  return { ...prepareKernel(root), gpiod2 };
}

/**
 * The libgpiod v2 tools, built once into <cache>/libgpiod-<version>/bin. The tarball is Debian's
 * upstream source for trixie's package, fetched from the Debian archive and checked by hash.
 */
function buildLibgpiod2(root) {
  const dir = join(root, `libgpiod-${LIBGPIOD2.version}`);
  const bin = join(dir, 'bin');
  const stamp = join(dir, 'built.json');
  const wanted = sha256(`${LIBGPIOD2.sha256}\n${LIBGPIOD2.configure.join(' ')}`);
  if (readJson(stamp)?.key === wanted && ['gpiodetect', 'gpioinfo', 'gpioget', 'gpioset', 'gpiomon'].every((t) => existsSync(join(bin, t)))) return bin;
  const started = Date.now();
  log(`building the libgpiod ${LIBGPIOD2.version} tools in ${dir}`);
  rmSync(dir, { recursive: true, force: true });
  const work = join(dir, 'work');
  mkdirSync(work, { recursive: true });
  const tarball = join(work, basename(LIBGPIOD2.url));
  run('curl', ['-fsSL', '--retry', '3', '-o', tarball, LIBGPIOD2.url]);
  const got = sha256(readFileSync(tarball));
  if (got !== LIBGPIOD2.sha256) fail(`${LIBGPIOD2.url}: SHA-256 ${got}, expected ${LIBGPIOD2.sha256}`);
  run('tar', ['-xJf', tarball, '-C', work]);
  const src = join(work, `libgpiod-${LIBGPIOD2.version}`);
  run(join(src, 'configure'), [...LIBGPIOD2.configure, `--prefix=${dir}`], { cwd: src });
  run('make', ['-j2'], { cwd: src });
  run('make', ['install'], { cwd: src });
  const version = run(join(bin, 'gpiodetect'), ['--version']).split('\n')[0];
  if (!version.includes(`v${LIBGPIOD2.version}`)) fail(`the built gpiodetect says ${JSON.stringify(version)}`);
  rmSync(work, { recursive: true, force: true });
  writeFileAtomic(stamp, `${JSON.stringify({ key: wanted, version, builtAt: new Date().toISOString() }, null, 2)}\n`);
  log(`libgpiod ${LIBGPIOD2.version} tools built in ${Math.round((Date.now() - started) / 100) / 10} s`);
  return bin;
}

/** The kernel, the gpio-sim module and the initramfs, for the kernel linux-headers-amd64 points to. */
function prepareKernel(root) {
  const kernel = chooseKernel();
  const dir = join(root, `${kernel.abi}_${kernel.version}`);
  mkdirSync(dir, { recursive: true });
  const manifestFile = join(dir, 'rig.json');
  const initHash = sha256(`${RIG_FORMAT}\n${INIT_SCRIPT}\n${BOOT_MODULES.join(',')}\n${JSON.stringify(IRQ_SIM_PATCH)}\n${MODULE_NAME}`);
  const busyboxHash = sha256(readFileSync('/bin/busybox'));
  const manifest = readJson(manifestFile);
  const paths = { kernel: join(dir, 'vmlinux'), initrd: join(dir, 'initramfs.cpio'), module: join(dir, 'module', `${MODULE_NAME}.ko`) };
  if (manifest && manifest.initHash === initHash && manifest.busyboxHash === busyboxHash && Object.values(paths).every((p) => existsSync(p))) {
    return { ...manifest, ...paths, cacheDir: dir, cached: true };
  }

  const started = Date.now();
  log(`building the rig for kernel ${kernel.abi} (${kernel.version}) in ${dir}`);
  // The sources and headers must be the very version of the kernel booted.
  const needed = [];
  if (dpkgVersion(SOURCE_PACKAGE) !== kernel.version) needed.push(`${SOURCE_PACKAGE}=${kernel.version}`);
  if (dpkgVersion(`linux-headers-${kernel.abi}`) !== kernel.version) needed.push(`linux-headers-${kernel.abi}=${kernel.version}`);
  aptInstall(needed);
  if (!existsSync(SOURCE_TARBALL)) fail(`${SOURCE_PACKAGE} is installed but ${SOURCE_TARBALL} is missing`);

  const work = join(dir, 'work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const imageDir = join(work, 'image');
  const vmlinuz = unpackKernelImage(kernel, imageDir);
  const src = extractSources(join(work, 'src'));
  const ko = buildModule(kernel, src, join(work, 'module'));
  extractVmlinux(join(src, 'scripts', 'extract-vmlinux'), vmlinuz, paths.kernel);
  const modules = bootModules(kernel, imageDir);
  rmSync(join(dir, 'module'), { recursive: true, force: true });
  mkdirSync(join(dir, 'module'), { recursive: true });
  writeFileSync(paths.module, readFileSync(ko));
  buildInitramfs(modules, ko, paths.initrd);
  const config = join(imageDir, 'boot', `config-${kernel.abi}`);
  writeFileSync(join(dir, `config-${kernel.abi}`), readFileSync(config));
  keepModuleTree({ abi: kernel.abi, cacheDir: dir }, imageDir);
  rmSync(work, { recursive: true, force: true });

  const built = {
    format: RIG_FORMAT,
    abi: kernel.abi,
    version: kernel.version,
    moduleName: MODULE_NAME,
    bootModules: modules.map((m) => basename(m)),
    initHash,
    busyboxHash,
    builtAt: new Date().toISOString(),
    buildSeconds: Math.round((Date.now() - started) / 100) / 10,
  };
  writeFileAtomic(manifestFile, `${JSON.stringify(built, null, 2)}\n`);
  log(`rig built in ${built.buildSeconds} s`);
  return { ...built, ...paths, cacheDir: dir, cached: false };
}

// ---------------------------------------------------------------------------------------------
// Running a command in the VM.

/** A TCP port free on the loopback now, for a forward to a VM (or any server) to listen on. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

export function shellQuote(s) {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Boots the VM, runs `command` in it and powers it off. Resolves with the command's exit status
 * and the console output; rejects if the VM does not get to run it or does not finish in time.
 */
export async function runInVm(rig, command, opts = {}) {
  const { timeoutMs = 300_000 } = opts;
  const vm = startVm(rig, command, opts);
  const timer = setTimeout(() => vm.kill(), timeoutMs);
  const exit = await vm.exited;
  clearTimeout(timer);
  const tail = () => exit.console.split('\n').slice(-40).join('\n');
  if (exit.killed) fail(`the VM did not finish within ${timeoutMs / 1000} s; console (${exit.consoleFile}):\n${tail()}`);
  if (exit.status === undefined) {
    fail(`the VM stopped (qemu ${exit.signal ?? `exit ${exit.code}`}) before the command finished; console (${exit.consoleFile}):\n${tail()}`);
  }
  return { status: exit.status, seconds: exit.seconds, outDir: exit.outDir, console: exit.console, consoleFile: exit.consoleFile };
}

/**
 * Boots the VM running `command` and returns at once: `kill()` pulls the plug (SIGKILL to QEMU:
 * the guest's page cache and anything not yet written to the disk image are gone, as in a power
 * cut), `exited` resolves when QEMU is gone, with the command's status if it got to finish.
 *
 * Options beyond runInVm's: `disk: { image, mountAt }` attaches a raw ext4 image as a virtio disk
 * (QEMU's default write-back cache: the guest's flushes reach the host's disk) mounted at
 * `mountAt` (under /run or /tmp) before the command starts; `net: true` gives the guest QEMU's
 * user networking, where the host's loopback is 10.0.2.2.
 */
export function startVm(rig, command, opts = {}) {
  const { outDir, env = {}, cwd = process.cwd(), onConsole, disk, net = false } = opts;
  if (command.length === 0) fail('no command to run in the VM');
  const out = outDir ? resolve(outDir) : mkdtempSync(join(tmpdir(), 'vigia-rig-out-'));
  mkdirSync(out, { recursive: true });
  for (const f of ['exit-status', 'job.sh', 'binds', 'disk', 'results.json']) rmSync(join(out, f), { force: true });
  // The VM has its own /tmp and /run: a working directory there is bound in from the host.
  const binds = [resolve(cwd), ...(opts.binds ?? [])].filter((p) => /^\/(tmp|run)(\/|$)/.test(p));
  if (binds.some((p) => /[\n]/.test(p))) fail('paths to bind into the VM must not contain newlines');
  writeFileSync(join(out, 'binds'), binds.map((p) => `${p}\n`).join(''));
  if (disk) {
    if (!/^\/(tmp|run)\/[A-Za-z0-9._/-]+$/.test(disk.mountAt)) fail(`disk.mountAt must be a plain path under /tmp or /run, not ${disk.mountAt}`);
    if (!existsSync(disk.image)) fail(`no disk image ${disk.image}`);
    writeFileSync(join(out, 'disk'), disk.mountAt);
  }
  const vars = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: '/tmp',
    TMPDIR: '/tmp',
    LANG: 'C.UTF-8',
    VIGIA_RIG_OUT: '/tmp/rig-out',
    ...(rig.gpiod2 ? { VIGIA_RIG_GPIOD2: rig.gpiod2 } : {}),
    ...env,
  };
  const job = [
    '#!/bin/sh',
    `cd ${shellQuote(cwd)} || exit 125`,
    `exec env -i ${Object.entries(vars)
      .map(([k, v]) => shellQuote(`${k}=${v}`))
      .join(' ')} ${command.map(shellQuote).join(' ')}`,
    '',
  ].join('\n');
  writeFileSync(join(out, 'job.sh'), job);

  const memory = Number(process.env.VIGIA_RIG_MEMORY ?? 1536);
  const cpus = Number(process.env.VIGIA_RIG_CPUS ?? 2);
  const args = [
    '-accel',
    'tcg',
    '-cpu',
    'max',
    '-machine',
    'pc',
    '-m',
    String(memory),
    '-smp',
    String(cpus),
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-monitor',
    'none',
    '-no-reboot',
    '-kernel',
    rig.kernel,
    '-initrd',
    rig.initrd,
    '-append',
    'console=ttyS0 panic=-1 loglevel=4 mitigations=off random.trust_cpu=on rdinit=/init',
    '-virtfs',
    'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
    '-virtfs',
    `local,path=${out},mount_tag=rigout,security_model=none`,
    ...(disk ? ['-drive', `file=${disk.image},if=virtio,format=raw,cache=writeback`] : []),
    ...(net ? ['-netdev', 'user,id=net0', '-device', 'virtio-net-pci,netdev=net0'] : []),
  ];
  const started = Date.now();
  const consoleFile = join(out, 'console.log');
  const consoleLog = createWriteStream(consoleFile);
  let text = '';
  const qemu = spawn('/usr/bin/qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onData = (buf) => {
    const s = buf.toString();
    text += s;
    if (text.length > 4_000_000) text = text.slice(-2_000_000);
    consoleLog.write(buf);
    onConsole?.(s);
  };
  qemu.stdout.on('data', onData);
  qemu.stderr.on('data', onData);
  let killed = false;
  const exited = new Promise((res, rej) => {
    qemu.on('error', rej);
    qemu.on('close', (code, signal) => res({ code, signal }));
  }).then(async ({ code, signal }) => {
    await new Promise((r) => consoleLog.end(r));
    const statusFile = join(out, 'exit-status');
    const status = existsSync(statusFile) ? Number(readFileSync(statusFile, 'utf8').trim()) : undefined;
    return { code, signal, killed, status, seconds: Math.round((Date.now() - started) / 100) / 10, outDir: out, console: text, consoleFile };
  });
  return {
    startedAt: started,
    outDir: out,
    exited,
    kill() {
      killed = true;
      qemu.kill('SIGKILL');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Command line.

function usage() {
  return 'usage: node scripts/hardware-rig.mjs build\n       node scripts/hardware-rig.mjs run [--out DIR] [--timeout SECONDS] [--env NAME=VALUE]... -- COMMAND [ARGS...]';
}

async function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === 'build') {
    const rig = prepareRig();
    process.stdout.write(`${JSON.stringify(rig, null, 2)}\n`);
    return 0;
  }
  if (cmd === 'run') {
    const opts = { env: {} };
    let i = 0;
    for (; i < rest.length; i++) {
      const a = rest[i];
      if (a === '--') {
        i++;
        break;
      } else if (a === '--out') opts.outDir = rest[++i];
      else if (a === '--timeout') opts.timeoutMs = Number(rest[++i]) * 1000;
      else if (a === '--env') {
        const [k, ...v] = String(rest[++i]).split('=');
        opts.env[k] = v.join('=');
      } else fail(`unknown option ${a}\n${usage()}`);
    }
    const command = rest.slice(i);
    if (command.length === 0) fail(usage());
    if (opts.timeoutMs !== undefined && !(opts.timeoutMs > 0)) fail('--timeout must be a number of seconds');
    const rig = prepareRig();
    log(`booting kernel ${rig.abi} (${rig.cached ? 'cached' : 'just built'})`);
    const result = await runInVm(rig, command, { ...opts, onConsole: (s) => process.stdout.write(s) });
    log(`VM ran for ${result.seconds} s; command exited with ${result.status}; results in ${result.outDir}`);
    return result.status;
  }
  process.stderr.write(`${usage()}\n`);
  return 2;
}

/**
 * Runs `main` with the command line when the script at `moduleUrl` is the one node was started
 * with (not imported): exits with its status, printing a RigError's message without a stack.
 */
export function runAsCommand(moduleUrl, name, main) {
  if (!process.argv[1] || resolve(process.argv[1]) !== resolve(new URL(moduleUrl).pathname)) return;
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`${name}: ${err instanceof RigError ? err.message : (err?.stack ?? err)}\n`);
      process.exit(1);
    },
  );
}

runAsCommand(import.meta.url, 'hardware-rig', main);
