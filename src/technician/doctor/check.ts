import type { Config } from '../../config/schema.js';
import type { SelectGpioDeps } from '../../drivers/gpio/select.js';
import type { DaemonRequest } from '../daemon-link.js';

/** One line of `vigia doctor`: what was looked at, how it went, what was seen, and what to do about it. */
export interface DoctorCheck {
  name: string;
  status: 'pass' | 'warn' | 'fail';
  detail: string;
  /** What the technician does about a warning or a failure; null when it passed. */
  fix: string | null;
}

export const pass = (name: string, detail: string): DoctorCheck => ({ name, status: 'pass', detail, fix: null });
export const warn = (name: string, detail: string, fix: string): DoctorCheck => ({ name, status: 'warn', detail, fix });
export const fail = (name: string, detail: string, fix: string): DoctorCheck => ({ name, status: 'fail', detail, fix });

/**
 * The parts of the running daemon's `status` the checks read (see src/status.ts); absent parts are
 * those of extensions that are not running.
 */
export interface StatusView {
  version: string;
  uptime_s: number;
  link: { state: string; for_s: number; protocol: string; last_error: string | null };
  clock: { synced: boolean; source: string | null };
  disk: { full: boolean; free_bytes: number | null };
  'field-io'?: {
    backend: string | null;
    tags?: {
      scanner: { id: string; adverts: number; restarts: number; scanning: boolean; last_error: string | null };
      registered: number;
      ours: number;
      presses: number;
      unknown_presses: number;
    };
    inputs: Record<string, { kind: string; line: string }>;
    outputs: Record<string, { value: boolean; errors: number }>;
    line_errors: number;
    remotes?: {
      receivers: Record<string, { frames: number; undecoded: number; restarts: number; last_error?: string | null }>;
      registered: number;
      presses: number;
      unknown_presses: number;
    };
  };
  gps?: {
    state: string;
    port: { path: string; state: string; lines: number; lastError: string | null } | null;
    fix: { fix: string; satellites: number | null; hdop: number | null; age_ms: number } | null;
  };
  anpr?: { state: string; error: string | null; hotlist: HotlistView | null };
  nodered?: { state: string; url?: string | null; last_failure?: { reason: string; detail: string } | null; flows?: { nodes: number } | null };
}

/** What the doctor reads about the hotlist, from the daemon's status or the cache on disk. */
export interface HotlistView {
  size: number;
  source: string | null;
  serial: number;
  issued: string | null;
  last_error: string | null;
}

export interface DoctorContext {
  config: Config;
  /** The running daemon, or null when it is stopped (the checks then open the hardware themselves). */
  daemon: DaemonRequest | null;
  status: StatusView | null;
  /** Where /proc is (mount table, disk statistics, uptime). */
  procRoot: string;
  /** How long a camera, a GPS or a broker may take to answer. */
  timeoutMs: number;
  /** Wall clock, ms. */
  now: () => number;
  /** Whether `timedatectl` says the clock is synchronised (for clock.sync_source auto). */
  timedatectlSynced: () => Promise<boolean>;
  /** Where the GPIO backends look (tests point them at fake tools and devices). */
  gpio: Omit<SelectGpioDeps, 'clock'>;
  /** Where the clock helper's socket is when `vigia-clock.socket` is enabled. */
  clockHelperSocket: string;
  /** A D-Bus address instead of the system bus, for BlueZ (tests). */
  dbusAddress?: string;
}

export type Check = (ctx: DoctorContext) => Promise<DoctorCheck[]>;

export const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function formatBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = b / 1024;
  let i = 0;
  for (; v >= 1024 && i < units.length - 1; i++) v /= 1024;
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatAge(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}
