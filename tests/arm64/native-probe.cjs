'use strict';
// Loads every native module of the production install, calls into each one, and checks that
// every addon (.node) the process loaded is an AArch64 ELF. Prints one JSON object on stdout;
// exits 1 if anything is missing, fails, or is built for another machine.
//
// Run from the installed application directory: node native-probe.cjs

const fs = require('node:fs');
const path = require('node:path');

const EM_AARCH64 = 183;
const loaded = [];
const dlopen = process.dlopen;
process.dlopen = function (module, filename, ...rest) {
  loaded.push(filename);
  return dlopen.call(this, module, filename, ...rest);
};

function elfMachine(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(20);
    fs.readSync(fd, head, 0, 20, 0);
    if (head.readUInt32BE(0) !== 0x7f454c46) return 'not ELF';
    return head.readUInt16LE(18);
  } finally {
    fs.closeSync(fd);
  }
}

const checks = {
  'better-sqlite3': () => {
    const Database = require('better-sqlite3');
    const db = new Database(':memory:');
    try {
      db.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('arm64')");
      const row = db.prepare('SELECT v, sqlite_version() AS version FROM t').get();
      if (row.v !== 'arm64') throw new Error(`read back ${JSON.stringify(row.v)}`);
      const dir = path.dirname(require.resolve('better-sqlite3/package.json'));
      const compiled = fs.existsSync(path.join(dir, 'build', 'Release', 'obj.target'));
      return `SQLite ${row.version}, ${compiled ? 'compiled from source' : 'prebuilt binary'}`;
    } finally {
      db.close();
    }
  },
  epoll: () => {
    const { Epoll } = require('epoll');
    const poller = new Epoll(() => {});
    poller.close();
    const { Gpio } = require('onoff');
    return `epoll instance created and closed; onoff Gpio.accessible=${Gpio.accessible}`;
  },
  '@serialport/bindings-cpp': async () => {
    const { autoDetect, LinuxBinding } = require('@serialport/bindings-cpp');
    if (autoDetect() !== LinuxBinding) throw new Error('autoDetect() did not pick LinuxBinding');
    // /dev/null is not a terminal: the addon opens it, then its termios ioctl is refused.
    try {
      const port = await LinuxBinding.open({ path: '/dev/null', baudRate: 9600 });
      await port.close();
      return 'LinuxBinding; opened /dev/null';
    } catch (err) {
      if (!/ioctl|baud|tty/i.test(err.message)) throw err;
      return `LinuxBinding; open(/dev/null) reached the addon: ${err.message}`;
    }
  },
  'unix-dgram': async () => {
    // systemd's notify socket is an AF_UNIX datagram socket: send one to a socket bound here.
    const { createSocket } = require('unix-dgram');
    const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'probe-'));
    const where = path.join(dir, 'notify.sock');
    const receiver = createSocket('unix_dgram');
    const got = new Promise((resolve) => receiver.on('message', (msg) => resolve(msg.toString())));
    receiver.bind(where);
    const sender = createSocket('unix_dgram');
    await new Promise((resolve, reject) => sender.send(Buffer.from('READY=1\n'), 0, 8, where, (err) => (err ? reject(err) : resolve())));
    const text = await got;
    sender.close();
    receiver.close();
    fs.rmSync(dir, { recursive: true, force: true });
    if (text !== 'READY=1\n') throw new Error(`received ${JSON.stringify(text)}`);
    return 'datagram sent and received on an AF_UNIX socket';
  },
  sharp: () => {
    const sharp = require('sharp');
    return `libvips ${sharp.versions.vips}`;
  },
  'onnxruntime-node': () => {
    const ort = require('onnxruntime-node');
    const backends = ort.listSupportedBackends().map((b) => b.name);
    if (!backends.includes('cpu')) throw new Error(`backends: ${backends.join(', ')}`);
    return `${require('onnxruntime-node/package.json').version}, backends ${backends.join(', ')}`;
  },
};

async function main() {
  const result = { arch: process.arch, node: process.version, ok: true, modules: {}, addons: [] };
  if (process.arch !== 'arm64') {
    result.ok = false;
    result.error = `process.arch is ${process.arch}`;
  }
  for (const [name, check] of Object.entries(checks)) {
    try {
      result.modules[name] = { ok: true, detail: await check() };
    } catch (err) {
      result.ok = false;
      result.modules[name] = { ok: false, detail: String(err?.stack ? err.stack : err) };
    }
  }

  const root = path.resolve('node_modules');
  for (const file of loaded) {
    const machine = elfMachine(file);
    const ok = machine === EM_AARCH64;
    if (!ok) result.ok = false;
    result.addons.push({ file: path.relative(root, file), machine: ok ? 'aarch64' : machine, ok });
  }
  for (const name of Object.keys(checks)) {
    const owner = name === 'sharp' ? ['sharp', '@img/sharp-linux-arm64'] : [name];
    if (!loaded.some((f) => owner.some((o) => path.relative(root, f).startsWith(o + path.sep)))) {
      result.ok = false;
      result.modules[name].ok = false;
      result.modules[name].detail += ' (no addon of this package was loaded)';
    }
  }

  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = result.ok ? 0 : 1;
}

main().catch((err) => {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(err?.stack ? err.stack : err) })}\n`);
  process.exitCode = 1;
});
