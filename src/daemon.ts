import { ConfigError, loadConfig } from './config/index.js';
import { type Config, configWarnings } from './config/schema.js';
import { CONFIRM_WITHIN_MS, ConfigTrial, EXIT_RESTART } from './config-trial.js';
import { Controller, type ControllerDeps } from './controller.js';
import { PRIVATE_UMASK } from './core/private-files.js';
import { SystemdSupervision } from './service-supervision.js';

/**
 * `vigia run -c FILE`: the daemon from its configuration file. A file on trial after `config.set`
 * that does not load goes back to the previous one here, before anything starts.
 */
export async function runDaemonFromFile(file: string, onConfigError: (err: ConfigError) => never, deps: ControllerDeps = {}): Promise<Controller> {
  const trial = ConfigTrial.begin(file);
  const load = (): Config | ConfigError => {
    try {
      return loadConfig(file);
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
  };
  let loaded = load();
  if (loaded instanceof ConfigError && trial.active) {
    trial.rollback('start_failed', loaded.message);
    loaded = load();
  }
  if (loaded instanceof ConfigError) return onConfigError(loaded);
  return runDaemon(loaded, { ...deps, configFile: file }, trial);
}

/**
 * Runs the controller until SIGTERM/SIGINT. An unexpected exception stops the process with a
 * non-zero code: systemd restarts it, and everything accepted is already on disk. `restart` and
 * `config.set` stop it cleanly with EXIT_RESTART for the same reason. Under systemd
 * (`Type=notify`) it reports readiness, status and stopping, and feeds the watchdog.
 */
export async function runDaemon(config: Config, deps: ControllerDeps = {}, trial?: ConfigTrial): Promise<Controller> {
  // Whatever the daemon and Node-RED create is private to the daemon's user and group.
  process.umask(PRIVATE_UMASK);
  let stopping = false;
  const controller = new Controller(config, {
    debugOps: process.env.VIGIA_DEBUG_OPS === '1',
    ...deps,
    requestRestart: deps.configFile ? (reason) => void shutdown(reason, EXIT_RESTART) : undefined,
  });
  const { logger } = controller;
  for (const w of configWarnings(config)) logger.warn({ path: w.path }, w.message);
  for (const note of trial?.notes ?? []) logger.warn({ file: deps.configFile }, note);
  // Under systemd (`Type=notify`): readiness, status, stopping, and the watchdog fed from this loop.
  const systemd = await SystemdSupervision.start(process.env, process.pid, logger);
  async function shutdown(reason: string, code = 0) {
    if (stopping) return;
    stopping = true;
    logger.info({ reason, exit_code: code }, 'shutting down');
    await systemd?.stopping();
    const force = setTimeout(() => process.exit(code || 1), 10_000);
    force.unref();
    await controller.stop();
    logger.flush();
    process.exit(code);
  }
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    logger.flush();
    process.exit(70);
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    logger.flush();
    process.exit(70);
  });
  // A new configuration that hangs at start, or never reaches the broker, is rolled back too.
  const deadline = trial?.active
    ? setTimeout(() => {
        trial.rollback('not_up', `not started and connected to the broker within ${CONFIRM_WITHIN_MS / 1000} s`);
        logger.error({ file: deps.configFile }, 'new configuration did not come up: previous one restored, restarting');
        void shutdown('config rollback', EXIT_RESTART);
      }, CONFIRM_WITHIN_MS)
    : undefined;
  try {
    await controller.start();
  } catch (err) {
    logger.fatal({ err }, 'could not start');
    if (trial?.active) {
      trial.rollback('start_failed', (err as Error).message);
      logger.error({ file: deps.configFile }, 'new configuration could not start: previous one restored, restarting');
      logger.flush();
      process.exit(EXIT_RESTART);
    }
    logger.flush();
    process.exit(1);
  }
  await systemd?.ready(
    () => controller.serviceSummary(),
    (listener) => controller.bus.on('link.state', listener, 'systemd'),
  );
  if (trial) void settleConfigChange(controller, trial, deadline);
  return controller;
}

/** After the start: confirm a configuration on trial once the link is up, and report a rollback. */
async function settleConfigChange(controller: Controller, trial: ConfigTrial, deadline: NodeJS.Timeout | undefined): Promise<void> {
  const { logger } = controller;
  const rolledBack = trial.toReport;
  if (rolledBack) {
    try {
      await controller.emit('system.config_rolled_back', {
        reason: rolledBack.reason,
        error: rolledBack.error,
        rejected_sha256: rolledBack.sha256,
        restored_sha256: rolledBack.previous_sha256,
        requested_at: rolledBack.requested_at,
      });
      trial.reported();
    } catch (err) {
      logger.error({ err }, 'could not report the configuration rollback');
    }
  }
  if (!trial.active) return;
  const confirm = () => {
    if (!trial.active) return;
    clearTimeout(deadline);
    const change = trial.confirm();
    logger.info({ sha256: change.sha256 }, 'new configuration confirmed');
    void controller.emit('system.config_applied', change).catch((err) => logger.error({ err }, 'could not report the applied configuration'));
  };
  if (controller.status().link.state === 'online') return confirm();
  const off = controller.bus.on(
    'link.state',
    (state) => {
      if (state !== 'online') return;
      off();
      confirm();
    },
    'config-trial',
  );
}
