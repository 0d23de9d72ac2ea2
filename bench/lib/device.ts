// The device under benchmark: the test helpers' device config, with the benchmarks' site and a
// faster reconnect, in a temp dir that is removed at exit (or by remove()).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mergeConfig, writeDeviceConfig } from '../../tests/helpers/daemon.js';
import { trackDir, untrackDir } from './cleanup.js';

/** Events go to vigia/bench/...; the uplink retries within 250 ms so that a reconnect does not dominate the drain figures. */
const BENCH_DEVICE = {
  device: { site: 'bench' },
  mqtt: { reconnect: { min_delay: '50ms', max_delay: '250ms' } },
};

export function writeBenchDeviceConfig(brokerUrl: string, over: Record<string, unknown> = {}) {
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'vigia-bench-dev-')));
  const cfg = writeDeviceConfig(brokerUrl, mergeConfig(BENCH_DEVICE, over), dir);
  return {
    ...cfg,
    remove(): void {
      untrackDir(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
