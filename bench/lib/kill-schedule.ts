// The SIGKILL schedule that the outbox benchmark applies to every system (Vigía, the MQTT.js
// producer, the Mosquitto bridge): odd-numbered kills happen after the uplink has been down for
// OUTAGE_MS (a backlog is waiting), even-numbered ones with the link up.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Gate } from '../../tests/helpers/gate.js';
import type { Subscriber } from '../../tests/helpers/subscriber.js';

export const OUTAGE_MS = 1000;
/** Each kill comes this long (uniformly) after the system is back up. */
export const GAP_BEFORE_KILL_MS = { min: 1500, max: 2500 };

export const isOutageKill = (k: number): boolean => k % 2 === 1;

/** Waits a random gap and, for outage kills, cuts the uplink (gate closed) OUTAGE_MS before the kill. Returns whether kill k happens in an outage. */
export async function approachKill(k: number, gate: Gate): Promise<boolean> {
  await sleep(GAP_BEFORE_KILL_MS.min + Math.random() * (GAP_BEFORE_KILL_MS.max - GAP_BEFORE_KILL_MS.min));
  const outage = isOutageKill(k);
  if (outage) {
    await gate.close();
    await sleep(OUTAGE_MS);
  }
  return outage;
}

export type LossKind = 'link-up' | 'outage' | 'after';

/**
 * Events that never arrived, by the kill that lost them: epochs[i] holds the ids acknowledged
 * before kill i + 1; the last epoch (after the last kill) is 'after'.
 */
export function lossByKind(epochs: readonly string[][], sub: Subscriber, kills: number): Record<LossKind, number> {
  const out: Record<LossKind, number> = { 'link-up': 0, outage: 0, after: 0 };
  epochs.forEach((ids, i) => {
    const kind: LossKind = i < kills ? (isOutageKill(i + 1) ? 'outage' : 'link-up') : 'after';
    out[kind] += sub.missing(ids).length;
  });
  return out;
}
