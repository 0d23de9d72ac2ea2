import { isPriority } from '../core/event.js';
import type { ControlRegistry } from '../core/extension.js';
import type { Outbox } from './outbox.js';
import type { Uplink } from './uplink.js';

/** Most events `vigia outbox list` shows at once: the reply is one line on the control socket. */
export const MAX_LIST = 10_000;

/** `vigia outbox list|retry|purge` with the daemon running: it owns the database, so it does the work. */
export function handleOutboxOps(control: ControlRegistry, outbox: Pick<Outbox, 'list' | 'purge'>, uplink: Pick<Uplink, 'retryNow' | 'forgetWaiting'>): void {
  control.handle('outbox.list', (args) => {
    const priority = args.priority === undefined ? undefined : checkedPriority(args.priority);
    const limit = typeof args.limit === 'number' && Number.isInteger(args.limit) && args.limit > 0 ? Math.min(args.limit, MAX_LIST) : 100;
    return { events: outbox.list({ ...(priority ? { priority } : {}), limit }) };
  });
  control.handle('outbox.retry', () => uplink.retryNow());
  control.handle('outbox.purge', (args) => {
    const priority = checkedPriority(args.priority);
    const purged = outbox.purge(priority);
    uplink.forgetWaiting(priority);
    return { priority, purged };
  });
}

function checkedPriority(value: unknown) {
  if (typeof value !== 'string' || !isPriority(value)) throw new Error('"priority" must be alarm, hit, read or telemetry');
  return value;
}
