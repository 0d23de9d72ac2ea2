import { existsSync } from 'node:fs';
import type { Config } from '../config/schema.js';
import { readBootId, systemClock } from '../core/clock.js';
import type { Priority } from '../core/event.js';
import { createLogger } from '../core/logger.js';
import { Outbox, type QueuedEvent } from '../gateway/outbox.js';
import { outboxFile, outboxOptions } from '../gateway/outbox-options.js';
import type { DaemonRequest } from './daemon-link.js';

/**
 * `vigia outbox list|retry|purge`. The daemon owns the database while it runs, so these go through
 * its control socket then; stopped, the outbox is opened here, exactly as the daemon opens it.
 */

async function withOutbox<T>(config: Config, use: (outbox: Outbox) => T): Promise<T> {
  const file = outboxFile(config);
  if (!existsSync(file)) throw new Error(`no outbox at ${file} (the daemon has not run with this configuration yet)`);
  const outbox = new Outbox(
    outboxOptions(config, { clock: systemClock, bootId: readBootId(), clockSynced: () => false, logger: createLogger('error', 2).child({ mod: 'outbox' }) }),
  );
  outbox.open();
  try {
    return use(outbox);
  } finally {
    await outbox.close();
  }
}

export async function listQueued(config: Config, daemon: DaemonRequest | null, opts: { priority?: Priority; limit: number }): Promise<QueuedEvent[]> {
  if (daemon) return ((await daemon('outbox.list', opts)) as { events: QueuedEvent[] }).events;
  return withOutbox(config, (outbox) => outbox.list(opts));
}

/** Only a running daemon has anything waiting for a retry: a stopped one sends everything when it starts. */
export async function retryNow(daemon: DaemonRequest | null): Promise<{ waiting: number; reconnecting: boolean }> {
  if (!daemon) throw new Error('the daemon is not running: nothing waits for a retry (it sends everything when it starts)');
  return (await daemon('outbox.retry')) as { waiting: number; reconnecting: boolean };
}

/** How many events of the class there are now (what a purge would remove), for the question before it. */
export async function countQueued(config: Config, daemon: DaemonRequest | null, priority: Priority): Promise<number> {
  if (daemon) {
    const status = (await daemon('status')) as { outbox: { by_priority: Record<Priority, { depth: number }> } };
    return status.outbox.by_priority[priority].depth;
  }
  return withOutbox(config, (outbox) => outbox.stats().byPriority[priority].depth);
}

export async function purgeQueued(config: Config, daemon: DaemonRequest | null, priority: Priority): Promise<number> {
  if (daemon) return ((await daemon('outbox.purge', { priority })) as { purged: number }).purged;
  return withOutbox(config, (outbox) => outbox.purge(priority));
}
