import { isPriority, isValidEventType, type VigiaEvent } from '../core/event.js';

/**
 * What the call center's ingest accepts from the broker: event envelopes on
 * `<prefix>/<site>/<device>/events/<priority>/<type>` and device status on
 * `<prefix>/<site>/<device>/status` (docs/mqtt-api.md). Anything else, or an envelope that does
 * not say the same as its topic, is refused with a reason and counted, never stored: a device can
 * only speak for itself (the broker's ACL ties a device's credentials to its topic tree, so the
 * topic is what the center trusts, and an envelope claiming another device is kept out).
 */

export type RefusalReason = 'topic' | 'too_large' | 'not_json' | 'envelope' | 'mismatch';

export interface DeviceStatus {
  state: 'online' | 'offline';
  reason?: string;
  time?: string;
  boot_id?: string;
  version?: string;
  profile?: string;
  /** Where a fixed device is installed (its configuration), for the map. */
  location?: { lat: number; lon: number };
}

export type IngestMessage =
  | { kind: 'event'; event: VigiaEvent }
  | { kind: 'status'; site: string; device: string; status: DeviceStatus | null }
  | { kind: 'refused'; reason: RefusalReason; detail: string; site?: string; device?: string };

/** Largest message taken (a plate hit carries a crop and a downscaled frame: a few hundred KiB). */
export const MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

const refused = (reason: RefusalReason, detail: string, at?: { site: string; device: string }): IngestMessage => ({
  kind: 'refused',
  reason,
  detail,
  ...(at ? { site: at.site, device: at.device } : {}),
});

export function parseMessage(prefix: string, topic: string, payload: Uint8Array): IngestMessage {
  const parts = topic.split('/');
  if (parts[0] !== prefix || parts.length < 4 || !NAME.test(parts[1]!) || !NAME.test(parts[2]!)) return refused('topic', topic.slice(0, 200));
  const at = { site: parts[1]!, device: parts[2]! };
  if (parts.length === 4 && parts[3] === 'status') {
    if (payload.length === 0) return { kind: 'status', ...at, status: null }; // a retained status cleared
    const json = parseJson(payload);
    if (!json.ok) return refused(json.reason, json.detail, at);
    const s = json.value;
    if (s.state !== 'online' && s.state !== 'offline') return refused('envelope', 'status.state must be "online" or "offline"', at);
    const status: DeviceStatus = { state: s.state };
    for (const k of ['reason', 'time', 'boot_id', 'version', 'profile'] as const) {
      if (typeof s[k] === 'string') status[k] = (s[k] as string).slice(0, 200);
    }
    const loc = s.location as { lat?: unknown; lon?: unknown } | undefined;
    if (loc && typeof loc.lat === 'number' && typeof loc.lon === 'number' && Math.abs(loc.lat) <= 90 && Math.abs(loc.lon) <= 180)
      status.location = { lat: loc.lat, lon: loc.lon };
    return { kind: 'status', ...at, status };
  }
  if (parts.length < 6 || parts[3] !== 'events') return refused('topic', topic.slice(0, 200), at);
  // A broker that turns the type's dots into levels (RabbitMQ 3.x: `alarm/panic`) is read back.
  const [priority, type] = [parts[4]!, parts.slice(5).join('.')];
  const json = parseJson(payload);
  if (!json.ok) return refused(json.reason, json.detail, at);
  const e = json.value;
  const problem = envelopeProblem(e);
  if (problem) return refused('envelope', problem, at);
  if (e.site !== at.site || e.device !== at.device || e.priority !== priority || e.type !== type)
    return refused('mismatch', `envelope says ${e.site}/${e.device} ${e.priority}/${e.type}, topic ${at.site}/${at.device} ${priority}/${type}`, at);
  return { kind: 'event', event: e as unknown as VigiaEvent };
}

function parseJson(payload: Uint8Array): { ok: true; value: Record<string, unknown> } | { ok: false; reason: RefusalReason; detail: string } {
  if (payload.length > MAX_MESSAGE_BYTES) return { ok: false, reason: 'too_large', detail: `${payload.length} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8'));
  } catch (err) {
    return { ok: false, reason: 'not_json', detail: (err as Error).message.slice(0, 200) };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, reason: 'not_json', detail: 'not a JSON object' };
  return { ok: true, value: value as Record<string, unknown> };
}

/** What is wrong with an event envelope, or null. */
export function envelopeProblem(e: Record<string, unknown>): string | null {
  if (typeof e.id !== 'string' || !UUID.test(e.id)) return 'id must be a UUID';
  if (typeof e.site !== 'string' || !NAME.test(e.site)) return 'site missing or invalid';
  if (typeof e.device !== 'string' || !NAME.test(e.device)) return 'device missing or invalid';
  if (typeof e.type !== 'string' || !isValidEventType(e.type)) return 'type missing or invalid';
  if (!isPriority(e.priority)) return 'priority must be alarm, hit, read or telemetry';
  if (typeof e.time !== 'string' || !Number.isFinite(Date.parse(e.time))) return 'time must be an ISO 8601 time';
  if (e.clock !== 'synced' && e.clock !== 'unsynced') return 'clock must be synced or unsynced';
  if (typeof e.boot_id !== 'string' || e.boot_id.length === 0 || e.boot_id.length > 64) return 'boot_id missing';
  if (typeof e.mono_ms !== 'number' || !(e.mono_ms >= 0)) return 'mono_ms must be a number >= 0';
  if (typeof e.seq !== 'number' || !Number.isSafeInteger(e.seq) || e.seq < 0) return 'seq must be an integer >= 0';
  if (typeof e.payload !== 'object' || e.payload === null || Array.isArray(e.payload)) return 'payload must be an object';
  if (e.geo !== undefined) {
    const g = e.geo as Record<string, unknown> | null;
    if (typeof g !== 'object' || g === null || typeof g.lat !== 'number' || typeof g.lon !== 'number' || Math.abs(g.lat) > 90 || Math.abs(g.lon) > 180)
      return 'geo must hold lat and lon';
  }
  return null;
}
