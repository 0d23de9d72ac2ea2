import { describe, expect, it } from 'vitest';
import { ManualScheduler } from '../src/core/timers.js';
import { SimGpio } from '../src/drivers/gpio/sim.js';
import { Debouncer, DoorSwitch, MotionSensor, PanicButton, RECOVERY_MS } from '../src/features/inputs.js';
import { parsePattern } from '../src/core/pattern.js';
import { Output } from '../src/features/outputs.js';

// Every timing rule with a manual scheduler: time only moves when the test says so.

function setup() {
  const s = new ManualScheduler();
  return { s, deps: { clock: s, timers: s } };
}

/** Records emitted events as [name, ...args] with args rounded to what matters. */
function recorder<T extends { on(e: string, fn: (...a: any[]) => void): unknown }>(emitter: T, names: string[]) {
  const log: Array<[string, ...number[]]> = [];
  for (const n of names) emitter.on(n, (...a: number[]) => log.push([n, ...a]));
  return log;
}

/** A 30 ms debouncer, released at start, recording its changes. */
function debouncer() {
  const { s, deps } = setup();
  const d = new Debouncer(false, 30, deps);
  const changes: Array<[boolean, number]> = [];
  d.on('change', (v, t) => changes.push([v, t]));
  return { s, d, changes, t0: s.monoNow() };
}

describe('debounce', () => {
  it('takes the first edge at once, ignores the bounce, and reconciles the settled level', () => {
    const { s, d, changes, t0 } = debouncer();
    d.edge({ value: true, monoMs: t0 });
    expect(changes).toEqual([[true, t0]]); // no waiting for the contact to settle
    s.advance(2);
    d.edge({ value: false, monoMs: t0 + 2 });
    s.advance(3);
    d.edge({ value: true, monoMs: t0 + 5 });
    s.advance(50);
    expect(changes).toEqual([[true, t0]]);
    expect(d.bounces).toBe(2);

    // A release that bounces back and settles released is still reported, at the end of the window.
    d.edge({ value: false, monoMs: s.monoNow() });
    const r = s.monoNow();
    s.advance(5);
    d.edge({ value: true, monoMs: r + 5 });
    s.advance(5);
    d.edge({ value: false, monoMs: r + 10 });
    s.advance(100);
    expect(changes).toEqual([
      [true, t0],
      [false, r],
    ]);
  });

  it('reports a change that happened during the lockout when it settles there', () => {
    const { s, d, changes, t0 } = debouncer();
    d.edge({ value: true, monoMs: t0 });
    s.advance(10);
    d.edge({ value: false, monoMs: t0 + 10 }); // a 10 ms tap: shorter than the debounce time
    s.advance(30);
    expect(changes).toEqual([
      [true, t0],
      [false, t0 + 30],
    ]);
  });
});

describe('debounce after a late change', () => {
  it('locks out only the rest of a window from the last edge, so a quick tap then a new press is at once', () => {
    const { s, d, changes, t0 } = debouncer();
    d.edge({ value: true, monoMs: t0 });
    s.advance(12);
    d.edge({ value: false, monoMs: t0 + 12 }); // released within the window: reported at its end
    s.advance(18);
    expect(changes).toEqual([
      [true, t0],
      [false, t0 + 30],
    ]);
    // Still since t0 + 12: a press at t0 + 45 is past that release's own window, and counts at once.
    s.advance(15);
    d.edge({ value: true, monoMs: t0 + 45 });
    expect(changes).toEqual([
      [true, t0],
      [false, t0 + 30],
      [true, t0 + 45],
    ]);
    // ...and starts a full window of its own.
    s.advance(10);
    d.edge({ value: false, monoMs: t0 + 55 });
    expect(changes).toHaveLength(3);
    s.advance(20);
    expect(changes).toEqual([
      [true, t0],
      [false, t0 + 30],
      [true, t0 + 45],
      [false, t0 + 75],
    ]);
  });

  it('still ignores the bounce of a late change that is itself still bouncing', () => {
    const { s, d, changes, t0 } = debouncer();
    d.edge({ value: true, monoMs: t0 });
    s.advance(28);
    d.edge({ value: false, monoMs: t0 + 28 }); // released just before the window ends
    s.advance(2);
    expect(changes).toEqual([
      [true, t0],
      [false, t0 + 30],
    ]);
    s.advance(5);
    d.edge({ value: true, monoMs: t0 + 35 }); // its bounce, 7 ms after it: ignored
    s.advance(1);
    d.edge({ value: false, monoMs: t0 + 36 });
    s.advance(100);
    expect(changes).toEqual([
      [true, t0],
      [false, t0 + 30],
    ]);
    expect(d.bounces).toBe(3); // the early release, then its two bounces
  });
});

describe('panic button', () => {
  const opts = { debounceMs: 30, longPressMs: 3000, stuckMs: 60_000 };

  it('reports press, long press and release with the line timestamps', () => {
    const { s, deps } = setup();
    const b = new PanicButton(false, opts, deps);
    const log = recorder(b, ['press', 'release', 'long_press', 'stuck', 'recovered']);
    b.start();
    const t0 = s.monoNow();
    b.edge({ value: true, monoMs: t0 });
    expect(log).toEqual([['press', t0]]);
    s.advance(3500);
    expect(log).toEqual([
      ['press', t0],
      ['long_press', t0 + 3000],
    ]);
    b.edge({ value: false, monoMs: t0 + 4000 });
    s.advance(100);
    expect(log).toEqual([
      ['press', t0],
      ['long_press', t0 + 3000],
      ['release', t0 + 4000, 4000],
    ]);
    expect(b.stats()).toMatchObject({ presses: 1, long_presses: 1, stuck_faults: 0, stuck: false });
  });

  it('turns a jammed button into one stuck fault, ignores it until released, then works again', () => {
    const { s, deps } = setup();
    const b = new PanicButton(false, opts, deps);
    const log = recorder(b, ['press', 'release', 'long_press', 'stuck', 'recovered']);
    const t0 = s.monoNow();
    b.edge({ value: true, monoMs: t0 });
    s.advance(10 * 60_000);
    expect(log.map((e) => e[0])).toEqual(['press', 'long_press', 'stuck']);
    expect(log[2]).toEqual(['stuck', t0 + 60_000, 60_000]);
    // A jammed contact flickering open for a moment raises nothing, and is not a recovery.
    b.edge({ value: false, monoMs: s.monoNow() });
    s.advance(300);
    b.edge({ value: true, monoMs: s.monoNow() });
    s.advance(5000);
    expect(log.map((e) => e[0])).toEqual(['press', 'long_press', 'stuck']);
    expect(b.stuck).toBe(true);
    // Released for good: working again after the recovery time, and the next press is an alarm.
    const released = s.monoNow();
    b.edge({ value: false, monoMs: released });
    s.advance(RECOVERY_MS + 10);
    expect(log.at(-1)).toEqual(['recovered', released + RECOVERY_MS]);
    expect(b.stuck).toBe(false);
    b.edge({ value: true, monoMs: s.monoNow() });
    expect(log.at(-1)![0]).toBe('press');
    expect(b.stats()).toMatchObject({ presses: 2, stuck_faults: 1 });
  });

  it('treats a button already pressed at start as stuck, not as an alarm', () => {
    const { s, deps } = setup();
    const b = new PanicButton(true, opts, deps);
    const log = recorder(b, ['press', 'stuck', 'recovered']);
    b.start();
    expect(log).toEqual([['stuck', s.monoNow(), 0]]);
    b.edge({ value: false, monoMs: s.monoNow() });
    s.advance(RECOVERY_MS);
    expect(log.map((e) => e[0])).toEqual(['stuck', 'recovered']);
  });

  it('counts a press whose edge was delivered late from its own timestamp', () => {
    const { s, deps } = setup();
    const b = new PanicButton(false, opts, deps);
    const log = recorder(b, ['press', 'long_press']);
    const t0 = s.monoNow();
    s.advance(1000); // the event reached us a second after the kernel stamped it
    b.edge({ value: true, monoMs: t0 });
    s.advance(2000);
    expect(log).toEqual([
      ['press', t0],
      ['long_press', t0 + 3000],
    ]);
  });
});

describe('motion sensor', () => {
  it('starts once, is extended by re-triggers, ends after the hold time', () => {
    const { s, deps } = setup();
    const m = new MotionSensor({ debounceMs: 20, holdMs: 10_000, minIntervalMs: 0 }, deps);
    const log = recorder(m, ['motion', 'still']);
    const t0 = s.monoNow();
    m.edge({ value: true, monoMs: t0 });
    s.advance(500);
    m.edge({ value: false, monoMs: t0 + 500 });
    s.advance(4500);
    m.edge({ value: true, monoMs: t0 + 5000 }); // retrigger
    s.advance(500);
    m.edge({ value: false, monoMs: t0 + 5500 });
    s.advance(9000);
    expect(log).toEqual([['motion', t0]]);
    s.advance(2000);
    expect(log).toEqual([
      ['motion', t0],
      ['still', t0 + 15_000, 15_000],
    ]);
  });

  it('rate-limits a sensor that keeps firing, counting what it held back', () => {
    const { s, deps } = setup();
    const m = new MotionSensor({ debounceMs: 20, holdMs: 1000, minIntervalMs: 30_000 }, deps);
    const log = recorder(m, ['motion', 'still']);
    for (let i = 0; i < 20; i++) {
      m.edge({ value: true, monoMs: s.monoNow() });
      s.advance(100);
      m.edge({ value: false, monoMs: s.monoNow() });
      s.advance(4900);
    }
    // 100 s of a motion every 5 s: one report per 30 s.
    expect(log.filter((e) => e[0] === 'motion')).toHaveLength(4);
    expect(m.stats()).toMatchObject({ motions: 4, suppressed: 16, triggers: 20 });
  });
});

describe('door switch', () => {
  it('reports debounced open and close', () => {
    const { s, deps } = setup();
    const d = new DoorSwitch(false, 50, deps);
    const log = recorder(d, ['open', 'close']);
    const t0 = s.monoNow();
    d.edge({ value: true, monoMs: t0 });
    d.edge({ value: false, monoMs: t0 + 1 });
    d.edge({ value: true, monoMs: t0 + 2 });
    s.advance(100);
    d.edge({ value: false, monoMs: s.monoNow() });
    expect(log).toEqual([
      ['open', t0],
      ['close', t0 + 100],
    ]);
  });
});

describe('outputs', () => {
  async function output(maxOnMs = 0) {
    const { s } = setup();
    const gpio = new SimGpio(s);
    const line = await gpio.output({ name: 'GPIO23' }, { activeLow: true, initial: false, consumer: 'test' });
    const out = new Output(line, { name: 'strobe', maxOnMs, clock: s, timers: s });
    const sim = gpio.outputLine('GPIO23')!;
    const values = () => sim.history.map((h) => [h.value, h.monoMs - 10_000]);
    return { s, out, sim, values };
  }

  it('blinks with its period and duty, and drives an active-low pin low when on', async () => {
    const { s, out, sim, values } = await output();
    await out.play({ mode: 'blink', period_ms: 1000, duty: 0.25 });
    expect(sim.level()).toBe(false); // active low: on = 0 V
    s.advance(2100);
    expect(values()).toEqual([
      [true, 0],
      [false, 250],
      [true, 1000],
      [false, 1250],
      [true, 2000],
    ]);
  });

  it('plays a pulse and a sequence, then goes off', async () => {
    const { s, out, values } = await output();
    await out.play({ mode: 'pulse', ms: 300 });
    s.advance(1000);
    await out.play(
      parsePattern({
        mode: 'sequence',
        steps: [
          { on: true, ms: 100 },
          { on: false, ms: 50 },
          { on: true, ms: 100 },
        ],
      }),
    );
    s.advance(1000);
    expect(values()).toEqual([
      [true, 0],
      [false, 300],
      [true, 1000],
      [false, 1100],
      [true, 1150],
      [false, 1250],
    ]);
    expect(out.pattern).toEqual({ mode: 'off' });
  });

  it('cuts a pattern off after the safety maximum, whatever asked for it', async () => {
    const { s, out, values } = await output(180_000);
    const cut: Array<[string, number]> = [];
    out.on('cutoff', (p, ran) => cut.push([p.mode, ran]));
    await out.play({ mode: 'on' });
    s.advance(179_000);
    expect(out.value).toBe(true);
    s.advance(2000);
    expect(out.value).toBe(false);
    expect(cut).toEqual([['on', 180_000]]);
    expect(values()).toEqual([
      [true, 0],
      [false, 180_000],
    ]);
    expect(s.pendingCount).toBe(0);

    await out.play({ mode: 'blink', period_ms: 500 });
    s.advance(10 * 60_000);
    expect(out.value).toBe(false);
    expect(cut).toHaveLength(2);
  });

  it('goes to its safe state on safe(), stopping any pattern', async () => {
    const { s, out } = await output();
    await out.play({ mode: 'blink', period_ms: 200, for_ms: 60_000 });
    s.advance(50);
    await out.safe();
    expect(out.value).toBe(false);
    expect(s.pendingCount).toBe(0);
  });

  it('refuses malformed patterns with a clear reason', () => {
    expect(() => parsePattern({ mode: 'strobe' })).toThrow(/unknown pattern mode "strobe"/);
    expect(() => parsePattern({ mode: 'blink' })).toThrow(/period_ms/);
    expect(() => parsePattern({ mode: 'blink', period_ms: 500, duty: 2 })).toThrow(/duty/);
    expect(() => parsePattern({ mode: 'sequence', steps: [{ on: 'yes', ms: 100 }] })).toThrow(/steps\[0\]\.on/);
    expect(() => parsePattern(null)).toThrow(/pattern/);
    expect(parsePattern('on')).toEqual({ mode: 'on' });
  });
});
