// A city's fleet on a clustered broker (bench/lib/fleet.ts): 500 devices with the daemon's own
// outbox, uplink and command code, each with its own SQLite file and MQTT link, on a three-node
// RabbitMQ cluster (MQTT plugin, quorum queues) with the call center's ingest split over two
// instances. Steady traffic, then (a) the central side out of reach for the outage while events
// keep coming, (b) a broker node SIGKILLed under load, (c) a hotlist delta sent to every device.
// The same outage is run again with failover and the randomised reconnect off (one broker, fixed
// delays) for comparison.
//
//   npm run bench -- fleet [--quick] [--devices N] [--outage SECONDS] [--runs N] [--processes P]
//                          [--baseline-runs N | --no-baseline]
//
// --spread SECONDS: the devices' reconnect.spread (default four times the outage).
// --quick: 100 devices, a 20 s outage, one run. --processes: how many processes share the devices
// (default one per 62 devices, at most 8). --baseline-runs: the comparison after only the first N
// runs (default: after each). The last line is one JSON object.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startBrokerCluster } from '../tests/helpers/cluster.js';
import { type FleetOptions, type FleetResult, newRunId, runFleet } from './lib/fleet.js';
import { median, ratio } from './lib/stats.js';
import { fmt, table } from './lib/table.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    devices: { type: 'string' },
    outage: { type: 'string' },
    runs: { type: 'string' },
    processes: { type: 'string' },
    'outbox-sync': { type: 'string', default: 'full' },
    'drain-rate': { type: 'string' },
    spread: { type: 'string' },
    'no-baseline': { type: 'boolean', default: false },
    'baseline-runs': { type: 'string' },
  },
});
const QUICK = values.quick;
const DEVICES = Number(values.devices ?? (QUICK ? 100 : 500));
const OUTAGE_MS = Number(values.outage ?? (QUICK ? 20 : 60)) * 1000;
const RUNS = Number(values.runs ?? 1);
// The comparison run (one broker, fixed delays) after each of the first BASELINE_RUNS runs.
const BASELINE_RUNS = values['no-baseline'] ? 0 : Number(values['baseline-runs'] ?? RUNS);
const log = (msg: string) => process.stderr.write(`[fleet] ${msg}\n`);

const dir = mkdtempSync(join(tmpdir(), 'vigia-fleet-'));
const base = {
  dir,
  devices: DEVICES,
  // More processes than cores: a device blocks its process while SQLite syncs, and a real one has its own.
  processes: Number(values.processes ?? Math.max(1, Math.min(8, Math.ceil(DEVICES / 62)))),
  outageMs: OUTAGE_MS,
  steadyMs: QUICK ? 8_000 : 15_000,
  // A gantry reads a plate every few seconds; a pole reports its health every 30 s.
  readsPerS: 0.5,
  telemetryEveryMs: 30_000,
  alarmsPerS: 1,
  drainAlarmsPerS: 5,
  drainRate: Number(values['drain-rate'] ?? 50),
  outboxSync: values['outbox-sync'] === 'normal' ? 'normal' : 'full',
  // Four times the outage: three quarters of the fleet's first retries fall after it, spread over
  // three times its length, so that about 4 devices a second come back to a cluster that takes new
  // sessions slowly under load (RabbitMQ: a replicated queue each). At twice the outage (10 a
  // second) alarms on devices still reconnecting waited 1.3 to 2.6 s (the README).
  spreadMs: values.spread !== undefined ? Number(values.spread) * 1000 : OUTAGE_MS * 4,
  log,
} satisfies Partial<FleetOptions>;

/** The ingest's kept sessions the run left on the cluster (it ends them: each would take a copy of every later event). */
async function logSessionsLeft(): Promise<void> {
  const names = (await cluster.ctl(['list_queues', '-q', 'name'])).split('\n');
  log(`ingest sessions left on the cluster: ${names.filter((n) => /^mqtt-subscription-fleet-[0-9a-f]{8}-/.test(n)).length}`);
}

const cluster = await startBrokerCluster({ nodes: 3, dir: join(dir, 'cluster') });
const results: FleetResult[] = [];
const baselines: FleetResult[] = [];
try {
  log(`cluster: ${cluster.urls.join(' ')}`);
  for (let run = 1; run <= RUNS; run++) {
    log(`run ${run}/${RUNS}: ${DEVICES} devices, failover and spread on`);
    results.push(await runFleet({ ...base, dir: join(dir, `run-${run}`), cluster, spreadOn: true, nodeKill: true, hotlistDelta: true, runId: newRunId() }));
    log(JSON.stringify(results.at(-1)));
    await logSessionsLeft();
    if (run <= BASELINE_RUNS) {
      log(`run ${run}/${RUNS}: the same outage with failover and spread off`);
      baselines.push(
        await runFleet({ ...base, dir: join(dir, `base-${run}`), cluster, spreadOn: false, nodeKill: false, hotlistDelta: false, runId: newRunId() }),
      );
      log(JSON.stringify(baselines.at(-1)));
      await logSessionsLeft();
    }
  }
} finally {
  await cluster.stop();
  rmSync(dir, { recursive: true, force: true });
}

const med = (rs: FleetResult[], k: keyof FleetResult): number | null => median(rs.map((r) => r[k] as number | null));
const keys: Array<[keyof FleetResult, string, number]> = [
  ['events_total', 'events accepted by the devices', 0],
  ['lost', 'lost (accepted, never stored at the center)', 0],
  ['duplicates', 'duplicates dropped by the ingest', 0],
  ['reconnect_first_s', 'first reconnect after the outage (s)', 1],
  ['reconnect_spread_s', 'reconnect spread, first to 95th percentile (s)', 1],
  ['reconnect_all_s', 'last device back (s)', 1],
  ['drain_s_after_outage', 'backlog drained after the outage (s)', 1],
  ['broker_peak_msgs_per_s', 'broker intake peak (msgs/s)', 0],
  ['broker_steady_msgs_per_s', 'broker intake, steady (msgs/s)', 0],
  ['alarm_p50_ms_during_drain', 'alarm p50 while the fleet drains (ms)', 0],
  ['alarm_p99_ms_during_drain', 'alarm p99 while the fleet drains (ms)', 0],
  ['alarm_p99_ms_to_broker_during_drain', '  of which raise to broker PUBACK, p99 (ms)', 0],
  ['alarm_p99_ms_during_drain_online', '  p99 of those raised with the link up (ms)', 0],
  ['alarm_p99_ms_during_drain_reconnecting', '  p99 of those raised while reconnecting (ms)', 0],
  ['alarm_p99_ms_to_link_up_during_drain', '    of which raise to link up, p99 (ms)', 0],
  ['connect_p99_ms_during_drain', 'any connection attempt to CONNACK during the drain, p99 (ms)', 0],
  ['alarms_during_drain', 'alarms raised while draining', 0],
  ['sim_loop_delay_p99_ms_during_drain', "simulator's event loop held, p99 of each second's longest (ms)", 0],
  ['alarm_p99_ms_steady', 'alarm p99, steady (ms)', 0],
  ['node_kill_moved_devices', 'devices on the killed node', 0],
  ['node_kill_failover_p50_s', 'failover p50 (s)', 2],
  ['node_kill_failover_p99_s', 'failover p99 (s)', 2],
  ['node_restart_s', 'killed node back in the cluster (s)', 1],
  ['hotlist_delta_all_devices_s', 'hotlist delta installed on every device (s)', 2],
  ['hotlist_delta_at_center_s', 'every device confirmed at the center (s)', 2],
  ['hotlist_resent', 'deltas sent again', 0],
  ['subscribe_refusals', 'subscriptions refused by the broker (retried)', 0],
];
process.stdout.write(
  `Vigía fleet benchmark${QUICK ? ' (--quick)' : ''}: ${DEVICES} devices, 3-node RabbitMQ cluster, ${OUTAGE_MS / 1000} s outage, median of ${RUNS} run(s)\n\n`,
);
process.stdout.write(
  `${table(
    ['figure', 'failover + spread', 'one broker, fixed delays'],
    keys.map(([k, label, d]) => [label, fmt(med(results, k), d), baselines.length ? fmt(med(baselines, k), d) : '–']),
  )}\n\n`,
);

const out = {
  devices: DEVICES,
  events_total: med(results, 'events_total'),
  lost: Math.max(...results.map((r) => r.lost), ...baselines.map((r) => r.lost)),
  duplicates: med(results, 'duplicates'),
  reconnect_spread_s: med(results, 'reconnect_spread_s'),
  drain_s_after_outage: med(results, 'drain_s_after_outage'),
  broker_peak_msgs_per_s: med(results, 'broker_peak_msgs_per_s'),
  alarm_p99_ms_during_drain: med(results, 'alarm_p99_ms_during_drain'),
  alarm_p99_ms_to_broker_during_drain: med(results, 'alarm_p99_ms_to_broker_during_drain'),
  alarm_p99_ms_during_drain_online: med(results, 'alarm_p99_ms_during_drain_online'),
  alarm_p99_ms_during_drain_reconnecting: med(results, 'alarm_p99_ms_during_drain_reconnecting'),
  alarm_p99_ms_to_link_up_during_drain: med(results, 'alarm_p99_ms_to_link_up_during_drain'),
  connect_p99_ms_during_drain: med(results, 'connect_p99_ms_during_drain'),
  alarm_p99_ms_steady: med(results, 'alarm_p99_ms_steady'),
  alarm_drain_vs_steady: ratio(med(results, 'alarm_p99_ms_during_drain'), med(results, 'alarm_p99_ms_steady')),
  node_kill_failover_p99_s: med(results, 'node_kill_failover_p99_s'),
  hotlist_delta_all_devices_s: med(results, 'hotlist_delta_all_devices_s'),
  hotlist_delta_at_center_s: med(results, 'hotlist_delta_at_center_s'),
  alarms_during_drain: med(results, 'alarms_during_drain'),
  sim_loop_delay_p99_ms_during_drain: med(results, 'sim_loop_delay_p99_ms_during_drain'),
  node_kill_moved_devices: med(results, 'node_kill_moved_devices'),
  outage_s: OUTAGE_MS / 1000,
  runs: RUNS,
  quick: QUICK ? 1 : 0,
  ...(baselines.length
    ? {
        without_spread: {
          lost: Math.max(...baselines.map((r) => r.lost)),
          duplicates: med(baselines, 'duplicates'),
          reconnect_spread_s: med(baselines, 'reconnect_spread_s'),
          drain_s_after_outage: med(baselines, 'drain_s_after_outage'),
          broker_peak_msgs_per_s: med(baselines, 'broker_peak_msgs_per_s'),
          alarm_p99_ms_during_drain: med(baselines, 'alarm_p99_ms_during_drain'),
          alarm_p99_ms_to_broker_during_drain: med(baselines, 'alarm_p99_ms_to_broker_during_drain'),
        },
        peak_vs_without_spread: ratio(med(results, 'broker_peak_msgs_per_s'), med(baselines, 'broker_peak_msgs_per_s')),
      }
    : {}),
};
process.stdout.write(`${JSON.stringify(out)}\n`);
