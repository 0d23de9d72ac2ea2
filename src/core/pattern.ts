/**
 * The language of output patterns (strobe, siren, relay, LED), shared by the configuration, the
 * `output.set` command and the outputs that play them.
 */

export type Pattern =
  | { mode: 'off' }
  | { mode: 'on'; for_ms?: number }
  | { mode: 'blink'; period_ms: number; duty?: number; for_ms?: number }
  /** One pulse of `ms`, then off (a door strike, a bell). */
  | { mode: 'pulse'; ms: number }
  /** Steps of on/off with durations; played once, or `repeat`ed. */
  | { mode: 'sequence'; steps: Array<{ on: boolean; ms: number }>; repeat?: boolean; for_ms?: number };

export const PATTERN_MODES = ['off', 'on', 'blink', 'pulse', 'sequence'] as const;

/** Checks a pattern from a command or the configuration; the message says what is wrong. */
export function parsePattern(input: unknown): Pattern {
  if (typeof input === 'string') input = { mode: input };
  if (typeof input !== 'object' || input === null) throw new TypeError('pattern must be a mode name or an object with a mode');
  const p = input as Record<string, unknown>;
  const ms = (key: string, required: boolean, min = 1): number | undefined => {
    const v = p[key];
    if (v === undefined && !required) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > 86_400_000)
      throw new TypeError(`${key} must be a number of milliseconds from ${min} to 86400000`);
    return v;
  };
  switch (p.mode) {
    case 'off':
      return { mode: 'off' };
    case 'on': {
      const for_ms = ms('for_ms', false);
      return for_ms === undefined ? { mode: 'on' } : { mode: 'on', for_ms };
    }
    case 'blink': {
      const duty = p.duty === undefined ? undefined : Number(p.duty);
      if (duty !== undefined && !(duty > 0 && duty < 1)) throw new TypeError('duty must be between 0 and 1');
      const period_ms = ms('period_ms', true, 20)!;
      const for_ms = ms('for_ms', false);
      return { mode: 'blink', period_ms, ...(duty !== undefined ? { duty } : {}), ...(for_ms !== undefined ? { for_ms } : {}) };
    }
    case 'pulse':
      return { mode: 'pulse', ms: ms('ms', true)! };
    case 'sequence': {
      if (!Array.isArray(p.steps) || p.steps.length === 0 || p.steps.length > 64) throw new TypeError('steps must be a list of 1 to 64 {on, ms}');
      const steps = p.steps.map((s: unknown, i) => {
        const step = s as Record<string, unknown>;
        if (typeof step !== 'object' || step === null || typeof step.on !== 'boolean') throw new TypeError(`steps[${i}].on must be true or false`);
        if (typeof step.ms !== 'number' || !(step.ms >= 10 && step.ms <= 600_000)) throw new TypeError(`steps[${i}].ms must be 10 to 600000`);
        return { on: step.on, ms: step.ms };
      });
      const for_ms = ms('for_ms', false);
      return { mode: 'sequence', steps, ...(p.repeat === true ? { repeat: true } : {}), ...(for_ms !== undefined ? { for_ms } : {}) };
    }
    default:
      throw new TypeError(`unknown pattern mode ${JSON.stringify(p.mode)} (${PATTERN_MODES.join(', ')})`);
  }
}
