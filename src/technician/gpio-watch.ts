import type { Config } from '../config/schema.js';
import { systemClock, wallIsoAt } from '../core/clock.js';
import type { SelectGpioDeps } from '../drivers/gpio/select.js';
import type { InputLine } from '../drivers/gpio/types.js';
import { lineRef } from '../features/field-io.js';
import { controlStream } from '../gateway/control.js';

/** One edge on an input, as `vigia gpio watch --json` prints it. */
export interface EdgeReport {
  input: string;
  line: string;
  /** The logical value after the edge: true is active (pressed, motion, door open). */
  value: boolean;
  mono_ms: number;
  time: string;
}

export interface EdgeWatch {
  /** Where the edges come from: the running daemon, or the lines opened here. */
  readonly source: 'daemon' | 'lines';
  /** Resolves when the watch ends by itself (the daemon stopped), with the reason. */
  readonly ended: Promise<string | null>;
  stop(): Promise<void>;
}

/** The inputs asked for, all of them when none is named; an unknown name is refused with the list. */
export function chooseInputs(config: Config, names: readonly string[]): string[] {
  const configured = Object.keys(config.hardware.inputs);
  const unknown = names.filter((n) => !configured.includes(n));
  if (unknown.length > 0) throw new Error(`no input named ${unknown.join(', ')} (configured: ${configured.join(', ') || 'none'})`);
  return names.length > 0 ? [...names] : configured;
}

/** Live edges from the running daemon, which holds the lines (a control-socket stream). */
export async function watchThroughDaemon(socketPath: string, inputs: readonly string[], onEdge: (e: EdgeReport) => void): Promise<EdgeWatch> {
  const stream = controlStream(socketPath, 'gpio.watch', { inputs }, (item) => onEdge(item as EdgeReport));
  await stream.started;
  return { source: 'daemon', ended: stream.ended, stop: async () => stream.close() };
}

/** Live edges with the daemon stopped: the lines are requested here, with their configured bias and polarity. */
export async function watchLines(
  config: Config,
  inputs: readonly string[],
  onEdge: (e: EdgeReport) => void,
  gpio: Omit<SelectGpioDeps, 'clock'> = {},
): Promise<EdgeWatch> {
  if (config.hardware.backend === 'sim') throw new Error('with hardware.backend: sim the lines exist only inside the running daemon: start it first');
  const { selectGpioBackend } = await import('../drivers/gpio/select.js');
  const { backend } = await selectGpioBackend(config.hardware.backend, { ...gpio, clock: systemClock });
  const lines: InputLine[] = [];
  const stop = async () => {
    for (const line of lines) await line.close().catch(() => undefined);
    await backend.close();
  };
  try {
    for (const name of inputs) {
      const cfg = config.hardware.inputs[name]!;
      const line = await backend.input(lineRef(cfg.line), { activeLow: cfg.active_low, bias: cfg.bias, consumer: `vigia-watch:${name}` });
      lines.push(line);
      line.on('edge', (e) => onEdge({ input: name, line: line.id, value: e.value, mono_ms: e.monoMs, time: wallIsoAt(systemClock, e.monoMs) }));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { source: 'lines', ended: new Promise(() => undefined), stop };
}

/** One edge for a technician at a terminal. */
export function formatEdge(e: EdgeReport, kind: string | undefined): string {
  const state =
    kind === 'panic' ? (e.value ? 'pressed' : 'released') : kind === 'motion' ? (e.value ? 'motion' : 'still') : kind ? (e.value ? 'open' : 'closed') : '';
  return `${e.time}  ${e.input.padEnd(12)} ${e.line.padEnd(28)} ${e.value ? 'ACTIVE  ' : 'inactive'}${state ? `  (${state})` : ''}\n`;
}
