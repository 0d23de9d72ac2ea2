import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { Controller } from '../src/controller.js';
import type { VigiaEvent } from '../src/core/event.js';
import { checkDynamicEvent, EVENT_TYPES, type EventType, OPEN_NAMESPACES } from '../src/core/events.js';
import type { Extension } from '../src/core/extension.js';
import { createLogger } from '../src/core/logger.js';
import { controlRequest } from '../src/gateway/control.js';
import type { FieldIo } from '../src/features/field-io.js';
import { writeDeviceConfig } from './helpers/daemon.js';

// The extension contract, in process: a listener that throws or rejects on every event, during a
// panic press, changes nothing for the alarm; payloads are typed; the catalogue and the docs agree.

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A pole with a panic button, a strobe and a lit button on simulated lines; no broker, so alarms stay on disk. */
function poleConfig() {
  const { dir, file } = writeDeviceConfig('mqtt://127.0.0.1:1', {
    device: { id: 'pole-7' },
    mqtt: { reconnect: { min_delay: '10s', max_delay: '10s' } },
    hardware: {
      inputs: { panic: { line: 'GPIO17', kind: 'panic' } },
      outputs: { strobe: { line: 'GPIO23', kind: 'strobe' }, button_led: { line: 'GPIO25', kind: 'led' } },
    },
    pole: { led_output: 'button_led', strobe_output: 'strobe' },
  });
  dirs.push(dir);
  return loadConfig(file);
}

describe('extension contract', () => {
  it('a listener that throws or rejects on every event changes nothing for a panic press, and is counted', async () => {
    const config = poleConfig();
    const ledWhenListenersRan: string[] = [];
    let fieldIo: FieldIo | undefined;
    const controller = new Controller(config, {
      logger: createLogger('silent'),
      extra: [
        {
          name: 'faulty',
          create: (ctx): Extension => ({
            name: 'faulty',
            start() {
              ctx.bus.on('event.accepted', () => {
                throw new Error('a bug in a flow');
              });
              ctx.bus.on('event.accepted', () => Promise.reject(new Error('an async bug')));
              ctx.bus.on('event.accepted', (event) => {
                if (event.type === 'alarm.panic') ledWhenListenersRan.push(fieldIo?.outputs.get('button_led')?.pattern.mode ?? 'none');
              });
            },
            stop() {},
          }),
        },
      ],
    });
    await controller.start();
    try {
      fieldIo = controller.extension<FieldIo>('field-io');
      const socket = join(controller.paths.runtimeDir, 'vigia.sock');
      const accepted = () => controller.status().events.accepted_by_type['alarm.panic'] ?? 0;

      await controlRequest(socket, 'sim.input', { input: 'panic', active: true });
      await until(() => accepted() === 1 && ledWhenListenersRan.length === 1, 'the first alarm');
      await controlRequest(socket, 'sim.input', { input: 'panic', active: false });

      const status = controller.status() as ReturnType<Controller['status']> & { 'field-io': ReturnType<FieldIo['status']> };
      const pole = status['field-io'].pole!;
      // Stored, and the person at the pole saw "received" before any listener ran.
      expect(pole).toMatchObject({ state: 'raised', alarms: 1, presses: 1, led_latency_ms: { n: 1 } });
      expect(ledWhenListenersRan).toEqual(['blink']);
      expect(status.outbox.by_priority.alarm.depth).toBe(1);
      await until(() => (controller.status().bus['faulty:event.accepted']?.errors ?? 0) >= 2, 'both failures counted');
      expect(controller.status().bus['faulty:event.accepted']).toMatchObject({ last_error: expect.stringMatching(/bug/) });

      // A second press still works: the faulty listeners did not unsubscribe anything or break the pole.
      await until(() => (fieldIo?.status().inputs.panic as { pressed?: boolean } | undefined)?.pressed === false, 'the release');
      await controlRequest(socket, 'sim.input', { input: 'panic', active: true });
      await until(() => accepted() === 2, 'the second press');
      expect(controller.status().outbox.by_priority.alarm.depth).toBe(2);
    } finally {
      await controller.stop();
    }
    // A stopped extension's listeners are gone.
    expect(controller.bus.listenerCount('event.accepted')).toBe(0);
  });

  it('checks events whose type is known only at run time against the catalogue', async () => {
    expect(checkDynamicEvent('sim.anything', 'telemetry', { n: 1 })).toBeNull();
    expect(checkDynamicEvent('motion.detected', 'alarm', { input: 'pir', at: new Date().toISOString() })).toBe('motion.detected events have priority read');
    expect(checkDynamicEvent('motion.detected', 'read', { input: 'pir' })).toMatch(/^motion\.detected payload: at: /);
    expect(checkDynamicEvent('motion.detected', 'read', { input: 'pir', at: new Date().toISOString() })).toBeNull();

    const controller = new Controller(poleConfig(), { logger: createLogger('silent'), extensions: [] });
    await controller.start();
    try {
      await expect(controller.emitDynamic({ type: 'alarm.panic', priority: 'alarm', payload: { input: 'x' } })).rejects.toThrow(/alarm\.panic payload/);
      await expect(controller.emitDynamic({ type: 'Bad Type', priority: 'read', payload: {} })).rejects.toThrow(/invalid event type/);
      const event = await controller.emitDynamic({ type: 'sim.test', priority: 'hit', payload: { n: 1 } });
      expect(event).toMatchObject({ type: 'sim.test', priority: 'hit', seq: expect.any(Number) });
      // The typed path takes its priority from the catalogue.
      const typed: VigiaEvent = await controller.emit('motion.ended', { input: 'pir', at: new Date().toISOString(), duration_ms: 5 });
      expect(typed.priority).toBe('read');
      // @ts-expect-error a payload that does not match the catalogue does not compile
      await controller.emit('motion.ended', { input: 'pir' }).catch(() => undefined);
    } finally {
      await controller.stop();
    }
  });

  it('documents every catalogued event type, its priority and every payload field in docs/mqtt-api.md', () => {
    const doc = readFileSync(new URL('../docs/mqtt-api.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('### Event types'), doc.indexOf('## Commands'));
    const rows = section
      .split('\n')
      .filter((l) => l.startsWith('| `'))
      .map((l) => {
        const [types = '', priority = '', text = ''] = l.split(' | ').map((c) => c.replace(/^\| /, '').trim());
        return { types: [...types.matchAll(/`([^`]+)`/g)].map((m) => m[1]!), priority, text };
      });
    const documented = new Map(rows.flatMap((r) => r.types.map((t) => [t, r] as const)));
    const problems: string[] = [];
    for (const [type, spec] of Object.entries(EVENT_TYPES) as Array<[EventType, (typeof EVENT_TYPES)[EventType]]>) {
      const row = documented.get(type);
      if (!row) {
        problems.push(`${type}: not in the table`);
        continue;
      }
      if (row.priority !== spec.priority) problems.push(`${type}: documented as ${row.priority}, catalogued as ${spec.priority}`);
      for (const field of Object.keys(spec.payload.shape))
        if (!row.text.includes(`\`${field}\``)) problems.push(`${type}: payload field ${field} undocumented`);
    }
    for (const type of documented.keys()) {
      const open = OPEN_NAMESPACES.some((ns) => type === `${ns}*`);
      if (!open && !(type in EVENT_TYPES)) problems.push(`${type}: documented but not in the catalogue`);
    }
    expect(problems).toEqual([]);
  });
});
