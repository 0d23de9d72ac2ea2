import type { Config } from './config/schema.js';
import type { DaemonStatus } from './status.js';

/**
 * The diagnostic report (`diag` command): the daemon's status judged check by check, so a technician
 * or the call center reads what is wrong first. Pure over the status and a few facts the caller
 * gathers (disk space, log level), so `vigia doctor` can build the same report from the status it
 * gets over the control socket.
 */

export type CheckLevel = 'ok' | 'warn' | 'fail';

export interface Check {
  check: string;
  level: CheckLevel;
  detail: string;
}

export interface DiagFacts {
  /** Free bytes on the data directory's file system, null if it could not be read. */
  diskFreeBytes: number | null;
}

export interface DiagReport {
  /** The worst level of all checks. */
  level: CheckLevel;
  checks: Check[];
  status: DaemonStatus;
}

/** Below these the disk is a problem: the outbox, evidence and the WAL need room to grow. */
export const DISK_FAIL_BYTES = 64 * 1024 * 1024;
export const DISK_WARN_BYTES = 512 * 1024 * 1024;
/** An unsent event older than this means the link has been down (or refusing) for long. */
const BACKLOG_WARN_S = 3600;

const RANK: Record<CheckLevel, number> = { ok: 0, warn: 1, fail: 2 };

// The sections extensions add to the status, as far as the checks read them.
interface FieldIoSection {
  backend: string | null;
  line_errors: number;
  inputs: Record<string, { kind: string; stuck?: boolean }>;
}
interface AnprSection {
  state: string;
  error: string | null;
  cameras: Record<string, { state: string; lastError: string | null; frames: number }>;
  hotlist: { size: number; serial: number | null; issued: string | null; stale: boolean; age_s: number | null; last_error: string | null } | null;
}
interface NodeRedSection {
  state: string;
  last_failure?: { reason: string } | null;
}

const section = <T>(status: DaemonStatus, name: string): T | undefined => (status as unknown as Record<string, T | undefined>)[name];

const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;

export function diagnose(status: DaemonStatus, config: Pick<Config, 'anpr'>, facts: DiagFacts): DiagReport {
  const checks: Check[] = [];
  const add = (check: string, level: CheckLevel, detail: string) => checks.push({ check, level, detail });

  const { outbox, disk, link, clock } = status;
  if (disk.full) add('outbox', 'fail', `disk full for ${disk.full_for_s ?? 0} s: only alarms are stored (${disk.error ?? 'no error text'})`);
  else if (outbox.oldest_unsent_age_s > BACKLOG_WARN_S)
    add('outbox', 'warn', `${outbox.depth} events waiting, the oldest for ${Math.round(outbox.oldest_unsent_age_s)} s`);
  else add('outbox', 'ok', `${outbox.depth} events waiting (${mib(outbox.bytes)})`);

  if (link.state === 'online') add('link', 'ok', `online for ${link.for_s} s, MQTT ${link.protocol}`);
  else add('link', link.for_s > 300 ? 'fail' : 'warn', `${link.state} for ${link.for_s} s${link.last_error ? `: ${link.last_error}` : ''}`);

  add('clock', clock.synced ? 'ok' : 'warn', clock.synced ? `synced (${clock.source ?? 'unknown source'})` : 'not synced: events are marked unsynced');

  const free = facts.diskFreeBytes;
  if (free === null) add('disk_space', 'warn', 'free space could not be read');
  else add('disk_space', free < DISK_FAIL_BYTES ? 'fail' : free < DISK_WARN_BYTES ? 'warn' : 'ok', `${mib(free)} free on the data directory`);

  const io = section<FieldIoSection>(status, 'field-io');
  if (io) {
    const stuck = Object.entries(io.inputs)
      .filter(([, i]) => i.stuck)
      .map(([name]) => name);
    const level = io.line_errors > 0 || stuck.length > 0 ? 'warn' : 'ok';
    add(
      'gpio',
      level,
      `backend ${io.backend ?? 'none'}, ${Object.keys(io.inputs).length} inputs, ${io.line_errors} line errors${stuck.length ? `, stuck: ${stuck.join(', ')}` : ''}`,
    );
  }

  const anpr = section<AnprSection>(status, 'anpr');
  if (anpr) {
    if (anpr.error) add('anpr', 'fail', anpr.error);
    for (const [id, cam] of Object.entries(anpr.cameras)) {
      add(`camera:${id}`, cam.state === 'running' ? 'ok' : 'warn', `${cam.state}, ${cam.frames} frames${cam.lastError ? `: ${cam.lastError}` : ''}`);
    }
    const h = anpr.hotlist;
    if (h) {
      const signed = config.anpr.hotlist.public_key !== undefined;
      const level = h.stale || h.last_error ? 'warn' : h.size === 0 ? 'warn' : 'ok';
      add(
        'hotlist',
        level,
        `${h.size} plates, serial ${h.serial ?? 'none'}, issued ${h.issued ?? 'unknown'}${h.age_s === null ? '' : ` (${h.age_s} s ago)`}${h.stale ? ', STALE' : ''}, ${signed ? 'signature checked' : 'local list, unsigned'}${h.last_error ? `; last error: ${h.last_error}` : ''}`,
      );
    }
  }

  const nodered = section<NodeRedSection>(status, 'nodered');
  if (nodered) {
    const running = nodered.state === 'running';
    add('nodered', running ? 'ok' : 'warn', `${nodered.state}${nodered.last_failure ? `, last failure: ${nodered.last_failure.reason}` : ''}`);
  }

  const level = checks.reduce<CheckLevel>((worst, c) => (RANK[c.level] > RANK[worst] ? c.level : worst), 'ok');
  return { level, checks, status };
}
