import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SysfsPin, SysfsPinFactory } from '../../src/drivers/gpio/sysfs.js';

/**
 * Stand-ins for GPIO hardware: shell scripts in place of the libgpiod tools (each records its
 * arguments and pid in its directory and prints what a test scripted), sysfs trees with the
 * chip layouts of real Raspberry Pis, and a fake of onoff's Gpio that behaves as the kernel does
 * with active_low.
 */

export interface FakeToolsSpec {
  /** Printed by `--version`, e.g. 1.6.3 or 2.1.3. */
  version: string;
  gpiodetect: string;
  gpioinfo: string;
  /** Printed by `gpioset --help`. */
  gpiosetHelp?: string;
  /** Printed by `gpiomon --help`. */
  gpiomonHelp?: string;
  /** Shell script bodies run after the common prelude (which sets D to the tools directory). */
  gpioget?: string;
  gpioset?: string;
  gpiomon?: string;
}

const TOOLS = ['gpiodetect', 'gpioinfo', 'gpioget', 'gpioset', 'gpiomon'] as const;

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Records the line a tool's arguments name as held by this process, as the kernel would once the
 * tool requested it: `gpioinfo` shows the holder while the process lives. v1 tools are shown by
 * their own name, v2 by their `--consumer`.
 */
const HOLD_FUNCTION = (tool: string, major: number) =>
  [
    'hold() {',
    `  chip=; off=; cons=${tool}; prev=`,
    '  for a in "$@"; do',
    `    case "$prev" in --chip) chip=$a; prev=; continue;; --consumer) [ ${major} -ge 2 ] && cons=$a; prev=; continue;; esac`,
    '    case "$a" in --chip|--consumer) prev=$a; continue;; -*) continue;; esac',
    '    if [ -z "$chip" ]; then chip=$a; else off=${a%%=*}; fi',
    '  done',
    '  mkdir -p "$D/held" && echo "$$ $cons" > "$D/held/$chip.$off"',
    '}',
  ].join('\n');

/**
 * `gpioinfo`: the scripted listing, with the lines that live fake tools hold shown as the kernel
 * shows them (v1: the consumer in quotes and `[used]`; v2: `consumer="..."`).
 */
const GPIOINFO_BODY = (major: number) =>
  [
    'for f in "$D"/held/*; do',
    '  [ -e "$f" ] || continue',
    '  read -r pid cons < "$f"',
    '  kill -0 "$pid" 2>/dev/null && echo "${f##*/} $cons"',
    'done > "$D/held.now.$$"',
    `awk -v major=${major} -v q='"' '`,
    '  FILENAME == ARGV[1] { held[$1] = $2; next }',
    '  /^[^ \t].* - [0-9]+ lines:/ { chip = $1; print; next }',
    '  match($0, /line +[0-9]+:/) {',
    '    key = chip "." (substr($0, RSTART + 5, RLENGTH - 6) + 0)',
    '    if (key in held) {',
    '      if (major == 1) { row = $0; sub(/unused/, q held[key] q, row); print row " [used]" }',
    '      else print $0 " consumer=" q held[key] q',
    '      next',
    '    }',
    '  }',
    '  { print }',
    `' "$D/held.now.$$" "$D/gpioinfo.out"`,
    'rm -f "$D/held.now.$$"',
  ].join('\n');

/**
 * Writes the five tools into `dir`. Every run appends its arguments to `<tool>.args`, its pid to
 * `<tool>.pid` and bumps `<tool>.runs` (the script sees the run number as $RUN). Long-running
 * tools call `hold "$@"` once they would hold their line (the default bodies do, then sleep).
 */
export function writeFakeTools(dir: string, spec: FakeToolsSpec): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'gpiodetect.out'), spec.gpiodetect);
  writeFileSync(join(dir, 'gpioinfo.out'), spec.gpioinfo);
  writeFileSync(join(dir, 'gpioset.help'), spec.gpiosetHelp ?? 'Usage: gpioset [OPTIONS] <chip name/number> <offset1>=<value1> ...\n');
  writeFileSync(join(dir, 'gpiomon.help'), spec.gpiomonHelp ?? 'Usage: gpiomon [OPTIONS] <chip name/number> <offset 1> <offset 2> ...\n');
  const major = Number.parseInt(spec.version, 10);
  const bodies: Record<(typeof TOOLS)[number], string> = {
    gpiodetect: 'cat "$D/gpiodetect.out"',
    gpioinfo: GPIOINFO_BODY(major),
    gpioget: spec.gpioget ?? 'echo 0',
    gpioset: spec.gpioset ?? 'hold "$@"\nexec sleep 60',
    gpiomon: spec.gpiomon ?? 'hold "$@"\nexec sleep 60',
  };
  for (const tool of TOOLS) {
    const script = [
      '#!/bin/sh',
      `D=${shellQuote(dir)}`,
      `case "$1" in --version) echo "${tool} (libgpiod) v${spec.version}"; exit 0;; --help) cat "$D/${tool}.help" 2>/dev/null; exit 0;; esac`,
      `RUN=$(( $(cat "$D/${tool}.runs" 2>/dev/null || echo 0) + 1 ))`,
      `echo "$RUN" > "$D/${tool}.runs"`,
      `echo "$*" >> "$D/${tool}.args"`,
      `echo "$$" >> "$D/${tool}.pid"`,
      HOLD_FUNCTION(tool, major),
      bodies[tool],
      '',
    ].join('\n');
    const file = join(dir, tool);
    writeFileSync(file, script);
    chmodSync(file, 0o755);
  }
}

/** Lines a fake tool wrote to `<dir>/<name>`, or [] if none. */
export function readLines(dir: string, name: string): string[] {
  try {
    const lines = readFileSync(join(dir, name), 'utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    return lines;
  } catch {
    return [];
  }
}

/** The pid of the live fake tool holding a line (see `hold`), if any. */
export function holderPid(dir: string, chip: string, offset: number): number | undefined {
  const [pid] = readLines(dir, join('held', `${chip}.${offset}`))[0]?.split(' ') ?? [];
  return pid !== undefined && isAlive(Number(pid)) ? Number(pid) : undefined;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `check` holds; fails the test with `what` after `timeoutMs`. */
export async function waitUntil(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface SysfsChipSpec {
  base: number;
  label: string;
  ngpio: number;
  /** The chip's character device, listed in its device directory. */
  chardev?: string;
}

/** Raspberry Pi 4 on kernel 6.6+: sysfs numbers start at 512. */
export const PI4_KERNEL_6_6: SysfsChipSpec[] = [
  { base: 512, label: 'pinctrl-bcm2711', ngpio: 58, chardev: 'gpiochip0' },
  { base: 570, label: 'raspberrypi-exp-gpio', ngpio: 8, chardev: 'gpiochip1' },
];

/** Raspberry Pi 4 on older kernels: the SoC at 0, the expander allocated downwards from 512. */
export const PI4_KERNEL_5_15: SysfsChipSpec[] = [
  { base: 0, label: 'pinctrl-bcm2711', ngpio: 58 },
  { base: 504, label: 'raspberrypi-exp-gpio', ngpio: 8 },
];

/** Raspberry Pi 5, bookworm kernel 6.6 (as /sys/kernel/debug/gpio shows it): the header is on RP1, base 571. */
export const PI5_KERNEL_6_6: SysfsChipSpec[] = [
  { base: 512, label: 'gpio-brcmstb@107d508500', ngpio: 32, chardev: 'gpiochip0' },
  { base: 544, label: 'gpio-brcmstb@107d508520', ngpio: 4, chardev: 'gpiochip1' },
  { base: 548, label: 'gpio-brcmstb@107d517c00', ngpio: 17, chardev: 'gpiochip2' },
  { base: 565, label: 'gpio-brcmstb@107d517c20', ngpio: 6, chardev: 'gpiochip3' },
  { base: 571, label: 'pinctrl-rp1', ngpio: 54, chardev: 'gpiochip4' },
];

/** Writes /sys/class/gpio as the kernel lays it out: export, unexport, gpiochip<base>/{base,label,ngpio}. */
export function writeSysfsTree(root: string, chips: SysfsChipSpec[]): void {
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'export'), '');
  writeFileSync(join(root, 'unexport'), '');
  for (const chip of chips) {
    const dir = join(root, `gpiochip${chip.base}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'base'), `${chip.base}\n`);
    writeFileSync(join(dir, 'label'), `${chip.label}\n`);
    writeFileSync(join(dir, 'ngpio'), `${chip.ngpio}\n`);
    if (chip.chardev) mkdirSync(join(dir, 'device', chip.chardev), { recursive: true });
  }
}

type Bit = 0 | 1;

/** onoff's Gpio as the kernel behaves under it: values are logical (active_low applied), `high`/`low` set the raw level. */
export class FakeSysfsPin implements SysfsPin {
  /** Voltage level at the pin. */
  level: Bit;
  exported = true;
  readonly writes: Bit[] = [];
  #watchers: Array<(err: Error | null | undefined, value: Bit) => void> = [];

  constructor(
    readonly gpio: number,
    readonly direction: 'in' | 'high' | 'low',
    readonly edge: 'none' | 'both',
    readonly activeLow: boolean,
  ) {
    this.level = direction === 'high' ? 1 : 0;
  }

  get watching(): number {
    return this.#watchers.length;
  }

  #logical(): Bit {
    return (this.level ^ (this.activeLow ? 1 : 0)) as Bit;
  }

  /** Drives the pin from outside (a button, a sensor); watchers see the logical value. */
  drive(level: Bit): void {
    if (level === this.level) return;
    this.level = level;
    for (const w of this.#watchers) w(null, this.#logical());
  }

  async read(): Promise<Bit> {
    return this.#logical();
  }

  async write(value: Bit): Promise<void> {
    this.writes.push(value);
    this.level = (value ^ (this.activeLow ? 1 : 0)) as Bit;
  }

  watch(callback: (err: Error | null | undefined, value: Bit) => void): void {
    this.#watchers.push(callback);
  }

  unwatchAll(): void {
    this.#watchers = [];
  }

  unexport(): void {
    this.exported = false;
  }
}

export function fakePinFactory(): { factory: SysfsPinFactory; pins: FakeSysfsPin[] } {
  const pins: FakeSysfsPin[] = [];
  const factory: SysfsPinFactory = (gpio, direction, edge, options) => {
    const pin = new FakeSysfsPin(gpio, direction, edge, options.activeLow);
    pins.push(pin);
    return pin;
  };
  return { factory, pins };
}

/** Records what a backend logs. */
export function logRecorder() {
  const entries: Array<{ level: 'warn' | 'info'; obj: object; msg: string }> = [];
  return {
    entries,
    logger: {
      warn: (obj: object, msg: string) => entries.push({ level: 'warn', obj, msg }),
      info: (obj: object, msg: string) => entries.push({ level: 'info', obj, msg }),
    },
  };
}
