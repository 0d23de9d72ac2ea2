import type { Bias } from './types.js';

/**
 * The command lines of the libgpiod tools and the parsing of what they print, for both
 * generations in the field:
 *
 * - v1 (Debian bookworm, gpiod 1.6.x): the chip is a positional argument, `gpioset` holds a line
 *   with `--mode=signal`, `gpiomon` needs `--line-buffered` to write each event as it happens,
 *   bias values are `as-is|disable|pull-down|pull-up`, and `--format` has `%e` (1 rising,
 *   0 falling), `%s` (seconds) and `%n` (nanoseconds, not zero-padded).
 * - v2 (Debian trixie, gpiod 2.x): `-c/--chip` then line offsets, `gpioset` holds the line until
 *   it exits (and takes `set OFFSET=VALUE` commands on stdin with `--interactive`, a build option),
 *   `gpiomon` flushes after each batch, chooses the timestamp clock with `--event-clock`, bias
 *   values are `pull-down|pull-up|disabled` (as-is is the default: no option), and `--format` has
 *   `%E` (rising/falling) and `%S` (seconds.nanoseconds). `gpiofind` is gone.
 *
 * Lines are always given to the tools as chip + offset (resolved beforehand from `gpiodetect`
 * and `gpioinfo`, whose output formats are the same in both generations except for the line
 * attributes), and active-low is applied by the caller, not by the tools: what a tool prints is
 * then always the level at the pin, whatever the version.
 */

export type ToolsMajor = 1 | 2;

export interface ToolsVersion {
  major: ToolsMajor;
  /** As the tool printed it, e.g. `1.6.3`. */
  version: string;
}

/** `gpiodetect (libgpiod) v1.6.3` → {major 1, version 1.6.3}. Majors above 2 use the v2 syntax. */
export function parseToolsVersion(text: string): ToolsVersion | undefined {
  const m = /\(libgpiod\)\s+v?(\d+)\.(\d+)(?:\.(\d+))?(\S*)/.exec(text) ?? /\bv(\d+)\.(\d+)(?:\.(\d+))?(\S*)/.exec(text);
  if (!m) return undefined;
  const major = Number(m[1]);
  if (major < 1) return undefined;
  return { major: major >= 2 ? 2 : 1, version: `${m[1]}.${m[2]}${m[3] !== undefined ? `.${m[3]}` : ''}${m[4] ?? ''}` };
}

/** Whether this gpioset was built with its interactive mode (libedit): it says so in `--help`. */
export function supportsInteractiveSet(helpText: string): boolean {
  return /--interactive\b/.test(helpText);
}

export interface ChipInfo {
  /** Device name, e.g. `gpiochip0` (the node is /dev/<name>). */
  name: string;
  label: string;
  lines: number;
}

/**
 * `gpiodetect` prints `gpiochip0 [pinctrl-bcm2711] (58 lines)` per chip in both versions. A
 * compatibility symlink (/dev/gpiochip4 → gpiochip0 on the Pi 5) can make v1 list a chip twice
 * under its kernel name, so chips are unique by name.
 */
export function parseGpiodetect(text: string): ChipInfo[] {
  const chips = new Map<string, ChipInfo>();
  for (const raw of text.split('\n')) {
    const m = /^\s*(\S+)\s+\[(.*)\]\s+\((\d+)\s+lines?\)\s*$/.exec(raw);
    if (m && !chips.has(m[1]!)) chips.set(m[1]!, { name: m[1]!, label: m[2]!, lines: Number(m[3]) });
  }
  return [...chips.values()];
}

export interface LineInfo {
  chip: string;
  offset: number;
  /** Undefined for lines the tools print as `unnamed`. */
  name: string | undefined;
  /** Who holds the line (v1 prints the tool's own name, `gpiomon`); undefined while it is free. */
  consumer: string | undefined;
}

/**
 * Line names and holders from `gpioinfo`. Both versions print a `gpiochip0 - 58 lines:` header per
 * chip, then one `line  17:` row per line with the name in double quotes or `unnamed` (v1
 * right-aligns the columns with spaces, v2 separates them with tabs). v1 then prints the consumer
 * in double quotes (or `unused`), v2 a `consumer="..."` attribute when the line is requested. v2
 * given line names prints `gpiochip0 17` rows instead; those are understood too.
 */
export function parseGpioinfo(text: string): LineInfo[] {
  const lines: LineInfo[] = [];
  let chip: string | undefined;
  for (const raw of text.split('\n')) {
    const header = /^(\S+) - \d+ lines:\s*$/.exec(raw);
    if (header) {
      chip = header[1]!;
      continue;
    }
    const row = /^\s+line\s+(\d+):\s+(?:"([^"]*)"|unnamed\b)(.*)$/.exec(raw);
    if (row && chip !== undefined) {
      lines.push({ chip, offset: Number(row[1]), name: row[2], consumer: parseConsumer(row[3]!) });
      continue;
    }
    const found = /^(\S+)\s+(\d+)\s+(?:"([^"]*)"|unnamed\b)(.*)$/.exec(raw);
    if (found) lines.push({ chip: found[1]!, offset: Number(found[2]), name: found[3], consumer: parseConsumer(found[4]!) });
  }
  return lines;
}

/** The holder in what follows a line's name: v2 `consumer="x"` (or unquoted), v1 `"x"`. */
function parseConsumer(rest: string): string | undefined {
  const v2 = /\bconsumer=(?:"([^"]*)"|(\S+))/.exec(rest);
  if (v2) return v2[1] ?? v2[2];
  const v1 = /^\s+"([^"]*)"/.exec(rest);
  return v1?.[1];
}

/** One edge as `gpiomon` printed it with our format. */
export interface RawEdge {
  offset: number;
  rising: boolean;
  /** Kernel timestamp in nanoseconds (CLOCK_MONOTONIC with the options we pass). */
  timestampNs: bigint;
}

/**
 * Parses one event row: v1 `17 1 1234 5678` (offset, 1 rising/0 falling, seconds, nanoseconds)
 * or v2 `17 rising 1234.000005678`. Numeric v2 edges (`%e`: 1 rising, 2 falling) are accepted
 * too. Anything else (a banner, a warning) gives undefined.
 */
export function parseEdgeRow(row: string): RawEdge | undefined {
  const m = /^\s*(\d+)\s+(rising|falling|[012])\s+(\d+)(?:\.(\d{1,9})|\s+(\d{1,9}))\s*$/.exec(row);
  if (!m) return undefined;
  const seconds = BigInt(m[3]!);
  // A fraction after the dot is zero-padded to 9 digits by the tool; the v1 %n field is a plain integer.
  const nanos = m[4] !== undefined ? BigInt(m[4].padEnd(9, '0')) : BigInt(m[5]!);
  return { offset: Number(m[1]), rising: m[2] === 'rising' || m[2] === '1', timestampNs: seconds * 1_000_000_000n + nanos };
}

/**
 * The level `gpioget` read for one line: v1 prints `1`, v2 `"17"=active` (or `17=inactive` with
 * --unquoted, `1` with --numeric). Without --active-low, active means high.
 */
export function parseGetOutput(text: string): boolean | undefined {
  const token = text.trim().split(/\s+/)[0] ?? '';
  if (token === '1' || /=active$/.test(token)) return true;
  if (token === '0' || /=inactive$/.test(token)) return false;
  return undefined;
}

function biasV1(bias: Bias): string[] {
  if (bias === 'as-is') return [];
  return [`--bias=${bias === 'disabled' ? 'disable' : bias}`];
}

function biasV2(bias: Bias): string[] {
  return bias === 'as-is' ? [] : ['--bias', bias];
}

const FORMAT_V1 = '%o %e %s %n';
const FORMAT_V2 = '%o %E %S';

/** `banner`: a v2 gpiomon that has `--banner` (see supportsMonitorBanner) says when it holds the line. */
export function monitorArgs(major: ToolsMajor, chip: string, offset: number, bias: Bias, consumer: string, banner = false): string[] {
  if (major === 1) return ['--line-buffered', `--format=${FORMAT_V1}`, ...biasV1(bias), chip, String(offset)];
  return [
    '--chip',
    chip,
    '--edges',
    'both',
    '--event-clock',
    'monotonic',
    `--format=${FORMAT_V2}`,
    '--consumer',
    consumer,
    ...(banner ? ['--banner'] : []),
    ...biasV2(bias),
    String(offset),
  ];
}

/** Whether this gpiomon prints a banner once its lines are requested: it says so in `--help`. */
export function supportsMonitorBanner(helpText: string): boolean {
  return /--banner\b/.test(helpText);
}

/** v2 gpiomon --banner prints `Monitoring line '17'...` once the line is requested. */
export function isMonitorBanner(row: string): boolean {
  return /^Monitoring lines? /.test(row);
}

export function getArgs(major: ToolsMajor, chip: string, offset: number, bias: Bias, consumer: string): string[] {
  if (major === 1) return [...biasV1(bias), chip, String(offset)];
  return ['--chip', chip, '--consumer', consumer, ...biasV2(bias), String(offset)];
}

/** `gpioset` that drives `level` and keeps the line requested until it is signalled. */
export function holdArgs(major: ToolsMajor, chip: string, offset: number, level: boolean, consumer: string, interactive: boolean): string[] {
  const assignment = `${offset}=${level ? 1 : 0}`;
  if (major === 1) return ['--mode=signal', chip, assignment];
  return ['--chip', chip, '--consumer', consumer, '--banner', ...(interactive ? ['--interactive'] : []), assignment];
}

/** The interactive gpioset command; the line is named as on its command line (the offset). */
export function interactiveSetCommand(offset: number, level: boolean): string {
  return `set ${offset}=${level ? 1 : 0}\n`;
}

/** Interactive gpioset prints this before reading each command (also when stdout is a pipe). */
export const INTERACTIVE_PROMPT = 'gpioset> ';

/** v2 gpioset --banner prints `Setting line '17'...` once the line is requested. */
export function isHoldBanner(row: string): boolean {
  return /^Setting lines? /.test(row);
}

export function gpioinfoArgs(major: ToolsMajor, chip: string | undefined): string[] {
  if (chip === undefined) return [];
  return major === 1 ? [chip] : ['--chip', chip];
}
