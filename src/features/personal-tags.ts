import { join } from 'node:path';
import { z } from 'zod';
import { type Config, personalTagSchema } from '../config/schema.js';
import { wallIsoAt } from '../core/clock.js';
import type { EventPayload } from '../core/events.js';
import { CommandError, type ExtensionContext, NO_ARGS } from '../core/extension.js';
import type { Advert, AdvertScanner } from '../drivers/ble/types.js';
import { Enrolments } from './data-file.js';
import type { PoleAlarm } from './pole.js';

/**
 * Personal alarm tags (students, people living alone): a tag advertises over Bluetooth LE, and
 * while its button is pressed its advertisement carries a button flag. A pole or kit that hears a
 * registered tag's flag raises its alarm as `alarm.personal`, with the person, the signal strength
 * and the device's own location (the tag is within radio range of it); the adverts of one press
 * (repeated for a few seconds) are one press, and a new value of the tag's press counter is a new
 * press at once.
 *
 * The format is configured (`personal.format`), for tags whose firmware can put a fixed prefix, an
 * id and a button flag in their manufacturer-specific data: iBeacon-style by default (Apple's
 * company id, `02 15`, the fleet's UUID, the major as the tag id, the minor's top bit as the
 * button and its low byte as a press counter), which most programmable SOS beacons can send.
 *
 * Tags come from the configuration and from the call center's signed `tags.enroll` (kept in the
 * data directory: a new student's tag needs no visit); the configuration's are fixed and win.
 *
 * Like fixed-code remotes, advertisements are not authenticated: anyone who records a tag's press
 * can play it back. A false alarm is the risk, not a missed one; the README says so.
 */

export type PersonalTagsContext = Pick<ExtensionContext<Config>, 'config' | 'logger' | 'clock' | 'paths' | 'emit' | 'commands' | 'control'>;

type Format = Config['personal']['format'];
type TagConfig = z.output<typeof personalTagSchema>;

export interface RegisteredTag extends TagConfig {
  name: string;
  source: 'config' | 'command';
}

/** Enrolled by command, in the data directory. */
export const ENROLLED_TAGS_FILE = 'tags.json';
const ENROLL_ARGS = z
  .object({ name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/) })
  .extend(personalTagSchema.shape)
  .strict();
const REMOVE_ARGS = z.object({ name: z.string() }).strict();
const STORED_TAGS = z.record(z.string(), personalTagSchema);

/** What a tag's advertisement says, read with the configured format; null when it is not one of ours. */
export interface TagAdvert {
  id: string;
  pressed: boolean;
  counter: number | null;
}

/** The configured prefix as bytes, parsed once per format (every advert in the street is checked against it). */
const prefixes = new WeakMap<Format, Buffer>();

export function readTagAdvert(format: Format, manufacturerData: ReadonlyMap<number, Uint8Array>): TagAdvert | null {
  const data = manufacturerData.get(format.company_id);
  if (!data) return null;
  let prefix = prefixes.get(format);
  if (!prefix) prefixes.set(format, (prefix = Buffer.from(format.prefix ?? '', 'hex')));
  if (data.length < prefix.length || !prefix.equals(data.subarray(0, prefix.length))) return null;
  const need = Math.max(format.id_offset + format.id_length, format.button_offset + 1, (format.counter_offset ?? -1) + 1);
  if (data.length < need) return null;
  let id = '';
  for (let i = format.id_offset; i < format.id_offset + format.id_length; i++) id += data[i]!.toString(16).padStart(2, '0');
  const pressed = (data[format.button_offset]! & format.button_mask) !== 0;
  let counter: number | null = null;
  if (format.counter_offset !== null) {
    // The counter shares its byte with the flag in some layouts: the flag's bits are not part of it.
    counter = format.counter_offset === format.button_offset ? data[format.counter_offset]! & ~format.button_mask & 0xff : data[format.counter_offset]!;
  }
  return { id, pressed, counter };
}

/** A tag heard lately that is not registered, for the technician registering it. */
export interface UnknownTag {
  id: string;
  address: string;
  pressed: boolean;
  adverts: number;
  presses: number;
  rssi_dbm: number | null;
  first_seen: string;
  last_seen: string;
}

/** What `vigia tags learn` shows for each press it sees. */
export interface TagPressReport {
  id: string;
  tag: string | null;
  address: string;
  rssi_dbm: number | null;
  counter: number | null;
  time: string;
}

interface PressState {
  /** The last advert with the flag, monotonic ms. */
  lastFlagMono: number;
  counter: number | null;
}

export class PersonalTags {
  #presses = new Map<string, PressState>();
  #unknown = new Map<string, UnknownTag>();
  #learners = new Set<(report: TagPressReport) => void>();
  #enrolled!: Enrolments<TagConfig>;
  /** Registered tags by id, rebuilt when the registry changes (every advert of ours looks one up). */
  #byId = new Map<string, RegisteredTag>();
  #counts = { adverts: 0, ours: 0, presses: 0, alarms: 0, weak: 0, unknown_presses: 0 };
  #pressLatency: number[] = [];
  #lastError: string | null = null;

  constructor(
    private readonly ctx: PersonalTagsContext,
    private readonly scanner: AdvertScanner,
    private readonly pole: PoleAlarm | undefined,
  ) {}

  async start(): Promise<void> {
    const { ctx } = this;
    this.#enrolled = new Enrolments(join(ctx.paths.dataDir, ENROLLED_TAGS_FILE), STORED_TAGS, 'tag', () => ctx.config.tags, ctx.logger);
    this.#enrolled.load();
    this.#index();
    ctx.commands.register('tags.enroll', ENROLL_ARGS, (args) => this.#enroll(args));
    ctx.commands.register('tags.remove', REMOVE_ARGS, (args) => this.#remove(args.name));
    ctx.commands.register('tags.list', NO_ARGS, () => this.list());
    ctx.control.handle('tags.list', () => this.list());
    ctx.control.handleStream('tags.learn', (_args, send) => {
      for (const u of this.#unknown.values()) send({ unknown: u });
      const learner = (report: TagPressReport) => send({ press: report });
      this.#learners.add(learner);
      return () => this.#learners.delete(learner);
    });
    this.scanner.on('advert', (advert) => void this.advert(advert));
    this.scanner.on('error', (err) => {
      this.#lastError = err.message;
    });
    await this.scanner.start();
    ctx.logger.info({ adapter: this.scanner.id, tags: this.#byId.size }, 'personal alarm tags listening');
  }

  async stop(): Promise<void> {
    await this.scanner.stop().catch(() => undefined);
    this.#learners.clear();
  }

  /** One advertisement from the scanner. */
  async advert(advert: Advert): Promise<void> {
    const { ctx } = this;
    const cfg = ctx.config.personal;
    this.#counts.adverts++;
    const read = readTagAdvert(cfg.format, advert.manufacturerData);
    if (!read) return;
    this.#counts.ours++;
    const tag = this.#byId.get(read.id);
    const name = tag?.name;
    if (advert.rssiDbm !== null && advert.rssiDbm < cfg.min_rssi_dbm) {
      this.#counts.weak++;
      return;
    }
    if (!name) this.#rememberUnknown(read, advert);
    if (!read.pressed) return;
    const last = this.#presses.get(read.id);
    this.#presses.set(read.id, { lastFlagMono: advert.monoMs, counter: read.counter });
    const samePress =
      last !== undefined && advert.monoMs >= last.lastFlagMono && advert.monoMs - last.lastFlagMono < cfg.press_gap && last.counter === read.counter;
    if (samePress) return;
    if (this.#presses.size > 4096) this.#forgetOldPresses(advert.monoMs);
    this.#counts.presses++;
    const time = wallIsoAt(ctx.clock, advert.monoMs);
    for (const learner of this.#learners)
      learner({ id: read.id, tag: name ?? null, address: advert.address, rssi_dbm: advert.rssiDbm, counter: read.counter, time });
    if (!tag) {
      this.#counts.unknown_presses++;
      const unknown = this.#unknown.get(read.id);
      if (unknown) unknown.presses++;
      ctx.logger.debug({ tag_id: read.id, rssi_dbm: advert.rssiDbm }, 'press of an unregistered tag');
      return;
    }
    this.#counts.alarms++;
    ctx.logger.info({ tag: tag.name, rssi_dbm: advert.rssiDbm }, 'personal alarm tag pressed');
    const trigger: Omit<EventPayload<'alarm.personal'>, 'pressed_at' | 'alarm_id' | 'press' | 'snapshot'> = {
      tag: tag.name,
      tag_id: read.id,
      person: { name: tag.person.name, address: tag.person.address ?? null, phone: tag.person.phone ?? null, notes: tag.person.notes ?? null },
      adapter: this.scanner.id,
      address: advert.address,
      rssi_dbm: advert.rssiDbm,
      location: ctx.config.device.location ?? null,
    };
    if (this.pole) await this.pole.raise({ kind: 'personal', tag: trigger }, advert.monoMs);
    else {
      try {
        await ctx.emit('alarm.personal', { ...trigger, pressed_at: time, alarm_id: null, press: 1, snapshot: null });
      } catch (err) {
        ctx.logger.fatal({ err, tag: tag.name }, 'PERSONAL ALARM COULD NOT BE STORED');
      }
    }
    this.#pressLatency.push(ctx.clock.monoNow() - advert.monoMs);
    if (this.#pressLatency.length > 1000) this.#pressLatency.splice(0, this.#pressLatency.length - 1000);
  }

  status() {
    const sorted = [...this.#pressLatency].sort((a, b) => a - b);
    return {
      scanner: { id: this.scanner.id, ...this.scanner.stats(), last_error: this.#lastError },
      registered: this.#byId.size,
      ...this.#counts,
      unknown_tags: this.#unknown.size,
      // Advert received to alarm on disk with the outputs playing.
      press_to_stored_ms_p50: sorted.length ? Math.round(sorted[Math.floor(sorted.length / 2)]! * 10) / 10 : null,
    };
  }

  /** Every registered tag by name: the configuration's, then the enrolled ones it does not name. */
  registered(): Record<string, RegisteredTag> {
    const out: Record<string, RegisteredTag> = {};
    for (const [name, t] of Object.entries(this.#enrolled.entries)) out[name] = { ...t, name, source: 'command' };
    for (const [name, t] of Object.entries(this.ctx.config.tags)) out[name] = { ...t, name, source: 'config' };
    return out;
  }

  /** Registered tags (with their people: the call center registered them) and the unregistered ones heard lately. */
  list() {
    return {
      tags: Object.values(this.registered()).map(({ name, id, person, source }) => ({ name, id, person, source })),
      unknown: [...this.#unknown.values()],
    };
  }

  #index(): void {
    const idLength = this.ctx.config.personal.format.id_length * 2;
    this.#byId.clear();
    for (const tag of Object.values(this.registered())) {
      // An enrolled id of another length was enrolled under another format: no advert can carry it.
      if (tag.id.length !== idLength) {
        this.ctx.logger.warn({ tag: tag.name, tag_id: tag.id }, 'an enrolled tag id does not fit personal.format.id_length: ignored');
        continue;
      }
      // The configuration's tag wins over an enrolled one with the same id (the schema keeps its own ids apart).
      if (!this.#byId.has(tag.id) || tag.source === 'config') this.#byId.set(tag.id, tag);
    }
  }

  #enroll(args: z.output<typeof ENROLL_ARGS>) {
    const { name, ...tag } = args;
    const digits = this.ctx.config.personal.format.id_length * 2;
    if (tag.id.length !== digits) throw new CommandError('bad_id', `a tag id is ${digits} hex digits here (personal.format.id_length)`);
    const holder = this.#byId.get(tag.id);
    if (holder && holder.name !== name) throw new CommandError('id_taken', `tag ${tag.id} is already registered as ${holder.name}`);
    this.#enrolled.put(name, tag);
    this.#index();
    this.#unknown.delete(tag.id);
    this.ctx.logger.info({ tag: name }, 'tag enrolled');
    return { name, id: tag.id, enrolled: Object.keys(this.#enrolled.entries).length };
  }

  #remove(name: string) {
    this.#enrolled.remove(name);
    this.#index();
    this.ctx.logger.info({ tag: name }, 'tag removed');
    return { name, removed: true };
  }

  #rememberUnknown(read: TagAdvert, advert: Advert): void {
    const time = wallIsoAt(this.ctx.clock, advert.monoMs);
    const known = this.#unknown.get(read.id);
    if (known) {
      this.#unknown.delete(read.id); // re-inserted: least recently heard first
      known.adverts++;
      known.address = advert.address;
      known.pressed = read.pressed;
      known.rssi_dbm = advert.rssiDbm;
      known.last_seen = time;
      this.#unknown.set(read.id, known);
    } else {
      this.#unknown.set(read.id, {
        id: read.id,
        address: advert.address,
        pressed: read.pressed,
        adverts: 1,
        presses: 0,
        rssi_dbm: advert.rssiDbm,
        first_seen: time,
        last_seen: time,
      });
    }
    while (this.#unknown.size > this.ctx.config.personal.learn_window) this.#unknown.delete(this.#unknown.keys().next().value!);
  }

  #forgetOldPresses(now: number): void {
    for (const [id, p] of this.#presses) if (now - p.lastFlagMono > this.ctx.config.personal.press_gap) this.#presses.delete(id);
  }
}
