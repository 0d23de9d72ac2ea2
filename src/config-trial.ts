import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { writeFileDurably } from './core/durable-file.js';

/**
 * A configuration sent with `config.set` is tried before it is trusted. Beside the file
 * (`vigia.yaml`) live the file it replaced (`vigia.yaml.previous`) and a marker
 * (`vigia.yaml.apply`, JSON) that says how far the change got:
 *
 *   pending      written by config.set, with the new file, just before the daemon restarts
 *   trying       the daemon that starts with the new file marks it so before anything else
 *   (removed)    that daemon started and reached the broker: the new file is confirmed
 *   rolled_back  the new file did not come up: the previous one is back in place, and the daemon
 *                that starts with it reports `system.config_rolled_back`, then removes the marker
 *
 * A daemon that finds `trying` at start is the one after a trial that died (killed, out of memory,
 * a crash in native code): it rolls back before reading the file. Everything lives next to the
 * file rather than in the data directory because the data directory is itself a setting.
 */

/** The exit code of a daemon that stops to be started again (config.set, restart, a rollback): systemd's Restart=always starts it. */
export const EXIT_RESTART = 75;
/** A new configuration must start and connect to the broker within this, or the previous one comes back. */
export const CONFIRM_WITHIN_MS = 120_000;

export type RollbackReason = 'start_failed' | 'not_up' | 'died';

interface Change {
  sha256: string;
  previous_sha256: string;
  requested_at: string;
}
type Marker = (Change & { state: 'pending' | 'trying' }) | (Change & { state: 'rolled_back'; reason: RollbackReason; error: string });
export type RolledBack = Extract<Marker, { state: 'rolled_back' }>;

export interface ConfigFiles {
  file: string;
  previous: string;
  marker: string;
}

export const configFiles = (file: string): ConfigFiles => ({ file, previous: `${file}.previous`, marker: `${file}.apply` });

export const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/** Messages from the rollback are sent to the call center: bounded, whatever a start failure said. */
const MAX_ERROR_CHARS = 500;

/**
 * config.set's part: keeps the running file as `.previous`, marks the change pending, then puts the
 * new text in place, each step written durably (fsync, rename), in that order, so a power cut
 * anywhere leaves a file that was running or one that will be tried.
 */
export function stageConfig(files: ConfigFiles, text: string, nowMs: number): Change {
  const current = readFileSync(files.file, 'utf8');
  const change: Change = { sha256: sha256(text), previous_sha256: sha256(current), requested_at: new Date(nowMs).toISOString() };
  writeFileDurably(files.previous, current);
  writeFileDurably(files.marker, JSON.stringify({ state: 'pending', ...change } satisfies Marker));
  writeFileDurably(files.file, text);
  return change;
}

const changeOf = (m: Change): Change => ({ sha256: m.sha256, previous_sha256: m.previous_sha256, requested_at: m.requested_at });

/** The marker, null without one, 'invalid' when it cannot be read as one. */
function readMarker(file: string): Marker | null | 'invalid' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  try {
    const m = JSON.parse(text) as Marker;
    if (m && typeof m === 'object' && ['pending', 'trying', 'rolled_back'].includes(m.state) && typeof m.sha256 === 'string') return m;
  } catch {
    /* below */
  }
  return 'invalid';
}

/** The start of one daemon run, as far as a configuration change is concerned. */
export class ConfigTrial {
  #trying: Change | null = null;
  #toReport: RolledBack | null = null;
  /** What happened before a logger existed; the daemon logs it once it has one. */
  readonly notes: string[] = [];

  private constructor(readonly files: ConfigFiles) {}

  /** Reads the marker before the configuration is loaded; a trial that died is rolled back here. */
  static begin(file: string): ConfigTrial {
    const trial = new ConfigTrial(configFiles(file));
    const marker = readMarker(trial.files.marker);
    if (!marker) return trial;
    if (marker === 'invalid') {
      // Nothing in it can be trusted to decide on; the file in place is what runs.
      trial.notes.push(`unreadable ${trial.files.marker} removed; running the file in place`);
      rmSync(trial.files.marker, { force: true });
      return trial;
    }
    if (marker.state === 'rolled_back') {
      trial.#toReport = marker;
    } else if (marker.state === 'trying') {
      trial.#trying = changeOf(marker);
      trial.rollback('died', 'the daemon stopped before the new configuration was confirmed (killed, crashed or out of memory)');
    } else {
      let current: string | null = null;
      try {
        current = readFileSync(file, 'utf8');
      } catch {
        /* below */
      }
      if (current !== null && sha256(current) === marker.sha256) {
        trial.#trying = changeOf(marker);
        writeFileDurably(trial.files.marker, JSON.stringify({ ...marker, state: 'trying' } satisfies Marker));
      } else {
        // Stopped between the marker and the new file: the file in place is the one that ran.
        trial.notes.push('a configuration change was interrupted before its file was written; running the file in place');
        rmSync(trial.files.marker, { force: true });
      }
    }
    return trial;
  }

  /** A new configuration is on trial: it must start and reach the broker. */
  get active(): boolean {
    return this.#trying !== null;
  }

  /** A rollback that the call center has not been told about yet. */
  get toReport(): RolledBack | null {
    return this.#toReport;
  }

  /** Puts the previous file back and records why; the daemon then starts (or is started) with it. */
  rollback(reason: RollbackReason, error: string): RolledBack {
    const change = this.#trying;
    if (!change) throw new Error('no configuration change on trial');
    writeFileDurably(this.files.file, readFileSync(this.files.previous, 'utf8'));
    const marker: RolledBack = { ...change, state: 'rolled_back', reason, error: error.slice(0, MAX_ERROR_CHARS) };
    writeFileDurably(this.files.marker, JSON.stringify(marker));
    this.#trying = null;
    this.#toReport = marker;
    this.notes.push(`configuration ${change.sha256.slice(0, 12)} rolled back (${reason}): ${marker.error}`);
    return marker;
  }

  /** The new configuration is up: it stays. Returns the change for the `system.config_applied` report. */
  confirm(): Change {
    const change = this.#trying;
    if (!change) throw new Error('no configuration change on trial');
    rmSync(this.files.marker, { force: true });
    this.#trying = null;
    return change;
  }

  /** The rollback report is stored (in the outbox): nothing left to tell. */
  reported(): void {
    this.#toReport = null;
    rmSync(this.files.marker, { force: true });
  }
}
