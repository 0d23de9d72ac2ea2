// A memory cgroup of its own for one child process: the kernel's out-of-memory killer then acts
// inside it as it would on a device that ran out of memory. cgroup v2 (memory.max) or v1
// (memory.limit_in_bytes); needs root and a writable cgroup tree, else null.
import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface MemoryCgroup {
  dir: string;
  /** A shell command prefix that moves the process into the cgroup, then execs the command. */
  wrap(argv: readonly string[]): string[];
  remove(): void;
}

export function memoryCgroup(name: string, limitBytes: number): MemoryCgroup | null {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').split('\n');
  const v1 = lines.find((l) => /^\d+:memory:/.test(l))?.split(':')[2];
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3);
  const candidates = [
    ...(v1 !== undefined ? [{ dir: join('/sys/fs/cgroup/memory', v1, name), limit: 'memory.limit_in_bytes', swap: 'memory.memsw.limit_in_bytes' }] : []),
    ...(v2 !== undefined ? [{ dir: join('/sys/fs/cgroup', v2, name), limit: 'memory.max', swap: 'memory.swap.max' }] : []),
  ];
  for (const c of candidates) {
    try {
      mkdirSync(c.dir);
      writeFileSync(join(c.dir, c.limit), String(limitBytes));
      try {
        writeFileSync(join(c.dir, c.swap), c.swap === 'memory.swap.max' ? '0' : String(limitBytes));
      } catch {
        /* no swap accounting: nothing to limit */
      }
      return {
        dir: c.dir,
        wrap: (argv) => ['sh', '-c', `echo $$ > ${join(c.dir, 'cgroup.procs')} && exec "$@"`, 'sh', ...argv],
        remove: () => {
          try {
            rmdirSync(c.dir);
          } catch {
            /* still has processes: the next run uses a new name */
          }
        },
      };
    } catch {
      /* next candidate */
    }
  }
  return null;
}
