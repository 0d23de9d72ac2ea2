import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledRelease, ENV_WITHOUT_NPM as env, type Run, runProgram } from './helpers/release.js';

// The installer as a technician gets it: the release tarball, unpacked, installing with --root
// into a temporary tree (unprivileged: nothing is chowned, no user is created, no systemctl).
// The first install runs the real `npm ci --omit=dev` (it compiles better-sqlite3); the later
// runs reuse what it installed. The bundle (`npm run release -- --with-deps`) installs with neither
// npm nor a compiler.

const REPO = resolve(import.meta.dirname, '..');
const MIN = 60_000;
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
const mode = (path: string) => statSync(path).mode & 0o777;
const exists = (path: string) => existsSync(path) || isSymlink(path);
const isSymlink = (path: string) => {
  try {
    readlinkSync(path);
    return true;
  } catch {
    return false;
  }
};

const work = mkdtempSync(join(tmpdir(), 'vigia-install-'));
const tree = join(work, 'root');
const script = join(work, 'package', 'scripts', 'install.sh');
const inTree = (path: string) => join(tree, path);

/** Runs the installer of the plain release (the first run compiles for minutes). */
const install = (...args: string[]) => runProgram(script, args);
const output = (r: Run) => `${r.stdout}${r.stderr}`;

/** The `{file: /etc/vigia/NAME}` secrets an example configuration names outside comments. */
function secretFiles(example: string): string[] {
  const text = readFileSync(join(REPO, 'config', example), 'utf8');
  const live = text
    .split('\n')
    .filter((line) => !/^\s*#/.test(line))
    .join('\n');
  return [...new Set([...live.matchAll(/file: (\/etc\/vigia\/[\w.-]+)/g)].map((m) => m[1] as string))];
}

const units = readdirSync(join(REPO, 'systemd'), { withFileTypes: true });
const wantedBy = [...readFileSync(join(REPO, 'systemd', 'vigia.service'), 'utf8').matchAll(/^WantedBy=(.+)$/gm)].flatMap((m) =>
  (m[1] as string).split(/\s+/).filter(Boolean),
);

let first: Run;

beforeAll(async () => {
  const release = spawnSync(process.execPath, [join(REPO, 'scripts', 'release.mjs'), '--out', work], { env, encoding: 'utf8' });
  expect(release.status, output(release)).toBe(0);
  const untar = spawnSync('tar', ['xzf', `vigia-${pkg.version}.tgz`], { cwd: work, encoding: 'utf8' });
  expect(untar.status, untar.stderr).toBe(0);
  mkdirSync(tree);
  first = await install('--profile', 'gantry', '--root', tree);
}, 20 * MIN);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('scripts/install.sh', () => {
  it('passes shellcheck', () => {
    const r = spawnSync('shellcheck', [join(REPO, 'scripts', 'install.sh')], { encoding: 'utf8' });
    expect(r.error, 'shellcheck is installed by scripts/ensure-system-deps.mjs').toBeUndefined();
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('refuses bad arguments with exit 64 and a message, writing nothing', async () => {
    const empty = join(work, 'empty');
    mkdirSync(empty);
    const cases: [string[], RegExp][] = [
      [['--profile', 'bus', '--root', empty], /unknown profile 'bus': use pole, gantry, patrol or community/],
      [['--purge', '--root', empty], /--purge goes with --uninstall/],
      [['--uninstall', '--profile', 'pole', '--root', empty], /--profile does not go with --uninstall/],
      [['--frobnicate', '--root', empty], /unknown argument: --frobnicate/],
      [['--root', join(work, 'absent')], /is not a directory/],
      [['--root'], /--root needs a directory/],
      [['--root', empty], /there is no \/etc\/vigia\/vigia.yaml yet: name the profile/],
    ];
    for (const [args, message] of cases) {
      const r = await install(...args);
      expect(r.status, args.join(' ')).toBe(64);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
    expect(readdirSync(empty)).toEqual([]);
    const help = await install('--help');
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: install.sh --profile pole\|gantry\|patrol\|community/);
  });

  it('installs the code with its production dependencies and the vigia command', () => {
    expect(first.status, output(first)).toBe(0);
    expect(first.stdout).toContain(`Vigía ${pkg.version} installed in ${inTree('/opt/vigia')}`);
    expect(output(first)).not.toMatch(/unknown (project |env |user |builtin )?config/i);
    expect(mode(inTree('/opt/vigia'))).toBe(0o755);
    expect(readlinkSync(inTree('/usr/local/bin/vigia'))).toBe('../../../opt/vigia/dist/cli.js');
    const version = spawnSync(inTree('/usr/local/bin/vigia'), ['--version'], { encoding: 'utf8' });
    expect(version.stdout.trim(), version.stderr).toBe(pkg.version);

    // better-sqlite3 compiled here (node-gyp's objects are there), not downloaded, and it works.
    const sqlite = inTree('/opt/vigia/node_modules/better-sqlite3');
    expect(existsSync(join(sqlite, 'build', 'Release', 'obj.target'))).toBe(true);
    const probe = spawnSync(
      process.execPath,
      ['-e', `const D = require(${JSON.stringify(sqlite)}); console.log(new D(':memory:').pragma('journal_mode', { simple: true }))`],
      {
        encoding: 'utf8',
      },
    );
    expect(probe.stdout.trim(), probe.stderr).toBe('memory');
    // onnxruntime-node's install script did not fetch its CUDA libraries.
    const ortBin = inTree(`/opt/vigia/node_modules/onnxruntime-node/bin/napi-v6/linux/${process.arch}`);
    expect(readdirSync(ortBin)).toContain('onnxruntime_binding.node');
    expect(readdirSync(ortBin).filter((f) => /cuda|tensorrt/.test(f))).toEqual([]);
  });

  it('installs the unit and its drop-ins as systemd/ has them, enabled by the wants symlink', () => {
    for (const entry of units) {
      if (entry.isFile()) {
        const installed = inTree(`/usr/lib/systemd/system/${entry.name}`);
        expect(readFileSync(installed, 'utf8')).toBe(readFileSync(join(REPO, 'systemd', entry.name), 'utf8'));
        expect(mode(installed)).toBe(0o644);
      } else if (entry.isDirectory() && entry.name.endsWith('.d')) {
        for (const conf of readdirSync(join(REPO, 'systemd', entry.name)).filter((f) => f.endsWith('.conf'))) {
          expect(readFileSync(inTree(`/usr/lib/systemd/system/${entry.name}/${conf}`), 'utf8')).toBe(
            readFileSync(join(REPO, 'systemd', entry.name, conf), 'utf8'),
          );
        }
      }
    }
    expect(wantedBy.length).toBeGreaterThan(0);
    for (const target of wantedBy) {
      expect(readlinkSync(inTree(`/etc/systemd/system/${target}.wants/vigia.service`))).toBe('/usr/lib/systemd/system/vigia.service');
    }
  });

  it('declares the user for systemd-sysusers, with the groups for GPIO, serial ports, cameras, RTL-SDR dongles and BlueZ', () => {
    const conf = inTree('/usr/lib/sysusers.d/vigia.conf');
    const text = readFileSync(conf, 'utf8');
    for (const group of ['gpio', 'dialout', 'video', 'plugdev', 'bluetooth']) expect(text).toMatch(new RegExp(`^m vigia ${group}$`, 'm'));
    const dry = spawnSync('systemd-sysusers', [`--root=${tree}`, '--dry-run', conf], { encoding: 'utf8' });
    expect(dry.status, dry.stderr).toBe(0);
    expect(dry.stdout + dry.stderr).toMatch(/Creating user '?vigia'? \(Vigia edge daemon\)/);
    expect(exists(inTree('/etc/passwd'))).toBe(false);
  });

  it("writes the profile's configuration, private to the daemon's group, with empty secret files", () => {
    expect(mode(inTree('/etc/vigia'))).toBe(0o750);
    const config = inTree('/etc/vigia/vigia.yaml');
    expect(mode(config)).toBe(0o640);
    const example = readFileSync(join(REPO, 'config', 'gantry.example.yaml'), 'utf8');
    expect(readFileSync(config, 'utf8')).toBe(example.replace('$schema=./vigia.schema.json', '$schema=/opt/vigia/config/vigia.schema.json'));
    const secrets = secretFiles('gantry.example.yaml');
    expect(secrets).toContain('/etc/vigia/command-key');
    const tmpfiles = readFileSync(inTree('/usr/lib/tmpfiles.d/vigia.conf'), 'utf8');
    expect(tmpfiles).toMatch(/^d \/etc\/vigia 0750 root vigia -$/m);
    expect(tmpfiles).toMatch(/^z \/etc\/vigia\/vigia.yaml 0640 root vigia -$/m);
    for (const secret of secrets) {
      expect(statSync(inTree(secret)).size, secret).toBe(0);
      expect(mode(inTree(secret)), secret).toBe(0o640);
      expect(first.stdout, secret).toContain(`       ${secret}\n`);
      expect(tmpfiles).toContain(`z ${secret} 0640 root vigia -\n`);
    }
  });

  it('a second run replaces the code and keeps the configuration, the secrets and the compiled dependencies', async () => {
    const config = inTree('/etc/vigia/vigia.yaml');
    const edited = readFileSync(config, 'utf8').replace(/^ {2}id: .*$/m, '  id: gantry-0007');
    writeFileSync(config, edited);
    writeFileSync(inTree('/etc/vigia/command-key'), 'a-key-from-the-call-center\n');
    writeFileSync(inTree('/opt/vigia/left-by-the-old-version'), '');
    const addon = inTree('/opt/vigia/node_modules/better-sqlite3/build/Release/better_sqlite3.node');
    const addonInode = statSync(addon).ino;

    const again = await install('--profile', 'pole', '--root', tree);
    expect(again.status, output(again)).toBe(0);
    expect(again.stdout).toContain('Kept the configuration /etc/vigia/vigia.yaml (--profile pole not applied)');
    expect(again.stdout).toContain('Dependencies unchanged');
    expect(readFileSync(config, 'utf8')).toBe(edited);
    expect(mode(config)).toBe(0o640);
    expect(readFileSync(inTree('/etc/vigia/command-key'), 'utf8')).toBe('a-key-from-the-call-center\n');
    expect(exists(inTree('/opt/vigia/left-by-the-old-version'))).toBe(false);
    expect(statSync(addon).ino).toBe(addonInode);
    expect(exists(inTree('/opt/vigia.new')) || exists(inTree('/opt/vigia.old'))).toBe(false);
  });

  it('--uninstall removes the code, the command and the unit, and keeps the configuration and the data', async () => {
    mkdirSync(inTree('/var/lib/vigia'), { recursive: true });
    writeFileSync(inTree('/var/lib/vigia/outbox.db'), 'events');
    const config = readFileSync(inTree('/etc/vigia/vigia.yaml'), 'utf8');

    const r = await install('--uninstall', '--root', tree);
    expect(r.status, output(r)).toBe(0);
    for (const gone of [
      '/opt/vigia',
      '/usr/local/bin/vigia',
      '/usr/lib/systemd/system/vigia.service',
      '/usr/lib/sysusers.d/vigia.conf',
      '/usr/lib/tmpfiles.d/vigia.conf',
      ...wantedBy.map((t) => `/etc/systemd/system/${t}.wants/vigia.service`),
      ...units.filter((u) => u.isFile()).map((u) => `/usr/lib/systemd/system/${u.name}`),
    ]) {
      expect(exists(inTree(gone)), gone).toBe(false);
    }
    expect(readFileSync(inTree('/etc/vigia/vigia.yaml'), 'utf8')).toBe(config);
    expect(readFileSync(inTree('/etc/vigia/command-key'), 'utf8')).toBe('a-key-from-the-call-center\n');
    expect(readFileSync(inTree('/var/lib/vigia/outbox.db'), 'utf8')).toBe('events');
  });

  it('--uninstall --purge removes the configuration and the data too, and can run again', async () => {
    for (let run = 0; run < 2; run++) {
      const r = await install('--uninstall', '--purge', '--root', tree);
      expect(r.status, output(r)).toBe(0);
      expect(exists(inTree('/etc/vigia')), 'etc/vigia').toBe(false);
      expect(exists(inTree('/var/lib/vigia')), 'var/lib/vigia').toBe(false);
    }
  });
});

describe('the bundle (npm run release -- --with-deps) and the installer using it', () => {
  const dir = join(work, 'bundle');
  const bundleTree = join(dir, 'root');
  const bundleScript = join(dir, 'package', 'scripts', 'install.sh');
  const lockHash = createHash('sha256')
    .update(readFileSync(join(REPO, 'package-lock.json')))
    .digest('hex');
  const depsKey = `${lockHash} node-abi-${process.versions.modules} ${process.arch}`;
  // What install.sh runs when it installs from a bundle into --root; npm, make, g++ and python3
  // are left out, so a run that needed them would fail.
  const tools = 'awk cat chmod cp cut df dirname du find grep install ln mkdir mv node rm sed sha256sum sort tr'.split(' ');
  const offline = join(dir, 'offline-bin');
  const offlineEnv = { ...env, PATH: offline };
  const onPath = (tool: string, path: string) => spawnSync('/bin/bash', ['-c', 'command -v "$1"', '-', tool], { env: { PATH: path }, encoding: 'utf8' });
  // As a technician's user unpacks it: the files are not root's (where this runs as root).
  const notOurs = join('node_modules', 'better-sqlite3', 'package.json');
  let tarball: string;
  let bundled: Run;

  beforeAll(async () => {
    mkdirSync(dir);
    tarball = await bundledRelease(dir);
    const untar = spawnSync('tar', ['xzf', tarball], { cwd: dir, encoding: 'utf8' });
    expect(untar.status, untar.stderr).toBe(0);
    if (process.getuid?.() === 0) chownSync(join(dir, 'package', notOurs), 65534, 65534);
    mkdirSync(offline);
    for (const tool of tools) {
      const found = onPath(tool, env.PATH ?? '');
      expect(found.status, `${tool} is not installed`).toBe(0);
      symlinkSync(found.stdout.trim(), join(offline, tool));
    }
    mkdirSync(bundleTree);
    bundled = await runProgram(bundleScript, ['--profile', 'pole', '--root', bundleTree], offlineEnv);
  }, 20 * MIN);

  it('is named for this system and carries node_modules/.vigia-installed-for with the key install.sh computes', () => {
    expect(basename(tarball)).toBe(`vigia-${pkg.version}-linux-${process.arch}-node${process.versions.node.split('.')[0]}.tgz`);
    const key = spawnSync('tar', ['xzOf', tarball, 'package/node_modules/.vigia-installed-for'], { encoding: 'utf8' });
    expect(key.status, key.stderr).toBe(0);
    expect(key.stdout).toBe(`${depsKey}\n`);
    // The plain release's files are all there too.
    for (const f of ['package.json', 'package-lock.json', 'dist/cli.js', 'scripts/install.sh', 'systemd/vigia.service']) {
      expect(existsSync(join(dir, 'package', f)), f).toBe(true);
    }
  });

  it('installs with neither npm nor a compiler on the PATH', () => {
    for (const absent of ['npm', 'make', 'g++', 'python3']) expect(onPath(absent, offline).status, absent).not.toBe(0);
    expect(bundled.status, output(bundled)).toBe(0);
    expect(bundled.stdout).toContain(`Dependencies bundled in the release (built for ${process.arch}, Node.js ABI ${process.versions.modules})`);
    expect(output(bundled)).not.toMatch(/npm ci|apt-get/);
    expect(bundled.stdout).toContain(`Vigía ${pkg.version} installed in ${join(bundleTree, 'opt/vigia')}`);
    expect(readFileSync(join(bundleTree, 'opt/vigia/node_modules/.vigia-installed-for'), 'utf8')).toBe(`${depsKey}\n`);
    const version = spawnSync(join(bundleTree, 'usr/local/bin/vigia'), ['--version'], { encoding: 'utf8' });
    expect(version.stdout.trim(), version.stderr).toBe(pkg.version);
    // The copy is the installing user's, like the rest of the code, not the unpacking user's.
    expect(statSync(join(bundleTree, 'opt/vigia', notOurs)).uid).toBe(process.getuid?.());
  });

  it("installs a working better-sqlite3 and only this system's onnxruntime-node binaries", () => {
    const modules = join(bundleTree, 'opt/vigia/node_modules');
    const sqlite = join(modules, 'better-sqlite3');
    const probe = spawnSync(
      process.execPath,
      ['-e', `const D = require(${JSON.stringify(sqlite)}); console.log(new D(':memory:').pragma('journal_mode', { simple: true }))`],
      { encoding: 'utf8' },
    );
    expect(probe.stdout.trim(), probe.stderr).toBe('memory');
    const ortBin = join(modules, 'onnxruntime-node', 'bin');
    const napis = readdirSync(ortBin);
    expect(napis.length).toBeGreaterThan(0);
    for (const napi of napis) {
      expect(readdirSync(join(ortBin, napi)), napi).toEqual(['linux']);
      expect(readdirSync(join(ortBin, napi, 'linux')), napi).toEqual([process.arch]);
      expect(readdirSync(join(ortBin, napi, 'linux', process.arch))).toContain('onnxruntime_binding.node');
    }
  });

  it('an upgrade from the same bundle keeps the installed dependencies', async () => {
    const again = await runProgram(bundleScript, ['--root', bundleTree], offlineEnv);
    expect(again.status, output(again)).toBe(0);
    expect(again.stdout).toContain('Dependencies unchanged');
    expect(again.stdout).not.toContain('Dependencies bundled');
  });

  it('a bundle built for another Node ABI says so and falls back to npm ci', async () => {
    const other = join(dir, 'other');
    mkdirSync(other);
    const copy = spawnSync('cp', ['-al', join(dir, 'package'), other], { encoding: 'utf8' });
    expect(copy.status, copy.stderr).toBe(0);
    const keyFile = join(other, 'package', 'node_modules', '.vigia-installed-for');
    rmSync(keyFile); // a hard link to the first copy's
    writeFileSync(keyFile, `${lockHash} node-abi-1 ${process.arch}\n`);
    // An npm that records how it was run and fails, as one without the registry would.
    const fakeBin = join(other, 'bin');
    const calls = join(other, 'npm-calls');
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, 'npm'), `#!/bin/sh\necho "$*" >>${JSON.stringify(calls)}\nexit 1\n`, { mode: 0o755 });
    const otherTree = join(other, 'root');
    mkdirSync(otherTree);

    const r = await runProgram(join(other, 'package', 'scripts', 'install.sh'), ['--profile', 'pole', '--root', otherTree], {
      ...env,
      PATH: `${fakeBin}:${env.PATH}`,
    });
    expect(r.stdout).toContain(
      `The dependencies bundled in this release were built for ${process.arch}, Node.js ABI 1; this system is ${process.arch}, Node.js ABI ${process.versions.modules}`,
    );
    expect(r.stdout).toContain(`vigia-${pkg.version}-linux-${process.arch}-node${process.versions.node.split('.')[0]}.tgz`);
    expect(readFileSync(calls, 'utf8')).toBe('ci --omit=dev --no-audit --no-fund\n');
    expect(r.status, output(r)).toBe(1);
    expect(r.stderr).toMatch(/npm ci --omit=dev failed in .*\/opt\/vigia\.new \(the installed version is unchanged\)/);
    expect(exists(join(otherTree, 'opt/vigia')) || exists(join(otherTree, 'opt/vigia.new'))).toBe(false);
  });
});

describe('packing', () => {
  it('never rebuilds dist/: npm runs `prepare` for `npm pack`, which packs dist/ as built', () => {
    // Other tests run the daemon from dist/ meanwhile: a compile here would rewrite its files under it.
    const dist = join(REPO, 'dist');
    const files = readdirSync(dist, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.js'));
    const before = new Map(files.map((f) => [f, statSync(join(dist, f)).mtimeMs]));
    // Without --ignore-scripts, so that every npm runs `prepare`, as npm 10.9 does even with it.
    const pack = spawnSync('npm', ['pack', '--dry-run', '--json'], { cwd: REPO, env, encoding: 'utf8' });
    expect(pack.status, pack.stderr).toBe(0);
    expect(pack.stderr).toContain('prepare: npm pack; using the existing dist/');
    const packed = (JSON.parse(pack.stdout) as { files: { path: string }[] }[])[0]?.files.map((f) => f.path);
    expect(packed).toContain('dist/cli.js');
    const changed = files.filter((f) => statSync(join(dist, f)).mtimeMs !== before.get(f));
    expect(changed).toEqual([]);
  });
});
