import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { realpathSync } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import type { Clock } from '../../core/clock.js';
import { type Timers, systemTimers } from '../../core/timers.js';
import {
  type ChipInfo,
  INTERACTIVE_PROMPT,
  type LineInfo,
  type RawEdge,
  type ToolsMajor,
  type ToolsVersion,
  getArgs,
  gpioinfoArgs,
  holdArgs,
  interactiveSetCommand,
  isHoldBanner,
  isMonitorBanner,
  monitorArgs,
  parseEdgeRow,
  parseGetOutput,
  parseGpiodetect,
  parseGpioinfo,
  parseToolsVersion,
  supportsInteractiveSet,
  supportsMonitorBanner,
} from './libgpiod-cli.js';
import type { BackoffOptions } from '../../core/backoff.js';
import { type ProcessFailure, SupervisedProcess } from './supervisor.js';
import {
  type EdgeEvent,
  type GpioBackend,
  GpioLineError,
  type GpioLogger,
  type InputLine,
  type InputOptions,
  type LineRef,
  type OutputLine,
  type OutputOptions,
  describeRef,
} from './types.js';
import { isExecutable } from '../../core/executable.js';

/**
 * GPIO through the Linux character device (/dev/gpiochipN), driving the libgpiod command-line
 * tools as supervised child processes.
 *
 * Why the tools and not a native binding: no maintained Node binding builds against both
 * libgpiod 1.x (Raspberry Pi OS bookworm) and 2.x (trixie), whose C APIs are incompatible, while
 * the tools ship in the `gpiod` package of both releases and their command lines differ in a
 * handful of well-known ways (see libgpiod-cli.ts). A tool that dies takes down one line, not the
 * daemon, and is restarted with backoff.
 *
 * - Names: resolved from `gpioinfo`'s listing of every chip, so a name found on two chips (the
 *   Pi 5 has some) is an error, not the silent first match of v1's `gpiofind` (gone in v2).
 * - Inputs: one `gpiomon` per input line, not one per chip: a line is requested once, with its
 *   own bias (v1 applies one bias to every offset of a call), lines come and go independently,
 *   and a crash or restart interrupts only that line. A pole has a handful of inputs, so a handful
 *   of small processes. Edge timestamps are the kernel's (CLOCK_MONOTONIC), converted to the
 *   Clock's time base.
 * - `read()`: the kernel grants a line to one requester, so `gpioget` cannot read a line that our
 *   `gpiomon` holds (EBUSY). The level is read with `gpioget` before the monitor starts (and
 *   again before each restart, emitting the edge missed meanwhile), then followed edge by edge.
 * - An input is open once its `gpiomon` holds the line, not once it is spawned: v2 says so with
 *   `--banner` (when its build has it), otherwise `gpioinfo` is polled until the line shows the
 *   monitor as its consumer. A change between the `gpioget` and that moment cannot be read (the
 *   tools expose no value of a held line); the edge that follows it then runs against the known
 *   level, and the missed edge is reported first, stamped when monitoring began.
 * - Outputs: a long-running `gpioset` holds the value (v1 `--mode=signal`, v2 by default), and is
 *   taken as holding it once v2 prints its banner, or once `gpioinfo` shows v1's as the consumer. A new
 *   value is a `set` command on stdin for a v2 gpioset built with `--interactive` (its stdin stays
 *   open: at end of input it would spin), otherwise the process is replaced. `close()` releases
 *   the line without driving it again: Raspberry Pi OS kernels keep a released output at its level
 *   (unless config.txt has `dtparam=strict_gpiod`), but nothing holds it then.
 * - active_low is applied here, not with the tools' `--active-low`: what the tools print and set
 *   is then the level at the pin in every version.
 * - The tools are children of the daemon: when the daemon is stopped by systemd, its default
 *   KillMode (control-group) ends them too, so no orphan keeps holding a line.
 * - v1 tools cannot set the consumer name: lines show `gpiomon`/`gpioset` in `gpioinfo`.
 */

export const LIBGPIOD_TOOLS = ['gpiodetect', 'gpioinfo', 'gpioget', 'gpioset', 'gpiomon'] as const;
export type LibgpiodTool = (typeof LIBGPIOD_TOOLS)[number];
export type ToolPaths = Record<LibgpiodTool, string>;

const FALLBACK_TOOL_DIRS = ['/usr/bin', '/usr/local/bin', '/bin'];

/** Where each libgpiod tool is: in `toolsDir` when given, else on PATH. */
export function findLibgpiodTools(toolsDir?: string): { paths: Partial<ToolPaths>; missing: LibgpiodTool[] } {
  const dirs = toolsDir !== undefined ? [toolsDir] : [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...FALLBACK_TOOL_DIRS];
  const paths: Partial<ToolPaths> = {};
  const missing: LibgpiodTool[] = [];
  for (const tool of LIBGPIOD_TOOLS) {
    const found = dirs.map((d) => join(d, tool)).find(isExecutable);
    if (found) paths[tool] = found;
    else missing.push(tool);
  }
  return { paths, missing };
}

/**
 * A kernel edge timestamp (CLOCK_MONOTONIC ns) in the Clock's time base: the Clock's now minus
 * the event's age. A timestamp from another clock (REALTIME, as kernels before 5.7 stamped v1
 * events) shows as an absurd age; the reception time is used then.
 */
export function kernelTimestampToMono(eventNs: bigint, nowNs: bigint, monoNowMs: number, maxAgeMs: number): { monoMs: number; trusted: boolean } {
  const ageMs = Number(nowNs - eventNs) / 1e6;
  if (ageMs < -1 || ageMs > maxAgeMs) return { monoMs: monoNowMs, trusted: false };
  return { monoMs: monoNowMs - Math.max(0, ageMs), trusted: true };
}

export interface ChardevOptions {
  clock: Clock;
  timers?: Timers;
  logger?: GpioLogger;
  /** Directory holding the libgpiod tools; default: PATH. */
  toolsDir?: string;
  /** Where chip device nodes are, to follow symlinks such as the Pi 5's /dev/gpiochip4. */
  devDir?: string;
  /** CLOCK_MONOTONIC now in ns, the clock of the kernel's edge timestamps. */
  hrtimeNs?: () => bigint;
  backoff?: BackoffOptions;
  random?: () => number;
  /** SIGTERM, then SIGKILL after this long. */
  killGraceMs?: number;
  /** One-shot tools (gpiodetect, gpioinfo, gpioget) running longer are killed. */
  commandTimeoutMs?: number;
  /** How long a gpioset may take to confirm a start or an interactive command. */
  ackTimeoutMs?: number;
  /** Edge timestamps older than this, or in the future, are taken as from another clock. */
  maxEventAgeMs?: number;
  /** How often `gpioinfo` is asked whether a tool that cannot say so itself holds its line yet. */
  holdPollMs?: number;
}

interface ResolvedLine {
  chip: ChipInfo;
  offset: number;
  name: string | undefined;
}

/** What a line needs from its backend. */
interface LineContext {
  readonly tools: ToolPaths;
  readonly major: ToolsMajor;
  readonly interactiveSet: boolean;
  /** gpiomon has `--banner` (v2): it says when it holds its line. */
  readonly monitorBanner: boolean;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly logger: GpioLogger | undefined;
  readonly hrtimeNs: () => bigint;
  readonly maxEventAgeMs: number;
  readonly ackTimeoutMs: number;
  readonly holdPollMs: number;
  run(tool: LibgpiodTool, args: string[]): Promise<string>;
  /** The consumer holding a line now, from a fresh `gpioinfo` of its chip; undefined when free. */
  holder(line: ResolvedLine): Promise<string | undefined>;
  supervise(label: string, tool: LibgpiodTool, args: () => string[], beforeRestart?: () => Promise<void>): SupervisedProcess;
}

function lineId(line: ResolvedLine): string {
  return `${line.chip.label}:${line.offset}${line.name ? ` (${line.name})` : ''}`;
}

/**
 * Polls `gpioinfo` until `consumer` holds the line, for about ackTimeoutMs; gives up sooner when
 * `stillWanted()` turns false (that run ended). A failed gpioinfo is retried: the tool can be
 * slow on a busy box.
 */
async function pollHolder(ctx: LineContext, line: ResolvedLine, consumer: string, stillWanted: () => boolean): Promise<boolean> {
  // A tool holds its line within milliseconds of starting: ask often at first, then less.
  for (let waited = 0, pause = 2; waited < ctx.ackTimeoutMs && stillWanted(); waited += pause, pause = Math.min(pause * 2, ctx.holdPollMs)) {
    const holder = await ctx.holder(line).catch(() => undefined);
    if (holder === consumer) return true;
    if (!stillWanted()) break;
    await new Promise<void>((resolve) => ctx.timers.setTimeout(resolve, pause));
  }
  return false;
}

/** One run of an input's gpiomon: whether it holds the line yet, when it started (0: none running), edges it reported. */
function monitorRun(startedMono: number) {
  return { held: false, startedMono, edges: 0 };
}

type Wait = 'ok' | 'down' | 'timeout';

/** Callers waiting on a line's process, their conditions checked again at each wake(). */
class Waiters {
  readonly #checks = new Set<() => void>();

  constructor(private readonly timers: Timers) {}

  wake(): void {
    for (const check of [...this.#checks]) check();
  }

  /** Resolves once `done()` holds, or `down()` does, or the time is up. */
  waitFor(done: () => boolean, down: () => boolean, timeoutMs: number): Promise<Wait> {
    return new Promise((resolve) => {
      const finish = (result: Wait) => {
        this.#checks.delete(check);
        this.timers.clearTimeout(timer);
        resolve(result);
      };
      const check = () => {
        if (done()) finish('ok');
        else if (down()) finish('down');
      };
      const timer = this.timers.setTimeout(() => finish('timeout'), timeoutMs);
      this.#checks.add(check);
      check();
    });
  }
}

/** Promises in flight, forgotten as they settle. */
class Polls {
  readonly #pending = new Set<Promise<unknown>>();

  add(promise: Promise<unknown>): void {
    this.#pending.add(promise);
    const forget = () => this.#pending.delete(promise);
    promise.then(forget, forget);
  }

  async settled(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }
}

function failureError(f: ProcessFailure): GpioLineError {
  return new GpioLineError(`${f.error.message}; restart ${f.attempt} in ${f.restartInMs} ms`);
}

class ChardevInput extends EventEmitter<{ edge: [EdgeEvent]; error: [Error] }> implements InputLine {
  readonly id: string;
  /** Level at the pin: read before the monitor starts, then followed edge by edge. */
  #level: boolean | undefined;
  #warnedClock = false;
  readonly #monitor: SupervisedProcess;
  /** The current run of the monitor: whether it holds the line yet, when it started, edges seen. */
  #run = monitorRun(0);
  #closed = false;
  readonly #waiters: Waiters;
  /**
   * Edges that came while open() was still waiting are delivered just after it returns, so that
   * a caller who attaches its listener right after the await gets them, in order.
   */
  #heldBack: RawEdge[] | undefined = [];
  /** gpioinfo polls in progress: close() waits for them, so that no tool outlives the line. */
  readonly #polls = new Polls();

  constructor(
    private readonly ctx: LineContext,
    private readonly line: ResolvedLine,
    private readonly opts: InputOptions,
    private readonly onClose: () => void,
  ) {
    super();
    this.id = lineId(line);
    this.#waiters = new Waiters(ctx.timers);
    const args = monitorArgs(ctx.major, line.chip.name, line.offset, opts.bias, opts.consumer, ctx.monitorBanner);
    this.#monitor = ctx.supervise(
      `gpiomon ${this.id}`,
      'gpiomon',
      () => args,
      () => this.#resync(),
    );
    this.#monitor.on('started', () => this.#onStarted());
    this.#monitor.on('line', (row) => this.#onRow(row));
    this.#monitor.on('failure', (f) => {
      this.#run = monitorRun(0);
      this.#waiters.wake();
      const error = failureError(f);
      ctx.logger?.warn({ line: this.id, attempt: f.attempt, restartInMs: f.restartInMs, err: f.error.message }, 'GPIO input monitor stopped; restarting');
      if (this.listenerCount('error') > 0) this.emit('error', error);
    });
  }

  /** Resolves once the monitor holds the line: from then on no change goes unseen. */
  async open(): Promise<void> {
    try {
      this.#level = await this.#readLevel();
    } catch (err) {
      this.ctx.logger?.warn({ line: this.id, err: (err as Error).message }, 'GPIO input: initial read failed');
    }
    this.#monitor.start();
    const down = () => this.#closed || (!this.#monitor.running && this.#monitor.lastFailure !== undefined);
    const result = await this.#waiters.waitFor(() => this.#run.held, down, this.ctx.ackTimeoutMs);
    if (result === 'timeout') {
      this.ctx.logger?.warn(
        { line: this.id, waitedMs: this.ctx.ackTimeoutMs },
        'GPIO input: monitor not yet seen holding the line; edges may be missed until it does',
      );
    }
    setImmediate(() => {
      const heldBack = this.#heldBack ?? [];
      this.#heldBack = undefined;
      for (const edge of heldBack) this.#deliver(edge);
    });
  }

  async read(): Promise<boolean> {
    if (this.#monitor.running) {
      if (this.#level === undefined) throw new GpioLineError(`${this.id}: value not known yet (no edge since the monitor started)`);
      return this.#logical(this.#level);
    }
    // Between a monitor's failure and its restart the line is free: read it, and report a change.
    this.#observe(await this.#readLevel());
    return this.#logical(this.#level!);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#run = monitorRun(0);
    this.#waiters.wake();
    await this.#monitor.stop();
    await this.#polls.settled();
    this.onClose();
  }

  #logical(level: boolean): boolean {
    return level !== this.opts.activeLow;
  }

  async #readLevel(): Promise<boolean> {
    const out = await this.ctx.run('gpioget', getArgs(this.ctx.major, this.line.chip.name, this.line.offset, this.opts.bias, this.opts.consumer));
    const level = parseGetOutput(out);
    if (level === undefined) throw new GpioLineError(`${this.id}: unexpected gpioget output ${JSON.stringify(out.trim())}`);
    return level;
  }

  /** Before a restart: read the line while it is free, and report a change missed while down. */
  async #resync(): Promise<void> {
    try {
      this.#observe(await this.#readLevel());
    } catch {
      /* the monitor is restarted anyway; its next edge brings the level */
    }
  }

  /** A level read by gpioget: a change since the last known level is an edge seen late, stamped now. */
  #observe(level: boolean): void {
    const previous = this.#level;
    this.#level = level;
    if (previous !== undefined && previous !== level) this.emit('edge', { value: this.#logical(level), monoMs: this.ctx.clock.monoNow() });
  }

  #onStarted(): void {
    const run = monitorRun(this.ctx.clock.monoNow());
    this.#run = run;
    if (this.ctx.monitorBanner) return; // its banner says when it holds the line
    // Tools without a banner: v1's consumer is always its own name.
    const consumer = this.ctx.major === 1 ? 'gpiomon' : this.opts.consumer;
    const poll = pollHolder(this.ctx, this.line, consumer, () => this.#run === run && !run.held).then((held) => {
      if (held && this.#run === run) this.#setHeld(run);
    });
    this.#polls.add(poll);
  }

  #setHeld(run: { held: boolean }): void {
    run.held = true;
    this.#waiters.wake();
  }

  #onRow(row: string): void {
    if (isMonitorBanner(row)) {
      this.#setHeld(this.#run);
      return;
    }
    const edge = parseEdgeRow(row);
    if (!edge || edge.offset !== this.line.offset) return;
    if (!this.#run.held) this.#setHeld(this.#run); // an edge proves it
    if (this.#heldBack) this.#heldBack.push(edge);
    else this.#deliver(edge);
  }

  #deliver(edge: RawEdge): void {
    const { monoMs, trusted } = kernelTimestampToMono(edge.timestampNs, this.ctx.hrtimeNs(), this.ctx.clock.monoNow(), this.ctx.maxEventAgeMs);
    if (!trusted && !this.#warnedClock) {
      this.#warnedClock = true;
      this.ctx.logger?.warn({ line: this.id }, 'GPIO edge timestamps are not CLOCK_MONOTONIC; using the time of reception');
    }
    const run = this.#run;
    if (this.#level === edge.rising) {
      // The opposite change went unseen: made before this monitor held the line, or a pulse too
      // short for the kernel to read its level. Report it first, so that no press is lost.
      const missedAt = run.edges === 0 && run.startedMono > 0 ? Math.min(run.startedMono, monoMs) : monoMs;
      this.emit('edge', { value: this.#logical(!edge.rising), monoMs: missedAt });
    }
    run.edges++;
    this.#level = edge.rising;
    this.emit('edge', { value: this.#logical(edge.rising), monoMs });
  }
}

/** How long to wait for an interactive gpioset's first prompt once its banner is out. */
const PROMPT_GRACE_MS = 250;

/** What one run of gpioset has shown so far: seen holding the line by gpioinfo (v1), banner printed (v2), prompts printed (interactive). */
function freshRun() {
  return { held: false, banner: false, prompts: 0, carry: '' };
}

/** An output held by a process that can fail: each failure is also an `error` event. */
export interface ChardevOutputLine extends OutputLine, Pick<EventEmitter<{ error: [Error] }>, 'on' | 'off' | 'once'> {}

class ChardevOutput extends EventEmitter<{ error: [Error] }> implements ChardevOutputLine {
  readonly id: string;
  #value: boolean;
  #queue: Promise<void> = Promise.resolve();
  readonly #holder: SupervisedProcess;
  #run = freshRun();
  /** Learnt from the first prompt seen: this gpioset prints its prompt on a pipe. */
  #printsPrompts = false;
  #closed = false;
  readonly #waiters: Waiters;
  /** gpioinfo polls in progress: close() waits for them, so that no tool outlives the line. */
  readonly #polls = new Polls();

  constructor(
    private readonly ctx: LineContext,
    private readonly line: ResolvedLine,
    private readonly opts: OutputOptions,
    private readonly onClose: () => void,
  ) {
    super();
    this.id = lineId(line);
    this.#waiters = new Waiters(ctx.timers);
    this.#value = opts.initial;
    const args = () => holdArgs(ctx.major, line.chip.name, line.offset, this.#level(), opts.consumer, ctx.interactiveSet);
    this.#holder = ctx.supervise(`gpioset ${this.id}`, 'gpioset', args);
    this.#holder.on('started', () => {
      const run = freshRun();
      this.#run = run;
      if (ctx.major !== 1) return; // v2 prints its banner
      // v1 says nothing once the line is requested: the kernel's line info tells.
      const poll = pollHolder(ctx, line, 'gpioset', () => this.#run === run && this.#holder.running).then((held) => {
        if (!held || this.#run !== run) return;
        run.held = true;
        this.#wake();
      });
      this.#polls.add(poll);
    });
    this.#holder.on('line', (row) => {
      if (isHoldBanner(row)) this.#run.banner = true;
      this.#wake();
    });
    this.#holder.on('stdout', (chunk) => this.#countPrompts(chunk));
    this.#holder.on('failure', (f) => {
      this.#run = freshRun();
      ctx.logger?.warn({ line: this.id, attempt: f.attempt, restartInMs: f.restartInMs, err: f.error.message }, 'GPIO output holder stopped; restarting');
      this.#wake();
      if (this.listenerCount('error') > 0) this.emit('error', failureError(f));
    });
  }

  async open(): Promise<void> {
    this.#holder.start();
    const started = await this.#waitFor(() => this.#ready(), this.ctx.ackTimeoutMs);
    // An interactive gpioset prints its prompt right after the banner, unless its build doesn't on a pipe.
    if (started === 'ok' && this.ctx.interactiveSet && !this.#printsPrompts) {
      await this.#waitFor(() => this.#printsPrompts, Math.min(PROMPT_GRACE_MS, this.ctx.ackTimeoutMs));
    }
  }

  set(value: boolean): Promise<void> {
    const applied = this.#queue.then(() => this.#apply(value));
    this.#queue = applied.catch(() => undefined);
    return applied;
  }

  value(): boolean {
    return this.#value;
  }

  async close(): Promise<void> {
    await this.#queue; // values already asked for are applied first
    this.#closed = true;
    await this.#holder.stop();
    await this.#polls.settled();
    this.onClose();
  }

  #level(): boolean {
    return this.#value !== this.opts.activeLow;
  }

  /** v2 prints its banner once the line is requested; v1 is seen holding it in gpioinfo. */
  #ready(): boolean {
    return this.ctx.major === 1 ? this.#run.held : this.#run.banner || this.#run.prompts > 0;
  }

  async #apply(value: boolean): Promise<void> {
    if (this.#closed) throw new GpioLineError(`${this.id} is closed`);
    const unchanged = value === this.#value;
    this.#value = value;
    if (unchanged && this.#holder.running) return;
    if (!this.#holder.running && this.#holder.lastFailure) {
      // Restarting after a failure: the restart applies the new value; don't defeat the backoff.
      throw new GpioLineError(`${this.id}: gpioset is not running (${this.#holder.lastFailure.message}); the value is applied when it restarts`);
    }
    if (this.ctx.interactiveSet && this.#holder.running && this.#ready()) {
      // A gpioset that prints its prompt confirms each command with the next one (the first
      // prompt of a run comes before any command, so the confirmation is the second at least).
      const confirmedAt = Math.max(this.#run.prompts, 1) + 1;
      await this.#holder.write(interactiveSetCommand(this.line.offset, this.#level()));
      if (!this.#printsPrompts) return;
      const result = await this.#waitFor(() => this.#run.prompts >= confirmedAt, this.ctx.ackTimeoutMs);
      if (result !== 'ok') throw new GpioLineError(`${this.id}: gpioset did not confirm the new value (${result})`);
      return;
    }
    this.#run = freshRun();
    await this.#holder.replace();
    const result = await this.#waitFor(() => this.#ready(), this.ctx.ackTimeoutMs);
    if (result === 'down') throw new GpioLineError(`${this.id}: ${this.#holder.lastFailure?.message ?? 'gpioset exited'}`);
  }

  #countPrompts(chunk: string): void {
    let text = this.#run.carry + chunk;
    for (let at = text.indexOf(INTERACTIVE_PROMPT); at !== -1; at = text.indexOf(INTERACTIVE_PROMPT)) {
      this.#run.prompts++;
      this.#printsPrompts = true;
      text = text.slice(at + INTERACTIVE_PROMPT.length);
    }
    this.#run.carry = text.slice(-(INTERACTIVE_PROMPT.length - 1));
    this.#wake();
  }

  #wake(): void {
    this.#waiters.wake();
  }

  /** Resolves once `done()` holds, or the holder is down, or the time is up. */
  #waitFor(done: () => boolean, timeoutMs: number): Promise<Wait> {
    return this.#waiters.waitFor(done, () => !this.#holder.running && this.#holder.lastFailure !== undefined, timeoutMs);
  }
}

export class ChardevGpio implements GpioBackend {
  readonly kind = 'chardev' as const;
  readonly #ctx: LineContext;
  readonly #opts: ChardevOptions;
  readonly #claimed = new Set<string>();
  readonly #open = new Set<{ close(): Promise<void> }>();
  #chips: Promise<ChipInfo[]> | undefined;
  readonly #listings = new Map<string, Promise<LineInfo[]>>();

  private constructor(
    opts: ChardevOptions,
    readonly tools: ToolPaths,
    readonly version: ToolsVersion,
    readonly interactiveSet: boolean,
    readonly monitorBanner: boolean,
  ) {
    this.#opts = opts;
    const timers = opts.timers ?? systemTimers;
    const run = (tool: LibgpiodTool, args: string[]) => runTool(tools[tool], args, opts.commandTimeoutMs ?? 5000);
    this.#ctx = {
      tools,
      major: version.major,
      interactiveSet,
      monitorBanner,
      clock: opts.clock,
      timers,
      logger: opts.logger,
      hrtimeNs: opts.hrtimeNs ?? (() => process.hrtime.bigint()),
      maxEventAgeMs: opts.maxEventAgeMs ?? 60_000,
      ackTimeoutMs: opts.ackTimeoutMs ?? 2000,
      holdPollMs: opts.holdPollMs ?? 10,
      run,
      holder: async (line) => {
        const rows = parseGpioinfo(await run('gpioinfo', gpioinfoArgs(version.major, line.chip.name)));
        return rows.find((r) => r.chip === line.chip.name && r.offset === line.offset)?.consumer;
      },
      supervise: (label, tool, args, beforeRestart) =>
        new SupervisedProcess({
          label,
          command: tools[tool],
          args,
          clock: opts.clock,
          timers,
          ...(opts.backoff ? { backoff: opts.backoff } : {}),
          ...(opts.random ? { random: opts.random } : {}),
          ...(opts.killGraceMs !== undefined ? { killGraceMs: opts.killGraceMs } : {}),
          ...(beforeRestart ? { beforeRestart } : {}),
        }),
    };
  }

  /** Finds the tools and their version (`gpiodetect --version`) and whether gpioset is interactive. */
  static async create(opts: ChardevOptions): Promise<ChardevGpio> {
    const { paths, missing } = findLibgpiodTools(opts.toolsDir);
    if (missing.length > 0) {
      throw new Error(`libgpiod tools missing: ${missing.join(', ')}${opts.toolsDir ? ` (in ${opts.toolsDir})` : ''}; install them with: apt install gpiod`);
    }
    const tools = paths as ToolPaths;
    const timeout = opts.commandTimeoutMs ?? 5000;
    let version: ToolsVersion | undefined;
    for (const tool of ['gpiodetect', 'gpiomon'] as const) {
      version = parseToolsVersion(await runTool(tools[tool], ['--version'], timeout).catch(() => ''));
      if (version) break;
    }
    if (!version) throw new Error(`cannot tell the libgpiod tools version from ${tools.gpiodetect} --version`);
    const interactiveSet = version.major === 2 && supportsInteractiveSet(await runTool(tools.gpioset, ['--help'], timeout).catch(() => ''));
    const monitorBanner = version.major === 2 && supportsMonitorBanner(await runTool(tools.gpiomon, ['--help'], timeout).catch(() => ''));
    opts.logger?.info({ version: version.version, interactiveSet, monitorBanner }, 'GPIO: libgpiod tools');
    return new ChardevGpio(opts, tools, version, interactiveSet, monitorBanner);
  }

  async input(ref: LineRef, opts: InputOptions): Promise<InputLine> {
    const line = await this.resolve(ref);
    const release = this.#claim(line);
    const input = new ChardevInput(this.#ctx, line, opts, () => {
      release();
      this.#open.delete(input);
    });
    this.#open.add(input);
    await input.open();
    return input;
  }

  async output(ref: LineRef, opts: OutputOptions): Promise<ChardevOutputLine> {
    const line = await this.resolve(ref);
    const release = this.#claim(line);
    const output = new ChardevOutput(this.#ctx, line, opts, () => {
      release();
      this.#open.delete(output);
    });
    this.#open.add(output);
    await output.open();
    return output;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#open].map((line) => line.close()));
  }

  /** The chip and offset of a line reference. */
  async resolve(ref: LineRef): Promise<ResolvedLine> {
    const chips = await this.#listChips();
    if ('offset' in ref) {
      const chip = this.#matchChip(chips, ref.chip);
      if (ref.offset >= chip.lines) {
        throw new GpioLineError(`line ${describeRef(ref)}: offset ${ref.offset} is out of range, ${chip.name} [${chip.label}] has ${chip.lines} lines`);
      }
      return { chip, offset: ref.offset, name: undefined };
    }
    const within = ref.chip !== undefined ? this.#matchChip(chips, ref.chip) : undefined;
    const listing = await this.#listLines(within?.name);
    const matches = listing.filter((l) => l.name === ref.name);
    const chipOf = (name: string) => chips.find((c) => c.name === name);
    if (matches.length === 0) {
      const searched = (within ? [within] : chips).map((c) => `${c.name} [${c.label}]`).join(', ');
      throw new GpioLineError(`no GPIO line named ${ref.name} (searched ${searched || 'no chips'})`);
    }
    if (matches.length > 1) {
      const where = matches.map((m) => `${m.chip}:${m.offset} [${chipOf(m.chip)?.label ?? '?'}]`).join(', ');
      throw new GpioLineError(`line name ${ref.name} is on several chips (${where}): give the chip too`);
    }
    const match = matches[0]!;
    const chip = chipOf(match.chip);
    if (!chip) throw new GpioLineError(`line ${ref.name} is on ${match.chip}, which gpiodetect does not list`);
    return { chip, offset: match.offset, name: match.name };
  }

  #claim(line: ResolvedLine): () => void {
    const key = `${line.chip.name}:${line.offset}`;
    if (this.#claimed.has(key)) throw new GpioLineError(`line ${lineId(line)} is already in use`);
    this.#claimed.add(key);
    return () => this.#claimed.delete(key);
  }

  #listChips(): Promise<ChipInfo[]> {
    this.#chips ??= this.#ctx.run('gpiodetect', []).then(parseGpiodetect);
    this.#chips.catch(() => {
      this.#chips = undefined; // not cached: the next request tries again
    });
    return this.#chips;
  }

  #listLines(chip: string | undefined): Promise<LineInfo[]> {
    const key = chip ?? '';
    let listing = this.#listings.get(key);
    if (!listing) {
      listing = this.#ctx.run('gpioinfo', gpioinfoArgs(this.#ctx.major, chip)).then(parseGpioinfo);
      listing.catch(() => this.#listings.delete(key));
      this.#listings.set(key, listing);
    }
    return listing;
  }

  /** By label, by device name (`gpiochip0`) or by path (`/dev/gpiochip0`, symlinks followed). */
  #matchChip(chips: ChipInfo[], spec: string): ChipInfo {
    const known = () => chips.map((c) => `${c.name} [${c.label}]`).join(', ') || 'none';
    if (spec.includes('/') || /^gpiochip\d+$/.test(spec)) {
      const name = basename(spec);
      const direct = chips.find((c) => c.name === name);
      if (direct) return direct;
      const target = this.#followDeviceLink(spec.includes('/') ? spec : join(this.#opts.devDir ?? '/dev', spec));
      const linked = target && chips.find((c) => c.name === target);
      if (linked) return linked;
      throw new GpioLineError(`no GPIO chip ${spec} (chips: ${known()})`);
    }
    const byLabel = chips.filter((c) => c.label === spec);
    if (byLabel.length === 1) return byLabel[0]!;
    if (byLabel.length === 0) throw new GpioLineError(`no GPIO chip labelled ${spec} (chips: ${known()})`);
    throw new GpioLineError(`several GPIO chips are labelled ${spec} (${byLabel.map((c) => c.name).join(', ')}): give the chip's name`);
  }

  #followDeviceLink(path: string): string | undefined {
    try {
      return basename(realpathSync(path));
    } catch {
      return undefined;
    }
  }
}

/** Runs a one-shot tool; rejects with its stderr when it fails. */
function runTool(file: string, args: string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const detail = stderr.trim().split('\n').slice(-3).join(' | ') || err.message;
      reject(new GpioLineError(`${basename(file)} ${args.join(' ')} failed: ${detail}`));
    });
  });
}
