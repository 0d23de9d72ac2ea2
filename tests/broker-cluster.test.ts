import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type BrokerCluster, startBrokerCluster } from './helpers/cluster.js';

// The fleet's central side: a real three-node RabbitMQ cluster (Debian's rabbitmq-server, MQTT
// plugin, durable subscriptions in quorum queues), started on loopback ports by the test. Slow to
// start (15-30 s on a 2-core machine), so one cluster serves every test in this file.

const QUEUE_PREFIX = 'mqtt-subscription-';

let cluster: BrokerCluster;

beforeAll(async () => {
  cluster = await startBrokerCluster({ nodes: 3 });
}, 300_000);

afterAll(async () => {
  await cluster?.stop();
}, 60_000);

const unique = (name: string): string => `${name}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

interface Connected {
  client: MqttClient;
  sessionPresent: boolean;
}

/** An MQTT 3.1.1 connection that rejects (instead of hanging) when the broker closes it before CONNACK. */
function connect(url: string, opts: IClientOptions = {}): Promise<Connected> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(url, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 15_000, ...opts });
    const fail = (why: string): void => {
      clearTimeout(timer);
      client.end(true);
      reject(new Error(`MQTT connect to ${url} failed: ${why}`));
    };
    const timer = setTimeout(() => fail('no CONNACK within 20 s'), 20_000);
    client.once('connect', (connack) => {
      clearTimeout(timer);
      client.removeAllListeners('close');
      client.removeAllListeners('error');
      client.on('error', () => {});
      resolve({ client, sessionPresent: connack.sessionPresent });
    });
    client.once('error', (err) => fail(err.message));
    client.once('close', () => fail('connection closed'));
  });
}

/** Keeps connecting until a node accepts (a node that just lost a peer may refuse for a moment). */
async function connectRetrying(url: string, opts: IClientOptions, timeoutMs = 60_000): Promise<Connected> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await connect(url, opts);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** Publishes `count` QoS 1 messages whose payload is the sequence number; every one is PUBACKed. */
async function publishSeq(client: MqttClient, topic: string, from: number, count: number): Promise<void> {
  const window = 100;
  for (let start = from; start < from + count; start += window) {
    const end = Math.min(from + count, start + window);
    const batch: Promise<unknown>[] = [];
    for (let seq = start; seq < end; seq++) batch.push(client.publishAsync(topic, String(seq), { qos: 1 }));
    await Promise.all(batch);
  }
}

interface QueueInfo {
  name: string;
  type: string;
  leader: string;
  members: string[] | string;
  online: string[] | string;
  arguments: [string, string, unknown][];
  messages_ready: number;
}

async function queueInfo(name: string): Promise<QueueInfo | undefined> {
  const out = await cluster.ctl(['list_queues', 'name', 'type', 'leader', 'members', 'online', 'arguments', 'messages_ready', '--formatter', 'json']);
  return (JSON.parse(out) as QueueInfo[]).find((q) => q.name === name);
}

async function allReplicasOnline(queue: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const q = await queueInfo(queue);
    if (Array.isArray(q?.online) && q.online.length === cluster.nodes.length) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Waits until the queue is led by a node other than `not` (after its leader was killed, the survivors elect one). */
async function newLeader(queue: string, not: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const leader = (await queueInfo(queue).catch(() => undefined))?.leader;
    if (leader && leader !== not) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Publishes probes (numbered from `from`) to a queue whose subscriber is away until one is really
 * enqueued (the queue's ready count rises): RabbitMQ 3.10 acknowledges publishes to a quorum queue
 * whose leader it is replacing and drops them, sometimes for a while after `newLeader` says the
 * queue has one. Returns how many probes were published before the one seen enqueued (0: the first).
 */
async function untilEnqueued(client: MqttClient, topic: string, queue: string, from: number, timeoutMs: number): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  for (let probe = from; Date.now() < deadline; probe++) {
    await client.publishAsync(topic, String(probe), { qos: 1 });
    for (let i = 0; i < 5; i++) {
      const ready = (await queueInfo(queue).catch(() => undefined))?.messages_ready;
      if (ready !== undefined && ready > 0) return probe - from;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return null;
}

const missingSeqs = (seen: Set<number>, total: number): number[] => Array.from({ length: total }, (_, i) => i).filter((i) => !seen.has(i));

/** A session queue's ready and unacknowledged counts, for a failure message. */
async function queueState(clientId: string): Promise<string> {
  const out = await cluster
    .ctl(['list_queues', 'name', 'messages_ready', 'messages_unacknowledged', 'consumers', '--formatter', 'json'], 1)
    .catch((err: Error) => `[${JSON.stringify(err.message)}]`);
  try {
    const rows = JSON.parse(out) as Array<{ name: string }>;
    return JSON.stringify(rows.filter((r) => r.name.includes(clientId)));
  } catch {
    return out.slice(0, 500);
  }
}

const withLogs = (index: number): string => `\n${cluster.logs(index).split('\n').slice(-40).join('\n')}`;

// A test's own waits (a reconnect, 60 s for the messages, a node's restart, 60 s for the replicas)
// add up to minutes on a machine busy with other test files: the test-wide limit stays above them,
// so a slow cluster fails on the wait that names what is missing, not on a bare timeout.
describe('three-node RabbitMQ cluster (MQTT, quorum queues)', { timeout: 300_000 }, () => {
  test('the nodes form one cluster: a QoS 1 message published on node 0 reaches a subscriber on node 2', async () => {
    expect(cluster.nodes).toHaveLength(3);
    expect(cluster.nodes.every((n) => n.alive && n.pid !== undefined)).toBe(true);
    const status = JSON.parse(await cluster.ctl(['cluster_status', '--formatter', 'json'], 1)) as { running_nodes: string[] };
    expect([...status.running_nodes].sort()).toEqual(cluster.nodes.map((n) => n.name).sort());

    const topic = `vigia/${unique('cross')}/events/alarm`;
    const sub = await connect(cluster.urls[2]!);
    const pub = await connect(cluster.urls[0]!);
    try {
      const got: { topic: string; payload: string; qos: number }[] = [];
      sub.client.on('message', (t, payload, packet) => got.push({ topic: t, payload: payload.toString(), qos: packet.qos }));
      const granted = await sub.client.subscribeAsync(topic, { qos: 1 });
      expect(granted[0]?.qos).toBe(1);
      await pub.client.publishAsync(topic, 'across nodes', { qos: 1 });
      expect(await until(() => got.length > 0, 10_000), withLogs(2)).toBe(true);
      expect(got).toEqual([{ topic, payload: 'across nodes', qos: 1 }]);
    } finally {
      await Promise.all([sub.client.endAsync(), pub.client.endAsync()]);
    }
  });

  test('dots in a topic: what a subscriber receives for vigia/dev-1/events/alarm/panic.pressed', async () => {
    const device = unique('dev');
    const dotted = `vigia/${device}/events/alarm/panic.pressed`;
    const marker = `vigia/${device}/events/alarm/marker`;
    const hash = await connect(cluster.urls[1]!);
    const plus = await connect(cluster.urls[2]!);
    const pub = await connect(cluster.urls[0]!);
    try {
      const viaHash: string[] = [];
      const viaPlus: string[] = [];
      hash.client.on('message', (t) => viaHash.push(t));
      plus.client.on('message', (t) => viaPlus.push(t));
      await hash.client.subscribeAsync('vigia/+/events/#', { qos: 1 });
      await plus.client.subscribeAsync('vigia/+/events/alarm/+', { qos: 1 });
      await pub.client.publishAsync(dotted, 'pressed', { qos: 1 });
      // Same publisher, same queues: once the marker is in, the dotted message was routed (or not).
      await pub.client.publishAsync(marker, 'marker', { qos: 1 });
      expect(await until(() => viaHash.includes(marker) && viaPlus.includes(marker), 10_000)).toBe(true);

      const [major = 0, minor = 0] = cluster.version.split('.').map(Number);
      if (major > 3 || (major === 3 && minor >= 12)) {
        // Native MQTT (3.12+) swaps '.' and '/' between MQTT topics and AMQP routing keys both ways,
        // so a dot is an ordinary character of a topic level.
        expect(viaHash).toEqual([dotted, marker]);
        expect(viaPlus).toEqual([dotted, marker]);
      } else {
        // Before 3.12 the plugin only maps '/' to '.' on the way in and '.' to '/' on the way out:
        // the dot becomes a level separator. The message arrives under a different topic
        // (…/panic/pressed), a '#' filter still gets it, and a '+' filter for the last level
        // does not (the routing key has one level more).
        expect(viaHash).toEqual([`vigia/${device}/events/alarm/panic/pressed`, marker]);
        expect(viaPlus).toEqual([marker]);
      }
    } finally {
      await Promise.all([hash.client.endAsync(), plus.client.endAsync(), pub.client.endAsync()]);
    }
  });

  test('a persistent session survives a power cut of the node holding its queue: all 2000 acknowledged messages arrive', async () => {
    const clientId = unique('durable');
    const topic = `vigia/${clientId}/events/read`;
    const total = 2000;

    // Subscribe with a persistent session on node 1, then go away.
    const first = await connect(cluster.urls[1]!, { clientId, clean: false });
    const granted = await first.client.subscribeAsync(topic, { qos: 1 });
    expect(granted[0]?.qos).toBe(1);
    await first.client.endAsync();

    const queue = await queueInfo(`${QUEUE_PREFIX}${clientId}qos1`);
    expect(queue?.type).toBe('quorum');
    expect(queue?.arguments).toContainEqual(['x-queue-type', 'longstr', 'quorum']);
    expect(Array.isArray(queue?.members) ? [...queue.members].sort() : queue?.members).toEqual(cluster.nodes.map((n) => n.name).sort());

    // 2000 QoS 1 messages through node 0, each acknowledged by the broker.
    const pub = await connect(cluster.urls[0]!);
    await publishSeq(pub.client, topic, 0, total);
    await pub.client.endAsync();

    // Cut the power of the node that leads the subscription's queue (node 1: the queue is
    // declared on the node the subscriber was connected to).
    const leader = (await queueInfo(`${QUEUE_PREFIX}${clientId}qos1`))?.leader;
    const victim = cluster.nodes.findIndex((n) => n.name === leader);
    expect(victim, `queue leader ${leader}`).toBe(1);
    await cluster.kill(victim);
    expect(cluster.nodes[victim]!.alive).toBe(false);

    // Come back on a surviving node with the same client id: the session and every message are there.
    const survivor = victim === 2 ? 0 : 2;
    const seen = new Set<number>();
    let deliveries = 0;
    const back = await connectRetrying(cluster.urls[survivor]!, { clientId, clean: false });
    try {
      back.client.on('message', (_t, payload) => {
        deliveries++;
        seen.add(Number(payload.toString()));
      });
      expect(back.sessionPresent).toBe(true);
      const complete = await until(() => seen.size === total, 60_000);
      expect(missingSeqs(seen, total), `received ${seen.size} of ${total}${withLogs(survivor)}`).toEqual([]);
      expect(complete).toBe(true);
      expect(deliveries).toBeGreaterThanOrEqual(total);
    } finally {
      await back.client.endAsync();
    }

    // The node comes back on its data and rejoins; the queue has all three replicas online again.
    await cluster.restart(victim);
    expect(cluster.nodes[victim]!.alive).toBe(true);
    expect(await allReplicasOnline(`${QUEUE_PREFIX}${clientId}qos1`, 60_000)).toBe(true);
  });

  test('a subscriber connected to a node that is killed under load reconnects elsewhere and misses nothing published outside the leader election (how many came while the node was down is logged)', async () => {
    const clientId = unique('live');
    const topic = `vigia/${clientId}/events/alarm`;
    const total = 1000;
    const victim = 2;
    const seen = new Set<number>();
    const onMessage = (_t: string, payload: Buffer): void => {
      const seq = Number(payload.toString());
      if (seq < total) seen.add(seq);
      else probes.add(seq);
    };
    const probes = new Set<number>();

    const queueName = `${QUEUE_PREFIX}${clientId}qos1`;
    const sub = await connect(cluster.urls[victim]!, { clientId, clean: false });
    sub.client.on('message', onMessage);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const pub = await connect(cluster.urls[0]!);
    let back: Connected | undefined;
    try {
      await publishSeq(pub.client, topic, 0, total / 2);
      await cluster.kill(victim);
      // The subscriber's queue was led by the killed node. Until the survivors elect a new leader
      // (~0.2 s), and under load for a while after rabbitmqctl reports one, RabbitMQ 3.10 may
      // acknowledge a publish to it and drop it: seen in CI, 500 of 500 such messages PUBACKed and
      // never enqueued (the queue then held 0 ready, 0 unacknowledged), once before the new leader
      // and once after it was reported. That window is the broker's (README, "Running a city");
      // what is asserted here is everything around it: the second half is published once the
      // queue has taken a probe, while the subscriber is still away.
      expect(await newLeader(queueName, cluster.nodes[victim]!.name, 30_000), `no new leader for ${queueName}`).toBe(true);
      // Probes (numbered from `total`, not counted below) until the queue really takes them.
      const before = await untilEnqueued(pub.client, topic, queueName, total, 30_000);
      expect(before, `${queueName} never enqueued a probe`).not.toBeNull();
      await publishSeq(pub.client, topic, total / 2, total / 2);
      back = await connectRetrying(cluster.urls[1]!, { clientId, clean: false });
      back.client.on('message', onMessage);
      expect(back.sessionPresent).toBe(true);
      const whileDown = (await until(() => seen.size === total, 60_000)) ? total : seen.size;
      const queue = whileDown < total ? await queueState(clientId) : '';
      await cluster.restart(victim);
      await until(() => seen.size === total, 60_000);
      // The probes published while the queue did not take them yet, and how many of those arrived:
      // the broker's window, measured.
      console.log(
        `node kill under load: ${whileDown} of ${total} while the node was down, ${seen.size} once it was back ${queue}; ` +
          `${before! + 1} probe(s) until one was enqueued, ${probes.size} arrived`,
      );
      expect(
        missingSeqs(seen, total),
        `received ${whileDown} of ${total} while the node was down, ${seen.size} once it was back ${queue}${withLogs(1)}`,
      ).toEqual([]);
    } finally {
      sub.client.end(true);
      await Promise.all([pub.client.endAsync(), back?.client.endAsync()]);
    }
    if (!cluster.nodes[victim]!.alive) await cluster.restart(victim);
    expect(cluster.nodes.every((n) => n.alive)).toBe(true);
  });
});
