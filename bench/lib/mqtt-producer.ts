// Baseline producer: MQTT.js publishing QoS 1 straight to a broker, with no local durability.
// Runs as its own process (like the daemon) so it can be SIGKILLed.
//
//   rate    --url U --events N [--window W]   publish N, at most W unacknowledged; prints JSON
//   latency --url U --alarms A [--gap-ms G] [--background B]
//                                             alarms carrying their send time, B reads/s around them
//   stream  --url U --rate R                  publish R events/s until killed; after each batch
//                                             handed to publish() writes "H <last seq>" (stdout is
//                                             a pipe: synchronous writes, nothing buffered here)
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { nowMs } from '../../tests/helpers/subscriber.js';
import { envelope, readPayload, streamId } from './payload.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: 'string' },
    events: { type: 'string', default: '10000' },
    window: { type: 'string', default: '64' },
    alarms: { type: 'string', default: '100' },
    'gap-ms': { type: 'string', default: '20' },
    background: { type: 'string', default: '200' },
    rate: { type: 'string', default: '5000' },
    name: { type: 'string', default: 'mqttjs' },
    run: { type: 'string', default: '0' },
  },
});
const mode = positionals[0];
const name = values.name;
const base = `vigia/bench/${name}/events`;
const readTopic = `${base}/read/anpr.read`;
const alarmTopic = `${base}/alarm/sim.alarm`;

if (!values.url) {
  process.stderr.write('producer: --url is required\n');
  process.exit(2);
}
const client = mqtt.connect(values.url, {
  clientId: `bench-${name}-${mode}-${process.pid}`,
  protocolVersion: 5,
  clean: true,
  reconnectPeriod: 100,
});
client.on('error', (err) => process.stderr.write(`producer: ${err.message}\n`));
await new Promise((resolve) => client.once('connect', resolve));

const publish = (topic: string, body: string) =>
  new Promise<void>((resolve, reject) => client.publish(topic, body, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
const out = (obj: object) => process.stdout.write(`${JSON.stringify(obj)}\n`);

/** Publishes N reads with at most W unacknowledged; prints the acknowledged rate. */
async function rate(): Promise<void> {
  const N = Number(values.events);
  const W = Number(values.window);
  const bodies = Array.from({ length: N }, (_, i) => envelope(i + 1, 'anpr.read', 'read', readPayload(i), name));
  const t0wall = nowMs();
  const t0 = performance.now();
  let next = 0;
  await new Promise<void>((resolve, reject) => {
    let done = 0;
    const pump = () => {
      while (next < N && next - done < W) {
        client.publish(readTopic, bodies[next++]!, { qos: 1 }, (err) => {
          if (err) return reject(err);
          if (++done === N) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const ms = performance.now() - t0;
  out({ events: N, ms, per_s: N / (ms / 1000), t0_wall: t0wall, body_bytes: Buffer.byteLength(bodies[0]!) });
}

/** Alarms carrying their send time (payload.t), with reads flowing around them. */
async function latency(): Promise<void> {
  const A = Number(values.alarms);
  const gap = Number(values['gap-ms']);
  const bgPerTick = Math.max(1, Math.round(Number(values.background) / 50)); // every 20 ms
  let seq = 0;
  const bg = setInterval(() => {
    for (let i = 0; i < bgPerTick; i++) client.publish(readTopic, envelope(++seq, 'anpr.read', 'read', { n: seq }, name), { qos: 1 });
  }, 20);
  await sleep(500); // background flowing first
  const acks: Promise<void>[] = [];
  for (let k = 0; k < A; k++) {
    acks.push(publish(alarmTopic, envelope(++seq, 'sim.alarm', 'alarm', { t: nowMs(), k }, name)));
    await sleep(gap * (0.5 + Math.random()));
  }
  await Promise.all(acks);
  clearInterval(bg);
  out({ alarms: A });
}

/** R reads a second until killed, reporting the last sequence number handed to publish(). */
async function stream(): Promise<never> {
  const R = Number(values.rate);
  const run = Number(values.run);
  const t0 = performance.now();
  let seq = 0;
  setInterval(() => {
    const target = Math.floor(((performance.now() - t0) / 1000) * R);
    if (target <= seq) return;
    while (seq < target) {
      seq++;
      client.publish(readTopic, envelope(seq, 'anpr.read', 'read', { n: seq }, name, streamId(run, seq)), { qos: 1 });
    }
    process.stdout.write(`H ${seq}\n`);
  }, 10);
  return new Promise(() => {}); // until killed
}

if (mode === 'rate') await rate();
else if (mode === 'latency') await latency();
else if (mode === 'stream') await stream();
else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
await new Promise<void>((r) => client.end(false, {}, () => r()));
process.exit(0);
