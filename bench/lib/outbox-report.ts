// The outbox benchmark's readable output: the comparison table, how each figure was measured, and
// the targets. The figures come from the last-line JSON (results) and the details beside it.
import { mosquittoVersion } from '../../tests/helpers/mosquitto.js';
import { GAP_BEFORE_KILL_MS, OUTAGE_MS } from './kill-schedule.js';
import { READ_PAYLOAD_BYTES } from './payload.js';
import { fmt, table } from './table.js';

/** How the run was set up: counts (smaller with --quick) and the load it applied. */
export interface OutboxSetup {
  quick: boolean;
  enqueue: number;
  enqueueRuns: number;
  rateRuns: number;
  alarms: number;
  kills: number;
  streamRate: number;
  /** Unacknowledged events allowed per producer (Vigía's default inflight_window). */
  window: number;
  alarmGapMs: number;
  backgroundPerS: number;
  fillChunk: number;
  rssSettleS: number;
}

/** What the notes under the table need beyond the JSON figures. */
export interface OutboxDetails {
  straceSeccomp?: boolean;
  fsyncNote?: string;
  enqueue?: Array<{ body_bytes: number; producers: number; window: number; syncs?: { total: number } }>;
  bytesSource?: string;
  drain?: { reconnectMs: number };
  mqttjsBody?: number;
}

type Figure = number | null | undefined;

export function outboxReport(s: OutboxSetup, r: Readonly<Record<string, Figure>>, details: OutboxDetails, errors: readonly string[]): string {
  const v = (x: Figure, d = 0) => fmt(x ?? null, d);
  const lostCell = (lost: Figure, of: Figure, up: Figure, outage: Figure, kills: Figure) =>
    lost == null ? '–' : `${fmt(lost)} of ${fmt(of)} (up ${fmt(up)} / outage ${fmt(outage)}, ${kills} kills)`;
  const enq = details.enqueue?.[0];
  const out: string[] = [];
  out.push('');
  out.push(`Vigía outbox benchmark${s.quick ? ' (--quick: small counts)' : ''} — ${new Date().toISOString()}`);
  out.push('');
  out.push(
    table(
      ['system', 'accepts/s', 'delivered/s', 'alarm p50 ms', 'alarm p99 ms', 'lost (SIGKILL)', 'duplicates', 'fsyncs/1k ev', 'bytes/event', 'RSS MB'],
      [
        [
          'vigia',
          v(r.enqueue_per_s),
          v(r.drain_per_s),
          v(r.alarm_latency_p50_ms, 2),
          v(r.alarm_latency_p99_ms, 2),
          lostCell(r.lost, r.fault_accepted, r.lost_link_up, r.lost_in_outage, r.fault_sigkills),
          v(r.duplicates),
          v(r.fsyncs_per_1000_events, 2),
          r.bytes_written_per_event == null ? '–' : `${fmt(r.bytes_written_per_event)} (${details.bytesSource})`,
          r.rss_mb_1m_buffered == null ? '–' : `${v(r.rss_mb_1m_buffered, 1)} @ ${fmt(r.rss_events_buffered)} buffered`,
        ],
        [
          'mqttjs-direct',
          v(r.mqttjs_publish_per_s),
          v(r.mqttjs_delivered_per_s),
          v(r.mqttjs_alarm_latency_p50_ms, 2),
          v(r.mqttjs_alarm_latency_p99_ms, 2),
          lostCell(
            r.mqttjs_lost_on_sigkill,
            r.mqttjs_handed_on_sigkill,
            r.mqttjs_lost_on_sigkill_link_up,
            r.mqttjs_lost_on_sigkill_in_outage,
            r.mqttjs_sigkills,
          ),
          '–',
          '–',
          '–',
          '–',
        ],
        [
          'mosquitto-bridge',
          v(r.bridge_publish_per_s),
          v(r.bridge_delivered_per_s),
          v(r.bridge_alarm_latency_p50_ms, 2),
          v(r.bridge_alarm_latency_p99_ms, 2),
          lostCell(
            r.bridge_lost_on_sigkill,
            r.bridge_acked_on_sigkill,
            r.bridge_lost_on_sigkill_link_up,
            r.bridge_lost_on_sigkill_in_outage,
            r.bridge_sigkills,
          ),
          v(r.bridge_duplicates),
          '–',
          '–',
          '–',
        ],
      ],
    ),
  );
  out.push('');
  out.push('How each figure was measured:');
  out.push(
    '  accepts/s     vigia: Outbox.accept() resolved (committed, synchronous=full) per second, ' +
      `${fmt(s.enqueue)} events with a ${READ_PAYLOAD_BYTES}-byte payload` +
      ` (${enq?.body_bytes ?? '?'}-byte envelope), ${enq?.producers ?? '?'} producers x ${enq?.window ?? '?'} outstanding, median of ${s.enqueueRuns} runs`,
  );
  out.push(
    `                baselines: QoS 1 publishes acknowledged (PUBACK) per second, ${fmt(s.enqueue)} events of ${details.mqttjsBody ?? '?'} bytes, ` +
      `window ${s.window}, median of ${s.rateRuns} runs (no durability for mqttjs-direct)`,
  );
  out.push(
    `  delivered/s   vigia: backlog of ${fmt(r.drain_events)} drained after the link opens, first status=online to last event at the subscriber` +
      (r.drain_from_gate_open_per_s
        ? ` (${fmt(r.drain_from_gate_open_per_s)}/s counting from the gate opening, reconnect ${fmt(details.drain?.reconnectMs)} ms)`
        : ''),
  );
  out.push('                baselines: the same publish runs, first publish to last event at the subscriber (central broker for the bridge)');
  out.push(
    `  alarm p50/p99 ${s.alarms} alarms ~${s.alarmGapMs} ms apart with ${s.backgroundPerS} reads/s in the background; ` +
      'created (sender wall time) -> received by a subscriber',
  );
  out.push(
    '                vigia: sent through the control socket (sim.event); created -> durable (the sim.event reply) ' +
      `p50 ${v(r.alarm_accept_p50_ms, 2)} / p99 ${v(r.alarm_accept_p99_ms, 2)} ms`,
  );
  out.push(
    `  lost          stream of ${fmt(s.streamRate)} events/s, ${s.kills} SIGKILLs, each ${fmt(GAP_BEFORE_KILL_MS.min)}-${fmt(GAP_BEFORE_KILL_MS.max)} ms ` +
      'after the system is back up (link included);',
  );
  out.push(`                odd-numbered kills after the uplink has been down ${OUTAGE_MS} ms ("outage"), the others with the link up ("up")`);
  out.push('                vigia: ids acknowledged by sim.burst replies that never reached the subscriber; the daemon is restarted after each kill');
  out.push('                mqttjs-direct: events handed to publish() that never arrived; a new producer process per kill');
  out.push(
    `                mosquitto-bridge: events PUBACKed by the local broker (Mosquitto ${mosquittoVersion()}, persistence true, autosave_interval 1, ` +
      'bridge QoS 1 cleansession false)',
  );
  out.push('                that never reached central; the local broker is restarted after each kill');
  out.push(
    `  fsyncs/1k ev  fsync+fdatasync calls counted by strace${details.straceSeccomp ? ' --seccomp-bpf' : ''} -f during the enqueue phase only` +
      (enq?.syncs ? ` (whole child incl. open/close: ${details.enqueue!.map((e) => e.syncs?.total).join(', ')})` : '') +
      (details.fsyncNote ? ` — ${details.fsyncNote}` : ''),
  );
  if (r.fsync_ms_p50 != null) {
    out.push(`                time in one fsync/fdatasync call (strace -T) during the phase: p50 ${v(r.fsync_ms_p50, 2)} ms, p99 ${v(r.fsync_ms_p99, 2)} ms`);
  }
  out.push(`  bytes/event   /proc/<pid>/io ${details.bytesSource ?? '?'} delta of the enqueue child during the phase / events`);
  out.push(
    `  RSS MB        VmRSS of the daemon with ${fmt(r.rss_events_buffered)} events buffered (broker unreachable), filled by sim.burst x ${fmt(s.fillChunk)}, ` +
      `read ${s.rssSettleS} s after the fill`,
  );
  out.push(
    `                (1 s after the fill ${v(r.rss_right_after_fill_mb, 1)} MB, peak VmHWM ${v(r.rss_peak_mb, 1)} MB, ` +
      `idle before the fill ${v(r.rss_idle_mb, 1)} MB, ` +
      `outbox file ${v(r.outbox_file_mb_buffered, 1)} MB;`,
  );
  out.push(`                same backlog in a freshly restarted daemon: ${v(r.rss_mb_buffered_after_restart, 1)} MB, up in ${fmt(r.restart_ms_buffered)} ms)`);
  out.push('');
  const target = (label: string, ok: boolean | null, value: string) => `  ${ok == null ? 'n/a ' : ok ? 'ok  ' : 'MISS'}  ${label}: ${value}`;
  const meets = (x: number | null | undefined, pass: (x: number) => boolean) => (x == null ? null : pass(x));
  out.push('Targets:');
  out.push(
    target(
      'enqueue >= 20,000/s',
      meets(r.enqueue_per_s, (x) => x >= 20_000),
      v(r.enqueue_per_s),
    ),
  );
  out.push(
    target(
      'drain >= 5,000/s',
      meets(r.drain_per_s, (x) => x >= 5000),
      v(r.drain_per_s),
    ),
  );
  out.push(
    target(
      'alarm p99 <= 10 ms',
      meets(r.alarm_latency_p99_ms, (x) => x <= 10),
      v(r.alarm_latency_p99_ms, 2),
    ),
  );
  out.push(
    target(
      'lost = 0',
      meets(r.lost, (x) => x === 0),
      v(r.lost),
    ),
  );
  out.push(
    target(
      'RSS <= 100 MB with 1M buffered',
      meets(r.rss_mb_1m_buffered, (x) => x <= 100),
      `${v(r.rss_mb_1m_buffered, 1)} MB with ${fmt(r.rss_events_buffered)} buffered`,
    ),
  );
  if (errors.length) {
    out.push('');
    out.push('Phases that failed:');
    for (const e of errors) out.push(`  ${e.split('\n')[0]}`);
  }
  out.push('');
  return out.join('\n');
}
