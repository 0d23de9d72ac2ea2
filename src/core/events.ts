import { z } from 'zod';
import { PRIORITIES, type Priority } from './event.js';
import { PATTERN_MODES } from './pattern.js';

/**
 * The catalogue of event types: for each, its delivery priority and the schema of its payload.
 * `emit` takes its payload type from here, so a producer with a wrong payload does not compile;
 * events from outside the code (the simulator, later flows) are checked against the same schemas at
 * run time. `docs/mqtt-api.md` documents every type and every payload field listed here (a test
 * holds the two together). Payload fields are snake_case JSON, as they go on the wire.
 */

const iso = z.string().describe('ISO 8601 time');
const nullable = <T extends z.ZodType>(t: T) => t.nullable();
const box = z.array(z.number());
const jpegImage = z.object({ content_type: z.literal('image/jpeg'), width: z.number(), height: z.number(), data: z.string() });
const patternShape = z.object({ mode: z.enum(PATTERN_MODES) }).loose();

const hotlistEntry = z.object({ plate: z.string(), reason: z.string(), source: z.string(), added: z.string(), expires: nullable(z.string()) });

/** How the outbox holds its database: `exclusive` after a start on a full disk (no -shm file could grow). */
export const DB_LOCKING = ['normal', 'exclusive'] as const;
/** The disk reserve beside the outbox (see gateway/disk-reserve.ts). */
export const RESERVE_STATES = ['present', 'released', 'missing', 'disabled'] as const;

const spec = <P extends Priority, S extends z.ZodObject>(priority: P, payload: S) => ({ priority, payload });

export const EVENT_TYPES = {
  // Gateway and system health.
  health: spec(
    'telemetry',
    z.object({
      uptime_s: z.number(),
      load: z.array(z.number()),
      mem: z.object({ total_bytes: z.number(), free_bytes: z.number(), rss_bytes: z.number() }),
      disk_free_bytes: nullable(z.number()),
      cpu_temp_c: nullable(z.number()),
      outbox: z.object({
        depth: z.number(),
        bytes: z.number(),
        depth_by_priority: z.record(z.string(), z.number()),
        oldest_unsent_age_s: z.number(),
        evicted: z.record(z.string(), z.unknown()),
      }),
      link: z.object({
        state: z.string(),
        connects: z.number(),
        resent: z.number(),
        refused: z.number(),
        refused_by_reason: z.record(z.string(), z.number()),
        last_refusal: nullable(z.string()),
        refused_waiting: z.number(),
        inbound_dropped: z.number(),
      }),
      clock_synced: z.boolean(),
      disk: z.object({
        full: z.boolean(),
        full_for_s: nullable(z.number()),
        locking: z.enum(DB_LOCKING),
        reserve: z.enum(RESERVE_STATES),
        refused: z.record(z.string(), z.number()),
        held_alarms: z.number(),
        direct_published: z.number(),
      }),
      extensions: z.record(z.string(), z.record(z.string(), z.unknown())).optional().describe('sections added by extensions (nodered)'),
    }),
  ),
  'system.outbox_evicted': spec('hit', z.object({ evicted: z.partialRecord(z.enum(PRIORITIES), z.record(z.string(), z.number())) })),
  'system.outbox_corrupt': spec('hit', z.object({ moved_to: z.string(), error: z.string() })),
  // Alarm priority: while the disk is full only alarms are stored, and the call center must act.
  'system.disk_full': spec(
    'alarm',
    z.object({
      error: z.string(),
      at_start: z.boolean(),
      reserve: z.enum(RESERVE_STATES),
      locking: z.enum(DB_LOCKING),
      free_bytes: nullable(z.number()),
    }),
  ),
  'system.disk_recovered': spec(
    'hit',
    z.object({ full_ms: z.number(), refused: z.partialRecord(z.enum(PRIORITIES), z.number()), free_bytes: nullable(z.number()) }),
  ),

  // Remote administration (config.set, snapshot).
  'system.config_applied': spec('hit', z.object({ sha256: z.string(), previous_sha256: z.string(), requested_at: iso })),
  'system.config_rolled_back': spec(
    'hit',
    z.object({
      reason: z.enum(['start_failed', 'not_up', 'died']),
      error: z.string(),
      rejected_sha256: z.string(),
      restored_sha256: z.string(),
      requested_at: iso,
    }),
  ),
  'camera.snapshot': spec('hit', z.object({ camera: z.string(), ref: z.string(), taken_at: iso, image: jpegImage })),

  // The pole's alarm and field inputs.
  'alarm.panic': spec(
    'alarm',
    z.object({
      input: z.string(),
      pressed_at: iso,
      line_mono_ms: z.number(),
      alarm_id: nullable(z.string()),
      press: z.number().int().positive(),
      snapshot: nullable(z.object({ camera: z.string(), ref: z.string() })),
    }),
  ),
  'alarm.snapshot': spec('hit', z.object({ alarm_id: z.string(), camera: z.string(), ref: z.string(), taken_at: iso, image: jpegImage })),
  'alarm.snapshot_failed': spec('hit', z.object({ alarm_id: z.string(), camera: z.string(), ref: z.string(), error: z.string() })),
  'alarm.acknowledged': spec('hit', z.object({ alarm_id: z.string(), operator: nullable(z.string()) })),
  'alarm.restored': spec(
    'hit',
    z.object({ alarm_id: z.string(), input: z.string(), state: z.enum(['raised', 'acknowledged']), presses: z.number(), raised_at: iso }),
  ),
  'alarm.cleared': spec('hit', z.object({ alarm_id: z.string(), operator: nullable(z.string()), presses: z.number(), duration_ms: z.number() })),
  // Community kits: a neighbour's radio remote. Who pressed comes from the remote's registration.
  'alarm.remote': spec(
    'alarm',
    z.object({
      remote: z.string().describe('name of the registered remote'),
      code: z.string().describe('protocol:id, as `vigia remotes learn` shows it (ev1527:a3f5c, hcs200:1a2b3c4)'),
      button: nullable(z.number()),
      household: nullable(z.object({ name: z.string(), address: nullable(z.string()), phone: nullable(z.string()), notes: nullable(z.string()) })).describe(
        'who the remote belongs to, as registered',
      ),
      receiver: z.string().describe('rtl_433 or gpio:<line>'),
      rssi_db: nullable(z.number()),
      pressed_at: iso,
      alarm_id: nullable(z.string()),
      press: z.number().int().positive(),
      snapshot: nullable(z.object({ camera: z.string(), ref: z.string() })),
    }),
  ),
  // A registered personal alarm tag's button, heard over Bluetooth LE near this device.
  'alarm.personal': spec(
    'alarm',
    z.object({
      tag: z.string().describe('name of the registered tag'),
      tag_id: z.string().describe('the id the tag advertises, hex'),
      person: z
        .object({ name: z.string(), address: nullable(z.string()), phone: nullable(z.string()), notes: nullable(z.string()) })
        .describe('who carries the tag, as registered'),
      adapter: z.string().describe('the Bluetooth adapter that heard it (hci0)'),
      address: z.string().describe("the tag's Bluetooth address"),
      rssi_dbm: nullable(z.number()).describe('signal strength: about -50 next to the pole, -90 at the edge of its range'),
      location: nullable(z.object({ lat: z.number(), lon: z.number() })).describe(
        'where this device is installed (device.location): the tag is within ~30-100 m of it',
      ),
      pressed_at: iso,
      alarm_id: nullable(z.string()),
      press: z.number().int().positive(),
      snapshot: nullable(z.object({ camera: z.string(), ref: z.string() })),
    }),
  ),
  // A remote allowed to silence the siren did so; the alarm stays open until the call center clears it.
  'alarm.silenced': spec('hit', z.object({ alarm_id: z.string(), remote: z.string(), household: nullable(z.string()) })),
  // A hopping-code remote sent a code word it had already used: a copy, not a press.
  'remote.replayed': spec(
    'hit',
    z.object({ remote: z.string(), code: z.string(), button: nullable(z.number()), receiver: z.string(), rssi_db: nullable(z.number()), at: iso }),
  ),
  'input.long_press': spec('hit', z.object({ input: z.string(), at: iso, held_ms: z.number() })),
  'fault.input_stuck': spec('hit', z.object({ input: z.string(), since: iso, held_ms: z.number() })),
  'fault.input_recovered': spec('hit', z.object({ input: z.string(), at: iso })),
  'motion.detected': spec('read', z.object({ input: z.string(), at: iso })),
  'motion.ended': spec('read', z.object({ input: z.string(), at: iso, duration_ms: z.number() })),
  'tamper.opened': spec('hit', z.object({ input: z.string(), kind: z.enum(['door', 'tamper']), at: iso, at_start: z.literal(true).optional() })),
  'tamper.closed': spec('hit', z.object({ input: z.string(), kind: z.enum(['door', 'tamper']), at: iso })),
  'fault.output_cutoff': spec('hit', z.object({ output: z.string(), kind: z.string(), pattern: patternShape, ran_ms: z.number() })),

  // GPS.
  'gps.fix_acquired': spec(
    'telemetry',
    z.object({ fix: z.string(), satellites: nullable(z.number()), hdop: nullable(z.number()), without_fix_ms: z.number() }),
  ),
  'gps.fix_lost': spec(
    'telemetry',
    z.object({ reason: z.enum(['no_fix', 'stale']), last_lat: z.number(), last_lon: z.number(), last_fix: z.string(), last_fix_age_ms: z.number() }),
  ),
  'gps.port_lost': spec('hit', z.object({ port: z.string(), error: z.string(), was_receiving: z.boolean() })),
  'gps.port_restored': spec('hit', z.object({ port: z.string(), down_ms: z.number() })),

  // Plate reading.
  'plate.hit': spec(
    'alarm',
    z.object({
      camera: z.string(),
      plate: z.string(),
      display: z.string(),
      confidence: z.number(),
      format: nullable(z.string()),
      country: z.string().optional().describe('country of the plate read (cl, ar, bo, pe, br); absent for eu and generic reads'),
      trigger: z.enum(['frame', 'vote']),
      frames: z.number(),
      box: box,
      frame_size: z.tuple([z.number(), z.number()]).optional(),
      seen_at: iso,
      match: z.object({ kind: z.enum(['exact', 'confusable']), distance: z.number() }),
      entry: hotlistEntry,
      hotlist_version: z.string(),
      evidence: nullable(
        z.object({
          // Left out when the alarm class is over its quota (see HEAVY_FIELDS); the files stay on the device.
          crop: jpegImage.optional(),
          frame: jpegImage.optional(),
          files: nullable(z.object({ crop: z.string(), frame: z.string() })),
          dropped: z.enum(['quota', 'disk_full']).optional().describe('the images were left out: the alarm class was over its quota, or the disk was full'),
        }),
      ),
    }),
  ),
  'plate.read': spec(
    'read',
    z.object({
      camera: z.string(),
      plate: z.string().optional(),
      display: z.string().optional(),
      per_char_confidence: z.array(z.number()).optional(),
      plate_hash: z.string().optional(),
      hash: z.literal('hmac-sha256').optional(),
      confidence: z.number(),
      format: nullable(z.string()),
      country: z.string().optional().describe('country of the plate read (cl, ar, bo, pe, br); absent for eu and generic reads'),
      frames: z.number(),
      first_seen: iso,
      last_seen: iso,
      box: box,
      hit: z.boolean(),
    }),
  ),
  'hotlist.updated': spec('telemetry', z.object({ source: z.string(), version: z.string(), size: z.number() })),
  'hotlist.rejected': spec(
    'hit',
    z.object({
      source: z.string(),
      reason: z.string(),
      detail: z.string(),
      errors: z.array(z.object({ line: z.number(), message: z.string() })),
      kept_version: z.string(),
    }),
  ),
  // The call center must know a gantry matches against an old list: hit, not telemetry.
  'hotlist.stale': spec('hit', z.object({ version: z.string(), serial: z.number(), issued: iso, age_s: z.number() })),
  'camera.offline': spec('hit', z.object({ camera: z.string(), error: nullable(z.string()) })),
  'camera.online': spec('hit', z.object({ camera: z.string() })),
  'anpr.failed': spec('hit', z.object({ error: z.string() })),

  // Embedded Node-RED (its supervisor).
  'nodered.failed': spec(
    'hit',
    z.object({
      reason: z.enum(['exited', 'hung', 'out_of_memory', 'start_failed']),
      detail: z.string(),
      failures: z.number(),
      restart_in_ms: z.number(),
    }),
  ),
  'nodered.restarted': spec('hit', z.object({ restarts: z.number(), down_ms: z.number() })),
} as const;

export type EventType = keyof typeof EVENT_TYPES;

/**
 * Payload fields too big to store without limit (embedded images), by event type, as dotted paths.
 * The outbox leaves them out of alarm-priority events once the alarm class is over its quota, or
 * while the disk is full, and marks their parent object `dropped: "quota"` (or `"disk_full"`): the
 * event itself is always stored, and the room left is kept for panic presses, which carry none.
 */
export const HEAVY_FIELDS: Partial<Record<EventType, readonly string[]>> = {
  'plate.hit': ['evidence.crop', 'evidence.frame'],
};
export type EventPayload<T extends EventType> = z.output<(typeof EVENT_TYPES)[T]['payload']>;
export type EventPriority<T extends EventType> = (typeof EVENT_TYPES)[T]['priority'];

/** Namespaces whose types are not catalogued: any payload, any priority (simulated hardware, Node-RED flows). */
export const OPEN_NAMESPACES = ['sim.', 'flow.'] as const;

export const isCatalogued = (type: string): type is EventType => Object.hasOwn(EVENT_TYPES, type);

/** Why a dynamic event (from the simulator, a flow...) was refused, or null when it may be emitted. */
export function checkDynamicEvent(type: string, priority: Priority, payload: unknown): string | null {
  if (!isCatalogued(type)) return null;
  const entry = EVENT_TYPES[type];
  if (priority !== entry.priority) return `${type} events have priority ${entry.priority}`;
  const parsed = entry.payload.safeParse(payload);
  return parsed.success ? null : `${type} payload: ${describeIssues(parsed.error)}`;
}

/** `field.path: message; ...` for a zod error, short enough for a command reply or a log line. */
export function describeIssues(error: z.ZodError, max = 5): string {
  const parts = error.issues.slice(0, max).map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
  if (error.issues.length > max) parts.push(`and ${error.issues.length - max} more`);
  return parts.join('; ');
}
