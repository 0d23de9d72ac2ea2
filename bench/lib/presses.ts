// Panic presses through the simulated GPIO line, timed from just before the control request that
// moves the line to the `alarm.panic` event's arrival at a subscriber of the broker.
import { setTimeout as sleep } from 'node:timers/promises';
import type { DaemonProcess } from '../../tests/helpers/daemon.js';
import type { Broker } from '../../tests/helpers/mosquitto.js';
import { nowMs, Subscriber } from '../../tests/helpers/subscriber.js';

/** Between a release and the next press: past the 30 ms debounce window. */
const GAP_MS = 45;

/** Latencies (ms) of the presses that arrived within 5 s, and how many arrived in the end. */
export async function timePresses(broker: Broker, daemon: DaemonProcess, presses: number): Promise<{ latencies: number[]; received: number }> {
  const topic = 'vigia/bench/pole-0001/events/alarm/alarm.panic';
  const sub = new Subscriber(broker.url, { topic, qos: 1, keepEvents: false, extra: { reconnectPeriod: 100 } });
  let waiting: (() => void) | undefined;
  const arrivals: number[] = [];
  sub.onEvent = (_topic, _payload, _id, t) => {
    arrivals.push(t);
    waiting?.();
  };
  await sub.connect();
  const latencies: number[] = [];
  for (let i = 0; i < presses; i++) {
    const arrived = new Promise<void>((resolve) => {
      waiting = resolve;
    });
    const pressedAt = nowMs();
    await daemon.request('sim.input', { input: 'panic', active: true });
    const got = await Promise.race([arrived.then(() => true), sleep(5_000).then(() => false)]);
    if (got) latencies.push(arrivals.at(-1)! - pressedAt);
    await daemon.request('sim.input', { input: 'panic', active: false });
    await sleep(GAP_MS);
  }
  // Stragglers get a last chance before counting losses.
  for (let i = 0; i < 100 && arrivals.length < presses; i++) await sleep(100);
  await sub.close();
  return { latencies, received: arrivals.length };
}
