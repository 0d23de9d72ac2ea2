// The outbox benchmark's second baseline: a local Mosquitto with persistence, bridging vigia/# to
// a central broker, as a device could buffer events without Vigía.
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt from 'mqtt';
import type { Broker } from '../../tests/helpers/mosquitto.js';
import type { Subscriber } from '../../tests/helpers/subscriber.js';
import { startBenchBroker } from './broker.js';

/** A local Mosquitto with persistence, bridging vigia/# (QoS 1, cleansession false) to centralPort. */
export function startLocalBridge(centralPort: number): Promise<Broker> {
  return startBenchBroker({
    persistence: true, // with autosave_interval 1
    extraConfig: [
      'connection central',
      `address 127.0.0.1:${centralPort}`,
      'topic vigia/# out 1',
      'cleansession false',
      `clientid bench-bridge-${centralPort}`,
      'bridge_protocol_version mqttv311',
      'try_private false',
      'notifications false',
      'start_type automatic',
      'restart_timeout 1',
    ],
  });
}

/** Waits until a message published on the local broker shows up at central (the bridge is up). */
export async function waitForBridge(localUrl: string, sub: Subscriber, timeoutMs = 20_000): Promise<void> {
  const client = mqtt.connect(localUrl, { protocolVersion: 5, reconnectPeriod: 100, clientId: `bench-probe-${process.pid}-${Date.now()}` });
  client.on('error', () => {});
  const tag = `probe-${Math.random().toString(16).slice(2)}`;
  let seen = false;
  const prev = sub.onOther;
  sub.onOther = (topic, payload, t) => {
    if (payload.toString() === tag) seen = true;
    prev?.(topic, payload, t);
  };
  try {
    const deadline = Date.now() + timeoutMs;
    while (!seen) {
      if (Date.now() > deadline) throw new Error('the bridge did not come up');
      if (client.connected) client.publish('vigia/bench/probe', tag, { qos: 1 });
      await sleep(200);
    }
  } finally {
    sub.onOther = prev;
    await new Promise<void>((r) => client.end(true, {}, () => r()));
  }
}
