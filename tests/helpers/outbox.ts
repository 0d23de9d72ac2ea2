import pino from 'pino';
import { ManualClock } from '../../src/core/clock.js';
import type { OutboxOptions } from '../../src/gateway/outbox.js';

const MiB = 1024 * 1024;

/** Outbox options for a test: roomy quotas, a 5 ms group commit, a manual clock, silent logs; `over` wins. */
export function testOutboxOptions(file: string, over: Partial<OutboxOptions> = {}): OutboxOptions {
  return {
    file,
    maxBytes: 64 * MiB,
    alarmReserveBytes: 1 * MiB,
    quotaBytes: { alarm: 64 * MiB, hit: 16 * MiB, read: 16 * MiB, telemetry: 16 * MiB },
    ttlMs: { alarm: 'never', hit: 86_400_000, read: 3_600_000, telemetry: 60_000 },
    commitIntervalMs: 5,
    commitMaxEvents: 5000,
    synchronous: 'full',
    site: 'test-site',
    device: 'dev-1',
    bootId: 'boot-a',
    clock: new ManualClock(),
    clockSynced: () => true,
    logger: pino({ level: 'silent' }),
    ...over,
  };
}
