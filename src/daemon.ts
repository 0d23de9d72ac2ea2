import { type Config, configWarnings } from './config/schema.js';
import { Controller, type ControllerDeps } from './controller.js';
import { PRIVATE_UMASK } from './core/private-files.js';
import { SystemdSupervision } from './service-supervision.js';

/**
 * Runs the controller until SIGTERM/SIGINT. An unexpected exception stops the process with a
 * non-zero code: systemd restarts it, and everything accepted is already on disk. Under systemd
 * (`Type=notify`) it reports readiness, status and stopping, and feeds the watchdog.
 */
export async function runDaemon(config: Config, deps: ControllerDeps = {}): Promise<Controller> {
  // Whatever the daemon and Node-RED create is private to the daemon's user and group.
  process.umask(PRIVATE_UMASK);
  const controller = new Controller(config, { debugOps: process.env.VIGIA_DEBUG_OPS === '1', ...deps });
  const { logger } = controller;
  for (const w of configWarnings(config)) logger.warn({ path: w.path }, w.message);
  const systemd = await SystemdSupervision.start(process.env, process.pid, logger);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    await systemd?.stopping();
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await controller.stop();
    logger.flush();
    process.exit(0);
  };
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
  try {
    await controller.start();
  } catch (err) {
    logger.fatal({ err }, 'could not start');
    logger.flush();
    process.exit(1);
  }
  await systemd?.ready(
    () => controller.serviceSummary(),
    (listener) => controller.bus.on('link.state', listener, 'systemd'),
  );
  return controller;
}
