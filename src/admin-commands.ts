import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { z } from 'zod';
import { ConfigError, formatProblem, parseConfig } from './config/index.js';
import type { Config } from './config/schema.js';
import { parseDurationMs } from './config/units.js';
import type { Clock } from './core/clock.js';
import { CommandError, type CommandRegistry, type EventSink, NO_ARGS } from './core/extension.js';
import type { Logger } from './core/logger.js';
import { CONFIRM_WITHIN_MS, configFiles, sha256, stageConfig } from './config-trial.js';
import { REDACTED, redactedConfig, redactedDocument } from './config-view.js';
import { type DiagReport, diagnose } from './diagnostics.js';
import { takeSnapshot } from './features/snapshot.js';
import { LOG_LEVELS, type LogLevelOverride } from './log-level.js';
import type { DaemonStatus } from './status.js';

/**
 * Remote administration over signed commands: `config.get`, `config.set`, `restart`, `snapshot`,
 * `diag`, `log.level`. A restart (asked for, or to apply a configuration) is the daemon stopping
 * cleanly with EXIT_RESTART once the reply is out; the service manager starts it again.
 */

export interface AdminDeps {
  config: Config;
  /** The file the daemon runs from (`vigia run -c FILE`); without one, config.set and restart are refused. */
  configFile: string | undefined;
  clock: Clock;
  logger: Logger;
  dataDir: string;
  commands: CommandRegistry;
  emit: EventSink['emit'];
  status: () => DaemonStatus;
  logLevel: LogLevelOverride;
  /** Stops the daemon cleanly with EXIT_RESTART; undefined when nothing would start it again. */
  requestRestart: ((reason: string) => void) | undefined;
}

/** A configuration file is a few KiB; this is far above any real one and below the MQTT inbound limit. */
const MAX_CONFIG_BYTES = 256 * 1024;
const MAX_PROBLEMS = 20;
/** The longest a `log.level` override may last: a forgotten one must still end. */
const MAX_LOG_OVERRIDE_MS = 24 * 3_600_000;

const SHA256_HEX = /^[0-9a-f]{64}$/;

const CONFIG_SET_ARGS = z
  .object({
    yaml: z
      .string()
      .min(1)
      .refine((s) => Buffer.byteLength(s) <= MAX_CONFIG_BYTES, `at most ${MAX_CONFIG_BYTES} bytes`),
    expect_sha256: z.string().regex(SHA256_HEX, 'the hex SHA-256 config.get returned').optional(),
  })
  .strict();

const SNAPSHOT_ARGS = z.object({ camera: z.string().min(1).max(64).optional() }).strict();

const LOG_LEVEL_ARGS = z
  .object({
    level: z.enum(LOG_LEVELS),
    for: z
      .string()
      .transform((s, ctx) => {
        const ms = parseDurationMs(s);
        if (ms === undefined || ms <= 0 || ms > MAX_LOG_OVERRIDE_MS) {
          ctx.addIssue({ code: 'custom', message: 'a duration between 1ms and 24h, e.g. 10m' });
          return z.NEVER;
        }
        return ms;
      })
      .optional(),
  })
  .strict();

export function registerAdminCommands(deps: AdminDeps): void {
  const { commands } = deps;
  commands.register('config.get', NO_ARGS, () => configGet(deps));
  commands.register('config.set', CONFIG_SET_ARGS, (args) => configSet(deps, args));
  commands.register('restart', NO_ARGS, () => {
    const restart = restartOrRefuse(deps);
    setImmediate(() => restart('restart command'));
    return { restart: true };
  });
  commands.register('snapshot', SNAPSHOT_ARGS, (args) => snapshot(deps, args.camera));
  commands.register('diag', NO_ARGS, () => diagReport(deps));
  commands.register('log.level', LOG_LEVEL_ARGS, (args) => deps.logLevel.set(args.level, args.for));
}

function restartOrRefuse(deps: AdminDeps): (reason: string) => void {
  if (!deps.requestRestart) throw new CommandError('not_supported', 'this daemon does not run under a service manager that would start it again');
  return deps.requestRestart;
}

function configGet(deps: AdminDeps) {
  const file = deps.configFile;
  let text: string | null = null;
  if (file) {
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      /* reported as null: the running configuration is still shown */
    }
  }
  return {
    file: file ?? null,
    sha256: text === null ? null : sha256(text),
    writable: file ? writableProblem(file) === null : false,
    document: text === null ? null : redactedDocument(text, deps.config),
    config: redactedConfig(deps.config),
  };
}

/** Why `file` cannot be replaced (rename needs its directory writable), or null. */
function writableProblem(file: string): string | null {
  for (const path of [file, dirname(file)]) {
    try {
      accessSync(path, constants.W_OK);
    } catch (err) {
      return `${path} is not writable by the daemon (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  }
  return null;
}

function configSet(deps: AdminDeps, args: z.output<typeof CONFIG_SET_ARGS>) {
  const file = deps.configFile;
  if (!file) throw new CommandError('not_supported', 'the daemon was not started from a configuration file');
  const restart = restartOrRefuse(deps);
  const files = configFiles(file);
  const readOnly = writableProblem(file);
  if (readOnly) throw new CommandError('config_read_only', readOnly);
  if (existsSync(files.marker)) throw new CommandError('change_in_progress', 'a configuration change is still being tried or reported; try again shortly');
  const current = readFileSync(file, 'utf8');
  if (args.expect_sha256 !== undefined && args.expect_sha256 !== sha256(current)) {
    throw new CommandError('conflict', 'the configuration changed since it was read (expect_sha256 differs): read it again with config.get');
  }
  if (args.yaml.includes(REDACTED)) {
    throw new CommandError('bad_config', `the document still holds ${REDACTED} placeholders: put the secrets back, or in {file: ...} references`);
  }
  let next: Config;
  try {
    next = parseConfig(args.yaml, basename(file));
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const problems = err.problems.slice(0, MAX_PROBLEMS).map(formatProblem);
    const more = err.problems.length > MAX_PROBLEMS ? [`... and ${err.problems.length - MAX_PROBLEMS} more`] : [];
    throw new CommandError('bad_config', [...problems, ...more].join('\n'));
  }
  const { id, site } = deps.config.device;
  if (next.device.id !== id || next.device.site !== site) {
    throw new CommandError('identity_change', `device.id and device.site stay ${site}/${id}: a device is renamed on site, not by command`);
  }
  if (sha256(args.yaml) === sha256(current)) return { sha256: sha256(current), changed: false, restart: false };
  const change = stageConfig(files, args.yaml, deps.clock.wallNow());
  deps.logger.warn({ sha256: change.sha256, previous_sha256: change.previous_sha256 }, 'new configuration written: restarting to apply it');
  setImmediate(() => restart('config.set'));
  return {
    ...change,
    changed: true,
    restart: true,
    previous_file: files.previous,
    confirm_within_s: CONFIRM_WITHIN_MS / 1000,
    next: 'the daemon restarts with the new file; once it runs and reaches the broker it sends system.config_applied, otherwise the previous file is restored and system.config_rolled_back is sent',
  };
}

async function snapshot(deps: AdminDeps, requested: string | undefined) {
  const cameras = deps.config.anpr.cameras;
  if (cameras.length === 0) throw new CommandError('no_camera', 'no camera is configured (anpr.cameras)');
  const id = requested ?? deps.config.pole.snapshot_camera ?? cameras[0]!.id;
  const camera = cameras.find((c) => c.id === id);
  if (!camera) throw new CommandError('unknown_camera', `no camera ${id} (known: ${cameras.map((c) => c.id).join(', ')})`);
  const ref = `snapshot-${deps.clock.wallNow()}-${camera.id}.jpg`;
  let shot;
  try {
    shot = await takeSnapshot(camera, ref, { config: deps.config, clock: deps.clock, logger: deps.logger, dataDir: deps.dataDir });
  } catch (err) {
    throw new CommandError('snapshot_failed', (err as Error).message);
  }
  const event = await deps.emit('camera.snapshot', { camera: camera.id, ref, taken_at: shot.takenAt, image: shot.image });
  return { camera: camera.id, ref, taken_at: shot.takenAt, event_id: event.id };
}

async function diagReport(deps: AdminDeps): Promise<DiagReport & { log: ReturnType<LogLevelOverride['status']> }> {
  let diskFreeBytes: number | null = null;
  try {
    const s = await statfs(deps.dataDir);
    diskFreeBytes = s.bavail * s.bsize;
  } catch {
    /* reported by the check */
  }
  return { ...diagnose(deps.status(), deps.config, { diskFreeBytes }), log: deps.logLevel.status() };
}
