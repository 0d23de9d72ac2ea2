import type { Config } from '../config/schema.js';
import { systemClock } from '../core/clock.js';
import { type Pattern, parsePattern } from '../core/pattern.js';
import { systemTimers } from '../core/timers.js';
import type { SelectGpioDeps } from '../drivers/gpio/select.js';
import { lineRef, maxOnMs } from '../features/field-io.js';
import { Output } from '../features/outputs.js';
import type { DaemonRequest } from './daemon-link.js';

/**
 * `vigia outputs test NAME`: plays a pattern on an output for a while, to check the wiring. With
 * the daemon running it goes through the daemon's output.set path (its safety cut-off, and the
 * alarm's outputs refused while an alarm is on); stopped, the line is driven here with the same
 * cut-off, and put back in its safe state at the end.
 */

/** The pattern to play for `forMs`: a mode name (on, blink, pulse) or a JSON pattern object. */
export function testPattern(spec: string, forMs: number): Pattern {
  let input: unknown = spec;
  if (spec.trim().startsWith('{')) {
    try {
      input = JSON.parse(spec);
    } catch {
      throw new Error('--pattern: not valid JSON');
    }
  } else if (spec === 'blink') input = { mode: 'blink', period_ms: 500 };
  else if (spec === 'pulse') input = { mode: 'pulse', ms: forMs };
  const pattern = parsePattern(input);
  if (pattern.mode === 'off' || pattern.mode === 'pulse' || ('for_ms' in pattern && pattern.for_ms !== undefined)) return pattern;
  return { ...pattern, for_ms: forMs };
}

/** How long a pattern plays before it ends by itself (0: at once). */
export function playingMs(p: Pattern): number {
  if (p.mode === 'off') return 0;
  if (p.mode === 'pulse') return p.ms;
  if (p.mode === 'sequence' && !p.repeat && p.for_ms === undefined) return p.steps.reduce((a, s) => a + s.ms, 0);
  return p.for_ms ?? 0;
}

export async function testThroughDaemon(daemon: DaemonRequest, output: string, pattern: Pattern): Promise<void> {
  await daemon('output.test', { output, pattern });
}

/** Drives the output here until the pattern ends (or `abort` fires), then leaves it off. Returns the cut-off applied. */
export async function testHere(config: Config, name: string, pattern: Pattern, abort: AbortSignal, gpio: Omit<SelectGpioDeps, 'clock'> = {}): Promise<number> {
  const cfg = config.hardware.outputs[name];
  if (!cfg) throw new Error(`no output named ${name} (configured: ${Object.keys(config.hardware.outputs).join(', ') || 'none'})`);
  if (config.hardware.backend === 'sim') throw new Error('with hardware.backend: sim the outputs exist only inside the running daemon: start it first');
  const { selectGpioBackend } = await import('../drivers/gpio/select.js');
  const { backend } = await selectGpioBackend(config.hardware.backend, { ...gpio, clock: systemClock });
  try {
    const line = await backend.output(lineRef(cfg.line), { activeLow: cfg.active_low, initial: false, consumer: `vigia-test:${name}` });
    const cutoff = maxOnMs(cfg);
    const output = new Output(line, { name, maxOnMs: cutoff, clock: systemClock, timers: systemTimers });
    try {
      await output.play(pattern);
      const ms = cutoff > 0 ? Math.min(playingMs(pattern), cutoff) : playingMs(pattern);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        abort.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    } finally {
      await output.safe();
      output.stop();
      await line.close();
    }
    return cutoff;
  } finally {
    await backend.close();
  }
}
