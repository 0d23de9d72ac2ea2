#!/usr/bin/env node
// `npm ci` runs this (the `prepare` script). A full install builds dist/ with TypeScript; a
// production-only install (`npm ci --omit=dev`, on a device) uses the dist/ that was built before
// it was copied there. TypeScript may still be installed then (an optional peer of a Node-RED
// dependency, which npm installs), so the omitted dev dependencies say which install this is.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// `npm pack` packs dist/ as it was built and never builds it: some npm versions (10.9, which
// Node-RED brings into node_modules/.bin) run `prepare` for `npm pack --dry-run --ignore-scripts`,
// which scripts/release.mjs runs for the file list, and a compile there rewrote dist/ under
// whatever was running from it.
if (process.env.npm_command === 'pack') {
  console.error('prepare: npm pack; using the existing dist/');
  process.exit(0);
}
const production = (process.env.npm_config_omit ?? '').split(/[\s,]+/).includes('dev') || process.env.NODE_ENV === 'production';
if (production && existsSync(join(root, 'dist', 'cli.js'))) {
  console.log('prepare: production install; using the existing dist/');
  process.exit(0);
}
let tsc;
try {
  tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  if (existsSync(join(root, 'dist', 'cli.js'))) {
    console.log('prepare: TypeScript is not installed (production install); using the existing dist/');
    process.exit(0);
  }
  console.error('prepare: neither TypeScript nor a built dist/ is present: run a full `npm ci`, or copy dist/ from a build');
  process.exit(1);
}
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
