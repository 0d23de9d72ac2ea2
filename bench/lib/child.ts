// Benchmark programs that run as processes of their own (so that strace, /proc/<pid>/io, RSS or a
// SIGKILL see only them). Like the benchmarks, they run compiled (dist-bench/) under plain node: no
// loader in the process, so its memory and timings are those of the code under test.
import { spawn } from 'node:child_process';
import { trackChild } from './cleanup.js';

/** Node's argv for a compiled program: its flags, the script and its arguments. */
export const nodeArgv = (script: string, args: readonly string[] = [], nodeFlags: readonly string[] = []): string[] => [...nodeFlags, script, ...args];

export interface RunOptions {
  /** Node flags, e.g. --expose-gc. */
  nodeFlags?: readonly string[];
  /** A command to run node under, e.g. strace and its options. */
  prefix?: readonly string[];
  /** The child is SIGKILLed after this long (default 5 minutes). */
  timeoutMs?: number;
}

/** Runs a compiled program as a child; resolves with its stdout lines, rejects with the end of its stderr. */
export function runNode(script: string, args: readonly string[], { nodeFlags = [], prefix = [], timeoutMs = 300_000 }: RunOptions = {}): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const argv = nodeArgv(script, args, nodeFlags);
    const [cmd, cmdArgs] = prefix.length > 0 ? [prefix[0]!, [...prefix.slice(1), process.execPath, ...argv]] : [process.execPath, argv];
    const child = trackChild(spawn(cmd, cmdArgs, { stdio: ['ignore', 'pipe', 'pipe'] }));
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b;
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr = (stderr + b).slice(-8000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout.trim().split('\n'));
      else reject(new Error(`${script} ${args.join(' ')} exited with ${code ?? signal}\n${stderr}`));
    });
  });
}

/** The JSON object a child printed as its last line. */
export const lastLineJson = <T>(lines: readonly string[]): T => JSON.parse(lines.at(-1) ?? '') as T;
