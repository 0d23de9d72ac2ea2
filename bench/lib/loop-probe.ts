// What the daemon's event loop (alarms, MQTT keep-alives) goes through while some work runs: the
// stalls of a 1 ms timer, and how much of each stall the main thread itself spent on the CPU.
import { readFileSync } from 'node:fs';

const SCHEDSTAT = `/proc/self/task/${process.pid}/schedstat`;

/** CPU time of the main thread in ms (Linux schedstat), or null where the kernel does not keep it. */
function mainThreadCpuMs(): number | null {
  try {
    return Number(readFileSync(SCHEDSTAT, 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return null;
  }
}

export interface LoopFigures {
  /** How long the work took. */
  ms: number;
  /** The longest time the loop could not run the timer (gap between ticks minus the 1 ms). */
  stall_max_ms: number | null;
  /** Time spent in stalls over 10 ms (the daemon's latency budget). */
  stalled_ms: number;
  /**
   * The most CPU the main thread itself used within one gap. On a machine whose cores are busy
   * with other work a gap also holds time spent waiting for a core; this one does not.
   */
  stall_cpu_max_ms: number | null;
}

const max = (xs: number[]) => (xs.length ? xs.reduce((a, b) => Math.max(b, a), 0) : null);

/** Runs `fn` while a 1 ms timer ticks on the event loop. */
export async function underLoopProbe<T>(fn: () => Promise<T>): Promise<LoopFigures & { result: T }> {
  const gaps: number[] = [];
  const cpu: number[] = [];
  let last = performance.now();
  let lastCpu = mainThreadCpuMs();
  let timer: NodeJS.Timeout;
  const record = () => {
    const now = performance.now();
    const nowCpu = mainThreadCpuMs();
    gaps.push(now - last - 1);
    if (nowCpu !== null && lastCpu !== null) cpu.push(nowCpu - lastCpu);
    last = now;
    lastCpu = nowCpu;
  };
  const tick = () => {
    record();
    timer = setTimeout(tick, 1);
  };
  timer = setTimeout(tick, 1);
  const t0 = performance.now();
  const result = await fn();
  const ms = performance.now() - t0;
  clearTimeout(timer);
  record(); // the gap that ends with fn, which no tick saw
  const stalled_ms = gaps.filter((g) => g > 10).reduce((a, b) => a + b, 0);
  return { result, ms, stall_max_ms: max(gaps), stalled_ms, stall_cpu_max_ms: max(cpu) };
}

/** The figures alone, without the work's result. */
export const loopFigures = ({ ms, stall_max_ms, stalled_ms, stall_cpu_max_ms }: LoopFigures): LoopFigures => ({
  ms,
  stall_max_ms,
  stalled_ms,
  stall_cpu_max_ms,
});
