// What Linux reports about a process in /proc: I/O counters and memory.
import { readFileSync } from 'node:fs';

/** /proc/<pid>/io as numbers (rchar, wchar, read_bytes, write_bytes...). */
export function procIo(pid: number | 'self' = 'self'): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(`/proc/${pid}/io`, 'utf8').split('\n')) {
    const [k, v] = line.split(':');
    if (k && v !== undefined) out[k.trim()] = Number(v.trim());
  }
  return out;
}

/** A VmXXX field of /proc/<pid>/status (VmRSS, VmHWM...), in MiB; null if the field is absent. */
export function procMem(pid: number | 'self', field = 'VmRSS'): number | null {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}
