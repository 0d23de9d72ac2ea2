// A real count of fsync/fdatasync calls: the child under `strace -f`, and its log read back.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface StraceCommand {
  /** strace and its options, to put before the traced command (add `-o FILE`). */
  argv: string[];
  /** Whether --seccomp-bpf is on: the tracee then stops only on the traced calls, so the others run at full speed. */
  seccomp: boolean;
}

/** strace tracing fsync and fdatasync with timestamps and durations; installed with apt when running as root; null if unavailable. */
export function straceCommand(log: (msg: string) => void): StraceCommand | null {
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (probe.error) {
    log('strace is not installed: apt-get install -y strace');
    if (process.getuid?.() === 0) {
      log('  installing it (root): apt-get install -y strace');
      spawnSync('apt-get', ['install', '-y', 'strace'], { stdio: ['ignore', 'ignore', 'inherit'] });
    }
    if (spawnSync('strace', ['-V']).error) return null;
  }
  const seccomp = spawnSync('strace', ['-f', '--seccomp-bpf', '-qq', '-e', 'trace=fsync', '-o', '/dev/null', 'true']).status === 0;
  return { argv: ['strace', '-f', ...(seccomp ? ['--seccomp-bpf'] : []), '-qq', '-ttt', '-T', '-e', 'trace=fsync,fdatasync'], seccomp };
}

export interface SyncCount {
  /** Calls in the whole log. */
  total: number;
  /** Calls that started within the phase. */
  inPhase: number;
  /** Time in each call of the phase, ms (strace -T). */
  durations: number[];
}

/** Counts fsync/fdatasync calls in an `strace -f -ttt -T -o` log, in total and within [t0us, t1us] (wall clock, µs). */
export function countSyncs(logFile: string, t0us: number, t1us: number): SyncCount {
  let total = 0;
  let inPhase = 0;
  const durations: number[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    const m = /^(?:\d+\s+)?(\d+)\.(\d{6})\s+(fsync|fdatasync)\(/.exec(line);
    if (!m) continue; // "<... fsync resumed>" continuation lines and exit notices
    total++;
    const us = Number(m[1]) * 1e6 + Number(m[2]);
    if (us < t0us || us > t1us) continue;
    inPhase++;
    const d = /<(\d+\.\d+)>\s*$/.exec(line);
    if (d) durations.push(Number(d[1]) * 1000);
  }
  return { total, inPhase, durations };
}
