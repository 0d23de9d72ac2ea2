#!/usr/bin/env node
// Runs inside the hardware rig's VM, as root, on a real kernel: creates simulated GPIO chips with
// the kernel's gpio-sim driver, drives the project's compiled GPIO layer (dist/) through the real
// kernel interfaces (the character device through the libgpiod tools, the legacy sysfs interface
// through onoff), and writes what happened to $VIGIA_RIG_OUT/results.json. It asserts nothing
// itself: the host side (gpio-sim.test.ts) checks the results, so one failing scenario never
// hides the others.
//
// The simulated "hardware": a chip labelled like a Raspberry Pi 4's pin controller
// (pinctrl-bcm2711, 28 lines named GPIO0..GPIO27) and an 8-line expander (vigia-aux, unnamed
// lines, addressed by chip label and offset). A button or sensor is simulated by writing
// `pull-up`/`pull-down` to the line's sim_gpioN/pull; an output's level is read from sim_gpioN/value.

import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { AUX_LABEL, SOC_LABEL, createSimDevice } from './gpio-sim-chips.mjs';

const ROOT = resolve(import.meta.dirname, '../..');
const dist = (p) => import(join(ROOT, 'dist', p));

const { systemClock } = await dist('core/clock.js');
const { systemTimers } = await dist('core/timers.js');
const { selectGpioBackend } = await dist('drivers/gpio/select.js');
const { PanicButton, MotionSensor, RECOVERY_MS } = await dist('features/inputs.js');
const { Output } = await dist('features/outputs.js');

const OUT_DIR = process.env.VIGIA_RIG_OUT ?? '/tmp/rig-out';
const PRESSES = Number(process.env.VIGIA_HW_PRESSES ?? 50);
/** Comma-separated parts to run (chardev, pole, sysfs); all by default. */
const ONLY = new Set((process.env.VIGIA_HW_ONLY ?? 'chardev,chardev2,pole,sysfs').split(',').map((s) => s.trim()));

const deps = { clock: systemClock, timers: systemTimers };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => performance.now();
const round = (x, d = 2) => (x === undefined || x === null ? x : Math.round(x * 10 ** d) / 10 ** d);

function progress(msg) {
  process.stdout.write(`[vm ${round(now() / 1000, 1)}s] ${msg}\n`);
}

/** Requested lines as the kernel lists them in debugfs: `gpio-1013 (GPIO17 |gpiomon ) in  hi`. */
function requestedLines() {
  const text = readFileSync('/sys/kernel/debug/gpio', 'utf8');
  const held = new Map();
  for (const m of text.matchAll(/^ *gpio-(\d+) +\(([^|\n]*)\|([^)\n]*)\) +(in|out) +(hi|lo)/gm)) {
    held.set(Number(m[1]), { consumer: m[3].trim(), direction: m[4], level: m[5] });
  }
  return held;
}

/** Waits until the kernel shows the line as requested (the tools' processes start asynchronously). */
async function waitRequested(chip, offset, timeoutMs = 20_000) {
  const number = chip.sysfsBase + offset;
  const started = now();
  while (now() - started < timeoutMs) {
    const line = requestedLines().get(number);
    if (line) return { ...line, waitedMs: round(now() - started) };
    await sleep(5);
  }
  throw new Error(`${chip.label}:${offset} (gpio-${number}) was not requested within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------------------------
// Helpers.

function recorder() {
  const warnings = [];
  const infos = [];
  return {
    warnings,
    infos,
    logger: {
      warn: (obj, msg) => warnings.push({ msg, ...obj }),
      info: (obj, msg) => infos.push({ msg, ...obj }),
    },
  };
}

/** Records every event of an emitter with the time it arrived. */
function record(emitter, names) {
  const events = [];
  const waiters = [];
  for (const name of names) {
    emitter.on(name, (...args) => {
      events.push({ type: name, at: now(), args });
      for (const w of [...waiters]) w();
    });
  }
  const count = (type) => events.filter((e) => e.type === type).length;
  return {
    events,
    count,
    types: () => events.map((e) => e.type),
    /** Resolves once `type` has been seen `n` times; rejects after timeoutMs. */
    waitFor(type, n = 1, timeoutMs = 10_000) {
      return new Promise((resolvePromise, reject) => {
        const check = () => {
          if (count(type) >= n) {
            waiters.splice(waiters.indexOf(check), 1);
            clearTimeout(timer);
            resolvePromise(events.filter((e) => e.type === type)[n - 1]);
          }
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1);
          reject(new Error(`no ${type} #${n} within ${timeoutMs} ms (got ${events.map((e) => e.type).join(', ') || 'nothing'})`));
        }, timeoutMs);
        waiters.push(check);
        check();
      });
    },
  };
}

function percentiles(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const pct = (p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] : null);
  const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null;
  return {
    n: sorted.length,
    p50: round(pct(50)),
    p90: round(pct(90)),
    p99: round(pct(99)),
    min: round(sorted[0]),
    max: round(sorted.at(-1)),
    mean: round(mean),
  };
}

/** `out hi`, `out lo`, `in hi`, `in lo` while requested, else `released`. */
function lineState(chip, offset) {
  const line = requestedLines().get(chip.sysfsBase + offset);
  return line ? `${line.direction} ${line.level}` : 'released';
}

/** Waits until the kernel shows the line in `state`; ms waited, or null. */
async function pollState(chip, offset, state, timeoutMs = 5000) {
  const started = now();
  while (now() - started < timeoutMs) {
    if (lineState(chip, offset) === state) return round(now() - started);
    await sleep(5);
  }
  return null;
}

/** Samples a line's state until stop() is called; returns the states seen, in order, without repeats. */
function watchStates(chip, offset) {
  const seen = [lineState(chip, offset)];
  const timer = setInterval(() => {
    const state = lineState(chip, offset);
    if (state !== seen.at(-1)) seen.push(state);
  }, 2);
  return () => {
    clearInterval(timer);
    const state = lineState(chip, offset);
    if (state !== seen.at(-1)) seen.push(state);
    return seen;
  };
}

/** Resolves every arrive() once `count` parties have arrived (or dropped out). */
function startGate(count) {
  let open;
  const opened = new Promise((r) => (open = r));
  let waiting = count;
  const step = () => {
    if (--waiting <= 0) open();
  };
  return {
    arrive() {
      step();
      return opened;
    },
    drop: step,
  };
}

async function scenario(results, name, fn) {
  const started = now();
  progress(`${name}...`);
  try {
    results[name] = { ...(await fn()), ms: round(now() - started, 0) };
  } catch (err) {
    results[name] = { error: err?.stack ?? String(err), ms: round(now() - started, 0) };
    progress(`${name} FAILED: ${err?.message ?? err}`);
  }
}

const PRESS = 'pull-down'; // active-low buttons: pressed pulls the line low
const RELEASE = 'pull-up';

/**
 * Opens an input, notes whether the kernel shows it requested once open() has returned (it
 * should), then proves that edges get through by moving the line away from its level and back.
 * Scenarios attach their logic afterwards.
 */
async function openInput(backend, chip, ref, offset, opts) {
  const t0 = now();
  const line = await backend.input(ref, { consumer: 'vigia:test', ...opts });
  const openMs = now() - t0;
  const heldAtOpen = requestedLines().has(chip.sysfsBase + offset);
  const held = await waitRequested(chip, offset);
  const probeMs = await probeEdges(line, chip, offset);
  return { line, openMs: round(openMs), heldAtOpen, requestedAfterOpenMs: held.waitedMs, probeMs, consumer: held.consumer };
}

async function probeEdges(line, chip, offset) {
  const back = chip.pullOf(offset);
  const away = back === 'pull-up' ? 'pull-down' : 'pull-up';
  const t0 = now();
  for (const pull of [away, back]) {
    const edge = new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`${line.id}: no edge within 10 s of ${pull} (probe)`)), 10_000);
      line.once('edge', () => {
        clearTimeout(timer);
        resolvePromise();
      });
    });
    chip.pull(offset, pull);
    await edge;
  }
  return round(now() - t0);
}

function edgeLog(line) {
  const edges = [];
  line.on('edge', (e) => edges.push({ value: e.value, monoMs: e.monoMs }));
  return edges;
}

// ---------------------------------------------------------------------------------------------
// Scenarios, for one backend.

async function bounceScenario(backend, sim, ready) {
  const debounceMs = 250;
  sim.soc.pull(17, RELEASE);
  const { line, ...opened } = await openInput(backend, sim.soc, { name: 'GPIO17' }, 17, { activeLow: true, bias: 'pull-up' });
  try {
    const edges = edgeLog(line);
    const initial = await line.read();
    await ready();
    const button = new PanicButton(initial, { debounceMs, longPressMs: 10_000, stuckMs: 60_000 }, deps);
    const rec = record(button, ['press', 'release', 'long_press', 'stuck', 'recovered']);
    line.on('edge', (e) => button.edge(e));
    button.start();

    // Contact bounce: five level changes within well under the debounce window, ending pressed.
    const pressWrites = [PRESS, RELEASE, PRESS, RELEASE, PRESS];
    const t0 = now();
    for (const p of pressWrites) sim.soc.pull(17, p);
    const pressWriteMs = now() - t0;
    await rec.waitFor('press');
    await sleep(debounceMs * 3);
    const pressedAfter = { pressed: button.pressed, events: rec.types() };

    const releaseWrites = [RELEASE, PRESS, RELEASE, PRESS, RELEASE];
    const t1 = now();
    for (const p of releaseWrites) sim.soc.pull(17, p);
    const releaseWriteMs = now() - t1;
    await rec.waitFor('release');
    await sleep(debounceMs * 3);
    button.stop();
    return {
      line: line.id,
      ...opened,
      initial,
      debounceMs,
      writes: pressWrites.length + releaseWrites.length,
      pressWriteMs: round(pressWriteMs),
      releaseWriteMs: round(releaseWriteMs),
      edges: edges.length,
      edgeValues: edges.map((e) => e.value),
      pressedAfter,
      events: rec.types(),
      releaseHeldMs: round(rec.events.find((e) => e.type === 'release')?.args[1]),
      stats: button.stats(),
      finalRead: await line.read(),
    };
  } finally {
    await line.close();
  }
}

async function longPressScenario(backend, sim, ready) {
  const longPressMs = 300;
  const holdMs = 800;
  sim.soc.pull(22, RELEASE);
  const { line, ...opened } = await openInput(backend, sim.soc, { name: 'GPIO22' }, 22, { activeLow: true, bias: 'pull-up' });
  try {
    const initial = await line.read();
    await ready();
    const button = new PanicButton(initial, { debounceMs: 30, longPressMs, stuckMs: 60_000 }, deps);
    const rec = record(button, ['press', 'release', 'long_press', 'stuck', 'recovered']);
    line.on('edge', (e) => button.edge(e));
    button.start();
    sim.soc.pull(22, PRESS);
    await rec.waitFor('press');
    await sleep(holdMs);
    sim.soc.pull(22, RELEASE);
    await rec.waitFor('release');
    await sleep(100);
    button.stop();
    const press = rec.events.find((e) => e.type === 'press');
    const long = rec.events.find((e) => e.type === 'long_press');
    const release = rec.events.find((e) => e.type === 'release');
    return {
      line: line.id,
      ...opened,
      initial,
      longPressMs,
      holdMs,
      events: rec.types(),
      longPressAfterPressMs: long && press ? round(long.args[0] - press.args[0]) : null,
      releaseHeldMs: round(release?.args[1]),
      stats: button.stats(),
    };
  } finally {
    await line.close();
  }
}

async function stuckScenario(backend, sim, ready) {
  const stuckMs = 1500;
  sim.soc.pull(27, RELEASE);
  const { line, ...opened } = await openInput(backend, sim.soc, { name: 'GPIO27' }, 27, { activeLow: true, bias: 'pull-up' });
  try {
    const initial = await line.read();
    await ready();
    const button = new PanicButton(initial, { debounceMs: 30, longPressMs: 300, stuckMs }, deps);
    const rec = record(button, ['press', 'release', 'long_press', 'stuck', 'recovered']);
    line.on('edge', (e) => button.edge(e));
    button.start();
    const steps = [];
    const mark = (what) => steps.push({ what, events: rec.types().length, stuck: button.stuck });

    sim.soc.pull(27, PRESS); // jammed from here
    await rec.waitFor('stuck', 1, 10_000);
    mark('held past stuck');
    sim.soc.pull(27, RELEASE);
    await sleep(300);
    sim.soc.pull(27, PRESS); // the jammed contact flickers: no new alarm
    await sleep(200);
    sim.soc.pull(27, RELEASE);
    await sleep(200);
    mark('flicker while stuck');
    await rec.waitFor('recovered', 1, RECOVERY_MS + 10_000);
    mark('recovered');
    sim.soc.pull(27, PRESS); // works again
    await rec.waitFor('press', 2);
    sim.soc.pull(27, RELEASE);
    await rec.waitFor('release');
    await sleep(100);
    button.stop();
    const stuck = rec.events.find((e) => e.type === 'stuck');
    return {
      line: line.id,
      ...opened,
      initial,
      stuckMs,
      recoveryMs: RECOVERY_MS,
      events: rec.types(),
      stuckHeldMs: round(stuck?.args[1]),
      steps,
      stats: button.stats(),
    };
  } finally {
    await line.close();
  }
}

async function stuckAtStartScenario(backend, sim, ready) {
  sim.soc.pull(6, PRESS); // held before the daemon starts
  const { line, ...opened } = await openInput(backend, sim.soc, { name: 'GPIO6' }, 6, { activeLow: true, bias: 'as-is' });
  try {
    const initial = await line.read();
    await ready();
    const button = new PanicButton(initial, { debounceMs: 30, longPressMs: 3000, stuckMs: 60_000 }, deps);
    const rec = record(button, ['press', 'release', 'long_press', 'stuck', 'recovered']);
    line.on('edge', (e) => button.edge(e));
    button.start();
    await sleep(100);
    const atStart = rec.types();
    sim.soc.pull(6, RELEASE);
    await rec.waitFor('recovered', 1, RECOVERY_MS + 10_000);
    sim.soc.pull(6, PRESS);
    await rec.waitFor('press');
    sim.soc.pull(6, RELEASE);
    await rec.waitFor('release');
    button.stop();
    return { line: line.id, ...opened, initial, atStart, events: rec.types(), stats: button.stats() };
  } finally {
    await line.close();
    sim.soc.pull(6, RELEASE);
  }
}

async function motionScenario(backend, sim, ready) {
  // Wide margins: a Node event loop in an emulated VM on a busy host can stall for many ms.
  // PIR outputs stay high for a second or more; sysfs reports the level read when the event is
  // handled, so a pulse shorter than the event loop's stall could go unseen there.
  const holdMs = 3000;
  const pulseMs = 500;
  const retriggerAfterMs = 1000;
  sim.aux.pull(2, 'pull-down'); // a PIR output is active high, idle low
  const { line, ...opened } = await openInput(backend, sim.aux, { chip: AUX_LABEL, offset: 2 }, 2, { activeLow: false, bias: 'pull-down' });
  try {
    const initial = await line.read();
    await ready();
    const sensor = new MotionSensor({ debounceMs: 30, holdMs, minIntervalMs: 0 }, deps);
    const rec = record(sensor, ['motion', 'still']);
    line.on('edge', (e) => sensor.edge(e));
    const pulse = async () => {
      sim.aux.pull(2, 'pull-up');
      await sleep(pulseMs);
      sim.aux.pull(2, 'pull-down');
    };
    const t0 = now();
    await pulse();
    await rec.waitFor('motion');
    await sleep(Math.max(0, retriggerAfterMs - (now() - t0)));
    const activeBeforeRetrigger = sensor.active;
    await pulse(); // re-triggered while active: the hold is extended, no second motion event
    await rec.waitFor('still', 1, 10_000);
    await sleep(100);
    const still = rec.events.find((e) => e.type === 'still');
    sensor.stop();
    return {
      line: line.id,
      ...opened,
      initial,
      holdMs,
      retriggerAfterMs,
      activeBeforeRetrigger,
      events: rec.types(),
      stillDurationMs: round(still?.args[1]),
      stats: sensor.stats(),
    };
  } finally {
    await line.close();
  }
}

/**
 * Plays a pattern step and reads the line as the kernel shows it: at once when play() resolved
 * (`atResolve`), then until it is driven at the expected level (`appliedWithinMs`, null if not
 * within 5 s). The kernel's view, not only the level: gpio-sim puts a released line at its pull.
 */
async function outputStep(chip, offset, expected, action) {
  const want = `out ${expected ? 'hi' : 'lo'}`;
  await action();
  const atResolve = lineState(chip, offset);
  const appliedWithinMs = await pollState(chip, offset, want, 5000);
  return { expected: want, atResolve, appliedWithinMs, value: chip.value(offset) };
}

async function outputsScenario(backend, sim) {
  const result = {};
  const open = async (name, ref, chip, offset, opts) => {
    const line = await backend.output(ref, { consumer: `vigia:${name}`, ...opts });
    await waitRequested(chip, offset);
    return { line };
  };
  const make = (line, name, maxOnMs) => new Output(line, { name, maxOnMs, clock: systemClock, timers: systemTimers });

  // Each line is pulled to the opposite of its safe state: the safe state on the line is driven.
  sim.soc.pull(23, 'pull-up');
  sim.aux.pull(5, 'pull-down');
  sim.soc.pull(24, 'pull-up');

  // A strobe (active high) with a safety cut-off.
  {
    const { line } = await open('strobe', { name: 'GPIO23' }, sim.soc, 23, { activeLow: false, initial: false });
    const out = make(line, 'strobe', 1500);
    const rec = record(out, ['cutoff', 'write_error']);
    const r = { line: line.id, initial: lineState(sim.soc, 23) };
    r.on = await outputStep(sim.soc, 23, 1, () => out.play({ mode: 'on' }));
    r.lineValueAfterOn = line.value();
    const cut = await rec.waitFor('cutoff', 1, 10_000);
    r.cutoffPattern = cut.args[0];
    r.cutoffAfterMs = round(cut.args[1], 0);
    r.afterCutoffWithinMs = await pollState(sim.soc, 23, 'out lo');
    r.events = rec.types();
    r.stats = out.stats();
    out.stop();
    await line.close();
    result.strobe = r;
  }

  // A relay board that switches on a low level (active_low), on the expander by chip and offset.
  {
    const { line } = await open('relay', { chip: AUX_LABEL, offset: 5 }, sim.aux, 5, { activeLow: true, initial: false });
    const out = make(line, 'relay', 0);
    const rec = record(out, ['cutoff', 'write_error']);
    const r = { line: line.id, initial: lineState(sim.aux, 5) };
    r.on = await outputStep(sim.aux, 5, 0, () => out.play({ mode: 'on' }));
    r.safe = await outputStep(sim.aux, 5, 1, () => out.safe());
    r.events = rec.types();
    out.stop();
    await line.close();
    result.relay = r;
  }

  // A door strike: one pulse, then off; and a blinking LED that ends by itself.
  {
    const { line } = await open('strike', { name: 'GPIO24' }, sim.soc, 24, { activeLow: false, initial: false });
    const out = make(line, 'strike', 0);
    const rec = record(out, ['cutoff', 'write_error']);
    const r = { line: line.id, initial: lineState(sim.soc, 24) };
    r.pulse = await outputStep(sim.soc, 24, 1, () => out.play({ mode: 'pulse', ms: 1000 }));
    r.pulseEndedWithinMs = await pollState(sim.soc, 24, 'out lo', 5000);

    // Blink 600 ms for 2.4 s, sampling the line: the level goes up and down, and ends off.
    const samples = [];
    const sampling = setInterval(() => samples.push(lineState(sim.soc, 24) === 'out hi' ? 1 : 0), 10);
    await out.play({ mode: 'blink', period_ms: 600, for_ms: 2400 });
    await sleep(3000);
    clearInterval(sampling);
    let transitions = 0;
    for (let i = 1; i < samples.length; i++) if (samples[i] !== samples[i - 1]) transitions++;
    r.blink = {
      samples: samples.length,
      highSamples: samples.filter((v) => v === 1).length,
      transitions,
      final: lineState(sim.soc, 24),
      pattern: out.pattern.mode,
    };
    r.events = rec.types();
    r.stats = out.stats();
    out.stop();
    await line.close();
    result.strike = r;
  }
  return result;
}

/** Press-to-callback latency: from the write to the sim's pull to PanicButton's `press` callback. */
async function latencyScenario(backend, sim) {
  const debounceMs = 10;
  sim.soc.pull(17, RELEASE);
  const { line, ...opened } = await openInput(backend, sim.soc, { name: 'GPIO17' }, 17, { activeLow: true, bias: 'pull-up' });
  try {
    const initial = await line.read();
    const button = new PanicButton(initial, { debounceMs, longPressMs: 10_000, stuckMs: 60_000 }, deps);
    let onPress;
    let onRelease;
    button.on('press', (monoMs) => onPress?.(monoMs));
    button.on('release', () => onRelease?.());
    line.on('edge', (e) => button.edge(e));
    button.start();
    const toCallback = [];
    const writeToStamp = [];
    const stampToCallback = [];
    for (let i = 0; i < PRESSES; i++) {
      const pressed = new Promise((r) => (onPress = (monoMs) => r({ at: now(), monoNow: systemClock.monoNow(), monoMs })));
      const writeMono = systemClock.monoNow();
      const t0 = now();
      sim.soc.pull(17, PRESS);
      const got = await Promise.race([pressed, sleep(10_000).then(() => null)]);
      if (!got) throw new Error(`press ${i + 1} of ${PRESSES}: no press callback within 10 s`);
      toCallback.push(got.at - t0);
      writeToStamp.push(got.monoMs - writeMono);
      stampToCallback.push(got.monoNow - got.monoMs);
      const released = new Promise((r) => (onRelease = r));
      await sleep(5);
      sim.soc.pull(17, RELEASE);
      await Promise.race([released, sleep(10_000)]);
      await sleep(debounceMs * 1.5); // out of the lockout before the next press
    }
    button.stop();
    return {
      line: line.id,
      ...opened,
      presses: PRESSES,
      stats: button.stats(),
      pressToCallbackMs: percentiles(toCallback),
      writeToEdgeStampMs: percentiles(writeToStamp),
      edgeStampToCallbackMs: percentiles(stampToCallback),
    };
  } finally {
    await line.close();
  }
}

/** What happens to a press made right after input() resolved, before waiting for the monitor. */
async function pressRightAfterOpenScenario(backend, sim) {
  sim.soc.pull(5, RELEASE);
  const t0 = now();
  const line = await backend.input({ name: 'GPIO5' }, { activeLow: true, bias: 'pull-up', consumer: 'vigia:test' });
  const openMs = now() - t0;
  try {
    const initial = await line.read();
    const button = new PanicButton(initial, { debounceMs: 30, longPressMs: 10_000, stuckMs: 60_000 }, deps);
    const rec = record(button, ['press', 'release', 'stuck']);
    line.on('edge', (e) => button.edge(e));
    button.start();
    const requestedAtPress = requestedLines().has(sim.soc.sysfsBase + 5);
    sim.soc.pull(5, PRESS);
    const requestedAfterMs = (await waitRequested(sim.soc, 5)).waitedMs;
    await sleep(300);
    const whileHeld = { events: rec.types(), pressed: button.pressed };
    sim.soc.pull(5, RELEASE);
    await sleep(300);
    button.stop();
    return { line: line.id, openMs: round(openMs), requestedAtPress, requestedAfterMs, whileHeld, events: rec.types() };
  } finally {
    await line.close();
  }
}

/** How line references resolve on the real chips (no line is requested). */
async function resolveScenario(backend, sim) {
  const refs = [
    { name: 'GPIO17' },
    { name: 'GPIO17', chip: AUX_LABEL },
    { name: 'PANIC' },
    { chip: SOC_LABEL, offset: 3 },
    { chip: AUX_LABEL, offset: 5 },
    { chip: AUX_LABEL, offset: 8 },
    { chip: sim.soc.name, offset: 3 },
    { chip: sim.aux.name, offset: 5 },
    { chip: `/dev/${sim.aux.name}`, offset: 5 },
  ];
  const out = [];
  for (const ref of refs) {
    try {
      const line = await backend.resolve(ref);
      out.push({ ref, label: line.chip.label, offset: line.offset, ...(line.number !== undefined ? { number: line.number } : { chip: line.chip.name }) });
    } catch (err) {
      out.push({ ref, error: `${err.name}: ${err.message}` });
    }
  }
  return { refs: out };
}

/** `toolsDir`: libgpiod tools other than the system's (the v2 tools the rig built). */
async function backendScenarios(kind, sim, toolsDir) {
  const results = {};
  const rec = recorder();
  const { backend, reason } = await selectGpioBackend(kind, { clock: systemClock, logger: rec.logger, ...(toolsDir ? { toolsDir } : {}) });
  results.backend = {
    kind: backend.kind,
    reason,
    ...(backend.version ? { tools: backend.version } : {}),
    interactiveSet: backend.interactiveSet ?? null,
    monitorBanner: backend.monitorBanner ?? null,
  };
  try {
    await scenario(results, 'resolve', () => resolveScenario(backend, sim));
    // The input scenarios use lines of their own and mostly wait (the 2 s stuck recovery), so they
    // run side by side; but only once every line is open, as spawning the tools is heavy in an
    // emulated VM. The outputs (a blinking chardev output respawns gpioset) and the latency
    // measurement run alone.
    const inputs = { bounce: bounceScenario, longPress: longPressScenario, stuck: stuckScenario, stuckAtStart: stuckAtStartScenario, motion: motionScenario };
    const gate = startGate(Object.keys(inputs).length);
    await Promise.all(
      Object.entries(inputs).map(([name, fn]) => {
        let arrived = false;
        const ready = () => {
          arrived = true;
          return gate.arrive();
        };
        return scenario(results, name, () => fn(backend, sim, ready).finally(() => arrived || gate.drop()));
      }),
    );
    await scenario(results, 'outputs', () => outputsScenario(backend, sim));
    await scenario(results, 'latency', () => latencyScenario(backend, sim));
    await scenario(results, 'pressRightAfterOpen', () => pressRightAfterOpenScenario(backend, sim));
  } finally {
    await backend.close();
  }
  results.warnings = rec.warnings;
  if (kind === 'sysfs') results.exported = readdirSync('/sys/class/gpio').filter((e) => /^gpio\d+$/.test(e));
  return results;
}

// ---------------------------------------------------------------------------------------------
// The pole: the daemon's controller, panic press to alarm.panic in the SQLite outbox.

/**
 * The daemon's modules take seconds to load from 9p under TCG. They are loaded while the chips
 * are set up, and before any scenario that depends on timing: evaluating them holds the event loop.
 */
function loadPoleModules() {
  const loading = (async () => {
    const [{ Controller }, { configSchema, applyProfileDefaults }, { createRequire }] = await Promise.all([
      dist('controller.js'),
      dist('config/index.js'),
      import('node:module'),
    ]);
    const Database = createRequire(join(ROOT, 'package.json'))('better-sqlite3');
    return { Controller, configSchema, applyProfileDefaults, Database };
  })();
  loading.catch(() => undefined); // reported where it is awaited
  return loading;
}

async function poleScenario(sim, modules) {
  const { Controller, configSchema, applyProfileDefaults, Database } = await modules;

  const dir = '/tmp/vigia-pole';
  rmSync(dir, { recursive: true, force: true });
  const config = configSchema.parse(
    applyProfileDefaults({
      device: { id: 'pole-rig', site: 'rig', profile: 'pole' },
      paths: { data_dir: join(dir, 'data'), runtime_dir: join(dir, 'run') },
      log: { level: 'fatal' },
      clock: { sync_source: 'assume-synced' },
      // Nothing listens there: the link stays down and every event waits in the outbox.
      mqtt: { url: 'mqtt://127.0.0.1:9', reconnect: { min_delay: '1s', max_delay: '5s' } },
      telemetry: { interval: '1h' },
      hardware: {
        backend: 'chardev',
        inputs: { panic: { line: 'GPIO17', kind: 'panic', debounce: '10ms' } },
        outputs: { strobe: { line: 'GPIO23', kind: 'strobe' }, button_led: { line: 'GPIO25', kind: 'led' } },
      },
      pole: { led_output: 'button_led', strobe_output: 'strobe', led_received: 'on' },
    }),
  );
  sim.soc.pull(17, RELEASE);
  // Outputs pulled up (on, if released): the daemon must drive them off itself.
  sim.soc.pull(23, 'pull-up');
  sim.soc.pull(25, 'pull-up');
  const controller = new Controller(config);
  const accepted = [];
  let onAlarm;
  controller.bus.on('event.accepted', (event) => {
    accepted.push(event.type);
    if (event.type === 'alarm.panic') onAlarm?.(event);
  });
  const t0 = now();
  await controller.start();
  const startMs = now() - t0;
  const result = { startMs: round(startMs, 0), outboxFile: controller.paths.outboxFile, phases: {} };
  let phaseAt = now();
  const phase = (name) => {
    result.phases[name] = round(now() - phaseAt, 0);
    phaseAt = now();
  };
  try {
    const held = await waitRequested(sim.soc, 17);
    result.panicLine = { consumer: held.consumer, requestedAfterStartMs: held.waitedMs };
    // The kernel lists the line as requested just before it sets up its interrupt, in the same
    // call; a probe edge would be an alarm here, so give that call time to finish instead.
    await sleep(300);
    result.outputsAtStart = { strobe: lineState(sim.soc, 23), button_led: lineState(sim.soc, 25) };
    result.fieldIo = controller.status()['field-io'];
    phase('ready');

    const pressOnce = async () => {
      const alarm = new Promise((r) => (onAlarm = (event) => r({ at: now(), event })));
      const t = now();
      sim.soc.pull(17, PRESS);
      const got = await Promise.race([alarm, sleep(15_000).then(() => null)]);
      if (!got) throw new Error('no alarm.panic accepted within 15 s of a press');
      return { ms: got.at - t, event: got.event };
    };
    // The next press only once the daemon has seen this release, and after the 10 ms lockout: the
    // kernel gives an edge the direction of the level it reads when it handles it, so a release
    // followed too soon by a press can arrive as two press edges, and the presses merge.
    const releaseOnce = async () => {
      sim.soc.pull(17, RELEASE);
      const started = now();
      while (controller.status()['field-io'].inputs.panic.pressed) {
        if (now() - started > 10_000) throw new Error('the daemon did not see the button released within 10 s');
        await sleep(2);
      }
      await sleep(15);
    };

    // The first press: alarm.panic durable in the outbox, then LED and strobe on.
    const first = await pressOnce();
    const db = new Database(controller.paths.outboxFile, { readonly: true, fileMustExist: true });
    const rows = db.prepare("SELECT type, priority, body FROM events WHERE type = 'alarm.panic' ORDER BY pos").all();
    db.close();
    result.firstPress = {
      ms: round(first.ms),
      eventId: first.event.id,
      rowsRightAfter: rows.map((r) => ({ column: { type: r.type, priority: r.priority }, ...JSON.parse(r.body) })),
      strobeOnWithinMs: await pollState(sim.soc, 23, 'out hi'),
      ledOnWithinMs: await pollState(sim.soc, 25, 'out hi'),
    };
    result.outputsAfterAlarm = { strobe: lineState(sim.soc, 23), button_led: lineState(sim.soc, 25) };
    result.status = controller.status()['field-io'];
    await releaseOnce();
    phase('firstPress');

    // Latency: press to alarm.panic durable in the outbox, over many presses of one incident.
    const latencies = [];
    for (let i = 0; i < PRESSES; i++) {
      latencies.push((await pressOnce()).ms);
      await releaseOnce();
    }
    result.pressToDurableMs = percentiles(latencies);
    result.presses = PRESSES + 1;
    result.statusAfter = controller.status()['field-io'];
    phase('latency');
  } finally {
    const watches = { strobe: watchStates(sim.soc, 23), button_led: watchStates(sim.soc, 25) };
    await controller.stop();
    result.outputsDuringStop = { strobe: watches.strobe(), button_led: watches.button_led() };
    phase('stop');
  }
  result.acceptedTypes = accepted;
  const db = new Database(controller.paths.outboxFile, { readonly: true, fileMustExist: true });
  result.outbox = db
    .prepare('SELECT type, priority, body FROM events ORDER BY pos')
    .all()
    .map((r) => {
      const e = JSON.parse(r.body);
      return { type: r.type, rank: r.priority, priority: e.priority, id: e.id, seq: e.seq, payload: e.payload };
    });
  db.close();
  return result;
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const results = { startedAt: new Date().toISOString(), errors: [] };
  const fail = (where, err) => {
    results.errors.push(`${where}: ${err?.stack ?? err}`);
    progress(`${where} FAILED: ${err?.message ?? err}`);
  };
  try {
    results.kernel = execFileSync('uname', ['-r'], { encoding: 'utf8' }).trim();
    results.node = process.version;
    const poleModules = ONLY.has('pole') ? loadPoleModules() : undefined;
    const sim = createSimDevice();
    results.chips = Object.fromEntries(
      Object.entries(sim).map(([k, c]) => [
        k,
        { label: c.label, name: c.name, lines: c.lines, devName: c.devName, sysfsDir: c.sysfsDir, sysfsBase: c.sysfsBase, ngpio: c.ngpio },
      ]),
    );
    results.gpiodetect = execFileSync('gpiodetect', [], { encoding: 'utf8' });
    {
      // Line 17 of the Pi-like chip as gpioinfo lists it (the whole listing: same syntax in v1 and v2).
      const info = execFileSync('gpioinfo', [], { encoding: 'utf8' });
      const section = info.slice(info.indexOf(`${sim.soc.name} - `));
      results.gpioinfoSoc17 = section
        .split('\n')
        .find((l) => /^\s+line\s+17:/.test(l))
        ?.trim();
    }

    {
      const rec = recorder();
      const auto = await selectGpioBackend('auto', { clock: systemClock, logger: rec.logger });
      results.auto = { kind: auto.backend.kind, reason: auto.reason };
      await auto.backend.close();
    }

    if (poleModules) await poleModules.catch(() => undefined); // a failure is reported by the pole scenario
    progress('set up');

    if (ONLY.has('chardev')) results.chardev = await backendScenarios('chardev', sim).catch((err) => fail('chardev', err));
    if (ONLY.has('chardev2')) {
      progress('chardev with the libgpiod v2 tools...');
      const dir = process.env.VIGIA_RIG_GPIOD2;
      if (!dir) fail('chardev2', new Error('VIGIA_RIG_GPIOD2 is not set: the rig passes the directory of the libgpiod v2 tools it built'));
      else results.chardev2 = await backendScenarios('chardev', sim, dir).catch((err) => fail('chardev2', err));
    }
    if (ONLY.has('pole')) {
      progress('pole...');
      try {
        results.pole = await poleScenario(sim, poleModules);
      } catch (err) {
        fail('pole', err);
      }
    }
    if (ONLY.has('sysfs')) results.sysfs = await backendScenarios('sysfs', sim).catch((err) => fail('sysfs', err));
  } catch (err) {
    fail('setup', err);
  }
  results.finishedAt = new Date().toISOString();
  writeFileSync(join(OUT_DIR, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  progress(`results written (${results.errors.length} errors)`);
}

await main();
process.exit(0);
