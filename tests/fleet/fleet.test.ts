import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/repo.js';

// The fleet benchmark's scenario, shortened: 50 devices (the daemon's outbox, uplink and command
// code, each with its own SQLite file) on a three-node RabbitMQ cluster; the central side out of
// reach for 15 s while events keep coming, then a broker node SIGKILLed under load, then a hotlist
// delta to every device. What must hold whatever the machine's speed: nothing accepted is lost,
// every device comes back, the devices on the killed node move to the others, every device
// installs the delta and the call center hears of it.

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO_ROOT, 'dist-bench', 'bench', 'run.js'), 'fleet', ...args], { cwd: REPO_ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b;
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b).slice(-20_000);
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

it('a fleet of 50 loses nothing through an outage, a node kill and a hotlist change', async () => {
  const build = spawn('npx', ['tsc', '-p', 'bench/tsconfig.json'], { cwd: REPO_ROOT, stdio: 'inherit' });
  expect(await new Promise((r) => build.on('close', r))).toBe(0);

  const { code, stdout, stderr } = await runBench(['--devices', '50', '--outage', '15', '--spread', '30', '--runs', '1', '--no-baseline']);
  expect(code, stderr).toBe(0);
  const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, number | null>;
  expect(r.devices).toBe(50);
  expect(r.events_total).toBeGreaterThan(1000);
  expect(r.lost, stderr).toBe(0);
  // Every device came back after the outage and its backlog drained.
  expect(r.reconnect_spread_s).not.toBeNull();
  expect(r.drain_s_after_outage, stderr).not.toBeNull();
  // Alarms raised while the fleet drained reached the center.
  expect(r.alarms_during_drain).toBeGreaterThan(0);
  // The devices on the killed node (wherever the outage left them) each moved to another.
  expect(r.node_kill_moved_devices).toBeGreaterThan(0);
  expect(r.node_kill_failover_p99_s).not.toBeNull();
  // Every device installed the delta, and the center saw each one's new version.
  expect(r.hotlist_delta_all_devices_s, stderr).not.toBeNull();
  expect(r.hotlist_delta_at_center_s, stderr).not.toBeNull();
});
