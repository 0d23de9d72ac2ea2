// One instance of the call center's ingest (the real service: persistent sessions, PUBACK after
// the commit, SQLite), as the fleet benchmark runs several of them split by priority class. It
// reports to the benchmark when each alarm and each device's new hotlist version was stored.
//
// usage: fleet-ingest-child.js --broker URL[,URL...] --store sqlite:PATH --client-id ID [--priorities alarm,hit]
import { parseArgs } from 'node:util';
import pino from 'pino';
import type { Priority } from '../../src/core/event.js';
import { startIngestService } from '../../src/central/service.js';

const { values } = parseArgs({
  options: {
    broker: { type: 'string' },
    store: { type: 'string' },
    'client-id': { type: 'string' },
    priorities: { type: 'string' },
  },
});
const [url, ...servers] = (values.broker ?? '').split(',');
if (!url || !values.store || !values['client-id']) {
  process.stderr.write('fleet-ingest-child: --broker, --store and --client-id are required\n');
  process.exit(2);
}

export interface IngestTick {
  op: 'tick';
  at: number;
  stored: number;
  duplicates: number;
  alarms: Array<{ id: string; at: number }>;
  hotlist: Array<{ device: string; version: string; at: number }>;
}

const logger = pino({ level: process.env.FLEET_LOG_LEVEL ?? 'warn' }, pino.destination(2));
let alarms: IngestTick['alarms'] = [];
let hotlist: IngestTick['hotlist'] = [];

const service = await startIngestService(
  {
    url,
    ...(servers.length ? { servers } : {}),
    store: values.store,
    clientId: values['client-id'],
    protocolVersion: 4,
    // The devices commit each event durably; the ingest's own SQLite file is the figure's baseline, not its subject.
    synchronous: 'normal',
    ...(values.priorities ? { priorities: values.priorities.split(',') as Priority[] } : {}),
  },
  logger,
  (event) => {
    const at = Date.now();
    if (event.priority === 'alarm') alarms.push({ id: event.id, at });
    else if (event.type === 'hotlist.updated') hotlist.push({ device: event.device, version: String((event.payload as { version?: unknown }).version), at });
  },
);

function tick(): IngestTick {
  const s = service.ingest.stats();
  const t: IngestTick = { op: 'tick', at: Date.now(), stored: s.stored, duplicates: s.duplicates, alarms, hotlist };
  alarms = [];
  hotlist = [];
  return t;
}

const timer = setInterval(() => process.send?.(tick()), 250);
process.send?.({ op: 'started' });
process.on('message', (msg: { op: string }) => {
  if (msg.op !== 'stop') return;
  clearInterval(timer);
  void service.stop().then(() => {
    process.send?.(tick());
    process.send?.({ op: 'stopped' });
    process.exit(0);
  });
});
process.on('disconnect', () => process.exit(0));
