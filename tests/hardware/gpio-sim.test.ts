import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The GPIO drivers on a real Linux kernel: scripts/hardware-rig.mjs boots Debian's 6.1 kernel in
// QEMU with the kernel's GPIO simulator (gpio-sim) and runs tests/hardware/vm-runner.mjs in it,
// which drives the compiled drivers (dist/) through the real character device (libgpiod tools)
// and sysfs (onoff) interfaces and writes what happened to results.json. The checks are here.
// Latencies are measured and printed, never asserted: QEMU's TCG emulation is slower than a Pi.

const ROOT = resolve(import.meta.dirname, '../..');
const PRESSES = 50;

/** What the VM runner wrote (plain JSON). */
type Json = any;

let results: Json;
let outDir: string;
let rigSeconds = 0;
let vmSeconds: number | undefined;

function runRig(): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [
        join(ROOT, 'scripts/hardware-rig.mjs'),
        'run',
        '--out',
        outDir,
        '--timeout',
        '600',
        '--env',
        `VIGIA_HW_PRESSES=${PRESSES}`,
        '--',
        process.execPath,
        'tests/hardware/vm-runner.mjs',
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    let partial = '';
    const onData = (buf: Buffer) => {
      const text = buf.toString();
      output = (output + text).slice(-400_000);
      // Progress: the rig's steps and the runner's scenario lines, not the whole VM console.
      const lines = (partial + text).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (/^(hardware-rig:|rig:|\[vm )/.test(line)) process.stderr.write(`${line}\n`);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code, output }));
  });
}

beforeAll(async () => {
  // The last run's console log and results stay here for a look after a failure.
  outDir = join(tmpdir(), 'vigia-hardware-last-run');
  rmSync(outDir, { recursive: true, force: true });
  mkdirSync(outDir, { recursive: true });
  const started = Date.now();
  const { code, output } = await runRig();
  rigSeconds = (Date.now() - started) / 1000;
  const ran = /hardware-rig: VM ran for ([\d.]+) s/.exec(output);
  if (ran) vmSeconds = Number(ran[1]);
  const file = join(outDir, 'results.json');
  if (code !== 0 || !existsSync(file)) {
    throw new Error(`the hardware rig failed (exit ${code}); output in ${outDir}:\n${output.split('\n').slice(-60).join('\n')}`);
  }
  results = JSON.parse(readFileSync(file, 'utf8'));
});

afterAll(() => {
  if (results) printLatencyTable();
  if (outDir) process.stdout.write(`VM console and results: ${outDir}\n`);
});

function printLatencyTable(): void {
  const row = (name: string, p: Json) =>
    p
      ? `${name.padEnd(44)} ${String(p.n).padStart(4)} ${String(p.p50).padStart(8)} ${String(p.p90).padStart(8)} ${String(p.p99).padStart(8)} ${String(p.max).padStart(8)}`
      : `${name.padEnd(44)} (not measured)`;
  const lines = [
    '',
    `GPIO latency on kernel ${results.kernel} under QEMU TCG (emulated: slower than a Raspberry Pi), node ${results.node}, ms`,
    `${'measurement'.padEnd(44)} ${'n'.padStart(4)} ${'p50'.padStart(8)} ${'p90'.padStart(8)} ${'p99'.padStart(8)} ${'max'.padStart(8)}`,
    row('chardev: pull write -> PanicButton press', results.chardev?.latency?.pressToCallbackMs),
    row('chardev:   pull write -> kernel edge stamp', results.chardev?.latency?.writeToEdgeStampMs),
    row('chardev:   kernel edge stamp -> press', results.chardev?.latency?.edgeStampToCallbackMs),
    row('chardev, libgpiod v2: pull write -> press', results.chardev2?.latency?.pressToCallbackMs),
    row('sysfs:   pull write -> PanicButton press', results.sysfs?.latency?.pressToCallbackMs),
    row('pole (chardev): pull write -> alarm durable', results.pole?.pressToDurableMs),
    `VM (boot, scenarios, power-off): ${vmSeconds ?? '?'} s; with the rig's preparation: ${rigSeconds.toFixed(1)} s`,
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

const r = () => {
  if (!results) throw new Error('no results from the VM');
  return results;
};

describe('the rig', () => {
  it('ran on the Debian 6.1 kernel with two simulated chips, with no scenario failing', () => {
    expect(r().kernel).toMatch(/^6\.1\.0-\d+-amd64$/);
    expect(r().errors).toEqual([]);
    expect(r().gpiodetect).toMatch(new RegExp(`^${r().chips.soc.name} \\[pinctrl-bcm2711\\] \\(28 lines\\)$`, 'm'));
    expect(r().gpiodetect).toMatch(new RegExp(`^${r().chips.aux.name} \\[vigia-aux\\] \\(8 lines\\)$`, 'm'));
    expect(r().gpioinfoSoc17).toMatch(/^line\s+17:\s+"GPIO17"\s.*\binput\b/);
  });

  it('gives the simulated chips real, non-zero sysfs bases', () => {
    const { soc, aux } = r().chips;
    expect(soc.sysfsBase).toBeGreaterThan(0);
    expect(aux.sysfsBase).toBeGreaterThan(0);
    expect(soc.sysfsBase).not.toBe(aux.sysfsBase);
    expect(soc.sysfsDir).toBe(`gpiochip${soc.sysfsBase}`);
    expect(soc.ngpio).toBe(28);
    expect(aux.ngpio).toBe(8);
  });

  it('auto selects the character device when the kernel has one and the libgpiod tools are installed', () => {
    expect(r().auto.kind).toBe('chardev');
    expect(r().auto.reason).toMatch(/^chardev: auto: \/dev\/gpiochip\d+, \/dev\/gpiochip\d+ with the libgpiod tools, libgpiod v\d/);
  });
});

/** The results of each backend run: chardev with Debian 12's libgpiod v1 tools, chardev with the v2 tools of Debian 13 that the rig builds, sysfs. */
const RUNS = {
  chardev: 'chardev backend, libgpiod v1 tools (Debian 12)',
  chardev2: 'chardev backend, libgpiod v2 tools (Debian 13)',
  sysfs: 'sysfs backend',
} as const;

describe.each(Object.keys(RUNS) as (keyof typeof RUNS)[])('%s on gpio-sim', (kind) => {
  const chardev = kind !== 'sysfs';
  const b = () => {
    const got = r()[kind];
    if (!got) throw new Error(`no ${kind} results`);
    return got;
  };
  const ok = (name: string) => {
    const s = b()[name];
    if (!s) throw new Error(`scenario ${name} did not run`);
    if (s.error) throw new Error(`scenario ${name} failed in the VM:\n${s.error}`);
    return s;
  };
  const soc = () => r().chips.soc;
  const aux = () => r().chips.aux;
  /** The line id each backend gives: chardev `label:offset (NAME)`, sysfs adds the global number. */
  const id = (chip: Json, offset: number, name?: string) =>
    chardev ? `${chip.label}:${offset}${name ? ` (${name})` : ''}` : `${chip.label}:${offset} (${name ? `${name}, ` : ''}sysfs ${chip.sysfsBase + offset})`;

  it(`is the backend asked for: ${RUNS[kind]}`, () => {
    expect(b().backend.kind).toBe(chardev ? 'chardev' : 'sysfs');
    if (kind === 'chardev') {
      expect(b().backend.reason).toMatch(/^chardev: configured: .* with the libgpiod tools, libgpiod v1\./);
      expect(b().backend).toMatchObject({ tools: { major: 1 }, interactiveSet: false, monitorBanner: false });
    } else if (kind === 'chardev2') {
      expect(b().backend.reason).toMatch(/^chardev: configured: .* with the libgpiod tools, libgpiod v2\.2\.1/);
      // Both as on trixie: gpioset takes `set` commands, gpiomon says when it holds its line.
      expect(b().backend).toMatchObject({ tools: { major: 2, version: '2.2.1' }, interactiveSet: true, monitorBanner: true });
    } else expect(b().backend.reason).toBe('sysfs: configured: /sys/class/gpio/export');
  });

  it('resolves line names and chip labels with offsets to the right lines', () => {
    const refs: Json[] = ok('resolve').refs;
    const at = (ref: Json) => refs.find((x) => JSON.stringify(x.ref) === JSON.stringify(ref));
    const where = (chip: Json, offset: number) =>
      chardev ? { label: chip.label, offset, chip: chip.name } : { label: chip.label, offset, number: chip.sysfsBase + offset };
    expect(at({ name: 'GPIO17' })).toMatchObject(where(soc(), 17));
    expect(at({ chip: 'pinctrl-bcm2711', offset: 3 })).toMatchObject(where(soc(), 3));
    expect(at({ chip: 'vigia-aux', offset: 5 })).toMatchObject(where(aux(), 5));
    expect(at({ chip: 'vigia-aux', offset: 8 }).error).toMatch(/GpioLineError: .*offset 8 is out of range/);
    expect(at({ name: 'GPIO17', chip: 'vigia-aux' }).error).toMatch(/^GpioLineError: /);
    if (chardev) {
      expect(at({ name: 'PANIC' }).error).toMatch(/^GpioLineError: no GPIO line named PANIC/);
      expect(at({ chip: soc().name, offset: 3 })).toMatchObject(where(soc(), 3));
      expect(at({ chip: aux().name, offset: 5 })).toMatchObject(where(aux(), 5));
      expect(at({ chip: `/dev/${aux().name}`, offset: 5 })).toMatchObject(where(aux(), 5));
    } else {
      expect(at({ name: 'PANIC' }).error).toMatch(/^GpioLineError: line PANIC: the sysfs GPIO interface has no line names/);
    }
  });

  if (kind === 'sysfs') {
    // A chip's `device` link is its parent device, which can hold several chips (gpio-sim banks;
    // gpio-brcmstb on a Pi 5): a `gpiochipN` name must then be refused, never resolved to another chip.
    it('never resolves a character-device chip name to another chip when chips share a device', () => {
      const refs: Json[] = ok('resolve').refs;
      const at = (ref: Json) => refs.find((x) => JSON.stringify(x.ref) === JSON.stringify(ref));
      const got = at({ chip: soc().name, offset: 3 });
      // Either the right chip, or a refusal naming the ambiguity; never another chip's line.
      if (got.error) expect(got.error).toMatch(/^GpioLineError: /);
      else expect(got).toMatchObject({ label: soc().label, offset: 3, number: soc().sysfsBase + 3 });
    });

    it('warns that sysfs cannot set the bias, with the config.txt line for the Pi pin controller', () => {
      const msgs: string[] = b().warnings.map((w: Json) => w.msg);
      expect(msgs).toContain(`${id(soc(), 17, 'GPIO17')}: the sysfs GPIO interface cannot set bias pull-up; set it in config.txt: gpio=17=pu`);
      expect(msgs).toContain(`${id(aux(), 2)}: the sysfs GPIO interface cannot set bias pull-down; set it in the device tree or with the chardev backend`);
    });

    it('unexports inputs when closed and leaves outputs exported (driven)', () => {
      const expected = [soc().sysfsBase + 23, soc().sysfsBase + 24, aux().sysfsBase + 5].map((n) => `gpio${n}`).sort();
      expect([...b().exported].sort()).toEqual(expected);
    });
  }

  it('every input is held by the kernel by the time it is open', () => {
    // ok() also fails a scenario whose probe edges (moved right after opening) did not arrive.
    for (const name of ['bounce', 'longPress', 'stuck', 'stuckAtStart', 'motion']) expect(ok(name).heldAtOpen, name).toBe(true);
    expect(ok('pressRightAfterOpen').requestedAtPress).toBe(true);
  });

  it('a bouncing press is one press, a bouncing release one release', () => {
    const s = ok('bounce');
    expect(s.line).toBe(id(soc(), 17, 'GPIO17'));
    if (chardev) expect(s.consumer).toBe(b().backend.tools.major === 1 ? 'gpiomon' : 'vigia:test');
    else expect(s.consumer).toBe('sysfs');
    expect(s.initial).toBe(false);
    // Precondition: the five level changes of each bounce fell within the debounce window.
    expect(s.pressWriteMs).toBeLessThan(s.debounceMs);
    expect(s.releaseWriteMs).toBeLessThan(s.debounceMs);
    expect(s.pressedAfter).toEqual({ pressed: true, events: ['press'] });
    expect(s.events).toEqual(['press', 'release']);
    expect(s.stats).toMatchObject({ presses: 1, long_presses: 0, stuck_faults: 0, pressed: false, stuck: false });
    // The kernel reported edges (some coalesced) and the line settled released.
    expect(s.edges).toBeGreaterThanOrEqual(2);
    expect(s.edgeValues[0]).toBe(true);
    expect(s.edgeValues.at(-1)).toBe(false);
    expect(s.finalRead).toBe(false);
  });

  it('a long press: press, long_press at the configured time, release', () => {
    const s = ok('longPress');
    expect(s.line).toBe(id(soc(), 22, 'GPIO22'));
    expect(s.events).toEqual(['press', 'long_press', 'release']);
    expect(s.longPressAfterPressMs).toBe(s.longPressMs);
    expect(s.releaseHeldMs).toBeGreaterThanOrEqual(s.longPressMs);
    expect(s.stats).toMatchObject({ presses: 1, long_presses: 1, stuck_faults: 0 });
  });

  it('a stuck button is one fault, ignores flicker, recovers after staying released, then works again', () => {
    const s = ok('stuck');
    expect(s.line).toBe(id(soc(), 27, 'GPIO27'));
    expect(s.events).toEqual(['press', 'long_press', 'stuck', 'recovered', 'press', 'release']);
    expect(s.stuckHeldMs).toBe(s.stuckMs);
    expect(s.steps).toEqual([
      { what: 'held past stuck', events: 3, stuck: true },
      { what: 'flicker while stuck', events: 3, stuck: true },
      { what: 'recovered', events: 4, stuck: false },
    ]);
    expect(s.stats).toMatchObject({ presses: 2, long_presses: 1, stuck_faults: 1, pressed: false, stuck: false });
  });

  it('a button held when its line is opened is a stuck fault, not an alarm', () => {
    const s = ok('stuckAtStart');
    expect(s.line).toBe(id(soc(), 6, 'GPIO6'));
    expect(s.initial).toBe(true);
    expect(s.atStart).toEqual(['stuck']);
    expect(s.events).toEqual(['stuck', 'recovered', 'press', 'release']);
    expect(s.stats).toMatchObject({ presses: 1, stuck_faults: 1 });
  });

  it('motion: one motion event, the hold extended by a re-trigger, then still', () => {
    const s = ok('motion');
    expect(s.line).toBe(id(aux(), 2));
    expect(s.initial).toBe(false);
    expect(s.activeBeforeRetrigger).toBe(true);
    expect(s.events).toEqual(['motion', 'still']);
    expect(s.stats).toEqual({ motions: 1, suppressed: 0, triggers: 2, active: false });
    // The period runs from the first trigger to hold after the second one.
    expect(s.stillDurationMs).toBeGreaterThan(s.holdMs + s.retriggerAfterMs / 2);
  });

  it('outputs drive the lines: safe state when opened, on, safety cut-off, active-low relay, pulse, blink', () => {
    const { strobe, relay, strike } = ok('outputs');
    // The kernel shows each step driven at its level (each line is pulled the other way, so a
    // released line does not pass for a driven one); sysfs has it driven before play() resolves.
    const applied = (step: Json, state: string, what: string) => {
      expect(step.expected).toBe(state);
      expect(step.appliedWithinMs).not.toBeNull();
      expect(step.value).toBe(state === 'out hi' ? 1 : 0); // the sim line's own value

      // sysfs writes the value; chardev resolves once the kernel shows the new gpioset holding it.
      expect(step.atResolve, `${kind} ${what}: the line when play() resolved`).toBe(state);
    };
    expect(strobe.line).toBe(id(soc(), 23, 'GPIO23'));
    expect(strobe.initial).toBe('out lo');
    applied(strobe.on, 'out hi', 'strobe on');
    expect(strobe.lineValueAfterOn).toBe(true);
    expect(strobe.events).toEqual(['cutoff']);
    expect(strobe.cutoffPattern).toEqual({ mode: 'on' });
    expect(strobe.cutoffAfterMs).toBeGreaterThanOrEqual(1500);
    expect(strobe.afterCutoffWithinMs).not.toBeNull();
    expect(strobe.stats).toMatchObject({ pattern: 'off', value: false, cutoffs: 1, errors: 0 });

    expect(relay.line).toBe(id(aux(), 5));
    expect(relay.initial).toBe('out hi'); // active low: off is a high level
    applied(relay.on, 'out lo', 'relay on');
    applied(relay.safe, 'out hi', 'relay safe');
    expect(relay.events).toEqual([]);

    expect(strike.line).toBe(id(soc(), 24, 'GPIO24'));
    expect(strike.initial).toBe('out lo');
    applied(strike.pulse, 'out hi', 'strike pulse');
    expect(strike.pulseEndedWithinMs).not.toBeNull();
    expect(strike.events).toEqual([]);
    expect(strike.blink).toMatchObject({ final: 'out lo', pattern: 'off' });
    expect(strike.stats).toMatchObject({ pattern: 'off', errors: 0 });
    // sysfs and an interactive v2 gpioset apply each blink step at once. The v1 libgpiod tools
    // replace gpioset for every change (the line is released meanwhile), so only some high level
    // is required there.
    if (kind !== 'chardev') expect(strike.blink.transitions).toBeGreaterThanOrEqual(5);
    else expect(strike.blink.highSamples).toBeGreaterThanOrEqual(1);
  });

  it(`${PRESSES} presses, each reported once (latency printed after the run)`, () => {
    const s = ok('latency');
    expect(s.presses).toBe(PRESSES);
    expect(s.stats).toMatchObject({ presses: PRESSES, long_presses: 0, stuck_faults: 0, pressed: false, stuck: false });
    expect(s.pressToCallbackMs.n).toBe(PRESSES);
  });

  const rightAfterOpen = () => {
    const s = ok('pressRightAfterOpen');
    expect(s.whileHeld).toEqual({ events: ['press'], pressed: true });
    expect(s.events).toEqual(['press', 'release']);
  };
  // chardev: open() resolves once gpiomon holds the line, so nothing made after it goes unseen.
  it('a press made right after the input opened is reported', rightAfterOpen);
});

describe('pole on gpio-sim (Controller, chardev backend, outbox on tmpfs, broker unreachable)', () => {
  const p = () => {
    const got = r().pole;
    if (!got) throw new Error('no pole results');
    return got;
  };

  it('starts with its outputs off and the panic input held by a monitor', () => {
    expect(p().fieldIo.backend).toBe('chardev');
    expect(p().fieldIo.inputs.panic).toMatchObject({ kind: 'panic', line: 'pinctrl-bcm2711:17 (GPIO17)', presses: 0, pressed: false, stuck: false });
    // Pulled up, so only the daemon driving them makes them low.
    expect(p().outputsAtStart).toEqual({ strobe: 'out lo', button_led: 'out lo' });
    expect(p().fieldIo.line_errors).toBe(0);
  });

  it('a press is alarm.panic on disk in the outbox, then the LED and strobe light', () => {
    const first = p().firstPress;
    expect(first.rowsRightAfter).toHaveLength(1);
    const row = first.rowsRightAfter[0];
    expect(row).toMatchObject({ type: 'alarm.panic', priority: 'alarm', id: first.eventId, device: 'pole-rig', site: 'rig', seq: 1, clock: 'synced' });
    expect(row.column.type).toBe('alarm.panic');
    expect(row.payload).toMatchObject({ input: 'panic', alarm_id: null, press: 1, snapshot: null });
    expect(typeof row.payload.line_mono_ms).toBe('number');
    expect(first.strobeOnWithinMs).not.toBeNull();
    expect(first.ledOnWithinMs).not.toBeNull();
    expect(p().outputsAfterAlarm).toEqual({ strobe: 'out hi', button_led: 'out hi' });
    expect(p().status.pole).toMatchObject({ state: 'raised', alarm_id: first.eventId, alarms: 1, presses: 1 });
  });

  it(`every one of ${PRESSES + 1} presses is an alarm.panic of the same incident, in order, at alarm priority`, () => {
    const rows: Json[] = p().outbox;
    const firstId = p().firstPress.eventId;
    expect(p().presses).toBe(PRESSES + 1);
    expect(rows.map((x) => x.type)).toEqual(Array(PRESSES + 1).fill('alarm.panic'));
    expect(rows.map((x) => x.seq)).toEqual(Array.from({ length: PRESSES + 1 }, (_, i) => i + 1));
    expect(rows.map((x) => x.payload.press)).toEqual(Array.from({ length: PRESSES + 1 }, (_, i) => i + 1));
    expect(rows.map((x) => x.payload.alarm_id)).toEqual([null, ...Array(PRESSES).fill(firstId)]);
    expect(rows.map((x) => x.priority)).toEqual(Array(PRESSES + 1).fill('alarm'));
    expect(new Set(rows.map((x) => x.rank)).size).toBe(1);
    const monos = rows.map((x) => x.payload.line_mono_ms);
    expect(monos).toEqual([...monos].sort((a, b) => a - b));
    expect(p().acceptedTypes).toEqual(Array(PRESSES + 1).fill('alarm.panic'));
    expect(p().pressToDurableMs.n).toBe(PRESSES);
    expect(p().statusAfter.inputs.panic).toMatchObject({ presses: PRESSES + 1, stuck_faults: 0, pressed: false });
    expect(p().statusAfter.pole).toMatchObject({ state: 'raised', alarms: 1, presses: PRESSES + 1 });
    expect(p().statusAfter.line_errors).toBe(0);
  });

  it('stopping the daemon releases the outputs, after driving them to their safe state', () => {
    for (const [name, states] of Object.entries(p().outputsDuringStop) as [string, string[]][]) {
      expect(states[0]).toBe('out hi');
      expect(states.at(-1)).toBe('released');
      // Driven to its safe level before it is released: a Raspberry Pi keeps a released line at
      // its last level, so releasing it while on would leave the siren on.
      expect(states.at(-2), `${name}: ${states.join(' -> ')}`).toBe('out lo');
    }
  });
});
