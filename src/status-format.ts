import type { DaemonStatus } from './status.js';

const age = (s: number | null) => (s === null ? '-' : s < 120 ? `${Math.round(s)}s` : s < 7200 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`);
const lastError = (e: string | null) => (e ? `, last error: ${e}` : '');
const size = (b: number) => (b < 1024 ? `${b} B` : b < 1024 ** 2 ? `${(b / 1024).toFixed(1)} KiB` : `${(b / 1024 ** 2).toFixed(1)} MiB`);

/** `vigia status` for a technician at a terminal. */
export function formatStatus(s: DaemonStatus): string {
  const lines = [
    `device     ${s.site}/${s.device} (${s.profile}), vigia ${s.version}, up ${age(s.uptime_s)}`,
    `link       ${s.link.state} for ${age(s.link.for_s)} (MQTT ${s.link.protocol}, ${s.link.connects} connects, ` +
      `${s.link.inflight}/${s.link.window} in flight)${lastError(s.link.last_error)}`,
    `  server   ${s.link.server}${s.link.failovers > 0 || s.link.redirects > 0 ? ` (${s.link.failovers} failovers, ${s.link.redirects} redirects)` : ''}${s.link.server_keepalive_s !== null ? `, keep-alive ${s.link.server_keepalive_s}s set by the broker` : ''}${s.link.subscribe_refusals > 0 ? `, ${s.link.subscribe_refusals} subscriptions refused (retried)` : ''}${s.link.state === 'online' && !s.link.subscribed ? ', commands not subscribed yet' : ''}`,
    ...formatRefusals(s.link.refused),
    ...(s.link.inbound_dropped > 0 ? [`  inbound  ${s.link.inbound_dropped} oversized messages dropped`] : []),
    `clock      ${s.clock.synced ? `synced (${s.clock.source})` : 'NOT synced: event times are provisional'}`,
    `outbox     ${s.outbox.depth} events, ${size(s.outbox.bytes)}, oldest unsent ${age(s.outbox.oldest_unsent_age_s)}`,
  ];
  for (const [p, v] of Object.entries(s.outbox.by_priority)) {
    const ev = s.outbox.evicted[p as keyof typeof s.outbox.evicted];
    const evicted = Object.entries(ev)
      .filter(([, n]) => n > 0)
      .map(([r, n]) => `${n} ${r}`)
      .join(', ');
    const oldest = age(v.oldestAgeMs === null ? null : v.oldestAgeMs / 1000);
    const depth = `${String(v.depth).padStart(8)} events ${size(v.bytes).padStart(10)}`;
    lines.push(`  ${p.padEnd(9)} ${depth}  oldest ${oldest.padStart(4)}${evicted ? `  evicted: ${evicted}` : ''}`);
  }
  const unreported = Object.values(s.outbox.evictions_unreported).reduce(
    (n, byReason) => n + Object.values(byReason ?? {}).reduce((a, b) => a + (b ?? 0), 0),
    0,
  );
  if (unreported > 0) lines.push(`  ${unreported} evictions not reported yet (system.outbox_evicted goes out within 10 s)`);
  lines.push(formatDisk(s.disk));
  const types = Object.entries(s.events.accepted_by_type).sort((a, b) => b[1] - a[1]);
  lines.push(`events     ${types.length ? types.map(([t, n]) => `${t}=${n}`).join(' ') : 'none yet'}`);
  const dropped = s.commands.replies_dropped > 0 ? ` (${s.commands.replies_dropped} replies to unverified messages dropped)` : '';
  lines.push(`commands   ${s.commands.executed} executed, ${Object.values(s.commands.rejected).reduce((a: number, b) => a + (b ?? 0), 0)} refused${dropped}`);
  // Only listeners that misbehaved: a healthy bus is not news.
  const troubled = Object.entries(s.bus).filter(([, l]) => l.errors > 0 || l.slow > 0);
  if (troubled.length) lines.push(`bus        ${troubled.map(([key, l]) => `${key}: ${l.errors} errors, ${l.slow} slow (max ${l.max_ms} ms)`).join('; ')}`);
  const io = (s as { 'field-io'?: FieldIoView })['field-io'];
  if (io?.backend) lines.push(...formatFieldIo(io));
  const gps = (s as { gps?: GpsView }).gps;
  if (gps && gps.state !== 'disabled') {
    const f = gps.fix;
    const where = f ? `: ${f.lat.toFixed(5)}, ${f.lon.toFixed(5)} (${f.fix}, ${f.satellites ?? '?'} satellites, ${age(f.age_ms / 1000)} old)` : ', no fix';
    lines.push(`gps        ${gps.state}${where}`);
  }
  const anpr = (s as { anpr?: AnprStatusView }).anpr;
  if (anpr) lines.push(...formatAnpr(anpr));
  const nodered = (s as { nodered?: NodeRedView }).nodered;
  if (nodered) lines.push(...formatNodeRed(nodered));
  return `${lines.join('\n')}\n`;
}

function formatDisk(d: DaemonStatus['disk']): string {
  const free = d.free_bytes === null ? '' : `, ${size(d.free_bytes)} free`;
  const reserve = d.reserve.state === 'disabled' ? 'no reserve' : `reserve ${size(d.reserve.bytes)} ${d.reserve.state}`;
  const refused = Object.values(d.refused).reduce((a, b) => a + b, 0);
  const held = d.held_alarms.events > 0 ? `, ${d.held_alarms.events} alarms waiting in memory (${d.direct.published} published directly)` : '';
  const lost = d.held_lost > 0 ? `, ${d.held_lost} ALARMS NOT STORED` : '';
  const locking = d.locking === 'exclusive' ? ', outbox opened with exclusive locking (no checkpoint worker)' : '';
  if (!d.full) return `disk       ok${free}, ${reserve}${refused > 0 ? ` (${refused} events refused while full)` : ''}${lost}`;
  return `disk       FULL for ${age(d.full_for_s)}${free}: only alarms are stored, ${refused} events refused; ${reserve}${held}${lost}${locking}`;
}

/** Only when the broker has refused something: a healthy link is not news. */
function formatRefusals(r: DaemonStatus['link']['refused']): string[] {
  if (r.total === 0) return [];
  const reasons = Object.entries(r.by_reason)
    .map(([code, n]) => `${code}${code === r.last_reason?.code ? ` ${r.last_reason.message}` : ''}: ${n}`)
    .join(', ');
  const last = r.last_reason ? `, last ${r.last_reason.code} ${r.last_reason.message} on ${r.last_reason.type}` : '';
  const reconnects = r.reconnects > 0 ? `, ${r.reconnects} reconnects` : '';
  return [`refused    ${r.total} by the broker (${reasons})${last}, ${r.waiting} waiting to retry${reconnects}`];
}

/** The part of the ANPR extension's status the terminal view shows. */
interface AnprStatusView {
  state: string;
  error?: string | null;
  cameras?: Record<
    string,
    { state: string; frames: number; idle: number; read: number; plates: number; busy: number; dropped_latest: number; lastError: string | null }
  >;
  reads?: number;
  hits?: number;
  rejected_frames?: Record<string, number>;
  hotlist?: {
    size: number;
    version: string;
    updated_at: string | null;
    last_error: string | null;
    serial?: number;
    issued?: string | null;
    stale?: boolean;
    age_s?: number | null;
  } | null;
}

function formatAnpr(a: AnprStatusView): string[] {
  const rejected = Object.values(a.rejected_frames ?? {}).reduce((x, y) => x + y, 0);
  const lines = [`anpr       ${a.state}${a.error ? ` (${a.error})` : ''}, ${a.reads ?? 0} reads, ${a.hits ?? 0} hits, ${rejected} frames rejected`];
  for (const [id, c] of Object.entries(a.cameras ?? {})) {
    const counts = `${c.frames} frames: ${c.idle} idle, ${c.read} read, ${c.plates} plates, ${c.dropped_latest + c.busy} dropped`;
    lines.push(`  ${id.padEnd(12)} ${c.state.padEnd(8)} ${counts}${c.lastError ? `  last error: ${c.lastError}` : ''}`);
  }
  const h = a.hotlist;
  if (h) {
    const signed = h.issued ? `, serial ${h.serial ?? 0} issued ${h.issued}${h.age_s != null ? ` (${age(h.age_s)} old)` : ''}` : '';
    const stale = h.stale ? ' STALE' : '';
    lines.push(
      `hotlist    ${h.size} entries, version ${h.version.slice(0, 12)}${signed}${stale}, updated ${h.updated_at ?? 'never'}${lastError(h.last_error)}`,
    );
  }
  return lines;
}

interface FieldIoView {
  backend: string | null;
  backend_reason?: string;
  inputs?: Record<string, { kind: string; line: string; pressed?: boolean; stuck?: boolean; active?: boolean; open?: boolean }>;
  outputs?: Record<string, { pattern: string; value: boolean }>;
  pole?: { state: string; alarm_id: string | null };
}

interface GpsView {
  state: string;
  fix: { lat: number; lon: number; fix: string; satellites: number | null; age_ms: number } | null;
}

function formatFieldIo(io: FieldIoView): string[] {
  const inputs = Object.entries(io.inputs ?? {}).map(([name, i]) => {
    const state = i.stuck ? 'STUCK' : i.pressed ? 'pressed' : i.active ? 'motion' : i.open ? 'OPEN' : 'idle';
    return `${name}=${state}`;
  });
  const outputs = Object.entries(io.outputs ?? {}).map(
    ([name, o]) => `${name}=${o.pattern}${o.pattern !== 'off' && o.pattern !== 'on' ? `(${o.value ? 'on' : 'off'})` : ''}`,
  );
  const lines = [
    `gpio       ${io.backend} (${io.backend_reason ?? ''})`,
    `  inputs   ${inputs.join(' ') || 'none'}`,
    `  outputs  ${outputs.join(' ') || 'none'}`,
  ];
  if (io.pole) lines.push(`pole       alarm ${io.pole.state}${io.pole.alarm_id ? ` (${io.pole.alarm_id})` : ''}`);
  return lines;
}

/** The part of the Node-RED extension's status the terminal view shows. */
interface NodeRedView {
  state: string;
  url?: string | null;
  pid?: number | null;
  uptime_s?: number;
  rss_bytes?: number | null;
  restarts?: number;
  failures?: number;
  last_failure?: { reason: string; detail: string; ago_s: number } | null;
  flows?: { tabs: number; nodes: number; vigia_nodes: number } | null;
  errors_total?: number;
  node_errors?: Array<{ id: string; type: string; name: string; errors: number; refused: number; last_error: string | null }>;
  events_dropped?: number;
}

function formatNodeRed(n: NodeRedView): string[] {
  const where = n.url ? ` at ${n.url}` : '';
  const proc = n.pid ? ` (pid ${n.pid}, up ${age(n.uptime_s ?? 0)}${n.rss_bytes ? `, ${size(n.rss_bytes)}` : ''})` : '';
  const flows = n.flows ? `, ${n.flows.tabs} flows, ${n.flows.nodes} nodes` : '';
  const lines = [`nodered    ${n.state}${where}${proc}${flows}, ${n.restarts ?? 0} restarts, ${n.errors_total ?? 0} node errors`];
  if (n.last_failure) lines.push(`  failed   ${n.last_failure.reason} ${age(n.last_failure.ago_s)} ago: ${n.last_failure.detail}`);
  for (const node of (n.node_errors ?? []).filter((e) => e.errors + e.refused > 0)) {
    const label = `${node.name || node.id} (${node.type})`;
    lines.push(`  node     ${label}: ${node.errors} errors, ${node.refused} refused${node.last_error ? `, last: ${node.last_error}` : ''}`);
  }
  if (n.events_dropped) lines.push(`  dropped  ${n.events_dropped} events the runtime was too busy to take`);
  return lines;
}
