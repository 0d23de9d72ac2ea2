// Process-wide bookkeeping so that a benchmark never leaves a child process or a temp dir behind,
// whether it ends normally, throws, or is interrupted. Brokers and daemons started through the test
// helpers are killed at exit by those helpers.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

type Step = () => unknown;

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
const steps: Step[] = [];
let installed = false;

function killAllSync(): void {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  children.clear();
  for (const dir of dirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  dirs.clear();
}

const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

function install(): void {
  if (installed) return;
  installed = true;
  process.once('exit', killAllSync);
  let exiting = false;
  for (const sig of Object.keys(SIGNAL_EXIT_CODES) as Array<keyof typeof SIGNAL_EXIT_CODES>) {
    // `on`, not `once`: Ctrl-C reaches both the runner (which forwards it) and this process, and a
    // second signal must not kill us halfway through the cleanup.
    process.on(sig, () => {
      if (exiting) return;
      exiting = true;
      process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
      killAllSync();
      process.exit(SIGNAL_EXIT_CODES[sig]);
    });
  }
}

/** Kills the child (SIGKILL) at exit if it is still running. */
export function trackChild<T extends ChildProcess>(child: T): T {
  install();
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/** Removes the directory at exit (and in runCleanups). */
export function trackDir(dir: string): string {
  install();
  dirs.add(dir);
  return dir;
}

export function untrackDir(dir: string): void {
  dirs.delete(dir);
}

/** An orderly async cleanup step, run (last registered first) by runCleanups() or the enclosing scoped(). */
export function onCleanup(step: Step): void {
  install();
  steps.push(step);
}

async function runStepsDownTo(mark: number): Promise<void> {
  while (steps.length > mark) {
    const step = steps.pop()!;
    try {
      await step();
    } catch (err) {
      process.stderr.write(`bench: cleanup step failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
}

export async function runCleanups(): Promise<void> {
  await runStepsDownTo(0);
  killAllSync();
}

/** Runs fn with its own cleanup scope: everything it registered is undone when it ends. */
export async function scoped<T>(fn: () => Promise<T>): Promise<T> {
  const mark = steps.length;
  try {
    return await fn();
  } finally {
    await runStepsDownTo(mark);
  }
}
