import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import type { Config } from './schema.js';

/** Where `vigia config check` looks for the installed unit (drop-ins in `<unit>.d/*.conf`). */
export const INSTALLED_UNIT = '/etc/systemd/system/vigia.service';

/** What the unit's sandbox lets the daemon write (`ProtectSystem=strict` makes everything else read-only). */
export interface UnitSandbox {
  unitFile: string;
  /** Relative paths in the config are resolved from here. */
  workingDirectory: string;
  /** StateDirectory=, RuntimeDirectory= and ReadWritePaths=, absolute. */
  writable: string[];
}

/** One directory the daemon writes, and the setting that puts it there. */
export interface WrittenDir {
  path: Array<string | number>;
  dir: string;
}

/**
 * Reads the settings that decide what the daemon may write from the unit and its drop-ins, in the
 * order systemd applies them (an empty `ReadWritePaths=` clears the list). Null when the unit does
 * not make the file system read-only (`ProtectSystem=strict`): then only file modes decide.
 */
export function readUnitSandbox(unitFile: string): UnitSandbox | null {
  const dropInDir = `${unitFile}.d`;
  const dropIns = existsSync(dropInDir)
    ? readdirSync(dropInDir)
        .filter((f) => f.endsWith('.conf'))
        .sort()
        .map((f) => join(dropInDir, f))
    : [];
  let strict = false;
  let workingDirectory = '/';
  let readWrite: string[] = [];
  let state: string[] = [];
  let runtime: string[] = [];
  for (const file of [unitFile, ...dropIns]) {
    let section = '';
    for (const raw of readFileSync(file, 'utf8').split('\n')) {
      const line = raw.trim();
      if (line.startsWith('[')) section = line;
      if (section !== '[Service]' || line.startsWith('#') || !line.includes('=')) continue;
      const key = line.slice(0, line.indexOf('=')).trim();
      const values = line
        .slice(line.indexOf('=') + 1)
        .trim()
        .split(/\s+/)
        .filter(Boolean);
      if (key === 'ProtectSystem') strict = values[0] === 'strict';
      else if (key === 'WorkingDirectory' && values[0]) workingDirectory = values[0].replace(/^-/, '');
      // Each assignment adds to the list; an empty one clears it.
      else if (key === 'ReadWritePaths') readWrite = values.length ? [...readWrite, ...values.map((v) => v.replace(/^[-+]+/, ''))] : [];
      else if (key === 'StateDirectory') state = values.length ? [...state, ...values] : [];
      else if (key === 'RuntimeDirectory') runtime = values.length ? [...runtime, ...values] : [];
    }
  }
  if (!strict) return null;
  return {
    unitFile,
    workingDirectory,
    writable: [...state.map((d) => join('/var/lib', d)), ...runtime.map((d) => join('/run', d)), ...readWrite],
  };
}

/** Every directory the daemon writes under this config, with the setting that chose it. */
export function writtenDirs(config: Config, cwd: string): WrittenDir[] {
  const at = (dir: string) => resolve(cwd, dir);
  const dataDir = at(config.paths.data_dir);
  const dirs: WrittenDir[] = [
    { path: ['paths', 'data_dir'], dir: dataDir },
    { path: ['paths', 'runtime_dir'], dir: at(config.paths.runtime_dir) },
  ];
  if (config.outbox.file) dirs.push({ path: ['outbox', 'file'], dir: resolve(dataDir, config.outbox.file, '..') });
  if (config.anpr.enabled) {
    if (config.anpr.evidence.dir) dirs.push({ path: ['anpr', 'evidence', 'dir'], dir: at(config.anpr.evidence.dir) });
    // A directory camera deletes or moves each picture it read.
    config.anpr.cameras.forEach((cam, i) => {
      if (cam.kind === 'directory' && cam.dir) dirs.push({ path: ['anpr', 'cameras', i, 'dir'], dir: at(cam.dir) });
    });
  }
  if (config.nodered.enabled && config.nodered.user_dir) dirs.push({ path: ['nodered', 'user_dir'], dir: resolve(dataDir, config.nodered.user_dir) });
  return dirs;
}

const inside = (dir: string, root: string) => {
  const rel = relative(root, dir);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
};

/** The directories of this config that the unit's sandbox would leave read-only, each with the fix. */
export function sandboxProblems(config: Config, sandbox: UnitSandbox): Array<{ path: Array<string | number>; message: string }> {
  return writtenDirs(config, sandbox.workingDirectory)
    .filter(({ dir }) => !sandbox.writable.some((root) => inside(dir, root)))
    .map(({ path, dir }) => ({
      path,
      message:
        `${dir} is read-only for the daemon under ${sandbox.unitFile} (it may write ${sandbox.writable.join(', ')}): ` +
        `add it in a drop-in, ${sandbox.unitFile}.d/paths.conf with "[Service]" and "ReadWritePaths=${dir}", then systemctl daemon-reload`,
    }));
}
