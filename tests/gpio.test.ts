import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/core/clock.js';
import { ChardevGpio, type ChardevOptions, kernelTimestampToMono } from '../src/drivers/gpio/chardev.js';
import {
  getArgs,
  holdArgs,
  monitorArgs,
  parseEdgeRow,
  parseGetOutput,
  parseGpiodetect,
  parseGpioinfo,
  parseToolsVersion,
  supportsInteractiveSet,
} from '../src/drivers/gpio/libgpiod-cli.js';
import { selectGpioBackend } from '../src/drivers/gpio/select.js';
import { backoffDelay } from '../src/core/backoff.js';
import { SUPERVISOR_BACKOFF } from '../src/drivers/gpio/supervisor.js';
import { readSysfsChips, resolveSysfsLine, socPinController, SysfsGpio } from '../src/drivers/gpio/sysfs.js';
import { type EdgeEvent, GpioLineError, type InputLine } from '../src/drivers/gpio/types.js';
import {
  fakePinFactory,
  holderPid,
  isAlive,
  logRecorder,
  PI4_KERNEL_5_15,
  PI4_KERNEL_6_6,
  PI5_KERNEL_6_6,
  readLines,
  waitUntil,
  writeFakeTools,
  writeSysfsTree,
} from './helpers/fake-gpio.js';
import {
  GPIODETECT_PI4,
  GPIODETECT_PI5,
  GPIODETECT_PI5_EARLY,
  V1_GPIOINFO_PI4,
  V1_GPIOINFO_PI5,
  V1_VERSION,
  V2_GPIOINFO_BY_NAME,
  V2_GPIOINFO_PI5,
  V2_GPIOSET_HELP_INTERACTIVE,
  V2_GPIOSET_HELP_PLAIN,
  V2_VERSION,
} from './helpers/libgpiod-samples.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'vigia-gpio-'));
});
afterEach(() => {
  rmSync(tmp, { recursive: true, force: true });
});

const input = { activeLow: true, bias: 'pull-up', consumer: 'vigia-panic' } as const;

describe('libgpiod tool output', () => {
  it('tells the tools generation from --version', () => {
    expect(parseToolsVersion(V1_VERSION)).toEqual({ major: 1, version: '1.6.3' });
    expect(parseToolsVersion(V2_VERSION)).toEqual({ major: 2, version: '2.1.3' });
    expect(parseToolsVersion('gpiomon (libgpiod) v2.2-devel\n')).toEqual({ major: 2, version: '2.2-devel' });
    expect(parseToolsVersion('gpiodetect: unrecognized option')).toBeUndefined();
  });

  it('sees whether gpioset was built interactive', () => {
    expect(supportsInteractiveSet(V2_GPIOSET_HELP_INTERACTIVE)).toBe(true);
    expect(supportsInteractiveSet(V2_GPIOSET_HELP_PLAIN)).toBe(false);
  });

  it('parses gpiodetect, once per chip', () => {
    expect(parseGpiodetect(GPIODETECT_PI4)).toEqual([
      { name: 'gpiochip0', label: 'pinctrl-bcm2711', lines: 58 },
      { name: 'gpiochip1', label: 'raspberrypi-exp-gpio', lines: 8 },
    ]);
    expect(parseGpiodetect(GPIODETECT_PI5).map((c) => c.name)).toEqual(['gpiochip0', 'gpiochip10', 'gpiochip11', 'gpiochip12', 'gpiochip13']);
    // A chip reached through a compatibility symlink is the same chip.
    expect(parseGpiodetect(`${GPIODETECT_PI5}gpiochip0 [pinctrl-rp1] (54 lines)\n`)).toHaveLength(5);
  });

  it('parses v1 gpioinfo rows, overflowing names included', () => {
    const lines = parseGpioinfo(V1_GPIOINFO_PI4);
    expect(lines.find((l) => l.name === 'GPIO17')).toEqual({ chip: 'gpiochip0', offset: 17, name: 'GPIO17' });
    expect(lines.find((l) => l.name === 'STATUS_LED_G_CLK')).toEqual({ chip: 'gpiochip0', offset: 42, name: 'STATUS_LED_G_CLK', consumer: 'led0' });
    expect(lines.find((l) => l.name === 'PWR_LED_OFF')).toEqual({ chip: 'gpiochip1', offset: 2, name: 'PWR_LED_OFF', consumer: 'led1' });
    // The holder: in quotes after the name, `unused` when free; v1 shows its own tools by name.
    expect(lines.find((l) => l.name === 'GPIO17')?.consumer).toBeUndefined();
    expect(parseGpioinfo('gpiochip0 - 58 lines:\n\tline  17:     "GPIO17"  "gpiomon"   input  active-high [used]\n')).toEqual([
      { chip: 'gpiochip0', offset: 17, name: 'GPIO17', consumer: 'gpiomon' },
    ]);
    expect(parseGpioinfo('gpiochip1 - 8 lines:\n\tline   3:      unnamed   "gpioset"  output  active-high [used]\n')[0]).toMatchObject({
      name: undefined,
      consumer: 'gpioset',
    });
    expect(lines.filter((l) => l.chip === 'gpiochip1')).toHaveLength(8);
  });

  it('parses v2 gpioinfo rows and the by-name form', () => {
    const lines = parseGpioinfo(V2_GPIOINFO_PI5);
    expect(lines.filter((l) => l.chip === 'gpiochip0')).toHaveLength(54);
    expect(lines.find((l) => l.name === 'GPIO17')).toEqual({ chip: 'gpiochip0', offset: 17, name: 'GPIO17' });
    expect(lines.find((l) => l.name === 'PWR_GPIO')).toEqual({ chip: 'gpiochip10', offset: 20, name: 'PWR_GPIO', consumer: 'pwr_button' });
    expect(lines.find((l) => l.name === 'GPIO17')?.consumer).toBeUndefined();
    expect(
      parseGpioinfo('gpiochip0 - 54 lines:\n\tline  17:\t"GPIO17"\tinput bias=pull-up edges=both event-clock=monotonic consumer=vigia-panic\n')[0]?.consumer,
    ).toBe('vigia-panic');
    expect(parseGpioinfo(V2_GPIOINFO_BY_NAME)).toEqual([{ chip: 'gpiochip0', offset: 17, name: 'GPIO17' }]);
    expect(parseGpioinfo('gpiochip3 - 1 lines:\n\tline   0:\tunnamed         \tinput\n')).toEqual([{ chip: 'gpiochip3', offset: 0, name: undefined }]);
  });

  it('parses edge rows of both versions and ignores anything else', () => {
    expect(parseEdgeRow('17 1 5000 250000000')).toEqual({ offset: 17, rising: true, timestampNs: 5_000_250_000_000n });
    expect(parseEdgeRow('17 0 5000 7')).toEqual({ offset: 17, rising: false, timestampNs: 5_000_000_000_007n });
    expect(parseEdgeRow('17 falling 5000.000000007')).toEqual({ offset: 17, rising: false, timestampNs: 5_000_000_000_007n });
    expect(parseEdgeRow('4 rising 86400123.5\r')).toEqual({ offset: 4, rising: true, timestampNs: 86_400_123_500_000_000n });
    expect(parseEdgeRow('17 2 5000.000000007')?.rising).toBe(false); // v2 %e: 2 is falling
    expect(parseEdgeRow("Monitoring line '17'...")).toBeUndefined();
    expect(parseEdgeRow('event:  RISING EDGE offset: 17 timestamp: [    5000.250000000]')).toBeUndefined();
    expect(parseEdgeRow('')).toBeUndefined();
  });

  it('parses gpioget output of both versions', () => {
    expect(parseGetOutput('1\n')).toBe(true);
    expect(parseGetOutput('0\n')).toBe(false);
    expect(parseGetOutput('"17"=active\n')).toBe(true);
    expect(parseGetOutput('17=inactive\n')).toBe(false);
    expect(parseGetOutput('gpioget: unable to request lines')).toBeUndefined();
  });

  it('builds the command lines of each version', () => {
    expect(monitorArgs(1, 'gpiochip0', 17, 'pull-up', 'vigia')).toEqual(['--line-buffered', '--format=%o %e %s %n', '--bias=pull-up', 'gpiochip0', '17']);
    expect(monitorArgs(1, 'gpiochip0', 17, 'disabled', 'vigia')).toContain('--bias=disable');
    expect(monitorArgs(2, 'gpiochip0', 17, 'as-is', 'vigia')).toEqual([
      '--chip',
      'gpiochip0',
      '--edges',
      'both',
      '--event-clock',
      'monotonic',
      '--format=%o %E %S',
      '--consumer',
      'vigia',
      '17',
    ]);
    expect(getArgs(1, 'gpiochip0', 17, 'pull-down', 'vigia')).toEqual(['--bias=pull-down', 'gpiochip0', '17']);
    expect(getArgs(2, 'gpiochip0', 17, 'disabled', 'vigia')).toEqual(['--chip', 'gpiochip0', '--consumer', 'vigia', '--bias', 'disabled', '17']);
    expect(holdArgs(1, 'gpiochip0', 27, true, 'vigia', false)).toEqual(['--mode=signal', 'gpiochip0', '27=1']);
    expect(holdArgs(2, 'gpiochip0', 27, false, 'vigia', true)).toEqual(['--chip', 'gpiochip0', '--consumer', 'vigia', '--banner', '--interactive', '27=0']);
  });
});

describe('timestamps and backoff', () => {
  it('converts a kernel monotonic timestamp to the Clock base, and distrusts other clocks', () => {
    expect(kernelTimestampToMono(5_000_250_000_000n, 5_000_500_000_000n, 10_000, 60_000)).toEqual({ monoMs: 9750, trusted: true });
    // A REALTIME stamp (old kernels, v1 ABI) is decades "old": use the reception time.
    expect(kernelTimestampToMono(1_767_225_600_000_000_000n, 5_000_500_000_000n, 10_000, 60_000)).toEqual({ monoMs: 10_000, trusted: false });
    expect(kernelTimestampToMono(5_001_000_000_000n, 5_000_500_000_000n, 10_000, 60_000).trusted).toBe(false);
  });

  it('doubles the delay up to the cap, spread by the jitter', () => {
    const policy = { ...SUPERVISOR_BACKOFF, minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 };
    expect([0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, policy, () => 0.5))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoffDelay(1, policy, () => 0)).toBe(160);
    expect(backoffDelay(1, policy, () => 1)).toBe(240);
    expect(backoffDelay(4, policy, () => 1)).toBe(1000);
  });
});

function toolsDir(name = 'bin'): string {
  return join(tmp, name);
}

function chardevOptions(dir: string, extra: Partial<ChardevOptions> = {}): ChardevOptions {
  return {
    clock: new ManualClock(),
    toolsDir: dir,
    devDir: join(tmp, 'dev'),
    hrtimeNs: () => 5_000_500_000_000n,
    backoff: { minDelayMs: 20, maxDelayMs: 100, factor: 2, jitter: 0, resetAfterMs: 60_000 },
    killGraceMs: 1000,
    ackTimeoutMs: 2000,
    ...extra,
  };
}

function collect(line: InputLine) {
  const edges: EdgeEvent[] = [];
  const errors: Error[] = [];
  line.on('edge', (e) => edges.push(e));
  line.on('error', (e) => errors.push(e));
  return { edges, errors };
}

describe('chardev backend: setup and line resolution', () => {
  it('finds the tools and their version', async () => {
    writeFakeTools(toolsDir('v1'), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4 });
    const v1 = await ChardevGpio.create(chardevOptions(toolsDir('v1')));
    expect(v1.version).toEqual({ major: 1, version: '1.6.3' });
    expect(v1.interactiveSet).toBe(false);

    writeFakeTools(toolsDir('v2i'), { version: '2.1.3', gpiodetect: GPIODETECT_PI5, gpioinfo: V2_GPIOINFO_PI5, gpiosetHelp: V2_GPIOSET_HELP_INTERACTIVE });
    const v2 = await ChardevGpio.create(chardevOptions(toolsDir('v2i')));
    expect(v2.version.major).toBe(2);
    expect(v2.interactiveSet).toBe(true);

    writeFakeTools(toolsDir('v2'), { version: '2.1.3', gpiodetect: GPIODETECT_PI5, gpioinfo: V2_GPIOINFO_PI5, gpiosetHelp: V2_GPIOSET_HELP_PLAIN });
    expect((await ChardevGpio.create(chardevOptions(toolsDir('v2')))).interactiveSet).toBe(false);
  });

  it('refuses to start without the tools, saying how to install them', async () => {
    mkdirSync(toolsDir('empty'));
    await expect(ChardevGpio.create(chardevOptions(toolsDir('empty')))).rejects.toThrow(
      /libgpiod tools missing: gpiodetect, gpioinfo, gpioget, gpioset, gpiomon.*apt install gpiod/,
    );
  });

  it('resolves names, labels, device names and paths on a Pi 4 (v1)', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4 });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    expect(await gpio.resolve({ name: 'GPIO17' })).toMatchObject({ chip: { name: 'gpiochip0', label: 'pinctrl-bcm2711' }, offset: 17, name: 'GPIO17' });
    expect(await gpio.resolve({ name: 'PWR_LED_OFF' })).toMatchObject({ chip: { name: 'gpiochip1' }, offset: 2 });
    expect(await gpio.resolve({ chip: 'raspberrypi-exp-gpio', offset: 7 })).toMatchObject({ chip: { name: 'gpiochip1' }, offset: 7 });
    expect(await gpio.resolve({ chip: 'gpiochip0', offset: 4 })).toMatchObject({ chip: { label: 'pinctrl-bcm2711' }, offset: 4 });
    expect(await gpio.resolve({ chip: '/dev/gpiochip1', offset: 0 })).toMatchObject({ chip: { label: 'raspberrypi-exp-gpio' } });
    // Restricted to one chip, the listing of that chip only is asked for (v1: positional chip).
    expect(await gpio.resolve({ name: 'GPIO17', chip: 'pinctrl-bcm2711' })).toMatchObject({ offset: 17 });
    expect(readLines(toolsDir(), 'gpioinfo.args')).toEqual(['', 'gpiochip0']);
  });

  it('says clearly why a line cannot be resolved', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI5_EARLY, gpioinfo: V1_GPIOINFO_PI5 });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    await expect(gpio.resolve({ name: 'PANIC' })).rejects.toThrow(
      /no GPIO line named PANIC \(searched gpiochip0 \[gpio-brcmstb@107d508500\], .*gpiochip4 \[pinctrl-rp1\]\)/,
    );
    await expect(gpio.resolve({ name: '2712_WAKE' })).rejects.toThrow(
      /line name 2712_WAKE is on several chips \(gpiochip2:8 \[gpio-brcmstb@107d517c00\], gpiochip4:47 \[pinctrl-rp1\]\): give the chip too/,
    );
    await expect(gpio.resolve({ chip: 'pinctrl-rp1', offset: 54 })).rejects.toThrow(/offset 54 is out of range, gpiochip4 \[pinctrl-rp1\] has 54 lines/);
    await expect(gpio.resolve({ chip: 'pinctrl-bcm2711', offset: 17 })).rejects.toThrow(
      /no GPIO chip labelled pinctrl-bcm2711 \(chips: gpiochip0 \[gpio-brcmstb@107d508500\]/,
    );
    await expect(gpio.resolve({ chip: 'gpiochip9', offset: 1 })).rejects.toThrow(GpioLineError);
    expect(await gpio.resolve({ name: 'GPIO17' })).toMatchObject({ chip: { name: 'gpiochip4', label: 'pinctrl-rp1' }, offset: 17 });
  });

  it('follows a chip symlink such as the Pi 5 /dev/gpiochip4 → gpiochip0', async () => {
    const dev = join(tmp, 'dev');
    mkdirSync(dev);
    writeFileSync(join(dev, 'gpiochip0'), '');
    symlinkSync('gpiochip0', join(dev, 'gpiochip4'));
    writeFakeTools(toolsDir(), { version: '2.1.3', gpiodetect: GPIODETECT_PI5, gpioinfo: V2_GPIOINFO_PI5 });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    expect(await gpio.resolve({ chip: 'gpiochip4', offset: 17 })).toMatchObject({ chip: { name: 'gpiochip0', label: 'pinctrl-rp1' } });
    expect(await gpio.resolve({ chip: join(dev, 'gpiochip4'), offset: 17 })).toMatchObject({ chip: { name: 'gpiochip0' } });
    expect(await gpio.resolve({ name: 'PWR_GPIO', chip: 'gpio-brcmstb@107d508500' })).toMatchObject({ chip: { name: 'gpiochip10' }, offset: 20 });
    expect(readLines(toolsDir(), 'gpioinfo.args')).toEqual(['--chip gpiochip10']);
  });
});

describe('chardev backend: inputs', () => {
  it('v1: monitors with gpiomon, converts kernel timestamps, restarts a dead monitor with backoff and reports it', async () => {
    writeFakeTools(toolsDir(), {
      version: '1.6.3',
      gpiodetect: GPIODETECT_PI4,
      gpioinfo: V1_GPIOINFO_PI4,
      gpioget: 'echo 1',
      gpiomon: [
        'if [ "$RUN" -eq 1 ]; then',
        '  echo "17 0 5000 250000000"',
        '  echo "17 1 5000 300000000"',
        '  echo "gpiomon: error waiting for events: Input/output error" >&2',
        '  exit 1',
        'fi',
        'hold "$@"',
        'echo "17 0 5000 400000000"',
        'exec sleep 60',
      ].join('\n'),
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    const line = await gpio.input({ name: 'GPIO17' }, input);
    expect(line.id).toBe('pinctrl-bcm2711:17 (GPIO17)');
    const { edges, errors } = collect(line);
    expect(await line.read()).toBe(false); // gpioget read high: released, with active_low

    await waitUntil(() => edges.length === 3, 'three edges');
    // Falling edge = pin low = active (active_low); times are the kernel's, 250/200/100 ms before "now".
    expect(edges).toEqual([
      { value: true, monoMs: 9750 },
      { value: false, monoMs: 9800 },
      { value: true, monoMs: 9900 },
    ]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(GpioLineError);
    expect(errors[0]!.message).toMatch(
      /^gpiomon pinctrl-bcm2711:17 \(GPIO17\) exited with code 1: gpiomon: error waiting for events: Input\/output error; restart 1 in 20 ms$/,
    );
    expect(readLines(toolsDir(), 'gpiomon.args')).toEqual([
      '--line-buffered --format=%o %e %s %n --bias=pull-up gpiochip0 17',
      '--line-buffered --format=%o %e %s %n --bias=pull-up gpiochip0 17',
    ]);
    // gpioget read the line before each start, while gpiomon did not hold it.
    expect(readLines(toolsDir(), 'gpioget.args')).toEqual(['--bias=pull-up gpiochip0 17', '--bias=pull-up gpiochip0 17']);
    expect(await line.read()).toBe(true); // followed from the last edge: no gpioget on a held line
    expect(readLines(toolsDir(), 'gpioget.args')).toHaveLength(2);

    const pid = Number(readLines(toolsDir(), 'gpiomon.pid').at(-1));
    expect(isAlive(pid)).toBe(true);
    await gpio.close();
    expect(isAlive(pid)).toBe(false);
  });

  it('v2: passes chip, edges, clock, consumer and bias, and reports the change missed while down', async () => {
    writeFakeTools(toolsDir(), {
      version: '2.1.3',
      gpiodetect: GPIODETECT_PI5,
      gpioinfo: V2_GPIOINFO_PI5,
      // Low before the first monitor; low again when read between its crash and the restart.
      gpioget: 'echo \'"17"=inactive\'',
      gpiomon: [
        'if [ "$RUN" -eq 1 ]; then',
        '  echo "17 rising 5000.250000000"',
        '  echo "gpiomon: unable to read line events: No such device" >&2',
        '  exit 1',
        'fi',
        'hold "$@"',
        'exec sleep 60',
      ].join('\n'),
    });
    const clock = new ManualClock();
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir(), { clock }));
    const line = await gpio.input({ name: 'GPIO17' }, { activeLow: false, bias: 'pull-down', consumer: 'vigia-door' });
    const { edges, errors } = collect(line);
    await waitUntil(() => edges.length === 2, 'the edge and the resync');
    expect(edges).toEqual([
      { value: true, monoMs: 9750 },
      { value: false, monoMs: clock.monoNow() }, // seen by gpioget, not the kernel: stamped when read
    ]);
    expect(errors[0]?.message).toMatch(/No such device; restart 1 in 20 ms/);
    await waitUntil(() => readLines(toolsDir(), 'gpiomon.args').length === 2, 'the restart');
    expect(readLines(toolsDir(), 'gpiomon.args')[0]).toBe(
      '--chip gpiochip0 --edges both --event-clock monotonic --format=%o %E %S --consumer vigia-door --bias pull-down 17',
    );
    expect(readLines(toolsDir(), 'gpioget.args')[0]).toBe('--chip gpiochip0 --consumer vigia-door --bias pull-down 17');
    expect(await line.read()).toBe(false);
    await line.close();
    expect(isAlive(Number(readLines(toolsDir(), 'gpiomon.pid').at(-1)))).toBe(false);
  });

  it('keeps retrying a monitor that cannot start, backing off exponentially to the cap', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4, gpioget: 'echo 1' });
    // An interpreter that does not exist: the kernel refuses to execute the tool.
    writeFileSync(join(toolsDir(), 'gpiomon'), '#!/nonexistent/interpreter\n');
    const { logger, entries } = logRecorder();
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir(), { logger }));
    const line = await gpio.input({ chip: 'pinctrl-bcm2711', offset: 22 }, input);
    const { errors } = collect(line);
    const failures = () =>
      entries.filter((e) => e.msg === 'GPIO input monitor stopped; restarting').map((e) => e.obj as { attempt: number; restartInMs: number });
    await waitUntil(() => failures().length >= 6, 'six failed starts');
    await line.close();
    expect(failures().slice(0, 6)).toEqual([
      { line: line.id, attempt: 1, restartInMs: 20, err: expect.stringMatching(/^gpiomon pinctrl-bcm2711:22 could not start: spawn .*gpiomon ENOENT$/) },
      expect.objectContaining({ attempt: 2, restartInMs: 40 }),
      expect.objectContaining({ attempt: 3, restartInMs: 80 }),
      expect.objectContaining({ attempt: 4, restartInMs: 100 }),
      expect.objectContaining({ attempt: 5, restartInMs: 100 }),
      expect.objectContaining({ attempt: 6, restartInMs: 100 }),
    ]);
    // Each is also an error event on the line.
    expect(errors.at(-1)?.message).toMatch(/could not start: spawn .*ENOENT; restart \d in 100 ms$/);
  });

  it('kills a monitor that ignores SIGTERM with SIGKILL on close', async () => {
    writeFakeTools(toolsDir(), {
      version: '1.6.3',
      gpiodetect: GPIODETECT_PI4,
      gpioinfo: V1_GPIOINFO_PI4,
      gpiomon: 'trap \'\' TERM\nhold "$@"\necho ignoring > "$D/gpiomon.trap"\nexec sleep 60',
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir(), { killGraceMs: 100 }));
    const line = await gpio.input({ name: 'GPIO23' }, input);
    await waitUntil(() => readLines(toolsDir(), 'gpiomon.trap').length === 1, 'the monitor to ignore SIGTERM');
    const pid = Number(readLines(toolsDir(), 'gpiomon.pid')[0]);
    const started = Date.now();
    await line.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    expect(isAlive(pid)).toBe(false);
  });

  it('refuses the same line twice', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4 });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    await gpio.input({ name: 'GPIO17' }, input);
    await expect(gpio.output({ chip: 'gpiochip0', offset: 17 }, { activeLow: false, initial: false, consumer: 'x' })).rejects.toThrow(
      /line pinctrl-bcm2711:17 is already in use/,
    );
    await gpio.close();
  });
});

describe('chardev backend: an input is open once its monitor holds the line', () => {
  /** A gpiomon that takes `delay` seconds to request its line, then prints what the test drops into `go`. */
  const slowMonitor = (delay: string, banner = false) =>
    [
      `sleep ${delay}`,
      'hold "$@"',
      ...(banner ? ['echo "Monitoring line \'${last}\'..."'] : []),
      'while [ ! -e "$D/go" ]; do sleep 0.01; done',
      'cat "$D/go"',
      'exec sleep 60',
    ].join('\n');

  it('v1: open() waits until gpioinfo shows gpiomon holding the line', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4, gpioget: 'echo 1', gpiomon: slowMonitor('0.3') });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    await gpio.input({ name: 'GPIO17' }, input);
    expect(holderPid(toolsDir(), 'gpiochip0', 17)).toBe(Number(readLines(toolsDir(), 'gpiomon.pid')[0]));
    // Asked more than once, each time about the chip of the line (the first listing resolved the name).
    const asked = readLines(toolsDir(), 'gpioinfo.args');
    expect(asked.length).toBeGreaterThan(2);
    expect(new Set(asked.slice(1))).toEqual(new Set(['gpiochip0']));
    await gpio.close();
  });

  it('v2 with --banner: open() waits for the banner, without asking gpioinfo', async () => {
    writeFakeTools(toolsDir(), {
      version: '2.1.3',
      gpiodetect: GPIODETECT_PI5,
      gpioinfo: V2_GPIOINFO_PI5,
      gpiomonHelp: '      --banner\t\tdisplay a banner on successful startup\n',
      gpioget: 'echo \'"17"=active\'',
      gpiomon: ['eval "last=\\${$#}"', slowMonitor('0.3', true)].join('\n'),
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    await gpio.input({ name: 'GPIO17' }, input);
    expect(holderPid(toolsDir(), 'gpiochip0', 17)).toBe(Number(readLines(toolsDir(), 'gpiomon.pid')[0]));
    expect(readLines(toolsDir(), 'gpiomon.args')).toEqual([
      '--chip gpiochip0 --edges both --event-clock monotonic --format=%o %E %S --consumer vigia-panic --banner --bias pull-up 17',
    ]);
    expect(readLines(toolsDir(), 'gpioinfo.args')).toHaveLength(1); // the name's resolution only
    await gpio.close();
  });

  it('reports a press made before the monitor held the line, stamped when monitoring began', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4, gpioget: 'echo 1', gpiomon: slowMonitor('0') });
    const clock = new ManualClock();
    // The kernel's monotonic clock runs with the test's: 4990 s + the Clock's ms.
    const hrtimeNs = () => 4_990_000_000_000n + BigInt(clock.monoNow()) * 1_000_000n;
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir(), { clock, hrtimeNs }));
    const line = await gpio.input({ name: 'GPIO17' }, input); // read high: released (active-low)
    const openedAt = clock.monoNow();
    const { edges } = collect(line);
    expect(await line.read()).toBe(false);
    // The button went down between gpioget and the request (unseen); its release is the first edge.
    clock.advance(500);
    writeFileSync(join(toolsDir(), 'go'), '17 1 5000 400000000\n');
    await waitUntil(() => edges.length === 2, 'the missed press and the release');
    expect(edges).toEqual([
      { value: true, monoMs: openedAt },
      { value: false, monoMs: openedAt + 400 },
    ]);
    expect(await line.read()).toBe(false);
    await gpio.close();
  });

  it('delivers edges that came while open() was waiting to a listener attached right after it', async () => {
    writeFakeTools(toolsDir(), {
      version: '1.6.3',
      gpiodetect: GPIODETECT_PI4,
      gpioinfo: V1_GPIOINFO_PI4,
      gpioget: 'echo 1',
      // Edges at once, then the hold: the first edge already proves the line is held.
      gpiomon: ['echo "17 0 5000 250000000"', 'echo "17 1 5000 300000000"', 'hold "$@"', 'exec sleep 60'].join('\n'),
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    const line = await gpio.input({ name: 'GPIO17' }, input);
    expect(await line.read()).toBe(false); // the level before the edges not yet delivered
    const { edges } = collect(line);
    await waitUntil(() => edges.length === 2, 'both edges');
    expect(edges).toEqual([
      { value: true, monoMs: 9750 },
      { value: false, monoMs: 9800 },
    ]);
    await gpio.close();
  });

  it('gives up waiting after the acknowledgement timeout, with a warning, and still follows the line', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4, gpioget: 'echo 1', gpiomon: 'exec sleep 60' });
    const { logger, entries } = logRecorder();
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir(), { logger, ackTimeoutMs: 200 }));
    const line = await gpio.input({ name: 'GPIO17' }, input);
    expect(entries.filter((e) => e.level === 'warn').map((e) => e.msg)).toEqual([
      'GPIO input: monitor not yet seen holding the line; edges may be missed until it does',
    ]);
    expect(await line.read()).toBe(false);
    await gpio.close();
  });
});

describe('chardev backend: outputs', () => {
  it('v1: holds the value with gpioset --mode=signal and replaces it to change the value', async () => {
    writeFakeTools(toolsDir(), { version: '1.6.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V1_GPIOINFO_PI4 });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    const runs = () => readLines(toolsDir(), 'gpioset.args');
    const out = await gpio.output({ chip: 'pinctrl-bcm2711', offset: 27 }, { activeLow: true, initial: false, consumer: 'vigia-siren' });
    expect(out.value()).toBe(false);
    // v1 prints nothing once it holds the line: wait for each fake's record before replacing it.
    await waitUntil(() => runs().length === 1, 'the first gpioset');
    await out.set(true);
    expect(out.value()).toBe(true);
    await waitUntil(() => runs().length === 2, 'the second gpioset');
    await out.set(true); // already so: nothing to do
    await out.set(false);
    await waitUntil(() => runs().length === 3, 'the third gpioset');
    // Levels at the pin: active_low inverts.
    expect(runs()).toEqual(['--mode=signal gpiochip0 27=1', '--mode=signal gpiochip0 27=0', '--mode=signal gpiochip0 27=1']);
    const pids = readLines(toolsDir(), 'gpioset.pid').map(Number);
    await waitUntil(() => !isAlive(pids[0]!) && !isAlive(pids[1]!), 'the replaced holders to end');
    expect(isAlive(pids[2]!)).toBe(true);
    await out.close();
    expect(isAlive(pids[2]!)).toBe(false);
    await expect(out.set(true)).rejects.toThrow(/pinctrl-bcm2711:27 is closed/);
  });

  it('v1: set() resolves once gpioinfo shows the new gpioset holding the line', async () => {
    // Each gpioset takes 300 ms to request its line.
    writeFakeTools(toolsDir(), {
      version: '1.6.3',
      gpiodetect: GPIODETECT_PI4,
      gpioinfo: V1_GPIOINFO_PI4,
      gpioset: ['sleep 0.3', 'hold "$@"', 'exec sleep 60'].join('\n'),
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    const holders = () => readLines(toolsDir(), 'gpioset.pid').map(Number);
    const out = await gpio.output({ name: 'GPIO27' }, { activeLow: false, initial: false, consumer: 'vigia-siren' });
    expect(holderPid(toolsDir(), 'gpiochip0', 27)).toBe(holders()[0]);
    await out.set(true);
    expect(holderPid(toolsDir(), 'gpiochip0', 27)).toBe(holders()[1]);
    expect(readLines(toolsDir(), 'gpioset.args')).toEqual(['--mode=signal gpiochip0 27=0', '--mode=signal gpiochip0 27=1']);
    await gpio.close();
  });

  it('v2 interactive: one gpioset, new values as set commands confirmed by its prompt', async () => {
    writeFakeTools(toolsDir(), {
      version: '2.1.3',
      gpiodetect: GPIODETECT_PI5,
      gpioinfo: V2_GPIOINFO_PI5,
      gpiosetHelp: V2_GPIOSET_HELP_INTERACTIVE,
      gpioset: [
        'eval "last=\\${$#}"',
        'echo "Setting line \'${last%%=*}\'..."',
        'printf "gpioset> "',
        'while IFS= read -r cmd; do',
        '  echo "$cmd" >> "$D/gpioset.commands"',
        '  printf "gpioset> "',
        'done',
      ].join('\n'),
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    const out = await gpio.output({ name: 'GPIO17' }, { activeLow: false, initial: false, consumer: 'vigia-strobe' });
    await out.set(true);
    expect(readLines(toolsDir(), 'gpioset.commands')).toEqual(['set 17=1']); // written and confirmed before set() resolved
    await out.set(false);
    await out.set(true);
    expect(readLines(toolsDir(), 'gpioset.commands')).toEqual(['set 17=1', 'set 17=0', 'set 17=1']);
    expect(readLines(toolsDir(), 'gpioset.args')).toEqual(['--chip gpiochip0 --consumer vigia-strobe --banner --interactive 17=0']);
    const pid = Number(readLines(toolsDir(), 'gpioset.pid')[0]);
    await gpio.close();
    expect(isAlive(pid)).toBe(false);
  });

  it('v2: a holder that dies is restarted holding the current value, and reported', async () => {
    writeFakeTools(toolsDir(), {
      version: '2.1.3',
      gpiodetect: GPIODETECT_PI5,
      gpioinfo: V2_GPIOINFO_PI5,
      gpiosetHelp: V2_GPIOSET_HELP_PLAIN,
      gpioset: ['echo "Setting line \'5\'..."', 'exec sleep 60'].join('\n'),
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir()));
    const out = await gpio.output({ chip: 'pinctrl-rp1', offset: 5 }, { activeLow: false, initial: false, consumer: 'vigia-relay' });
    const errors: Error[] = [];
    out.on('error', (e) => errors.push(e));
    await out.set(true);
    expect(readLines(toolsDir(), 'gpioset.args')).toEqual([
      '--chip gpiochip0 --consumer vigia-relay --banner 5=0',
      '--chip gpiochip0 --consumer vigia-relay --banner 5=1',
    ]);

    process.kill(Number(readLines(toolsDir(), 'gpioset.pid')[1]), 'SIGKILL');
    await waitUntil(() => readLines(toolsDir(), 'gpioset.args').length === 3, 'the restart');
    expect(errors.map((e) => e.message)).toEqual(['gpioset pinctrl-rp1:5 was killed by SIGKILL; restart 1 in 20 ms']);
    expect(readLines(toolsDir(), 'gpioset.args')[2]).toBe('--chip gpiochip0 --consumer vigia-relay --banner 5=1');
    expect(out.value()).toBe(true);
    await gpio.close();
    expect(isAlive(Number(readLines(toolsDir(), 'gpioset.pid')[2]))).toBe(false);
  });

  it('rejects set() while the holder is down, and applies the value when it is back', async () => {
    writeFakeTools(toolsDir(), {
      version: '1.6.3',
      gpiodetect: GPIODETECT_PI4,
      gpioinfo: V1_GPIOINFO_PI4,
      gpioset: [
        'if [ "$RUN" -eq 1 ]; then echo "gpioset: error setting the GPIO line values: Device or resource busy" >&2; exit 1; fi',
        'hold "$@"',
        'exec sleep 60',
      ].join('\n'),
    });
    const gpio = await ChardevGpio.create(chardevOptions(toolsDir(), { backoff: { minDelayMs: 300, jitter: 0 } }));
    const out = await gpio.output({ name: 'GPIO18' }, { activeLow: false, initial: false, consumer: 'vigia-led' }); // returns once the first run failed
    await expect(out.set(true)).rejects.toThrow(
      /gpioset is not running \(gpioset pinctrl-bcm2711:18 \(GPIO18\) exited with code 1: gpioset: error setting the GPIO line values: Device or resource busy\)/,
    );
    await waitUntil(() => readLines(toolsDir(), 'gpioset.args').length === 2, 'the restart');
    expect(readLines(toolsDir(), 'gpioset.args')).toEqual(['--mode=signal gpiochip0 18=0', '--mode=signal gpiochip0 18=1']);
    await gpio.close();
  });
});

describe('sysfs backend', () => {
  const sysfs = (chips: typeof PI4_KERNEL_6_6) => {
    const root = join(tmp, 'sys-class-gpio');
    writeSysfsTree(root, chips);
    return root;
  };

  it('reads the chips of real layouts, never assuming base 0', () => {
    expect(readSysfsChips(sysfs(PI4_KERNEL_6_6))).toEqual([
      { dir: 'gpiochip512', base: 512, label: 'pinctrl-bcm2711', ngpio: 58, chardevNames: ['gpiochip0'] },
      { dir: 'gpiochip570', base: 570, label: 'raspberrypi-exp-gpio', ngpio: 8, chardevNames: ['gpiochip1'] },
    ]);
    expect(readSysfsChips(join(tmp, 'nowhere'))).toEqual([]);
  });

  it('computes base + offset for names and chip references', () => {
    const pi4 = readSysfsChips(sysfs(PI4_KERNEL_6_6));
    expect(resolveSysfsLine(pi4, { name: 'GPIO17' }).number).toBe(529);
    expect(resolveSysfsLine(pi4, { chip: 'raspberrypi-exp-gpio', offset: 2 }).number).toBe(572);
    expect(resolveSysfsLine(pi4, { chip: 'gpiochip1', offset: 2 }).number).toBe(572); // the /dev name, mapped through device/
    expect(resolveSysfsLine(pi4, { chip: '/dev/gpiochip0', offset: 4 }).number).toBe(516);
    expect(resolveSysfsLine(pi4, { chip: 'gpiochip570', offset: 0 }).number).toBe(570); // the sysfs name itself

    rmSync(join(tmp, 'sys-class-gpio'), { recursive: true });
    const old = readSysfsChips(sysfs(PI4_KERNEL_5_15));
    expect(resolveSysfsLine(old, { name: 'GPIO17' }).number).toBe(17);
    expect(resolveSysfsLine(old, { chip: 'raspberrypi-exp-gpio', offset: 2 }).number).toBe(506);

    rmSync(join(tmp, 'sys-class-gpio'), { recursive: true });
    const pi5 = readSysfsChips(sysfs(PI5_KERNEL_6_6));
    expect(socPinController(pi5)?.label).toBe('pinctrl-rp1');
    expect(resolveSysfsLine(pi5, { name: 'GPIO17' }).number).toBe(588);
    expect(resolveSysfsLine(pi5, { name: 'gpio4' }).number).toBe(575);
    expect(resolveSysfsLine(pi5, { chip: 'gpiochip4', offset: 27 }).number).toBe(598);
    expect(resolveSysfsLine(pi5, { chip: 'gpio-brcmstb@107d508500', offset: 20 }).number).toBe(532);
  });

  it('prefers the pin controller with the header lines when several are known', () => {
    const chips = [
      { dir: 'gpiochip512', base: 512, label: 'pinctrl-bcm2712', ngpio: 6, chardevNames: [] },
      { dir: 'gpiochip518', base: 518, label: 'pinctrl-bcm2712', ngpio: 32, chardevNames: [] },
    ];
    expect(socPinController(chips)?.base).toBe(518);
    expect(resolveSysfsLine(chips, { name: 'GPIO3' }).number).toBe(521);
  });

  it('refuses what sysfs cannot resolve, saying why', () => {
    const pi4 = readSysfsChips(sysfs(PI4_KERNEL_6_6));
    expect(() => resolveSysfsLine(pi4, { name: 'PANIC_BTN' })).toThrow(
      /line PANIC_BTN: the sysfs GPIO interface has no line names; use GPIOn .* or \{chip, offset\}/,
    );
    expect(() => resolveSysfsLine(pi4, { name: 'GPIO58' })).toThrow(/offset 58 is out of range, pinctrl-bcm2711 has 58 lines/);
    expect(() => resolveSysfsLine(pi4, { chip: 'gpiochip7', offset: 1 })).toThrow(/no sysfs GPIO chip matches gpiochip7: sysfs numbers chips by base/);
    expect(() => resolveSysfsLine(pi4, { chip: 'pinctrl-rp1', offset: 1 })).toThrow(
      /no sysfs GPIO chip labelled pinctrl-rp1 \(chips: gpiochip512 \[pinctrl-bcm2711\] base 512, 58 lines/,
    );
    const expanderOnly = pi4.filter((c) => c.label === 'raspberrypi-exp-gpio');
    expect(() => resolveSysfsLine(expanderOnly, { name: 'GPIO17' })).toThrow(/no Raspberry Pi pin controller/);
  });

  it('delivers edges through onoff with active_low, stamped on arrival, and warns about bias', async () => {
    const { factory, pins } = fakePinFactory();
    const { logger, entries } = logRecorder();
    const clock = new ManualClock();
    const gpio = new SysfsGpio({ clock, logger, sysfsRoot: sysfs(PI4_KERNEL_6_6), pinFactory: factory });
    const line = await gpio.input({ name: 'GPIO17' }, input);
    expect(line.id).toBe('pinctrl-bcm2711:17 (GPIO17, sysfs 529)');
    const pin = pins[0]!;
    expect([pin.gpio, pin.direction, pin.edge, pin.activeLow]).toEqual([529, 'in', 'both', true]);
    const { edges } = collect(line);

    pin.drive(1); // released: the pull-up holds it high
    clock.advance(40);
    pin.drive(0); // pressed
    expect(edges).toEqual([
      { value: false, monoMs: 10_000 },
      { value: true, monoMs: 10_040 },
    ]);
    expect(await line.read()).toBe(true);

    expect(gpio.warnings).toEqual([
      'pinctrl-bcm2711:17 (GPIO17, sysfs 529): the sysfs GPIO interface cannot set bias pull-up; set it in config.txt: gpio=17=pu',
    ]);
    expect(entries).toEqual([{ level: 'warn', obj: { line: line.id, bias: 'pull-up' }, msg: gpio.warnings[0] }]);
    await gpio.input({ chip: 'raspberrypi-exp-gpio', offset: 7 }, { ...input, bias: 'as-is' });
    expect(gpio.warnings).toHaveLength(1);

    await line.close();
    expect(pin.exported).toBe(false);
    expect(pin.watching).toBe(0);
  });

  it('drives outputs with the raw initial level and logical writes, and leaves them driven on close', async () => {
    const { factory, pins } = fakePinFactory();
    const gpio = new SysfsGpio({ clock: new ManualClock(), sysfsRoot: sysfs(PI5_KERNEL_6_6), pinFactory: factory });
    const relay = await gpio.output({ name: 'GPIO27' }, { activeLow: true, initial: false, consumer: 'vigia-relay' });
    const pin = pins[0]!;
    expect([pin.gpio, pin.direction, pin.level]).toEqual([598, 'high', 1]); // off = high on an active-low relay
    await relay.set(true);
    expect([pin.writes, pin.level, relay.value()]).toEqual([[1], 0, true]);
    await relay.close();
    expect(pin.exported).toBe(true);
    expect(pin.level).toBe(0);

    const strobe = await gpio.output({ name: 'GPIO22' }, { activeLow: false, initial: false, consumer: 'vigia-strobe' });
    expect(pins[1]!.direction).toBe('low');
    await expect(gpio.input({ chip: 'pinctrl-rp1', offset: 22 }, input)).rejects.toThrow(/already in use/);
    await strobe.close();
  });

  it('reports a line the kernel will not export', async () => {
    const gpio = new SysfsGpio({
      clock: new ManualClock(),
      sysfsRoot: sysfs(PI4_KERNEL_6_6),
      pinFactory: () => {
        throw new Error('EBUSY: resource busy or locked, write');
      },
    });
    await expect(gpio.input({ name: 'GPIO4' }, input)).rejects.toThrow(/pinctrl-bcm2711:4 \(GPIO4, sysfs 516\): cannot export GPIO 516 through sysfs: EBUSY/);
  });
});

describe('backend selection', () => {
  function setup(opts: { chips?: boolean; tools?: boolean; sysfs?: boolean }) {
    const base = mkdtempSync(join(tmp, 'machine-'));
    const dev = join(base, 'dev');
    const root = join(base, 'sys-class-gpio');
    const bin = join(base, 'bin');
    mkdirSync(dev, { recursive: true });
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(dev, 'null'), '');
    if (opts.chips) for (const c of ['gpiochip0', 'gpiochip1']) writeFileSync(join(dev, c), '');
    if (opts.tools) writeFakeTools(bin, { version: '2.1.3', gpiodetect: GPIODETECT_PI4, gpioinfo: V2_GPIOINFO_PI5 });
    if (opts.sysfs) writeSysfsTree(root, PI4_KERNEL_6_6);
    return { clock: new ManualClock(), devDir: dev, sysfsRoot: root, toolsDir: bin, sysfsPinFactory: fakePinFactory().factory };
  }

  it('auto: chardev when chips and tools are there', async () => {
    const { backend, reason } = await selectGpioBackend('auto', setup({ chips: true, tools: true, sysfs: true }));
    expect(backend.kind).toBe('chardev');
    expect(reason).toMatch(/^chardev: auto: .*dev\/gpiochip0, .*dev\/gpiochip1 with the libgpiod tools, libgpiod v2\.1\.3$/);
  });

  it('auto: sysfs when the tools are missing, saying so', async () => {
    const { backend, reason } = await selectGpioBackend('auto', setup({ chips: true, sysfs: true }));
    expect(backend.kind).toBe('sysfs');
    expect(reason).toMatch(
      /^sysfs: auto, chardev unusable \(libgpiod tools missing \(gpiodetect, .*; install them with: apt install gpiod\)\): .*sys-class-gpio\/export$/,
    );
  });

  it('auto: sysfs when there is no character device', async () => {
    const { backend, reason } = await selectGpioBackend('auto', setup({ tools: true, sysfs: true }));
    expect(backend.kind).toBe('sysfs');
    expect(reason).toMatch(/no GPIO character device/);
  });

  it('auto: fails naming what is missing', async () => {
    await expect(selectGpioBackend('auto', setup({ chips: true }))).rejects.toThrow(
      /^no GPIO backend available: libgpiod tools missing .*; no legacy sysfs GPIO interface \(.*export\)\. Install the libgpiod tools \(apt install gpiod\), or set hardware\.backend to sim$/,
    );
    await expect(selectGpioBackend('auto', setup({}))).rejects.toThrow(/no GPIO character device .*; no legacy sysfs GPIO interface/);
  });

  it('an explicit setting that is not available fails with the reason', async () => {
    await expect(selectGpioBackend('chardev', setup({ chips: true, sysfs: true }))).rejects.toThrow(
      /^GPIO backend chardev is not available: libgpiod tools missing/,
    );
    await expect(selectGpioBackend('sysfs', setup({ chips: true, tools: true }))).rejects.toThrow(
      /^GPIO backend sysfs is not available: no legacy sysfs GPIO interface/,
    );
    const sysfs = await selectGpioBackend('sysfs', setup({ chips: true, tools: true, sysfs: true }));
    expect([sysfs.backend.kind, sysfs.reason]).toEqual(['sysfs', expect.stringMatching(/^sysfs: configured: /)]);
  });

  it('sim needs nothing', async () => {
    const { backend, reason } = await selectGpioBackend('sim', setup({}));
    expect(backend.kind).toBe('sim');
    expect(reason).toBe('sim: configured (simulated lines)');
  });
});
