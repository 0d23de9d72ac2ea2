import { resolve } from 'node:path';
import type { Config } from '../config/schema.js';
import { controlRequest, DAEMON_NOT_RUNNING } from '../gateway/control.js';

/**
 * How the technician's tools reach the running daemon: one request on its control socket. The
 * daemon owns the GPIO lines, the cameras and the outbox while it runs, so the tools ask it; when
 * it is stopped they open those themselves. The daemon answering its own `diag` command can hand
 * the doctor a function that calls its control handlers directly.
 */
export type DaemonRequest = (op: string, args?: Record<string, unknown>) => Promise<unknown>;

export function controlSocketPath(config: Config): string {
  return resolve(config.paths.runtime_dir, 'vigia.sock');
}

/**
 * The running daemon behind `socketPath`, or null when none listens there. Any other trouble
 * (permission denied, no answer) is thrown: guessing "stopped" then would open hardware it holds.
 */
export async function findDaemon(socketPath: string, timeoutMs = 10_000): Promise<DaemonRequest | null> {
  try {
    await controlRequest(socketPath, 'status', {}, timeoutMs);
  } catch (err) {
    if ((err as { code?: unknown }).code === DAEMON_NOT_RUNNING) return null;
    throw err;
  }
  return (op, args = {}) => controlRequest(socketPath, op, args);
}

/** Whether the daemon refused an operation because it does not have it (an older daemon, a part not running). */
export function isUnknownOperation(err: unknown): boolean {
  return /^unknown operation /.test((err as Error)?.message ?? '');
}
