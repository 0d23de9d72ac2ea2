import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DAEMON_NODE_FLAGS } from '../src/launch.js';
import { REPO_ROOT } from './helpers/repo.js';

const UNITS = ['vigia.service', 'vigia-clock.socket', 'vigia-clock@.service'];
const MAX_EXPOSURE = 2.5;

function analyze(args: string[]) {
  const r = spawnSync('systemd-analyze', args, { encoding: 'utf8', env: { ...process.env, SYSTEMD_COLORS: '0' } });
  if (r.error) throw new Error(`systemd-analyze: ${r.error.message}; run \`node scripts/ensure-system-deps.mjs\` (apt-get install systemd)`);
  return r;
}

/**
 * The units as installed, with the two install paths pointed at what exists here: `verify` checks
 * that each Exec*= program exists, and this machine has neither /opt/vigia nor, perhaps, node in
 * /usr/bin. Everything else is the shipped text.
 */
function renderUnits(edit: (text: string) => string = (t) => t): string {
  const dir = mkdtempSync(join(tmpdir(), 'vigia-unit-'));
  for (const unit of UNITS) {
    const text = readFileSync(join(REPO_ROOT, 'systemd', unit), 'utf8')
      .replaceAll('/usr/bin/node', process.execPath)
      .replaceAll('/opt/vigia', REPO_ROOT);
    writeFileSync(join(dir, unit), edit(text));
  }
  return dir;
}

function verify(dir: string) {
  return analyze(['verify', '--man=no', ...UNITS.map((u) => join(dir, u))]);
}

function exposure(file: string): number {
  const r = analyze(['security', '--offline=yes', file]);
  const m = /Overall exposure level for .*: (\d+(?:\.\d+)?)/.exec(r.stdout);
  if (!m) throw new Error(`no exposure in systemd-analyze output:\n${r.stdout}\n${r.stderr}`);
  return Number(m[1]);
}

type Check = { name: string; set: boolean; exposure: string | null };
function checks(file: string): Map<string, Check> {
  const r = analyze(['security', '--offline=yes', '--json=short', file]);
  return new Map((JSON.parse(r.stdout) as Check[]).map((c) => [c.name, c]));
}

describe('the systemd units', () => {
  it('pass systemd-analyze verify without a warning', () => {
    const r = verify(renderUnits());
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The check itself catches a mistyped setting (systemd would ignore it and run unsandboxed).
    const bad = verify(renderUnits((t) => t.replace('ProtectSystem=strict', 'ProtectSytem=strict')));
    expect(bad.stderr).toContain("Unknown key 'ProtectSytem'");
  });

  it(`expose ${MAX_EXPOSURE} or less to systemd-analyze security`, () => {
    const dir = renderUnits();
    expect(exposure(join(dir, 'vigia.service'))).toBeLessThanOrEqual(MAX_EXPOSURE);
    expect(exposure(join(dir, 'vigia-clock@.service'))).toBeLessThanOrEqual(MAX_EXPOSURE);
  });

  it('give the daemon no capability, and CAP_SYS_TIME only to the clock helper', () => {
    const dir = renderUnits();
    const daemon = checks(join(dir, 'vigia.service'));
    for (const name of [
      'CapabilityBoundingSet=~CAP_SYS_TIME',
      'AmbientCapabilities=',
      'ProtectClock=',
      'NoNewPrivileges=',
      'ProtectProc=',
      'ProtectKernelModules=',
    ]) {
      expect(daemon.get(name)?.set, name).toBe(true);
    }
    const helper = checks(join(dir, 'vigia-clock@.service'));
    expect(helper.get('CapabilityBoundingSet=~CAP_SYS_TIME')?.set).toBe(false);
    expect(helper.get('PrivateNetwork=')?.set).toBe(true);
    expect(helper.get('CapabilityBoundingSet=~CAP_SYS_ADMIN')?.set).toBe(true);
  });

  it('runs the daemon with the node flags the code expects and keeps the safe-outputs step', () => {
    const unit = readFileSync(join(REPO_ROOT, 'systemd', 'vigia.service'), 'utf8');
    expect(unit).toContain(`ExecStart=/usr/bin/node ${DAEMON_NODE_FLAGS.join(' ')} /opt/vigia/dist/cli.js run --config /etc/vigia/vigia.yaml`);
    expect(unit).toMatch(/^ExecStopPost=\/usr\/bin\/node \/opt\/vigia\/dist\/cli\.js outputs safe --config \/etc\/vigia\/vigia\.yaml$/m);
    expect(unit).toMatch(/^Type=notify$/m);
    expect(unit).toMatch(/^ReadWritePaths=.*\/etc\/vigia\b/m);
  });
});
