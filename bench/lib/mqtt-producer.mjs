// Baseline producer: MQTT.js publishing QoS 1 straight to a broker, with no local durability.
// Runs as its own process (like the daemon) so it can be SIGKILLed.
//
//   rate    --url U --events N [--window W]   publish N, at most W unacknowledged; prints JSON
//   latency --url U --alarms A [--gap-ms G] [--background B]
//                                             alarms carrying their send time, B reads/s around them
//   stream  --url U --rate R                  publish R events/s until killed; after each batch
//                                             handed to publish() writes "H <last seq>" (stdout is
//                                             a pipe: synchronous writes, nothing buffered here)
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import { envelope, readPayload, streamId } from './payload.mjs';

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
const nowMs = () => performance.timeOrigin + performance.now();
const base = `vigia/bench/${values.name}/events`;
const readTopic = `${base}/read/anpr.read`;
const alarmTopic = `${base}/alarm/sim.alarm`;

const client = mqtt.connect(values.url, {
  clientId: `bench-${values.name}-${mode}-${process.pid}`,
  protocolVersion: 5,
  clean: true,
  reconnectPeriod: 100,
});
client.on('error', (err) => process.stderr.write(`producer: ${err.message}\n`));
await new Promise((resolve) => client.once('connect', resolve));

const publish = (topic, body) =>
  new Promise((resolve, reject) => client.publish(topic, body, { qos: 1 }, (err) => (err ? reject(err) : resolve())));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

if (mode === 'rate') {
  const N = Number(values.events);
  const W = Number(values.window);
  const bodies = Array.from({ length: N }, (_, i) => envelope(i + 1, 'anpr.read', 'read', readPayload(i), values.name));
  const t0wall = nowMs();
  const t0 = performance.now();
  let next = 0;
  await new Promise((resolve, reject) => {
    let done = 0;
    const pump = () => {
      while (next < N && next - done < W) {
        client.publish(readTopic, bodies[next++], { qos: 1 }, (err) => {
          if (err) return reject(err);
          if (++done === N) resolve();
          else pump();
        });
      }
    };
    pump();
  });
  const ms = performance.now() - t0;
  out({ events: N, ms, per_s: N / (ms / 1000), t0_wall: t0wall, body_bytes: Buffer.byteLength(bodies[0]) });
} else if (mode === 'latency') {
  const A = Number(values.alarms);
  const gap = Number(values['gap-ms']);
  const bgPerTick = Math.max(1, Math.round(Number(values.background) / 50)); // every 20 ms
  let seq = 0;
  const bg = setInterval(() => {
    for (let i = 0; i < bgPerTick; i++) client.publish(readTopic, envelope(++seq, 'anpr.read', 'read', { n: seq }, values.name), { qos: 1 });
  }, 20);
  await new Promise((r) => setTimeout(r, 500)); // background flowing first
  const acks = [];
  for (let k = 0; k < A; k++) {
    acks.push(publish(alarmTopic, envelope(++seq, 'sim.alarm', 'alarm', { t: nowMs(), k }, values.name)));
    await new Promise((r) => setTimeout(r, gap * (0.5 + Math.random())));
  }
  await Promise.all(acks);
  clearInterval(bg);
  out({ alarms: A });
} else if (mode === 'stream') {
  const R = Number(values.rate);
  const run = Number(values.run);
  const t0 = performance.now();
  let seq = 0;
  setInterval(() => {
    const target = Math.floor(((performance.now() - t0) / 1000) * R);
    if (target <= seq) return;
    while (seq < target) {
      seq++;
      client.publish(readTopic, envelope(seq, 'anpr.read', 'read', { n: seq }, values.name, streamId(run, seq)), { qos: 1 });
    }
    process.stdout.write(`H ${seq}\n`);
  }, 10);
  await new Promise(() => {}); // until killed
} else {
  process.stderr.write(`unknown mode ${mode}\n`);
  process.exit(2);
}
await new Promise((r) => client.end(false, {}, r));
process.exit(0);
