import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import type { Timers } from '../../core/timers.js';
import { ChardevGpio, type ChardevOptions, findLibgpiodTools } from './chardev.js';
import { SimGpio } from './sim.js';
import { SysfsGpio, type SysfsPinFactory } from './sysfs.js';
import type { GpioBackend, GpioLogger } from './types.js';

/**
 * Which GPIO backend to use. `auto` takes the character device when the kernel has one and the
 * libgpiod tools are installed (the only interface on trixie and the Pi 5, and the one with
 * kernel edge timestamps and bias), else the legacy sysfs interface, else fails saying what is
 * missing. An explicit choice that is not available fails with the reason.
 */

export type GpioBackendSetting = 'auto' | 'chardev' | 'sysfs' | 'sim';

export interface SelectGpioDeps {
  clock: Clock;
  timers?: Timers;
  logger?: GpioLogger;
  /** Default /dev. */
  devDir?: string;
  /** Default /sys/class/gpio. */
  sysfsRoot?: string;
  /** Where the libgpiod tools are; default PATH. */
  toolsDir?: string;
  /** Substitutes onoff's Gpio for the sysfs backend. */
  sysfsPinFactory?: SysfsPinFactory;
  /** Further chardev settings (backoff, timeouts). */
  chardev?: Partial<Omit<ChardevOptions, 'clock' | 'timers' | 'logger' | 'toolsDir' | 'devDir'>>;
}

export interface SelectedGpioBackend {
  backend: GpioBackend;
  /** Why this one, for the log. */
  reason: string;
}

interface Availability {
  ok: boolean;
  /** What was found, or what is missing. */
  detail: string;
}

function chardevAvailability(devDir: string, toolsDir: string | undefined): Availability {
  let chips: string[] = [];
  try {
    chips = readdirSync(devDir).filter((e) => /^gpiochip\d+$/.test(e));
  } catch {
    /* no such directory: no chips */
  }
  if (chips.length === 0) return { ok: false, detail: `no GPIO character device (${join(devDir, 'gpiochip*')})` };
  const { missing } = findLibgpiodTools(toolsDir);
  if (missing.length > 0) {
    return { ok: false, detail: `libgpiod tools missing (${missing.join(', ')}${toolsDir ? ` in ${toolsDir}` : ''}; install them with: apt install gpiod)` };
  }
  return { ok: true, detail: `${chips.map((c) => join(devDir, c)).join(', ')} with the libgpiod tools` };
}

function sysfsAvailability(sysfsRoot: string): Availability {
  const exportFile = join(sysfsRoot, 'export');
  return existsSync(exportFile) ? { ok: true, detail: exportFile } : { ok: false, detail: `no legacy sysfs GPIO interface (${exportFile})` };
}

export async function selectGpioBackend(setting: GpioBackendSetting, deps: SelectGpioDeps): Promise<SelectedGpioBackend> {
  const devDir = deps.devDir ?? '/dev';
  const sysfsRoot = deps.sysfsRoot ?? '/sys/class/gpio';

  const chardev = async (why: string): Promise<SelectedGpioBackend> => {
    const backend = await ChardevGpio.create({
      ...deps.chardev,
      clock: deps.clock,
      devDir,
      ...(deps.timers ? { timers: deps.timers } : {}),
      ...(deps.logger ? { logger: deps.logger } : {}),
      ...(deps.toolsDir !== undefined ? { toolsDir: deps.toolsDir } : {}),
    });
    return { backend, reason: `${why}: ${chardevAvailability(devDir, deps.toolsDir).detail}, libgpiod v${backend.version.version}` };
  };
  const sysfs = (why: string): SelectedGpioBackend => ({
    backend: new SysfsGpio({
      clock: deps.clock,
      sysfsRoot,
      ...(deps.logger ? { logger: deps.logger } : {}),
      ...(deps.sysfsPinFactory ? { pinFactory: deps.sysfsPinFactory } : {}),
    }),
    reason: `${why}: ${sysfsAvailability(sysfsRoot).detail}`,
  });

  switch (setting) {
    case 'sim':
      return { backend: new SimGpio(deps.clock), reason: 'sim: configured (simulated lines)' };
    case 'chardev': {
      const a = chardevAvailability(devDir, deps.toolsDir);
      if (!a.ok) throw new Error(`GPIO backend chardev is not available: ${a.detail}`);
      return chardev('chardev: configured');
    }
    case 'sysfs': {
      const a = sysfsAvailability(sysfsRoot);
      if (!a.ok) throw new Error(`GPIO backend sysfs is not available: ${a.detail}`);
      return sysfs('sysfs: configured');
    }
    case 'auto': {
      const c = chardevAvailability(devDir, deps.toolsDir);
      const s = sysfsAvailability(sysfsRoot);
      let chardevFailure = c.detail;
      if (c.ok) {
        try {
          return await chardev('chardev: auto');
        } catch (err) {
          chardevFailure = (err as Error).message;
          if (!s.ok) throw new Error(`no GPIO backend available: ${chardevFailure}; ${s.detail}`);
        }
      }
      if (s.ok) return sysfs(`sysfs: auto, chardev unusable (${chardevFailure})`);
      throw new Error(`no GPIO backend available: ${c.detail}; ${s.detail}. Install the libgpiod tools (apt install gpiod), or set hardware.backend to sim`);
    }
  }
}
