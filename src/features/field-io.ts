import { z } from 'zod';
import { type Config, DEFAULT_MAX_ON_MS } from '../config/schema.js';
import { type Clock, wallIsoAt } from '../core/clock.js';
import type { EventPayload, EventType } from '../core/events.js';
import { CommandError, type Extension, type ExtensionContext, NO_ARGS } from '../core/extension.js';
import { parsePattern } from '../core/pattern.js';
import { type Timers, systemTimers } from '../core/timers.js';
import { SimGpio } from '../drivers/gpio/sim.js';
import type { EdgeEvent, GpioBackend, InputLine, LineRef } from '../drivers/gpio/types.js';
import { DoorSwitch, MotionSensor, PanicButton } from './inputs.js';
import { Output } from './outputs.js';
import { panicPayload } from './panic.js';
import { PoleAlarm, type PoleContext, type PoleDeps } from './pole.js';
import { Remotes } from './remotes.js';
import type { RemoteReceiver } from '../drivers/radio/types.js';
import type { AdvertScanner } from '../drivers/ble/types.js';
import { SimAdvertScanner } from '../drivers/ble/sim.js';
import { PersonalTags } from './personal-tags.js';

/**
 * The GPIO side of a device: opens the configured inputs and outputs on the selected backend,
 * turns edges into events, plays output patterns, and (pole profile) runs the pole's alarm. Every
 * output is put in its safe state when the daemon starts and when it stops.
 */

type InputConfig = Config['hardware']['inputs'][string];
type OutputConfig = Config['hardware']['outputs'][string];

export type FieldIoContext = PoleContext & Pick<ExtensionContext<Config>, 'control'>;

export interface FieldIoDeps {
  /** The GPIO backend for a setting; by default sim, or the best real one present. */
  createBackend?: (setting: Config['hardware']['backend'], ctx: FieldIoContext) => Promise<{ backend: GpioBackend; reason: string }>;
  timers?: Timers;
  pole?: PoleDeps;
  /** The 433 MHz receiver for `radio`; by default rtl_433 or the module on a GPIO line of `backend`. */
  createReceiver?: (radio: Config['radio'], ctx: FieldIoContext & { backend: GpioBackend }) => Promise<RemoteReceiver>;
  /** The Bluetooth LE scanner for `personal`; by default BlueZ on the configured adapter. */
  createScanner?: (personal: Config['personal'], ctx: FieldIoContext) => Promise<AdvertScanner>;
}

async function defaultScanner(personal: Config['personal'], ctx: FieldIoContext): Promise<AdvertScanner> {
  // A simulated adapter: adverts come from `sim.advert` (the demo).
  if (personal.adapter === 'sim') return new SimAdvertScanner(personal.adapter);
  const { BluezScanner } = await import('../drivers/ble/bluez.js');
  return new BluezScanner({ adapter: personal.adapter, clock: ctx.clock, logger: ctx.logger.child({ mod: 'ble' }) });
}

async function defaultReceiver(radio: Config['radio'], ctx: FieldIoContext & { backend: GpioBackend }): Promise<RemoteReceiver> {
  const logger = ctx.logger.child({ mod: 'radio' });
  if (radio.receiver === 'gpio') {
    const { GpioRemoteReceiver } = await import('../drivers/radio/gpio-receiver.js');
    return new GpioRemoteReceiver({ backend: ctx.backend, line: lineRef(radio.line!), activeLow: radio.active_low, clock: ctx.clock, logger });
  }
  const { Rtl433Receiver } = await import('../drivers/radio/rtl433.js');
  const r = radio.rtl_433;
  return new Rtl433Receiver({
    command: r.command,
    device: r.device,
    frequency: r.frequency,
    ...(r.protocols ? { protocols: r.protocols } : {}),
    extraArgs: r.extra_args,
    clock: ctx.clock,
    logger,
  });
}

export function lineRef(line: InputConfig['line']): LineRef {
  return typeof line === 'string' ? { name: line } : { chip: line.chip, offset: line.offset };
}

export function maxOnMs(out: OutputConfig): number {
  return out.max_on ?? DEFAULT_MAX_ON_MS[out.kind];
}

/** `output.set`: the output is checked against the configured names in the handler, the pattern by `parsePattern`. */
const OUTPUT_SET_ARGS = z.object({ output: z.string(), pattern: z.unknown() }).strict();

async function defaultBackend(setting: Config['hardware']['backend'], ctx: FieldIoContext): Promise<{ backend: GpioBackend; reason: string }> {
  if (setting === 'sim') return { backend: new SimGpio(ctx.clock), reason: 'hardware.backend is sim' };
  const { selectGpioBackend } = await import('../drivers/gpio/select.js');
  return selectGpioBackend(setting, { clock: ctx.clock, logger: ctx.logger.child({ mod: 'gpio' }) });
}

export class FieldIo implements Extension {
  readonly name = 'field-io';
  #backend: GpioBackend | undefined;
  #backendReason = '';
  readonly outputs = new Map<string, Output>();
  readonly #lines: InputLine[] = [];
  readonly #inputs = new Map<string, { kind: InputConfig['kind']; logic: PanicButton | MotionSensor | DoorSwitch; line: InputLine; edges: number }>();
  #pole: PoleAlarm | undefined;
  #remotes: Remotes | undefined;
  #tags: PersonalTags | undefined;
  #lineErrors = 0;

  constructor(
    private readonly ctx: FieldIoContext,
    private readonly deps: FieldIoDeps = {},
  ) {}

  /** The backend in use (the sim backend is driven through it by `vigia sim`). */
  get backend(): GpioBackend | undefined {
    return this.#backend;
  }

  async start(): Promise<void> {
    const { ctx } = this;
    const hw = ctx.config.hardware;
    const { backend, reason } = await (this.deps.createBackend ?? defaultBackend)(hw.backend, ctx);
    this.#backend = backend;
    this.#backendReason = reason;
    ctx.logger.info({ backend: backend.kind, reason }, 'GPIO backend selected');
    const timers = this.deps.timers ?? systemTimers;

    // Outputs first, in their safe state: whatever a crash left on, it goes off now.
    for (const [name, cfg] of Object.entries(hw.outputs)) {
      const line = await backend.output(lineRef(cfg.line), { activeLow: cfg.active_low, initial: false, consumer: `vigia:${name}` });
      const output = new Output(line, { name, maxOnMs: maxOnMs(cfg), clock: ctx.clock, timers });
      output.on('cutoff', (pattern, ranMs) => void this.#emit('fault.output_cutoff', { output: name, kind: cfg.kind, pattern, ran_ms: Math.round(ranMs) }));
      output.on('write_error', (err) => ctx.logger.error({ output: name, err: err.message }, 'output write failed'));
      await output.safe();
      this.outputs.set(name, output);
    }

    // The alarm: a pole's panic button, a community kit's remotes, or both.
    const pole = ctx.config.pole;
    const radio = ctx.config.radio;
    if (pole.enabled && (Object.hasOwn(hw.inputs, pole.panic_input) || radio.receiver !== 'none' || ctx.config.personal.enabled)) {
      this.#pole = new PoleAlarm(ctx, this, this.deps.pole);
      this.#pole.registerCommands();
    }

    for (const [name, cfg] of Object.entries(hw.inputs)) {
      const line = await backend.input(lineRef(cfg.line), { activeLow: cfg.active_low, bias: cfg.bias, consumer: `vigia:${name}` });
      this.#lines.push(line);
      const initial = await line.read();
      const deps = { clock: ctx.clock, timers };
      const logic = this.#logic(name, cfg, initial, deps);
      const input = { kind: cfg.kind, logic, line, edges: 0 };
      // Raw edges, bounces included: a chattering contact or a cut wire shows here first (metrics).
      line.on('edge', (e) => {
        input.edges++;
        logic.edge(e);
      });
      line.on('error', (err) => {
        this.#lineErrors++;
        ctx.logger.error({ input: name, line: line.id, err: err.message }, 'GPIO input error');
      });
      this.#inputs.set(name, input);
      if (logic instanceof PanicButton) logic.start();
    }

    ctx.commands.register('output.set', OUTPUT_SET_ARGS, (args) => this.#setOutput(args));
    ctx.commands.register('io.status', NO_ARGS, () => this.#ioState());
    // The technician's tools (`vigia gpio watch`, `vigia outputs test`): local callers on the control socket.
    ctx.control.handleStream('gpio.watch', (args, send) => this.#watchEdges(args, send));
    ctx.control.handle('output.test', (args) => this.#testOutput(args));
    // After every line is open: an alarm a restart interrupted lights its LED again.
    await this.#pole?.restore();
    if (radio.receiver !== 'none') {
      const receiver = await (this.deps.createReceiver ?? defaultReceiver)(radio, { ...ctx, backend });
      this.#remotes = new Remotes(ctx, [receiver], this.#pole);
      await this.#remotes.start();
    }
    if (ctx.config.personal.enabled) {
      const scanner = await (this.deps.createScanner ?? defaultScanner)(ctx.config.personal, ctx);
      this.#tags = new PersonalTags(ctx, scanner, this.#pole);
      await this.#tags.start();
      if (scanner instanceof SimAdvertScanner) ctx.control.handle('sim.advert', (args) => this.#simAdvert(scanner, args));
    }
    if (hw.backend === 'sim') {
      ctx.control.handle('sim.input', (args) => this.#simInput(args));
      if (radio.receiver === 'gpio') ctx.control.handle('sim.radio', (args) => this.#simRadio(args));
      ctx.control.handle('sim.outputs', () => this.#outputStates());
    }
  }

  async stop(): Promise<void> {
    await this.#remotes?.stop();
    this.#remotes = undefined;
    await this.#tags?.stop();
    this.#tags = undefined;
    for (const { logic } of this.#inputs.values()) logic.stop();
    await this.#pole?.stop();
    for (const output of this.outputs.values()) {
      await output.safe();
      output.stop();
    }
    for (const line of this.#lines) await line.close().catch(() => undefined);
    await this.#backend?.close();
    this.#inputs.clear();
    this.#lines.length = 0;
    this.outputs.clear();
  }

  status() {
    return {
      backend: this.#backend?.kind ?? null,
      backend_reason: this.#backendReason,
      inputs: Object.fromEntries(
        [...this.#inputs].map(([name, i]) => [
          name,
          { kind: i.kind, line: i.line.id, edges: i.edges, ...('stats' in i.logic ? i.logic.stats() : { open: (i.logic as DoorSwitch).open }) },
        ]),
      ),
      outputs: Object.fromEntries([...this.outputs].map(([name, o]) => [name, o.stats()])),
      line_errors: this.#lineErrors,
      ...(this.#pole ? { pole: this.#pole.status() } : {}),
      ...(this.#remotes ? { remotes: this.#remotes.status() } : {}),
      ...(this.#tags ? { tags: this.#tags.status() } : {}),
    };
  }

  /** What each input and output is doing now (a flow's dashboard, the call center's look at a pole). */
  #ioState() {
    const inputs: Record<string, Record<string, unknown>> = {};
    for (const [name, i] of this.#inputs) inputs[name] = { kind: i.kind, ...('stats' in i.logic ? i.logic.stats() : { open: (i.logic as DoorSwitch).open }) };
    const outputs: Record<string, Record<string, unknown>> = {};
    for (const [name, o] of this.outputs) outputs[name] = { kind: this.ctx.config.hardware.outputs[name]!.kind, ...o.stats() };
    return { inputs, outputs, alarm: this.#pole?.state ?? null };
  }

  #logic(name: string, cfg: InputConfig, initial: boolean, deps: { clock: Clock; timers: Timers }): PanicButton | MotionSensor | DoorSwitch {
    const ctx = this.ctx;
    const wallIso = (mono: number) => wallIsoAt(ctx.clock, mono);
    switch (cfg.kind) {
      case 'panic': {
        const button = new PanicButton(initial, { debounceMs: cfg.debounce, longPressMs: cfg.long_press, stuckMs: cfg.stuck }, deps);
        if (this.#pole && name === ctx.config.pole.panic_input) {
          this.#pole.attach(name, button);
        } else {
          // Without the pole's alarm every press is an alarm of its own.
          button.on('press', (t) => void this.#emit('alarm.panic', panicPayload(ctx.clock, name, t, { alarmId: null, press: 1, snapshot: null })));
        }
        button.on('long_press', (t) => void this.#emit('input.long_press', { input: name, at: wallIso(t), held_ms: cfg.long_press }));
        button.on('stuck', (t, held) => void this.#emit('fault.input_stuck', { input: name, since: wallIso(t - held), held_ms: held }));
        button.on('recovered', (t) => void this.#emit('fault.input_recovered', { input: name, at: wallIso(t) }));
        return button;
      }
      case 'motion': {
        const sensor = new MotionSensor({ debounceMs: cfg.debounce, holdMs: cfg.hold, minIntervalMs: cfg.min_interval }, deps);
        sensor.on('motion', (t) => void this.#emit('motion.detected', { input: name, at: wallIso(t) }));
        sensor.on('still', (t, d) => void this.#emit('motion.ended', { input: name, at: wallIso(t), duration_ms: Math.round(d) }));
        return sensor;
      }
      case 'door':
      case 'tamper': {
        const sw = new DoorSwitch(initial, cfg.debounce, deps);
        const kind = cfg.kind;
        // An opened cabinet is tamper until proven otherwise: reported at hit priority.
        sw.on('open', (t) => void this.#emit('tamper.opened', { input: name, kind, at: wallIso(t) }));
        sw.on('close', (t) => void this.#emit('tamper.closed', { input: name, kind, at: wallIso(t) }));
        if (initial) void this.#emit('tamper.opened', { input: name, kind, at: wallIso(ctx.clock.monoNow()), at_start: true });
        return sw;
      }
    }
  }

  async #emit<T extends EventType>(type: T, payload: EventPayload<T>): Promise<void> {
    try {
      await this.ctx.emit(type, payload);
    } catch (err) {
      this.ctx.logger.error({ err, type }, 'could not store an input event');
    }
  }

  async #setOutput(args: z.output<typeof OUTPUT_SET_ARGS>) {
    const name = args.output;
    if (!this.outputs.has(name)) {
      throw new CommandError('unknown_output', `"output" must be one of: ${[...this.outputs.keys()].join(', ') || 'none configured'}`);
    }
    let pattern;
    try {
      pattern = parsePattern(args.pattern);
    } catch (err) {
      throw new CommandError('bad_pattern', (err as Error).message);
    }
    const output = this.outputs.get(name)!;
    await output.play(pattern);
    return { output: name, pattern, value: output.value };
  }

  /** Every edge of the named inputs (all when none are named) as the backend reports it, before debouncing. */
  #watchEdges(args: Record<string, unknown>, send: (item: unknown) => void): () => void {
    const wanted = Array.isArray(args.inputs) && args.inputs.length > 0 ? args.inputs.map(String) : [...this.#inputs.keys()];
    const unknown = wanted.filter((name) => !this.#inputs.has(name));
    if (unknown.length > 0) throw new Error(`no input named ${unknown.join(', ')} (configured: ${[...this.#inputs.keys()].join(', ') || 'none'})`);
    const offs = wanted.map((name) => {
      const { line } = this.#inputs.get(name)!;
      const onEdge = (e: EdgeEvent) => send({ input: name, line: line.id, value: e.value, mono_ms: e.monoMs, time: wallIsoAt(this.ctx.clock, e.monoMs) });
      line.on('edge', onEdge);
      return () => line.off('edge', onEdge);
    });
    return () => {
      for (const off of offs) off();
    };
  }

  /** `vigia outputs test`: the output.set path, refused for the alarm's outputs while an alarm is on. */
  async #testOutput(args: Record<string, unknown>) {
    const name = String(args.output ?? '');
    const pole = this.ctx.config.pole;
    const alarmOutputs = [pole.led_output, pole.strobe_output, pole.siren_output];
    if (this.#pole && this.#pole.state !== 'idle' && alarmOutputs.includes(name)) {
      throw new CommandError('alarm_active', `${name} belongs to the panic alarm until the call center clears it`);
    }
    return this.#setOutput({ output: name, pattern: args.pattern });
  }

  #simInput(args: Record<string, unknown>) {
    const name = String(args.input ?? '');
    const input = this.#inputs.get(name);
    if (!input) throw new Error(`no input named ${JSON.stringify(name)} (configured: ${[...this.#inputs.keys()].join(', ') || 'none'})`);
    if (typeof args.active !== 'boolean') throw new Error('"active" must be true or false');
    const sim = this.#backend;
    if (!(sim instanceof SimGpio)) throw new Error('inputs can only be simulated with hardware.backend: sim');
    sim.activate(input.line.id, args.active);
    return { input: name, active: args.active };
  }

  /**
   * Plays an OOK pulse train onto the simulated receiver module's line, as if it had just been
   * received: `pulses_us` alternate carrier on and off, starting with on; the last edge is now.
   */
  #simRadio(args: Record<string, unknown>) {
    const pulses = args.pulses_us;
    if (!Array.isArray(pulses) || pulses.length === 0 || pulses.length > 100_000 || !pulses.every((p) => typeof p === 'number' && p > 0 && p < 1e6)) {
      throw new Error('"pulses_us" must be a list of 1 to 100000 durations in µs (carrier on, off, on...)');
    }
    const sim = this.#backend;
    if (!(sim instanceof SimGpio)) throw new Error('radio pulses can only be simulated with hardware.backend: sim');
    const radio = this.ctx.config.radio;
    const ref = lineRef(radio.line!);
    const total = (pulses as number[]).reduce((a, b) => a + b, 0) / 1000;
    let at = this.ctx.clock.monoNow() - total - 0.05;
    let carrier = true;
    for (const us of pulses as number[]) {
      sim.drive(ref, carrier !== radio.active_low, at);
      at += us / 1000;
      carrier = !carrier;
    }
    // After a transmission a module's AGC turns noise into edges: the first spike ends the last gap.
    sim.drive(ref, !radio.active_low, at);
    sim.drive(ref, radio.active_low, at + 0.05);
    return { pulses: pulses.length, duration_ms: Math.round(total) };
  }

  /**
   * An advert as the simulated adapter would hear it: `manufacturer_data` maps company ids
   * (decimal) to the payload in hex; `address` and `rssi_dbm` are optional.
   */
  #simAdvert(scanner: SimAdvertScanner, args: Record<string, unknown>) {
    const data = args.manufacturer_data;
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('"manufacturer_data" must map company ids to hex payloads');
    const manufacturerData = new Map<number, Uint8Array>();
    for (const [company, hex] of Object.entries(data)) {
      const id = Number(company);
      if (!Number.isInteger(id) || id < 0 || id > 0xffff) throw new Error(`company id ${company} is not 0-65535`);
      if (typeof hex !== 'string' || !/^([0-9a-fA-F]{2}){0,245}$/.test(hex)) throw new Error(`the payload of company ${company} is not hex bytes`);
      manufacturerData.set(id, Uint8Array.from(Buffer.from(hex, 'hex')));
    }
    const address = typeof args.address === 'string' ? args.address : '02:00:00:00:00:01';
    const rssiDbm = typeof args.rssi_dbm === 'number' ? args.rssi_dbm : null;
    scanner.hear({ address, rssiDbm, manufacturerData, monoMs: this.ctx.clock.monoNow() });
    return { heard: true };
  }

  #outputStates() {
    return Object.fromEntries([...this.outputs].map(([name, o]) => [name, { value: o.value, pattern: o.pattern }]));
  }
}
