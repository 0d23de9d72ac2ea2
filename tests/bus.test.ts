import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { EventBus } from '../src/core/bus.js';
import { createLogger } from '../src/core/logger.js';

function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('debug', { write: (msg: string) => void lines.push(JSON.parse(msg) as Record<string, unknown>) });
  return { logger, lines };
}

describe('EventBus', () => {
  it('delivers after the emitter has returned, in subscription order', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.on('clock.synced', (source) => void seen.push(`a:${source}`), 'a');
    bus.on('clock.synced', (source) => void seen.push(`b:${source}`), 'b');
    bus.emit('clock.synced', 'ntp');
    seen.push('emit returned');
    await nextTurn();
    expect(seen).toEqual(['emit returned', 'a:ntp', 'b:ntp']);
  });

  it('counts and logs a throwing listener per owner, and still calls the others', async () => {
    const { logger, lines } = recordingLogger();
    const bus = new EventBus({ logger });
    const calls: string[] = [];
    bus.on(
      'link.state',
      () => {
        throw new Error('flow bug');
      },
      'nodered',
    );
    bus.on('link.state', (state) => void calls.push(state), 'telemetry');
    expect(() => {
      bus.emit('link.state', 'online');
      bus.emit('link.state', 'offline');
    }).not.toThrow();
    await nextTurn();
    expect(calls).toEqual(['online', 'offline']);
    expect(bus.stats()['nodered:link.state']).toMatchObject({ calls: 2, errors: 2, last_error: 'flow bug' });
    expect(bus.stats()['telemetry:link.state']).toMatchObject({ calls: 2, errors: 0 });
    // Logged once in the rate-limit window, not once per event.
    expect(lines.filter((l) => l.msg === 'bus listener failed')).toEqual([expect.objectContaining({ listener: 'nodered:link.state', errors: 1 })]);
  });

  it('counts a listener whose promise rejects', async () => {
    const bus = new EventBus();
    bus.on('clock.synced', () => Promise.reject(new Error('async failure')), 'x');
    bus.emit('clock.synced', 'gps');
    await nextTurn();
    await nextTurn();
    expect(bus.stats()['x:clock.synced']).toMatchObject({ calls: 1, errors: 1, last_error: 'async failure' });
  });

  it('counts slow listeners against the threshold, by the injected clock', async () => {
    let now = 0;
    const { logger, lines } = recordingLogger();
    const bus = new EventBus({ logger, slowMs: 10, now: () => now });
    bus.on('clock.synced', () => void (now += 25), 'slow');
    bus.on('clock.synced', () => void (now += 2), 'quick');
    bus.emit('clock.synced', 'ntp');
    await nextTurn();
    expect(bus.stats()['slow:clock.synced']).toMatchObject({ calls: 1, slow: 1, max_ms: 25 });
    expect(bus.stats()['quick:clock.synced']).toMatchObject({ calls: 1, slow: 0, max_ms: 2 });
    expect(lines.filter((l) => l.msg === 'slow bus listener')).toEqual([expect.objectContaining({ listener: 'slow:clock.synced', ms: 25 })]);
  });

  it('stops delivering to an unsubscribed listener, and delivers what a listener emits on a later turn', async () => {
    const bus = new EventBus();
    const seen: string[] = [];
    const off = bus.on('clock.synced', (s) => void seen.push(`gone:${s}`), 'gone');
    bus.on(
      'clock.synced',
      (s) => {
        seen.push(`relay:${s}`);
        if (s === 'ntp') bus.emit('clock.synced', 'again');
      },
      'relay',
    );
    off();
    expect(bus.listenerCount('clock.synced')).toBe(1);
    bus.emit('clock.synced', 'ntp');
    await nextTurn();
    expect(seen).toEqual(['relay:ntp']);
    await nextTurn();
    expect(seen).toEqual(['relay:ntp', 'relay:again']);
  });
});
