import { join } from 'node:path';
import { z } from 'zod';
import { type Config, type REMOTE_ROLES, remoteSchema } from '../config/schema.js';
import { wallIsoAt } from '../core/clock.js';
import type { EventPayload, EventType } from '../core/events.js';
import { writeFileDurably } from '../core/durable-file.js';
import { CommandError, type ExtensionContext, NO_ARGS } from '../core/extension.js';
import type { RemoteFrame, RemoteReceiver } from '../drivers/radio/types.js';
import { Enrolments, readDataFile } from './data-file.js';
import type { PoleAlarm } from './pole.js';

/**
 * A community kit's radio remotes: frames from the receivers become presses (a held button repeats
 * its frame every ~40 ms: frames of one remote and button closer than `radio.press_gap` are one
 * press), a registered remote's press raises the kit's alarm with who pressed (`alarm.remote`) or
 * silences the siren, and an unknown code is counted and remembered for the technician enrolling
 * a new remote (`vigia remotes learn`). Remotes come from the configuration and from the call
 * center's signed `remotes.enroll` (kept in the data directory, so a neighbour is added without a
 * visit); the configuration's are fixed and win.
 *
 * Fixed-code remotes (EV1527, PT2262) send the same code at every press: anyone who records it can
 * replay it, and nothing here can tell. Hopping-code remotes (KeeLoq HCS200/300, through rtl_433)
 * send a new code word at every press: a word already used is a copy, refused and reported
 * (`remote.replayed`). Without the manufacturer's key the word cannot be decrypted, so a word that
 * was never sent by the remote is still taken; a copy of a press the kit did not hear (jammed
 * while recorded) is also taken once.
 */

export type RemotesContext = Pick<ExtensionContext<Config>, 'config' | 'logger' | 'clock' | 'paths' | 'emit' | 'commands' | 'control'>;

type RemoteConfig = z.output<typeof remoteSchema>;
type Role = (typeof REMOTE_ROLES)[number];

export interface RegisteredRemote extends RemoteConfig {
  name: string;
  source: 'config' | 'command';
}

/** What `vigia remotes learn` shows for each press it sees. */
export interface PressReport {
  code: string;
  button: number | null;
  /** The registered remote's name, or null for an unknown code. */
  remote: string | null;
  role: Role | null;
  receiver: string;
  rssi_db: number | null;
  raw: string;
  tristate: string | null;
  time: string;
  /** A hopping-code remote's word used before: refused as a copy. */
  replayed?: boolean;
}

/** An unknown code heard lately, for the technician enrolling a remote. */
export interface UnknownCode {
  code: string;
  button: number | null;
  receiver: string;
  presses: number;
  first_seen: string;
  last_seen: string;
  rssi_db: number | null;
  raw: string;
  tristate: string | null;
}

/** Enrolled by command, in the data directory. */
const ENROLLED_FILE = 'remotes.json';
/** Code words each hopping-code remote has used, in the data directory. */
const HOPS_FILE = 'remote-hops.json';
/** Hopping words remembered per remote: a KeeLoq counter moves by one per press, so this is 256 presses back. */
const HOPS_KEPT = 256;

const ENROLL_ARGS = z
  .object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/) })
  .extend(remoteSchema.shape)
  .strict();
const REMOVE_ARGS = z.object({ name: z.string() }).strict();
const STORED_REMOTES = z.record(z.string(), remoteSchema);
const STORED_HOPS = z.record(z.string(), z.array(z.string()));

export const codeOf = (frame: Pick<RemoteFrame, 'protocol' | 'id'>): string => `${frame.protocol}:${frame.id}`;

/** The role of a button: its own entry, else `*`, else alarm. */
export function roleOf(remote: Pick<RemoteConfig, 'buttons'>, button: number | null): Role {
  return (button !== null ? remote.buttons[String(button)] : undefined) ?? remote.buttons['*'] ?? 'alarm';
}

export class Remotes {
  #enrolled!: Enrolments<RemoteConfig>;
  #hops: Record<string, string[]> = {};
  /** Last frame per code and button (monotonic ms), to fold repeats into one press. */
  #lastFrame = new Map<string, number>();
  #unknown = new Map<string, UnknownCode>();
  #learners = new Set<(report: PressReport) => void>();
  #counts = { frames: 0, presses: 0, alarms: 0, silences: 0, ignored: 0, unknown_presses: 0, replayed: 0 };
  #pressLatency: number[] = [];
  /** Each receiver's last failure, for status and `vigia doctor`. */
  #lastError = new Map<string, string>();

  constructor(
    private readonly ctx: RemotesContext,
    private readonly receivers: readonly RemoteReceiver[],
    private readonly pole: PoleAlarm | undefined,
  ) {}

  async start(): Promise<void> {
    const { ctx } = this;
    this.#enrolled = new Enrolments(join(ctx.paths.dataDir, ENROLLED_FILE), STORED_REMOTES, 'remote', () => ctx.config.remotes, ctx.logger);
    this.#enrolled.load();
    this.#codes = undefined;
    this.#hops = readDataFile(join(ctx.paths.dataDir, HOPS_FILE), STORED_HOPS, {}, ctx.logger);
    ctx.commands.register('remotes.enroll', ENROLL_ARGS, (args) => this.#enroll(args));
    ctx.commands.register('remotes.remove', REMOVE_ARGS, (args) => this.#remove(args.name));
    ctx.commands.register('remotes.list', NO_ARGS, () => this.list());
    ctx.control.handle('remotes.list', () => this.list());
    ctx.control.handleStream('remotes.learn', (_args, send) => {
      for (const u of this.#unknown.values()) send({ unknown: u });
      const learner = (report: PressReport) => send({ press: report });
      this.#learners.add(learner);
      return () => this.#learners.delete(learner);
    });
    for (const receiver of this.receivers) {
      receiver.on('frame', (frame) => void this.frame(frame, receiver.id));
      receiver.on('error', (err) => {
        this.#lastError.set(receiver.id, err.message);
        ctx.logger.warn({ receiver: receiver.id, err: err.message }, 'radio receiver failed');
      });
      await receiver.start();
    }
    ctx.logger.info({ receivers: this.receivers.map((r) => r.id), remotes: Object.keys(this.registered()).length }, 'radio remotes listening');
  }

  async stop(): Promise<void> {
    for (const receiver of this.receivers) await receiver.stop().catch(() => undefined);
    this.#learners.clear();
  }

  /** Every registered remote by name: the configuration's, then the enrolled ones it does not name. */
  registered(): Record<string, RegisteredRemote> {
    const out: Record<string, RegisteredRemote> = {};
    for (const [name, r] of Object.entries(this.#enrolled.entries)) out[name] = { ...r, name, source: 'command' };
    for (const [name, r] of Object.entries(this.ctx.config.remotes)) out[name] = { ...r, name, source: 'config' };
    return out;
  }

  /** Registered remotes by code, rebuilt when the registry changes (a press looks one up per frame). */
  #codes: Map<string, RegisteredRemote> | undefined;

  #byCode(code: string): RegisteredRemote | undefined {
    this.#codes ??= new Map(Object.values(this.registered()).map((r) => [r.code, r]));
    return this.#codes.get(code);
  }

  /** One decoded frame from a receiver. */
  async frame(frame: RemoteFrame, receiver: string): Promise<void> {
    const { ctx } = this;
    this.#counts.frames++;
    const code = codeOf(frame);
    const key = `${code}/${frame.button ?? ''}`;
    const last = this.#lastFrame.get(key);
    this.#lastFrame.set(key, frame.monoMs);
    if (last !== undefined && frame.monoMs - last < ctx.config.radio.press_gap && frame.monoMs >= last) return;
    if (this.#lastFrame.size > 4096) this.#forgetOldFrames(frame.monoMs);
    this.#counts.presses++;

    const remote = this.#byCode(code);
    const role = remote ? roleOf(remote, frame.button) : null;
    const report: PressReport = {
      code,
      button: frame.button,
      remote: remote?.name ?? null,
      role,
      receiver,
      rssi_db: frame.rssiDb,
      raw: frame.raw,
      tristate: frame.tristate,
      time: wallIsoAt(ctx.clock, frame.monoMs),
    };
    if (remote && frame.rolling !== null && this.#replayed(remote.name, frame.rolling)) {
      this.#counts.replayed++;
      report.replayed = true;
      this.#tell(report);
      ctx.logger.warn({ remote: remote.name, code }, 'a hopping-code remote sent a code word it had already used: replay refused');
      await this.#emit('remote.replayed', {
        remote: remote.name,
        code,
        button: frame.button,
        receiver,
        rssi_db: frame.rssiDb,
        at: report.time,
      });
      return;
    }
    this.#tell(report);
    if (!remote) {
      this.#counts.unknown_presses++;
      this.#rememberUnknown(report);
      ctx.logger.debug({ code, button: frame.button, receiver }, 'press of an unknown remote');
      return;
    }
    const household = remote.household
      ? { name: remote.household.name, address: remote.household.address ?? null, phone: remote.household.phone ?? null, notes: remote.household.notes ?? null }
      : null;
    if (role === 'ignore') {
      this.#counts.ignored++;
      return;
    }
    if (role === 'silence') {
      this.#counts.silences++;
      const silenced = await this.pole?.silence(remote.name, household?.name ?? null);
      ctx.logger.info({ remote: remote.name, silenced: silenced ?? false }, 'silence button pressed');
      return;
    }
    this.#counts.alarms++;
    ctx.logger.info({ remote: remote.name, code, button: frame.button, receiver }, 'remote pressed: alarm');
    const trigger = { remote: remote.name, code, button: frame.button, household, receiver, rssi_db: frame.rssiDb };
    if (this.pole) await this.pole.raise({ kind: 'remote', remote: trigger }, frame.monoMs);
    else await this.#emit('alarm.remote', { ...trigger, pressed_at: report.time, alarm_id: null, press: 1, snapshot: null });
    this.#pressLatency.push(ctx.clock.monoNow() - frame.monoMs);
    if (this.#pressLatency.length > 1000) this.#pressLatency.splice(0, this.#pressLatency.length - 1000);
  }

  status() {
    const sorted = [...this.#pressLatency].sort((a, b) => a - b);
    return {
      receivers: Object.fromEntries(this.receivers.map((r) => [r.id, { ...r.stats(), last_error: this.#lastError.get(r.id) ?? null }])),
      registered: Object.keys(this.registered()).length,
      ...this.#counts,
      unknown_codes: this.#unknown.size,
      // Frame received to alarm on disk with the outputs playing.
      press_to_stored_ms_p50: sorted.length ? Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10 : null,
    };
  }

  /** Registered remotes (households included: the call center registered them) and the unknown codes heard lately. */
  list() {
    return {
      remotes: Object.values(this.registered()).map(({ name, code, buttons, household, source }) => ({
        name,
        code,
        buttons,
        household: household ?? null,
        source,
      })),
      unknown: [...this.#unknown.values()],
    };
  }

  #tell(report: PressReport): void {
    for (const learner of this.#learners) learner(report);
  }

  #rememberUnknown(report: PressReport): void {
    const key = `${report.code}/${report.button ?? ''}`;
    const known = this.#unknown.get(key);
    if (known) {
      this.#unknown.delete(key); // re-inserted: the map's order is least recently heard first
      known.presses++;
      known.last_seen = report.time;
      known.rssi_db = report.rssi_db;
      known.receiver = report.receiver;
      this.#unknown.set(key, known);
    } else {
      this.#unknown.set(key, {
        code: report.code,
        button: report.button,
        receiver: report.receiver,
        presses: 1,
        first_seen: report.time,
        last_seen: report.time,
        rssi_db: report.rssi_db,
        raw: report.raw,
        tristate: report.tristate,
      });
    }
    while (this.#unknown.size > this.ctx.config.radio.learn_window) this.#unknown.delete(this.#unknown.keys().next().value!);
  }

  /** True when this remote already used the word; otherwise remembers it (on disk: a restart must not forget). */
  #replayed(remote: string, word: string): boolean {
    const used = (this.#hops[remote] ??= []);
    if (used.includes(word)) return true;
    used.push(word);
    if (used.length > HOPS_KEPT) used.splice(0, used.length - HOPS_KEPT);
    try {
      writeFileDurably(join(this.ctx.paths.dataDir, HOPS_FILE), `${JSON.stringify(this.#hops)}\n`);
    } catch (err) {
      this.ctx.logger.error({ err: (err as Error).message }, 'cannot record a hopping code word');
    }
    return false;
  }

  #forgetOldFrames(now: number): void {
    for (const [key, at] of this.#lastFrame) if (now - at > this.ctx.config.radio.press_gap) this.#lastFrame.delete(key);
  }

  #enroll(args: z.output<typeof ENROLL_ARGS>) {
    const { name, ...remote } = args;
    const holder = this.#byCode(remote.code);
    if (holder && holder.name !== name) throw new CommandError('code_taken', `${remote.code} is already registered as ${holder.name}`);
    this.#enrolled.put(name, remote);
    this.#codes = undefined;
    for (const key of [...this.#unknown.keys()]) if (key.startsWith(`${remote.code}/`)) this.#unknown.delete(key);
    this.ctx.logger.info({ remote: name, code: remote.code }, 'remote enrolled');
    return { name, code: remote.code, enrolled: Object.keys(this.#enrolled.entries).length };
  }

  #remove(name: string) {
    this.#enrolled.remove(name);
    this.#codes = undefined;
    delete this.#hops[name];
    this.ctx.logger.info({ remote: name }, 'remote removed');
    return { name, removed: true };
  }

  async #emit<T extends EventType>(type: T, payload: EventPayload<T>): Promise<void> {
    try {
      await this.ctx.emit(type, payload);
    } catch (err) {
      this.ctx.logger.fatal({ err, type }, 'a remote event could not be stored');
    }
  }
}
