import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { expect } from 'vitest';
import type { SystemdImage, SystemdVm } from '../../scripts/systemd-rig.mjs';

// What the VM tests share: the image, built in a child process, and commands run in the guest.

export const ROOT = resolve(import.meta.dirname, '../..');
const RIG = resolve(ROOT, 'scripts/systemd-rig.mjs');

export const secondsOf = (ms: number) => Math.round(ms / 100) / 10;

/**
 * `systemd-rig.mjs build` in a child process (a build blocks for minutes, which this worker's event
 * loop must not), its progress passed through.
 */
export function buildImage(): Promise<SystemdImage> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [RIG, 'build'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b;
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolvePromise(JSON.parse(out)) : reject(new Error(`systemd-rig.mjs build exited with ${code}`))));
  });
}

/** Runs a command line in the guest as the technician; fails the test with its output unless it succeeds. */
export async function sh(vm: SystemdVm, command: string, timeoutMs?: number): Promise<string> {
  const r = await vm.ssh(command, timeoutMs ? { timeoutMs } : undefined);
  expect(r.code, `${command}\n${r.stdout}${r.stderr}`).toBe(0);
  return r.stdout.trim();
}

/** Waits for systemd to finish starting up; prints the failed units when it is degraded. */
export async function systemState(vm: SystemdVm): Promise<string> {
  const state = (await vm.ssh('systemctl is-system-running --wait', { timeoutMs: 5 * 60_000 })).stdout.trim();
  if (state === 'degraded') process.stderr.write(`systemd-vm: degraded; failed units:\n${await sh(vm, 'systemctl --failed --no-legend --plain')}\n`);
  return state;
}

/** Polls `probe` until it returns a value other than undefined; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
