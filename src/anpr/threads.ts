import { readlinkSync } from 'node:fs';
import { availableParallelism, setPriority } from 'node:os';

/** Inference threads per model by default: the cores, at most 4 (more only adds contention). */
export function defaultThreads(): number {
  return Math.max(1, Math.min(4, availableParallelism()));
}

/**
 * Lowers the calling thread's scheduling priority (Linux: niceness is per thread, and threads it
 * creates afterwards, such as ONNX Runtime's, inherit it). Inference then only gets the CPU the
 * alarm path and the uplink leave over. Returns false where that is not possible.
 */
export function lowerThreadPriority(niceness: number): boolean {
  try {
    // "/proc/thread-self" → "<pid>/task/<tid>": the kernel id of the thread running this code.
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (!Number.isInteger(tid) || tid <= 0) return false;
    setPriority(tid, niceness);
    return true;
  } catch {
    return false;
  }
}
