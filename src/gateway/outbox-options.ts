import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Clock } from '../core/clock.js';
import type { OutboxOptions } from './outbox.js';

/** Where the outbox file is: `outbox.file`, or outbox.db in the data directory. */
export function outboxFile(config: Config): string {
  return resolve(resolve(config.paths.data_dir), config.outbox.file ?? 'outbox.db');
}

/** The outbox as the configuration describes it: the daemon's, and the one `vigia outbox` opens while the daemon is stopped. */
export function outboxOptions(config: Config, deps: { clock: Clock; bootId: string; clockSynced: () => boolean; logger: Logger }): OutboxOptions {
  const o = config.outbox;
  return {
    file: outboxFile(config),
    maxBytes: o.max_bytes,
    alarmReserveBytes: o.alarm_reserve_bytes,
    quotaBytes: o.quota_bytes,
    ttlMs: o.ttl,
    commitIntervalMs: o.commit_interval,
    commitMaxEvents: o.commit_max_events,
    synchronous: o.synchronous,
    diskReserveBytes: o.disk_reserve_bytes,
    site: config.device.site,
    device: config.device.id,
    ...deps,
  };
}
