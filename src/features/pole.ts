import { join } from 'node:path';
import { z } from 'zod';
import type { Config } from '../config/schema.js';
import { CommandError, type ExtensionContext } from '../core/extension.js';
import { type Pattern, parsePattern } from '../core/pattern.js';
import { wallIsoAt } from '../core/clock.js';
import type { EventPayload } from '../core/events.js';
import type { CameraConfig } from '../drivers/camera/index.js';
import type { FrameSource, FrameSourceDeps } from '../drivers/camera/source.js';
import type { PanicButton } from './inputs.js';
import type { Output } from './outputs.js';
import { AlarmRecord } from './alarm-record.js';
import { panicPayload } from './panic.js';
import { takeSnapshot } from './snapshot.js';

/**
 * The smart pole's alarm (and a community kit's): a panic press goes straight to the outbox as
 * `alarm.panic` (a registered remote's press as `alarm.remote`, a personal tag's as `alarm.personal`); the moment it is on disk the
 * button's LED shows "received", the strobe starts (and the siren, when `siren_pattern` is set:
 * a community kit), then a snapshot is taken
 * and sent as `alarm.snapshot`, referenced from the alarm by `snapshot.ref` (the alarm never waits
 * for a camera). The call center answers with `alarm.ack` (LED: "acknowledged") and ends it with
 * `alarm.clear` (outputs off).
 */

export type AlarmState = 'idle' | 'raised' | 'acknowledged';

/** What raised an alarm: a wired panic button, a registered radio remote or personal tag (their part of the event). */
export type AlarmTrigger =
  | { kind: 'panic'; input: string }
  | { kind: 'remote'; remote: Omit<EventPayload<'alarm.remote'>, 'pressed_at' | 'alarm_id' | 'press' | 'snapshot'> }
  | { kind: 'personal'; tag: Omit<EventPayload<'alarm.personal'>, 'pressed_at' | 'alarm_id' | 'press' | 'snapshot'> };

/** The configured siren pattern, limited to `siren_for` (a pattern that ends by itself is played as it is). */
export function sirenPattern(configured: unknown, forMs: number): Pattern {
  const pattern = parsePattern(configured);
  return pattern.mode === 'on' || pattern.mode === 'blink' || pattern.mode === 'sequence' ? { ...pattern, for_ms: forMs } : pattern;
}

export type PoleContext = Pick<ExtensionContext<Config>, 'config' | 'logger' | 'clock' | 'paths' | 'emit' | 'commands'>;

/** `alarm.ack` / `alarm.clear`: the alarm they are meant for (refused if another is active), and who answered. */
const ANSWER_ARGS = z
  .object({
    alarm_id: z.string().optional(),
    operator: z
      .string()
      .transform((s) => s.slice(0, 64))
      .optional(),
  })
  .strict();
type AnswerArgs = z.output<typeof ANSWER_ARGS>;

export interface PoleDeps {
  /** The camera for the snapshot; a frame source is started for each alarm. */
  createSource?: (cam: CameraConfig, deps: FrameSourceDeps) => FrameSource;
  /** How long a snapshot may take (default 10 s). */
  snapshotTimeoutMs?: number;
}

interface ActiveAlarm {
  id: string;
  input: string;
  presses: number;
  raisedMono: number;
  /** Wall time of the first press, for the record on disk. */
  raisedWall: number;
  state: 'raised' | 'acknowledged';
}

/** Beside the outbox in the data directory: the active alarm, until it is cleared. */
export const ALARM_RECORD_FILE = 'active-alarm.json';

export class PoleAlarm {
  #alarm: ActiveAlarm | null = null;
  #counts = { alarms: 0, presses: 0, acks: 0, clears: 0, silenced: 0, snapshots: 0, snapshot_errors: 0 };
  #snapshots = new Set<Promise<void>>();
  #record: AlarmRecord;
  /** Edge to LED-on times of the last presses (ms), for status and the alarm benchmark. */
  #ledLatency: number[] = [];

  constructor(
    private readonly ctx: PoleContext,
    private readonly io: { outputs: ReadonlyMap<string, Output> },
    private readonly deps: PoleDeps = {},
  ) {
    this.#record = new AlarmRecord(join(ctx.paths.dataDir, ALARM_RECORD_FILE));
  }

  /**
   * Picks up an alarm a crash or power cut interrupted (outputs open, in their safe state): the
   * LED shows its state again and `alarm.restored` tells the call center. The strobe, which runs
   * for a while after a press, does not restart. A damaged record is reported and set aside.
   */
  async restore(): Promise<void> {
    const { ctx } = this;
    let stored;
    try {
      stored = this.#record.load();
    } catch (err) {
      ctx.logger.error({ err: (err as Error).message }, 'the active alarm record is unreadable; starting without it');
      this.#record.clear();
      return;
    }
    if (!stored) return;
    const now = ctx.clock.monoNow();
    this.#alarm = {
      id: stored.id,
      input: stored.input,
      presses: stored.presses,
      raisedMono: now - Math.max(0, ctx.clock.wallNow() - stored.raised_at),
      raisedWall: stored.raised_at,
      state: stored.state,
    };
    const cfg = ctx.config.pole;
    await this.#output(cfg.led_output)?.play(parsePattern(stored.state === 'raised' ? cfg.led_received : cfg.led_acknowledged));
    ctx.logger.warn({ alarm_id: stored.id, state: stored.state, presses: stored.presses }, 'active alarm restored after a restart');
    await ctx.emit('alarm.restored', {
      alarm_id: stored.id,
      input: stored.input,
      state: stored.state,
      presses: stored.presses,
      raised_at: new Date(stored.raised_at).toISOString(),
    });
  }

  /** Keeps the active alarm on disk; a failure costs only the restore after a restart. */
  #remember(): void {
    const alarm = this.#alarm;
    try {
      if (!alarm) this.#record.clear();
      else this.#record.save({ id: alarm.id, input: alarm.input, presses: alarm.presses, state: alarm.state, raised_at: alarm.raisedWall });
    } catch (err) {
      this.ctx.logger.error({ err: (err as Error).message }, 'cannot record the active alarm');
    }
  }

  get state(): AlarmState {
    return this.#alarm?.state ?? 'idle';
  }

  status() {
    const sorted = [...this.#ledLatency].sort((a, b) => a - b);
    const pct = (p: number) => (sorted.length ? Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! * 100) / 100 : null);
    return {
      state: this.state,
      alarm_id: this.#alarm?.id ?? null,
      alarm_presses: this.#alarm?.presses ?? 0,
      ...this.#counts,
      led_latency_ms: { n: sorted.length, p50: pct(50), p99: pct(99), max: sorted.length ? Math.round(sorted.at(-1)! * 100) / 100 : null },
    };
  }

  /** The call center's answers. Once, before any trigger is attached. */
  registerCommands(): void {
    this.ctx.commands.register('alarm.ack', ANSWER_ARGS, (args) => this.#ack(args));
    this.ctx.commands.register('alarm.clear', ANSWER_ARGS, (args) => this.#clear(args));
  }

  /** Wires a panic button: each press raises the alarm (or joins the active one). */
  attach(name: string, button: PanicButton): void {
    button.on('press', (monoMs) => void this.raise({ kind: 'panic', input: name }, monoMs));
  }

  /**
   * A remote allowed to silence did so: the siren and strobe stop, the LED keeps showing the
   * alarm's state, and the alarm stays open for the call center. False when no alarm is active.
   */
  async silence(remote: string, household: string | null): Promise<boolean> {
    const alarm = this.#alarm;
    if (!alarm) return false;
    const cfg = this.ctx.config.pole;
    await Promise.all([cfg.siren_output, cfg.strobe_output].map((name) => this.#output(name)?.safe()));
    this.#counts.silenced++;
    await this.ctx.emit('alarm.silenced', { alarm_id: alarm.id, remote, household });
    return true;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.#snapshots]);
  }

  /**
   * A panic press or a remote's press: the first raises the alarm, later ones join it (the call
   * center sees one incident, pressed again). Resolves once the LED, strobe and siren are playing.
   */
  async raise(trigger: AlarmTrigger, monoMs: number): Promise<void> {
    const { ctx } = this;
    const cfg = ctx.config.pole;
    this.#counts.presses++;
    const camera = cfg.snapshot_camera ? ctx.config.anpr.cameras.find((c) => c.id === cfg.snapshot_camera) : undefined;
    const snapshotRef = camera ? `${trigger.kind}-${ctx.clock.wallNow()}-${camera.id}.jpg` : null;
    const repeat = this.#alarm !== null;
    const incident = {
      alarmId: this.#alarm?.id ?? null,
      press: (this.#alarm?.presses ?? 0) + 1,
      snapshot: camera && snapshotRef ? { camera: camera.id, ref: snapshotRef } : null,
    };
    const input = trigger.kind === 'panic' ? trigger.input : trigger.kind === 'remote' ? `remote:${trigger.remote.remote}` : `tag:${trigger.tag.tag}`;
    const pressed = { pressed_at: wallIsoAt(ctx.clock, monoMs), alarm_id: incident.alarmId, press: incident.press, snapshot: incident.snapshot };
    let event;
    try {
      event =
        trigger.kind === 'panic'
          ? await ctx.emit('alarm.panic', panicPayload(ctx.clock, trigger.input, monoMs, incident))
          : trigger.kind === 'remote'
            ? await ctx.emit('alarm.remote', { ...trigger.remote, ...pressed })
            : await ctx.emit('alarm.personal', { ...trigger.tag, ...pressed });
    } catch (err) {
      ctx.logger.fatal({ err, input }, 'PANIC ALARM COULD NOT BE STORED');
      return;
    }
    if (this.#alarm) {
      this.#alarm.presses++;
    } else {
      this.#alarm = { id: event.id, input, presses: 1, raisedMono: monoMs, raisedWall: Date.parse(event.time), state: 'raised' };
      this.#counts.alarms++;
    }
    // On disk: tell the person at the pole that help is on its way.
    const led = this.#output(cfg.led_output);
    const strobe = this.#output(cfg.strobe_output);
    const siren = cfg.siren_pattern === undefined ? undefined : this.#output(cfg.siren_output);
    await Promise.all([
      this.#alarm.state === 'raised' ? led?.play(parsePattern(cfg.led_received)) : undefined,
      strobe?.play({ mode: 'on', for_ms: cfg.strobe_for }),
      siren?.play(sirenPattern(cfg.siren_pattern, cfg.siren_for)),
    ]);
    if (led && this.#alarm.state === 'raised') {
      this.#ledLatency.push(ctx.clock.monoNow() - monoMs);
      if (this.#ledLatency.length > 10_000) this.#ledLatency.splice(0, this.#ledLatency.length - 10_000);
    }
    if (camera && snapshotRef && !repeat) this.#snapshot(camera, snapshotRef, this.#alarm.id);
    this.#remember(); // after the LED: the person at the pole never waits for it
  }

  #snapshot(camera: CameraConfig, ref: string, alarmId: string): void {
    const { ctx } = this;
    const run = (async () => {
      try {
        const shot = await takeSnapshot(camera, ref, {
          config: ctx.config,
          clock: ctx.clock,
          logger: ctx.logger,
          dataDir: ctx.paths.dataDir,
          createSource: this.deps.createSource,
          timeoutMs: this.deps.snapshotTimeoutMs,
        });
        this.#counts.snapshots++;
        await ctx.emit('alarm.snapshot', {
          alarm_id: alarmId,
          camera: camera.id,
          ref,
          taken_at: shot.takenAt,
          image: shot.image,
        });
      } catch (err) {
        this.#counts.snapshot_errors++;
        ctx.logger.warn({ camera: camera.id, err: (err as Error).message }, 'alarm snapshot failed');
        await ctx.emit('alarm.snapshot_failed', { alarm_id: alarmId, camera: camera.id, ref, error: (err as Error).message }).catch(() => undefined);
      }
    })();
    this.#snapshots.add(run);
    void run.finally(() => this.#snapshots.delete(run));
  }

  #checkAlarm(args: AnswerArgs): ActiveAlarm {
    const alarm = this.#alarm;
    if (!alarm) throw new CommandError('no_alarm', 'no alarm is active on this pole');
    if (args.alarm_id !== undefined && args.alarm_id !== alarm.id) throw new CommandError('wrong_alarm', `the active alarm is ${alarm.id}`);
    return alarm;
  }

  async #ack(args: AnswerArgs) {
    const alarm = this.#checkAlarm(args);
    const operator = args.operator ?? null;
    alarm.state = 'acknowledged';
    this.#counts.acks++;
    this.#remember();
    await this.#output(this.ctx.config.pole.led_output)?.play(parsePattern(this.ctx.config.pole.led_acknowledged));
    await this.ctx.emit('alarm.acknowledged', { alarm_id: alarm.id, operator });
    return { alarm_id: alarm.id, state: alarm.state };
  }

  async #clear(args: AnswerArgs) {
    const alarm = this.#checkAlarm(args);
    const operator = args.operator ?? null;
    const cfg = this.ctx.config.pole;
    this.#alarm = null;
    this.#counts.clears++;
    this.#remember();
    await Promise.all([cfg.led_output, cfg.strobe_output, cfg.siren_output].map((name) => this.#output(name)?.safe()));
    const durationMs = Math.round(this.ctx.clock.monoNow() - alarm.raisedMono);
    await this.ctx.emit('alarm.cleared', { alarm_id: alarm.id, operator, presses: alarm.presses, duration_ms: durationMs });
    return { alarm_id: alarm.id, state: 'idle' };
  }

  #output(name: string | undefined): Output | undefined {
    return name === undefined ? undefined : this.io.outputs.get(name);
  }
}
