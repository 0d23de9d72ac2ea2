import type { Config } from './config/schema.js';
import type { ListenerStats } from './core/bus.js';
import type { Extension } from './core/extension.js';
import type { CommandRouter } from './gateway/commands.js';
import type { OutboxStats } from './gateway/outbox.js';
import type { UplinkStats } from './gateway/uplink.js';
import { VERSION } from './version.js';

/** What the daemon's parts report, gathered by the controller for `vigia status`. */
export interface StatusSources {
  config: Config;
  now: number;
  startedMono: number;
  outbox: OutboxStats;
  link: UplinkStats;
  clock: { synced: boolean; source: string | null };
  acceptedByType: Record<string, number>;
  commands: ReturnType<CommandRouter['stats']>;
  bus: Record<string, ListenerStats>;
  extensions: readonly Extension[];
}

/** `vigia status --json`: the gateway's state, then each extension's own under its name. */
export function daemonStatus(s: StatusSources) {
  const { outbox, link, now } = s;
  return {
    device: s.config.device.id,
    site: s.config.device.site,
    profile: s.config.device.profile,
    version: VERSION,
    uptime_s: Math.round((now - s.startedMono) / 1000),
    link: {
      state: link.state,
      for_s: Math.round((now - link.since) / 1000),
      protocol: link.protocol === 5 ? '5' : '3.1.1',
      connects: link.connects,
      last_error: link.lastError,
      inflight: link.inflight,
      window: link.window,
      published: link.published,
      acked: link.acked,
      resent: link.resent,
      refused: {
        total: link.refused.total,
        by_reason: link.refused.byReason,
        last_reason: link.refused.last,
        waiting: link.refused.waiting,
        reconnects: link.refused.reconnects,
      },
      inbound_dropped: link.inboundDropped,
      server: link.server,
      failovers: link.failovers,
      redirects: link.redirects,
      server_keepalive_s: link.serverKeepAlive,
      subscribe_refusals: link.subscribeRefusals,
      subscribed: link.subscribed,
    },
    clock: s.clock,
    outbox: {
      depth: outbox.depth,
      bytes: outbox.bytes,
      oldest_unsent_age_s: Math.max(0, ...Object.values(outbox.byPriority).map((p) => (p.oldestAgeMs ?? 0) / 1000)),
      by_priority: outbox.byPriority,
      evicted: outbox.evicted,
      evictions_unreported: outbox.unreportedEvictions,
      checkpointer: outbox.checkpointer,
      last_seq: outbox.lastSeq,
    },
    disk: {
      full: outbox.disk.full,
      full_for_s: outbox.disk.since === null ? null : Math.round((now - outbox.disk.since) / 1000),
      error: outbox.disk.error,
      free_bytes: outbox.disk.freeBytes,
      locking: outbox.disk.locking,
      reserve: outbox.disk.reserve,
      refused: outbox.disk.refused,
      held_alarms: outbox.disk.held,
      held_stored: outbox.disk.heldStored,
      held_lost: outbox.disk.heldLost,
      direct: link.direct,
      episodes: outbox.disk.episodes,
    },
    events: { accepted_by_type: { ...s.acceptedByType }, published_by_type: link.publishedByType },
    commands: s.commands,
    bus: s.bus,
    ...Object.fromEntries(s.extensions.flatMap((ext) => (ext.status ? [[ext.name, ext.status()]] : []))),
  };
}

export type DaemonStatus = ReturnType<typeof daemonStatus>;
