import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '..', 'scripts', 'check-imports.mjs');
const made: string[] = [];

/** A fixture tree: `files` maps paths under src/ to their text. Returns the src directory. */
function tree(files: Record<string, string>): string {
  const root = join(mkdtempSync(join(tmpdir(), 'vigia-imports-')), 'src');
  made.push(dirname(root));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, file)), { recursive: true });
    writeFileSync(join(root, file), text);
  }
  return root;
}

async function check(root: string): Promise<{ code: number; stdout: string }> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [SCRIPT, '--root', root]);
    return { code: 0, stdout };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, stdout: e.stdout };
  }
}

/** Source text from its lines. */
const source = (...lines: string[]): string => `${lines.join('\n')}\n`;

/** A small tree that follows every rule: each layer imports only those below it. */
const CLEAN: Record<string, string> = {
  'core/clock.ts': source('export const now = (): number => Date.now();'),
  'core/index.ts': source("export { now } from './clock.js';"),
  'config/schema.ts': source("import type { now } from '../core/clock.js';", 'export type Config = { at: ReturnType<typeof now> };'),
  'drivers/gpio.ts': source(
    "import type { Config } from '../config/schema.js';",
    "import { now } from '../core/index.js';",
    'export const read = (c: Config) => c.at + now();',
  ),
  'features/pole.ts': source(
    "import { read } from '../drivers/gpio.js';",
    "import { EventEmitter } from 'node:events';",
    'export const pole = { read, bus: new EventEmitter() };',
  ),
  'anpr/engine.ts': source("export const engine = async () => (await import('../drivers/gpio.js')).read;"),
  'gateway/uplink.ts': source("import type { pole } from '../features/pole.js';", 'export type Uplink = typeof pole;'),
  'version.ts': source("export const VERSION = '1.0.0';"),
  'controller.ts': source(
    "import type { Uplink } from './gateway/uplink.js';",
    "import { VERSION } from './version.js';",
    'export type C = Uplink & { v: typeof VERSION };',
  ),
  'cli.ts': source("import type { C } from './controller.js';", "import { Command } from 'commander';", 'export type Cli = C & Command;'),
};

describe('check-imports', () => {
  afterAll(() => {
    for (const dir of made) rmSync(dir, { recursive: true, force: true });
  });

  it('passes a clean tree and counts its files and imports', async () => {
    const r = await check(tree(CLEAN));
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('ok: 10 files, 10 imports, no cycles, layers respected');
  });

  it('fails on a two-file cycle made of a type-only import, naming both files', async () => {
    const r = await check(
      tree({
        ...CLEAN,
        'drivers/a.ts': source("import type { B } from './b.js';", 'export type A = { b?: B };'),
        'drivers/b.ts': source("import { type A } from './a.js';", 'export type B = { a?: A };'),
      }),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('cycle: src/drivers/a.ts -> src/drivers/b.ts -> src/drivers/a.ts');
    expect(r.stdout).toMatch(/1 cycle, 0 violations/);
  });

  it('fails when config imports drivers, with file, line and the rule', async () => {
    const r = await check(tree({ ...CLEAN, 'config/load.ts': source('// loads', "export { read } from '../drivers/gpio.js';") }));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('src/config/load.ts:2 imports src/drivers/gpio.ts: layer config may not import layer drivers');
  });

  it('fails on a cycle through a dynamic import and a directory index', async () => {
    const r = await check(
      tree({
        ...CLEAN,
        'anpr/worker.ts': source("export const start = async () => (await import('./models/index.js')).load();"),
        'anpr/models/index.ts': source("import { start } from '../worker.js';", 'export const load = () => start;'),
      }),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('cycle: src/anpr/models/index.ts -> src/anpr/worker.ts -> src/anpr/models/index.ts');
  });

  it('fails when a file other than an entry point imports the controller', async () => {
    const r = await check(
      tree({ ...CLEAN, 'status-format.ts': source("import type { C } from './controller.js';", 'export const format = (c: C) => String(c);') }),
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('src/status-format.ts:1 imports src/controller.ts: only the entry points');
  });

  it('keeps features and anpr apart', async () => {
    const r = await check(tree({ ...CLEAN, 'anpr/alarm.ts': source("export { pole } from '../features/pole.js';") }));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('src/anpr/alarm.ts:1 imports src/features/pole.ts: layer anpr may not import layer features');
  });
});
