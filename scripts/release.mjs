#!/usr/bin/env node
// `npm run release`: the tarball a technician copies to a device, vigia-VERSION.tgz, laid out like
// `npm pack`'s (everything under package/). It holds what `npm pack` would publish (the `files` of
// package.json, with dist/ as built) plus package-lock.json, which `npm pack` leaves out and which
// the device's `npm ci --omit=dev` needs to install exactly the dependencies tested here.
//
// Usage: node scripts/release.mjs [--out DIR]   (`npm run release` builds dist/ first; DIR: .)
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const root = resolve(import.meta.dirname, '..');
const { values } = parseArgs({ options: { out: { type: 'string', default: '.' } } });
const fail = (message) => {
  process.stderr.write(`release: ${message}\n`);
  process.exit(1);
};

if (!existsSync(join(root, 'dist', 'cli.js'))) fail('dist/ is not built: run `npm run release` (or `npm run build` first)');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// The file list npm would publish, without running any lifecycle script.
const npm = process.env.npm_execpath ? [process.execPath, process.env.npm_execpath] : ['npm'];
const pack = spawnSync(npm[0], [...npm.slice(1), 'pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' });
if (pack.status !== 0) fail(`npm pack --dry-run failed:\n${pack.stderr}`);
const files = JSON.parse(pack.stdout)[0].files.map((f) => f.path);
files.push('package-lock.json');

const tarball = resolve(values.out, `vigia-${version}.tgz`);
const tar = spawnSync(
  'tar',
  ['-czf', tarball, '--owner=0', '--group=0', '--numeric-owner', '--sort=name', '--transform=s,^,package/,', '-C', root, '--', ...files.sort()],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
if (tar.status !== 0) fail(`tar failed (exit ${tar.status})`);
process.stdout.write(`${tarball} (${files.length} files)\n`);
