// Process-wide bookkeeping so that a benchmark never leaves a broker, a daemon or a temp dir
// behind, whether it ends normally, throws, or is interrupted.
import { rmSync } from 'node:fs';

const children = new Set();
const dirs = new Set();
const tasks = [];
let installed = false;

function killAllSync() {
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

function install() {
  if (installed) return;
  installed = true;
  process.once('exit', killAllSync);
  let exiting = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    // `on`, not `once`: Ctrl-C reaches both the runner (which forwards it) and this process, and a
    // second signal must not kill us halfway through the cleanup.
    process.on(sig, () => {
      if (exiting) return;
      exiting = true;
      process.stderr.write(`\nbench: ${sig}, cleaning up\n`);
      killAllSync();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

/** Kills the child (SIGKILL) at exit if it is still running. */
export function trackChild(child) {
  install();
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.once('error', () => children.delete(child));
  return child;
}

/** Removes the directory at exit (and in runCleanups). */
export function trackDir(dir) {
  install();
  dirs.add(dir);
  return dir;
}

export function untrackDir(dir) {
  dirs.delete(dir);
}

/** An orderly async cleanup step, run (last registered first) by runCleanups(). */
export function onCleanup(fn) {
  install();
  tasks.push(fn);
}

export async function runCleanups() {
  while (tasks.length > 0) {
    const fn = tasks.pop();
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`bench: cleanup step failed: ${err?.message ?? err}\n`);
    }
  }
  killAllSync();
}

/** Runs fn with its own cleanup scope: everything it registered is undone when it ends. */
export async function scoped(fn) {
  const mark = tasks.length;
  try {
    return await fn();
  } finally {
    while (tasks.length > mark) {
      const step = tasks.pop();
      try {
        await step();
      } catch (err) {
        process.stderr.write(`bench: cleanup step failed: ${err?.message ?? err}\n`);
      }
    }
  }
}
