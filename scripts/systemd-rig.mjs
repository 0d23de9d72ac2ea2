#!/usr/bin/env node
// The systemd rig: a Debian 12 (bookworm) system booted in QEMU with systemd as PID 1, reached
// over SSH as a field technician reaches a pole, for testing what has to meet a real init system
// (the installer, the unit file, reboots). A sibling of scripts/hardware-rig.mjs, whose kernel,
// module tree and gpio-sim module it boots.
//
// The root file system is built from Debian's packages with mmdebstrap, packed into a raw ext4
// image (`mkfs.ext4 -d`, no loop mount) and cached in ~/.cache/vigia-systemd-rig/<key>/, where the
// key is a hash of everything that goes into it (packages, files written, Node and npm versions,
// kernel, initramfs). Each VM runs on a qcow2 overlay of it, so the cached image stays pristine.
// A tiny busybox initramfs loads virtio_blk and ext4 and switch_roots to /dev/vda's /sbin/init.
//
// Usage:
//   node scripts/systemd-rig.mjs build                      prepares the image; prints it as JSON
//   node scripts/systemd-rig.mjs run [--memory MB] [--cpus N]
//       boots a VM and keeps it up until Ctrl-C (then powers it off cleanly)
//   node scripts/systemd-rig.mjs ssh [-- COMMAND...]        SSH into the VM `run` started
//
// Environment: VIGIA_SYSTEMD_RIG_CACHE (cache directory); the hardware rig's own variables choose
// the kernel (VIGIA_RIG_KERNEL_ABI, VIGIA_RIG_CACHE).

import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import {
  aptInstall,
  CHR,
  cacheDirectory,
  cpioArchive,
  DIR,
  EXEC,
  FILE,
  fail,
  freePort,
  isRoot,
  kernelModules,
  moduleLoadOrder,
  prepareRig,
  RigError,
  readJson,
  run,
  runAsCommand,
  sha256,
  writeFileAtomic,
} from './hardware-rig.mjs';

const SUITE = 'bookworm';
const HOSTNAME = 'pole';
const USER = 'technician';
/** Names the host key in known_hosts whatever port QEMU forwards. */
const HOST_KEY_ALIAS = 'vigia-systemd-rig';
/** Room for the project and its node_modules (about 700 MiB) next to the system; the file is sparse. */
const IMAGE_SIZE = '4G';

/**
 * What the image has beyond Debian's `apt` variant (Essential packages and apt), and why. A small
 * subset of a Raspberry Pi OS Lite install: what the daemon, its installer and a technician use.
 */
const PACKAGES = [
  // systemd as PID 1, udev (device permissions, module autoloading), D-Bus and logind (systemctl,
  // timedatectl and sudo sessions talk to them), timesyncd (the daemon reads its sync flag).
  'systemd',
  'systemd-sysv',
  'udev',
  'dbus',
  'libpam-systemd',
  'systemd-timesyncd',
  // How technicians reach a pole; sftp-server because scp speaks SFTP since OpenSSH 9.
  'openssh-server',
  'openssh-sftp-server',
  'sudo',
  // TLS to the central broker and the npm registry.
  'ca-certificates',
  // The libgpiod tools the chardev GPIO backend drives (v1 on bookworm, as on Raspberry Pi OS bookworm).
  'gpiod',
  // modprobe for modules-load.d; ip, ps; /etc/services and /etc/protocols; curl, which Pi OS Lite has.
  'kmod',
  'iproute2',
  'procps',
  'netbase',
  'curl',
  // Personal alarm tags: bluetoothd on the system bus, as on Raspberry Pi OS; btvirt (the test
  // tools) makes virtual LE controllers on the kernel's hci_vhci, one advertising as a tag.
  'bluez',
  'bluez-test-tools',
];

/** Keep documentation, manuals and translations out of the image, as a small image should. */
const DPKG_EXCLUDES = [
  'path-exclude=/usr/share/man/*',
  'path-exclude=/usr/share/info/*',
  'path-exclude=/usr/share/doc/*',
  'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/locale/*',
  'path-include=/usr/share/locale/locale.alias',
];

/**
 * Kernel modules in the root file system (with their dependencies; depmod is run there): the
 * virtio disk, network and entropy source, ext4, and what systemd loads at start (configfs for
 * sys-kernel-config.mount, autofs4, fuse, loop, fq_codel for its default qdisc), and Bluetooth:
 * hci_vhci for btvirt's virtual controllers, with the crypto that bluetooth's ECDH self-test and
 * btvirt's AF_ALG sockets ask for. Everything else a Raspberry Pi would load has no device here.
 */
const ROOTFS_MODULES = [
  'virtio_pci',
  'virtio_blk',
  'crc32c_generic',
  'ext4',
  'virtio_net',
  'virtio_rng',
  'configfs',
  'autofs4',
  'fuse',
  'loop',
  'sch_fq_codel',
  'sha512_generic',
  'ctr',
  'drbg',
  'ecb',
  'cmac',
  'algif_hash',
  'algif_skcipher',
  'hci_vhci',
];
/** What the initramfs needs to mount the root file system. */
const INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'crc32c_generic', 'ext4'];

/** Groups Raspberry Pi OS has for its hardware (the installer adds the daemon's user to gpio). */
const PI_GROUPS = ['gpio', 'i2c', 'spi'];
/** The first user's groups on Raspberry Pi OS, less the desktop's. */
const USER_GROUPS = ['adm', 'dialout', 'sudo', 'video', 'plugdev', 'users', 'input', ...PI_GROUPS];

/** Files written into the image, beyond users and keys. */
const FILES = {
  '/etc/hostname': `${HOSTNAME}\n`,
  '/etc/hosts': `127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t${HOSTNAME}\n`,
  // Mounted read-write by the initramfs; noatime as Raspberry Pi OS mounts its root.
  '/etc/fstab': '/dev/vda\t/\text4\tdefaults,noatime\t0\t1\n',
  // QEMU's user networking: DHCP, and its DNS relay at 10.0.2.3.
  '/etc/systemd/network/20-wired.network': '[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n',
  '/etc/resolv.conf': 'nameserver 10.0.2.3\n',
  // The out-of-tree gpio-sim, loaded at boot as a Pi loads its GPIO driver.
  '/etc/modules-load.d/gpio-sim.conf': 'gpio-sim-rig\n',
  // As Raspberry Pi OS (raspberrypi-sys-mods, 99-com.rules): GPIO chips belong to the gpio group.
  '/etc/udev/rules.d/99-gpio.rules': 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"\n',
  [`/etc/sudoers.d/010_${USER}-nopasswd`]: `${USER} ALL=(ALL) NOPASSWD: ALL\n`,
  '/etc/ssh/sshd_config.d/10-rig.conf': 'HostKey /etc/ssh/ssh_host_ed25519_key\nPasswordAuthentication no\n',
};

const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /proc /sys /dev /newroot
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "initramfs: FAILED: $*"; poweroff -f; }
for m in $(cat /lib/modules/order); do
  insmod "/lib/modules/$m" || fail "insmod $m"
done
# The disk appears once virtio_blk has probed it.
n=0
until [ -b /dev/vda ]; do
  n=$((n + 1)); [ $n -le 30 ] || fail "no /dev/vda"; sleep 1
done
mount -t ext4 -o rw,noatime /dev/vda /newroot || fail "mounting /dev/vda"
umount /proc /sys
mount --move /dev /newroot/dev || fail "moving /dev"
exec switch_root /newroot /sbin/init
`;

// ---------------------------------------------------------------------------------------------

function log(msg) {
  process.stderr.write(`systemd-rig: ${msg}\n`);
}

const seconds = (ms) => Math.round(ms / 100) / 10;

const TOOLS = [
  { path: '/usr/bin/mmdebstrap', pkg: 'mmdebstrap' },
  { path: '/usr/bin/qemu-img', pkg: 'qemu-utils' },
  { path: '/sbin/mkfs.ext4', pkg: 'e2fsprogs' },
  { path: '/usr/bin/ssh', pkg: 'openssh-client' },
  { path: '/usr/bin/scp', pkg: 'openssh-client' },
  { path: '/usr/bin/ssh-keygen', pkg: 'openssh-client' },
];

function ensureTools() {
  aptInstall([...new Set(TOOLS.filter((t) => !existsSync(t.path)).map((t) => t.pkg))]);
}

function cacheRoot() {
  return cacheDirectory('vigia-systemd-rig', process.env.VIGIA_SYSTEMD_RIG_CACHE);
}

/** This machine's Node (20, from NodeSource on a technician's Pi) and the npm beside it. */
function hostNode() {
  const npm = join(dirname(dirname(process.execPath)), 'lib', 'node_modules', 'npm');
  const pkg = readJson(join(npm, 'package.json'));
  if (!pkg?.version) fail(`no npm in ${npm} beside ${process.execPath}`);
  return { node: process.execPath, nodeVersion: process.version, npm, npmVersion: pkg.version };
}

function imagePaths(dir) {
  return {
    dir,
    image: join(dir, 'base.img'),
    initrd: join(dir, 'initramfs.cpio'),
    sshKey: join(dir, 'id_ed25519'),
    knownHosts: join(dir, 'known_hosts'),
    manifest: join(dir, 'image.json'),
  };
}

/**
 * Prepares the image (cached): the hardware rig's kernel, an initramfs, and the root file system.
 * Needs root and apt for a build; a cached image only needs to be read.
 */
export function prepareSystemdImage() {
  const rig = prepareRig();
  ensureTools();
  const host = hostNode();
  const simKo = join(rig.cacheDir, 'module', `${rig.moduleName}.ko`);
  const inputs = {
    // The build steps themselves: any change to this file builds a new image.
    script: sha256(readFileSync(new URL(import.meta.url))),
    suite: SUITE,
    packages: PACKAGES,
    dpkg: DPKG_EXCLUDES,
    files: FILES,
    rootfsModules: ROOTFS_MODULES,
    initramfsModules: INITRAMFS_MODULES,
    init: INIT_SCRIPT,
    users: { USER, USER_GROUPS, PI_GROUPS, HOSTNAME },
    size: IMAGE_SIZE,
    node: host.nodeVersion,
    npm: host.npmVersion,
    kernel: `${rig.abi} ${rig.version}`,
    gpioSim: sha256(readFileSync(simKo)),
    busybox: sha256(readFileSync('/bin/busybox')),
  };
  const key = sha256(JSON.stringify(inputs)).slice(0, 16);
  const root = cacheRoot();
  const paths = imagePaths(join(root, key));
  const kernel = { kernel: rig.kernel, abi: rig.abi };
  const manifest = readJson(paths.manifest);
  if (manifest?.key === key && [paths.image, paths.initrd, paths.sshKey, paths.knownHosts].every((p) => existsSync(p))) {
    return { ...manifest, ...paths, ...kernel, cached: true };
  }
  if (!isRoot()) fail('building the systemd image needs root (mmdebstrap, chroot, device nodes): run as root once, later runs use the cache');

  const started = Date.now();
  mkdirSync(root, { recursive: true });
  const work = mkdtempSync(join(root, `${key}.build-`));
  try {
    const tree = join(work, 'rootfs');
    const out = imagePaths(work);
    log(`building the ${SUITE} image ${key} in ${work}`);
    run('mmdebstrap', ['--variant=apt', '--components=main', `--include=${PACKAGES.join(',')}`, ...DPKG_EXCLUDES.map((o) => `--dpkgopt=${o}`), SUITE, tree]);
    configureSystem(tree);
    addUserAndKeys(tree, out);
    installNode(tree, host);
    installModules(tree, rig, simKo);
    log('packing the root file system into ext4');
    run('/sbin/mkfs.ext4', ['-q', '-F', '-L', 'rootfs', '-d', tree, out.image, IMAGE_SIZE]);
    chmodSync(out.image, 0o444);
    rmSync(tree, { recursive: true, force: true });
    buildInitramfs(rig, out.initrd);
    const built = {
      key,
      suite: SUITE,
      packages: PACKAGES,
      abi: rig.abi,
      nodeVersion: host.nodeVersion,
      npmVersion: host.npmVersion,
      user: USER,
      hostname: HOSTNAME,
      builtAt: new Date().toISOString(),
      buildSeconds: seconds(Date.now() - started),
    };
    writeFileAtomic(out.manifest, `${JSON.stringify(built, null, 2)}\n`);
    rmSync(paths.dir, { recursive: true, force: true });
    renameSync(work, paths.dir);
    removeOtherImages(root, key);
    log(`image built in ${built.buildSeconds} s`);
    return { ...built, ...paths, ...kernel, cached: false };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Images built from other inputs are of no further use; each is a few hundred MiB. */
function removeOtherImages(root, key) {
  for (const name of readdirSync(root)) {
    if (name !== key && /^[0-9a-f]{16}$/.test(name)) rmSync(join(root, name), { recursive: true, force: true });
  }
}

function writeInto(tree, path, data, mode = 0o644) {
  const file = join(tree, path);
  mkdirSync(dirname(file), { recursive: true });
  rmSync(file, { force: true });
  writeFileSync(file, data, { mode });
  chmodSync(file, mode);
}

function configureSystem(tree) {
  for (const [path, data] of Object.entries(FILES)) writeInto(tree, path, data, path.startsWith('/etc/sudoers.d/') ? 0o440 : 0o644);
  // A machine id of its own: an empty one would make every boot a first boot (systemd-firstboot prompts).
  writeInto(tree, '/etc/machine-id', `${randomBytes(16).toString('hex')}\n`, 0o444);
  run('chroot', [tree, 'systemctl', 'enable', 'systemd-networkd.service']);
  // Raspberry Pi OS Lite boots to multi-user, not graphical.
  run('chroot', [tree, 'systemctl', 'set-default', 'multi-user.target']);
  for (const group of PI_GROUPS) run('chroot', [tree, 'groupadd', '--system', group]);
}

/** The technician's account and the SSH keys: theirs for the tests, the host's for StrictHostKeyChecking. */
function addUserAndKeys(tree, out) {
  run('chroot', [tree, 'useradd', '--create-home', '--shell', '/bin/bash', '--groups', USER_GROUPS.join(','), USER]);
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `${USER}@${HOST_KEY_ALIAS}`, '-f', out.sshKey]);
  const home = join(tree, 'home', USER);
  writeInto(tree, `/home/${USER}/.ssh/authorized_keys`, readFileSync(`${out.sshKey}.pub`), 0o600);
  chmodSync(join(home, '.ssh'), 0o700);
  run('chroot', [tree, 'chown', '-R', `${USER}:${USER}`, `/home/${USER}/.ssh`]);
  // Replace the keys the package's postinst made with one known to the host.
  for (const f of readdirSync(join(tree, 'etc', 'ssh')).filter((f) => f.startsWith('ssh_host_'))) rmSync(join(tree, 'etc', 'ssh', f));
  const hostKey = join(tree, 'etc', 'ssh', 'ssh_host_ed25519_key');
  run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `root@${HOSTNAME}`, '-f', hostKey]);
  const [type, pub] = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/);
  writeFileSync(out.knownHosts, `${HOST_KEY_ALIAS} ${type} ${pub}\n`);
}

/**
 * Node 20, which bookworm does not package: this machine's binary and npm, laid out as a
 * technician's manual install (/usr/local/bin/node, npm under /usr/local/lib/node_modules).
 */
function installNode(tree, host) {
  const bin = join(tree, 'usr', 'local', 'bin');
  const lib = join(tree, 'usr', 'local', 'lib', 'node_modules');
  mkdirSync(bin, { recursive: true });
  mkdirSync(lib, { recursive: true });
  copyFileSync(host.node, join(bin, 'node'));
  chmodSync(join(bin, 'node'), 0o755);
  cpSync(host.npm, join(lib, 'npm'), { recursive: true, verbatimSymlinks: true });
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(bin, 'npm'));
  symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(bin, 'npx'));
}

/** The chosen modules of the rig's kernel and gpio-sim, in /lib/modules/<abi>, with depmod run there. */
function installModules(tree, rig, simKo) {
  const from = kernelModules(rig);
  const to = join(tree, 'lib', 'modules', rig.abi);
  mkdirSync(to, { recursive: true });
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) copyFileSync(join(from, f), join(to, f));
  for (const ko of moduleLoadOrder(from, ROOTFS_MODULES)) {
    const dest = join(to, relative(from, ko));
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(ko, dest);
  }
  mkdirSync(join(to, 'extra'), { recursive: true });
  copyFileSync(simKo, join(to, 'extra', `${rig.moduleName}.ko`));
  run('/sbin/depmod', ['-b', tree, rig.abi]);
}

function buildInitramfs(rig, out) {
  const modules = moduleLoadOrder(kernelModules(rig), INITRAMFS_MODULES);
  const names = modules.map((p) => p.split('/').pop());
  const entries = [
    ...['bin', 'dev', 'lib', 'lib/modules', 'proc', 'sys', 'newroot'].map((name) => ({ name, mode: DIR })),
    { name: 'dev/console', mode: CHR, rdevMajor: 5, rdevMinor: 1 },
    { name: 'bin/busybox', mode: EXEC, data: readFileSync('/bin/busybox') },
    { name: 'init', mode: EXEC, data: Buffer.from(INIT_SCRIPT) },
    { name: 'lib/modules/order', mode: FILE, data: Buffer.from(`${names.join('\n')}\n`) },
    ...modules.map((p, i) => ({ name: `lib/modules/${names[i]}`, mode: FILE, data: readFileSync(p) })),
  ];
  writeFileAtomic(out, cpioArchive(entries));
}

// ---------------------------------------------------------------------------------------------
// Running a VM.

/**
 * ssh/scp options: only the rig's key, only its host key, no prompts, nothing from ~/.ssh. With
 * `controlPath`, commands share one connection: a new login costs about 2 s under emulation.
 */
function sshOptions(image, controlPath) {
  const shared = controlPath ? ['-o', 'ControlMaster=auto', '-o', `ControlPath=${controlPath}`, '-o', 'ControlPersist=30'] : [];
  return [
    ...shared,
    '-F',
    '/dev/null',
    '-i',
    image.sshKey,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    `UserKnownHostsFile=${image.knownHosts}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    `HostKeyAlias=${HOST_KEY_ALIAS}`,
    '-o',
    'ConnectTimeout=10',
    '-o',
    'ServerAliveInterval=5',
    '-o',
    'ServerAliveCountMax=6',
    '-o',
    'LogLevel=ERROR',
  ];
}

/** Runs ssh or scp; resolves with its exit code and output, rejects when it outlives `timeoutMs`. */
function runClient(program, args, timeoutMs, what) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => {
      stdout += b;
    });
    child.stderr.on('data', (b) => {
      stderr += b;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') reject(new RigError(`${what} did not finish within ${timeoutMs / 1000} s; output so far:\n${stdout}${stderr}`));
      else resolvePromise({ code, stdout, stderr });
    });
  });
}

function qemuArgs(image, { memoryMb, cpus, overlay, consoleFile, sshPort, serialSockets }) {
  return [
    ...['-accel', 'tcg', '-cpu', 'max', '-machine', 'pc', '-m', String(memoryMb), '-smp', String(cpus)],
    ...['-nodefaults', '-no-user-config', '-display', 'none', '-monitor', 'none', '-serial', `file:${consoleFile}`],
    ...['-kernel', image.kernel, '-initrd', image.initrd],
    // panic=0: a panicking kernel stops where the console shows why (a reset would boot again).
    ...['-append', 'console=ttyS0 root=/dev/vda rw rdinit=/init panic=0 loglevel=4 mitigations=off random.trust_cpu=on net.ifnames=0'],
    ...['-drive', `file=${overlay},if=virtio,format=qcow2,cache=writeback`],
    ...['-netdev', `user,id=net0,hostfwd=tcp:127.0.0.1:${sshPort}-:22`, '-device', 'virtio-net-pci,netdev=net0'],
    ...['-device', 'virtio-rng-pci'],
    // More 16550 UARTs (ttyS1, ttyS2...: a GPS on a pole's serial header), each a UNIX socket QEMU
    // listens on; whatever the host writes there arrives on the guest's port through its 8250 driver.
    ...serialSockets.flatMap((path) => ['-serial', `unix:${path},server=on,wait=off`]),
  ];
}

const BOOT_TIMEOUT_MS = 5 * 60_000;

/**
 * Boots a VM on a copy-on-write overlay of the image and resolves once SSH answers as the
 * technician. `ssh(cmd)` runs a shell command line there; `reboot()` and `stop()` go through
 * systemd; `kill()` pulls the plug.
 */
export async function bootSystemdVm({ memoryMb = 1024, cpus = 2, image = prepareSystemdImage(), serialPorts = 0 } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-systemd-vm-'));
  const overlay = join(dir, 'overlay.qcow2');
  const consoleFile = join(dir, 'console.log');
  run('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', image.image, '-F', 'raw', overlay]);
  const sshPort = await freePort();
  const serialSockets = Array.from({ length: serialPorts }, (_, i) => join(dir, `ttyS${i + 1}.sock`));
  const started = Date.now();
  const qemu = spawn('/usr/bin/qemu-system-x86_64', qemuArgs(image, { memoryMb, cpus, overlay, consoleFile, sshPort, serialSockets }), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let qemuOutput = '';
  qemu.stdout.on('data', (b) => {
    qemuOutput += b;
  });
  qemu.stderr.on('data', (b) => {
    qemuOutput += b;
  });
  let exitCode;
  const exited = new Promise((resolvePromise) => {
    qemu.on('error', (err) => {
      qemuOutput += String(err);
      resolvePromise(null);
    });
    qemu.on('close', (code, signal) => resolvePromise(code ?? signal));
  }).then((code) => {
    exitCode = code;
    rmSync(overlay, { force: true });
    process.removeListener('exit', killOnExit);
    return code;
  });
  // A test that dies must not leave QEMU running.
  const killOnExit = () => qemu.kill('SIGKILL');
  process.on('exit', killOnExit);

  const controlPath = join(dir, 'ssh-%C');
  const client = (args) => [...sshOptions(image, controlPath), ...args];
  /** Closes the shared connection, which would otherwise outlive the guest's sshd by its keep-alives. */
  const dropConnection = () =>
    runClient('ssh', client(['-O', 'exit', '-p', String(sshPort), `${USER}@127.0.0.1`]), 10_000, 'ssh -O exit').catch(() => undefined);
  const ssh = (cmd, { timeoutMs = 120_000 } = {}) => runClient('ssh', client(['-p', String(sshPort), `${USER}@127.0.0.1`, '--', cmd]), timeoutMs, `ssh ${cmd}`);
  const consoleTail = () => {
    const text = existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8') : '';
    return `${text.split('\n').slice(-40).join('\n')}${qemuOutput ? `\nqemu: ${qemuOutput.trim()}` : ''}`;
  };
  /** Polls until `done(answer)` holds for an answer over SSH; fails if QEMU stops, the kernel panics or time runs out. */
  const waitForSsh = async (done, what) => {
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    for (;;) {
      if (exitCode !== undefined) fail(`QEMU stopped (${exitCode}) before ${what}; console (${consoleFile}):\n${consoleTail()}`);
      const answer = await ssh('cat /proc/sys/kernel/random/boot_id', { timeoutMs: 30_000 }).catch(() => undefined);
      if (answer?.code === 0 && done(answer.stdout.trim())) return;
      const tail = consoleTail();
      if (/Kernel panic/.test(tail)) {
        qemu.kill('SIGKILL');
        fail(`the kernel panicked before ${what}; console (${consoleFile}):\n${tail}`);
      }
      if (Date.now() > deadline) {
        qemu.kill('SIGKILL');
        fail(`no SSH within ${BOOT_TIMEOUT_MS / 1000} s (${what}); console (${consoleFile}):\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  };

  try {
    await waitForSsh(() => true, 'SSH answered');
  } catch (err) {
    qemu.kill('SIGKILL');
    await exited;
    throw err;
  }
  const bootId = async () => {
    const r = await ssh('cat /proc/sys/kernel/random/boot_id', { timeoutMs: 30_000 });
    if (r.code !== 0) fail(`cannot read the boot id: ${r.stderr}`);
    return r.stdout.trim();
  };

  return {
    sshPort,
    serialSockets,
    consoleFile,
    bootMs: Date.now() - started,
    exited,
    ssh,
    async scp(localPath, remotePath) {
      const r = await runClient(
        'scp',
        client(['-q', '-r', '-P', String(sshPort), localPath, `${USER}@127.0.0.1:${remotePath}`]),
        10 * 60_000,
        `scp ${localPath}`,
      );
      if (r.code !== 0) fail(`scp ${localPath} ${remotePath} failed (exit ${r.code}): ${r.stderr.trim()}`);
    },
    async reboot() {
      const before = await bootId();
      const asked = Date.now();
      // --no-block: answer before sshd goes, or the session would hang until its keep-alives give up.
      await ssh('sudo systemctl reboot --no-block', { timeoutMs: 30_000 }).catch(() => undefined);
      await dropConnection();
      await waitForSsh((id) => id !== before, 'SSH answered after the reboot');
      return Date.now() - asked;
    },
    async stop({ timeoutMs = 120_000 } = {}) {
      await ssh('sudo systemctl poweroff --no-block', { timeoutMs: 30_000 }).catch(() => undefined);
      await dropConnection();
      const timer = setTimeout(() => qemu.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      if (code !== 0) fail(`the VM did not power off cleanly within ${timeoutMs / 1000} s (QEMU: ${code}); console (${consoleFile}):\n${consoleTail()}`);
    },
    async kill() {
      qemu.kill('SIGKILL');
      await exited;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Command line.

function usage() {
  return 'usage: node scripts/systemd-rig.mjs build\n       node scripts/systemd-rig.mjs run [--memory MB] [--cpus N]\n       node scripts/systemd-rig.mjs ssh [-- COMMAND...]';
}

/** Where `run` says which port its VM listens on, for `ssh`. */
function runningFile() {
  return join(cacheRoot(), 'running.json');
}

async function main(argv) {
  const [cmd, ...rest] = argv;
  if (cmd === 'build') {
    process.stdout.write(`${JSON.stringify(prepareSystemdImage(), null, 2)}\n`);
    return 0;
  }
  if (cmd === 'run') {
    const opts = {};
    for (let i = 0; i < rest.length; i++) {
      if (rest[i] === '--memory') opts.memoryMb = Number(rest[++i]);
      else if (rest[i] === '--cpus') opts.cpus = Number(rest[++i]);
      else fail(`unknown option ${rest[i]}\n${usage()}`);
    }
    if (![opts.memoryMb ?? 1024, opts.cpus ?? 2].every((n) => Number.isInteger(n) && n > 0)) fail('--memory and --cpus take positive whole numbers');
    const image = prepareSystemdImage();
    const vm = await bootSystemdVm({ ...opts, image });
    writeFileAtomic(runningFile(), `${JSON.stringify({ pid: process.pid, sshPort: vm.sshPort, image: image.dir })}\n`);
    log(`up in ${seconds(vm.bootMs)} s; console in ${vm.consoleFile}`);
    log(`node scripts/systemd-rig.mjs ssh   (or: ssh ${sshOptions(image).join(' ')} -p ${vm.sshPort} ${USER}@127.0.0.1)`);
    log('Ctrl-C powers it off');
    const stop = () => vm.stop().catch((err) => log(err.message));
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    log(`QEMU exited with ${await vm.exited}`);
    rmSync(runningFile(), { force: true });
    return 0;
  }
  if (cmd === 'ssh') {
    const running = readJson(runningFile());
    if (!running) fail('no VM is running: start one with `node scripts/systemd-rig.mjs run`');
    const image = imagePaths(running.image);
    const command = rest[0] === '--' ? rest.slice(1) : rest;
    const res = spawnSync('ssh', [...sshOptions(image), ...(command.length ? [] : ['-t']), '-p', String(running.sshPort), `${USER}@127.0.0.1`, ...command], {
      stdio: 'inherit',
    });
    return res.status ?? 1;
  }
  process.stderr.write(`${usage()}\n`);
  return 2;
}

runAsCommand(import.meta.url, 'systemd-rig', main);
