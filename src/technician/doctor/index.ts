import { type Config, configWarnings } from '../../config/schema.js';
import { probeTimedatectl } from '../../core/clock-sync.js';
import { CLOCK_HELPER_SOCKET } from '../../features/clock-helper-client.js';
import type { DaemonRequest } from '../daemon-link.js';
import { brokerChecks } from './broker.js';
import { cameraChecks } from './cameras.js';
import { type Check, type DoctorCheck, type DoctorContext, errorText, fail, pass, type StatusView, warn } from './check.js';
import { clockCheck } from './clock.js';
import { gpioChecks } from './gpio.js';
import { gpsCheck } from './gps.js';
import { hotlistCheck } from './hotlist.js';
import { noderedCheck } from './nodered.js';
import { radioCheck } from './radio.js';
import { bluetoothCheck } from './bluetooth.js';
import { storageChecks } from './storage.js';

export type { DoctorCheck } from './check.js';

/**
 * `vigia doctor`: everything a technician checks on a box, as one report. It works with the daemon
 * running (it asks the daemon about what the daemon holds: GPIO lines, cameras, the broker link)
 * and stopped (it opens them itself). The daemon can answer a `diag` command with the same report
 * by calling doctorReport with a DaemonRequest that reaches its own control handlers.
 */
export interface DoctorReport {
  device: string | null;
  site: string | null;
  /** Whether the daemon answered on its control socket; null when the configuration could not be read. */
  daemon: 'running' | 'stopped' | null;
  /** No check failed (warnings do not count). */
  ok: boolean;
  summary: Record<DoctorCheck['status'], number>;
  checks: DoctorCheck[];
}

export interface DoctorOptions {
  /** The running daemon, or null when it is stopped. */
  daemon: DaemonRequest | null;
  /** Default 10 s. */
  timeoutMs?: number;
  procRoot?: string;
  now?: () => number;
  timedatectlSynced?: () => Promise<boolean>;
  gpio?: DoctorContext['gpio'];
  /** Default /run/vigia-clock.sock. */
  clockHelperSocket?: string;
  /** Default: the system bus. */
  dbusAddress?: string;
}

/** In the order a technician works through them: the box, its time, its link, then what is wired to it. */
const CHECKS: readonly { group: string; run: Check }[] = [
  { group: 'storage', run: storageChecks },
  { group: 'clock', run: clockCheck },
  { group: 'broker', run: brokerChecks },
  { group: 'gpio', run: gpioChecks },
  { group: 'cameras', run: cameraChecks },
  { group: 'gps', run: gpsCheck },
  { group: 'radio', run: radioCheck },
  { group: 'bluetooth', run: bluetoothCheck },
  { group: 'hotlist', run: hotlistCheck },
  { group: 'node-red', run: noderedCheck },
];

export async function doctorReport(config: Config, opts: DoctorOptions): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [configCheck(config)];
  let status: StatusView | null = null;
  if (opts.daemon) {
    try {
      status = (await opts.daemon('status')) as StatusView;
      checks.push(pass('daemon', `running, vigia ${status.version}, up ${status.uptime_s} s`));
    } catch (err) {
      checks.push(fail('daemon', `the control socket does not answer: ${errorText(err)}`, 'systemctl restart vigia, then vigia logs says why it hung'));
    }
  } else {
    checks.push(
      warn(
        'daemon',
        'not running: the checks below opened the hardware themselves',
        'systemctl start vigia (or enable --now); vigia logs -n 50 shows why it stopped',
      ),
    );
  }
  const ctx: DoctorContext = {
    config,
    daemon: status ? opts.daemon : null,
    status,
    procRoot: opts.procRoot ?? '/proc',
    timeoutMs: opts.timeoutMs ?? 10_000,
    now: opts.now ?? Date.now,
    timedatectlSynced: opts.timedatectlSynced ?? probeTimedatectl,
    gpio: opts.gpio ?? {},
    clockHelperSocket: opts.clockHelperSocket ?? CLOCK_HELPER_SOCKET,
    ...(opts.dbusAddress ? { dbusAddress: opts.dbusAddress } : {}),
  };
  // A check that throws is a failure of its own, never the end of the report.
  const results = await Promise.all(
    CHECKS.map(({ group, run }) =>
      run(ctx).catch((err: unknown) => [fail(group, `the check itself failed: ${errorText(err)}`, 'report this with the output of vigia doctor --json')]),
    ),
  );
  return summarise(config, opts.daemon ? 'running' : 'stopped', [...checks, ...results.flat()]);
}

/** The report when the configuration itself cannot be read: nothing else can be checked. */
export function configFailureReport(problems: readonly string[]): DoctorReport {
  return summarise(null, null, [
    fail('config', problems.join('\n'), 'correct the file (vigia config check FILE lists every problem), then run the doctor again'),
  ]);
}

function configCheck(config: Config): DoctorCheck {
  const what = `device ${config.device.site}/${config.device.id}, profile ${config.device.profile}`;
  const warnings = configWarnings(config);
  if (warnings.length > 0) return warn('config', `${what}; ${warnings.map((w) => `${w.path}: ${w.message}`).join('; ')}`, 'see the README, Configuration');
  return pass('config', what);
}

function summarise(config: Config | null, daemon: DoctorReport['daemon'], checks: DoctorCheck[]): DoctorReport {
  const summary = { pass: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  return { device: config?.device.id ?? null, site: config?.device.site ?? null, daemon, ok: summary.fail === 0, summary, checks };
}
