/**
 * Runs `cleanup` (synchronously) when the process exits or is interrupted, once per function
 * however often it is asked: servers a test started must not outlive it. A signal nobody else
 * handles still terminates the process afterwards, as it would have.
 */
const installed = new Set<() => void>();

export function cleanupAtExit(cleanup: () => void): void {
  if (installed.has(cleanup)) return;
  installed.add(cleanup);
  process.once('exit', cleanup);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      cleanup();
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    });
  }
}
