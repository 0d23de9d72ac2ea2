#!/usr/bin/env node
// Benchmark runner: `node bench/run.mjs NAME [--quick] [...]` runs bench/NAME.mjs in its own process.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { constants } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs')
  .map((f) => f.slice(0, -4))
  .sort();

const [name, ...rest] = process.argv.slice(2);
if (!name || !/^[a-z0-9][a-z0-9_-]*$/i.test(name) || !existsSync(join(here, `${name}.mjs`))) {
  process.stderr.write(
    `${name ? `unknown benchmark ${JSON.stringify(name)}` : 'no benchmark named'}\n` +
      `usage: npm run bench -- NAME [--quick]\navailable: ${available.join(', ') || '(none)'}\n`,
  );
  process.exit(2);
}

const child = spawn(process.execPath, [join(here, `${name}.mjs`), ...rest], { stdio: 'inherit' });
const forward = (sig) => () => child.kill(sig);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, forward(sig));
child.on('exit', (code, signal) => process.exit(code ?? 128 + (constants.signals[signal] ?? 1)));
