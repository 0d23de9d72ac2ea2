import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { readUnitSandbox } from '../src/config/sandbox-paths.js';
import { CLI } from './helpers/daemon.js';
import { REPO_ROOT } from './helpers/repo.js';

const SHIPPED_UNIT = join(REPO_ROOT, 'systemd', 'vigia.service');

/** A gantry that keeps evidence on a USB disk and reads a camera's FTP uploads: both outside the state directory. */
const gantry = {
  device: { id: 'gantry-01', site: 'la-serena', profile: 'gantry' },
  mqtt: { url: 'mqtts://broker.example:8883' },
  anpr: {
    enabled: true,
    evidence: { dir: '/srv/evidence' },
    cameras: [
      { id: 'lane-1', kind: 'stream', url: 'rtsp://10.0.0.5/live' },
      { id: 'lane-2', kind: 'directory', dir: '/srv/ftp/lane2' },
    ],
  },
};

function check(config: unknown, unit: string) {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-sandbox-'));
  const file = join(dir, 'vigia.yaml');
  writeFileSync(file, stringify(config));
  const r = spawnSync(process.execPath, [CLI, 'config', 'check', '--unit', unit, file], { encoding: 'utf8' });
  return { file, code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A copy of the shipped unit with drop-ins, as a technician installs them. */
function unitWithDropIn(dropIn: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-unit-'));
  const unit = join(dir, 'vigia.service');
  writeFileSync(unit, readFileSync(SHIPPED_UNIT, 'utf8'));
  mkdirSync(`${unit}.d`);
  writeFileSync(join(`${unit}.d`, 'paths.conf'), dropIn);
  return unit;
}

describe('config check against the unit sandbox', () => {
  it('knows what the shipped unit lets the daemon write', () => {
    expect(readUnitSandbox(SHIPPED_UNIT)).toEqual({
      unitFile: SHIPPED_UNIT,
      workingDirectory: '/var/lib/vigia',
      writable: ['/var/lib/vigia', '/run/vigia', '/etc/vigia'],
    });
  });

  it('refuses evidence and an upload directory outside the sandbox, at their lines, with the drop-in to add', () => {
    const r = check(gantry, SHIPPED_UNIT);
    expect(r.code).toBe(78);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(
      new RegExp(
        `^${r.file}:\\d+:\\d+ anpr\\.evidence\\.dir: /srv/evidence is read-only for the daemon under .*vigia\\.service \\(it may write /var/lib/vigia, /run/vigia, /etc/vigia\\): add it in a drop-in, .*vigia\\.service\\.d/paths\\.conf with "\\[Service\\]" and "ReadWritePaths=/srv/evidence"`,
      ),
    );
    expect(lines[1]).toMatch(/ anpr\.cameras\.1\.dir: \/srv\/ftp\/lane2 is read-only/);
  });

  it('accepts them once a drop-in makes them writable, and follows an empty ReadWritePaths= that clears the list', () => {
    const unit = unitWithDropIn('[Service]\nReadWritePaths=/srv/evidence\nReadWritePaths=-/srv/ftp\n');
    expect(check(gantry, unit)).toMatchObject({ code: 0, stderr: '' });
    const cleared = unitWithDropIn('[Service]\nReadWritePaths=\nReadWritePaths=/srv/evidence\n');
    const r = check({ ...gantry, nodered: { user_dir: '/etc/vigia/nodered' } }, cleared);
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/anpr\.cameras\.1\.dir: \/srv\/ftp\/lane2 is read-only .*\(it may write \/var\/lib\/vigia, \/run\/vigia, \/srv\/evidence\)/);
    expect(r.stderr).not.toContain('evidence.dir');
  });

  it('places relative paths where the unit runs the daemon, and the outbox and Node-RED under the data directory', () => {
    const r = check(
      {
        ...gantry,
        anpr: { ...gantry.anpr, evidence: { dir: 'evidence' } },
        outbox: { file: '/srv/outbox/outbox.db' },
        nodered: { enabled: false, user_dir: '/srv/nr' },
      },
      unitWithDropIn('[Service]\nReadWritePaths=/srv/ftp\n'),
    );
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/ outbox\.file: \/srv\/outbox is read-only/);
    expect(r.stderr).not.toMatch(/evidence|nodered/);
  });
});
