// Child process for the outbox benchmark's enqueue phase: an in-process Outbox (synchronous=full,
// group commit) on a temp file, with concurrent producers calling accept(). Runs alone so that
// strace and /proc/<pid>/io see only this workload. Prints one JSON line with the phase's figures.
//
// usage: enqueue-child.ts --file F --events N [--producers P] [--window W]
import { parseArgs } from 'node:util';
import pino from 'pino';
import { configSchema } from '../../src/config/schema.js';
import { systemClock } from '../../src/core/clock.js';
import { Outbox } from '../../src/gateway/outbox.js';
import { outboxOptions } from '../../src/gateway/outbox-options.js';
import { totalEvicted } from './daemon-replies.js';
import { readPayload } from './payload.js';
import { procIo } from './proc.js';

const { values } = parseArgs({
  options: {
    file: { type: 'string' },
    events: { type: 'string', default: '100000' },
    producers: { type: 'string', default: '16' },
    window: { type: 'string', default: '256' },
  },
});
if (!values.file) {
  process.stderr.write('enqueue-child: --file is required\n');
  process.exit(2);
}
const N = Number(values.events);
const P = Number(values.producers);
const W = Number(values.window);

const wallUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

// The daemon's outbox, with the schema's defaults.
const config = configSchema.parse({ device: { id: 'pole-0001', site: 'bench', profile: 'pole' }, mqtt: { url: 'mqtt://127.0.0.1:1' } });

const outbox = new Outbox({
  ...outboxOptions(config, { clock: systemClock, bootId: '00000000-0000-0000-0000-000000000000', clockSynced: () => true, logger: pino({ level: 'warn' }) }),
  file: values.file,
  synchronous: 'full',
  checkpointInWorker: true, // as the daemon runs it
});
outbox.open();

// Pre-build the drafts so the measured phase is the outbox, not the payload generator.
const drafts = Array.from({ length: N }, (_, i) => ({ type: 'anpr.read', priority: 'read' as const, payload: readPayload(i) }));
let firstBody = 0;

async function producer(k: number): Promise<void> {
  const window: Array<Promise<unknown>> = [];
  for (let i = k; i < N; i += P) {
    window.push(outbox.accept(drafts[i]!));
    if (window.length >= W) {
      const e = await window.shift();
      if (!firstBody) firstBody = Buffer.byteLength(JSON.stringify(e));
    }
  }
  await Promise.all(window);
}

const commitsBefore = outbox.stats().commits;
const ioBefore = procIo();
const t0us = wallUs();
const t0 = performance.now();
await Promise.all(Array.from({ length: P }, (_, k) => producer(k)));
const ms = performance.now() - t0;
const t1us = wallUs();
const ioAfter = procIo();
const stats = outbox.stats();
await outbox.close();

const io = Object.fromEntries(Object.keys(ioAfter).map((k) => [k, ioAfter[k]! - (ioBefore[k] ?? 0)]));
process.stdout.write(
  `${JSON.stringify({
    events: N,
    accepted: stats.accepted,
    depth: stats.depth,
    evicted: totalEvicted(stats.evicted),
    commits: stats.commits - commitsBefore,
    ms,
    per_s: N / (ms / 1000),
    t0_us: t0us,
    t1_us: t1us,
    io,
    body_bytes: firstBody,
    producers: P,
    window: W,
    commit_interval_ms: config.outbox.commit_interval,
    commit_max_events: config.outbox.commit_max_events,
  })}\n`,
);
