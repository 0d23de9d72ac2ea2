import { type Clock, wallIsoAt } from '../core/clock.js';
import type { EventPayload } from '../core/events.js';

/**
 * The one shape of `alarm.panic`, for a pole's alarm and for a plain panic input alike: the call
 * center reads `alarm_id`, `press` and `snapshot` on every panic, null or 1 when there is no pole.
 */
export function panicPayload(
  clock: Clock,
  input: string,
  edgeMono: number,
  incident: { alarmId: string | null; press: number; snapshot: { camera: string; ref: string } | null },
): EventPayload<'alarm.panic'> {
  return {
    input,
    pressed_at: wallIsoAt(clock, edgeMono),
    line_mono_ms: Math.round(edgeMono),
    alarm_id: incident.alarmId,
    press: incident.press,
    snapshot: incident.snapshot,
  };
}
