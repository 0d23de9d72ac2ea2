import type { TagPressReport, UnknownTag } from '../features/personal-tags.js';

/**
 * `vigia tags learn`: a technician registering a personal alarm tag presses its button near the
 * pole and sees its id, with the YAML that registers it. The running daemon holds the Bluetooth
 * adapter's scan, so the presses come from it (registered tags are shown by name, so a tag handed
 * to a student can be checked at the pole).
 */

export type TagLearnItem = { press: TagPressReport } | { unknown: UnknownTag };

const rssi = (dbm: number | null) => (dbm === null ? '' : `  ${dbm} dBm`);

/** One line per press; an unregistered tag gets the configuration that registers it. */
export function formatTagLearnItem(item: TagLearnItem): string {
  if ('unknown' in item) {
    const u = item.unknown;
    return `heard lately: tag ${u.id} (${u.address})  ${u.presses} press${u.presses === 1 ? '' : 'es'}, last ${u.last_seen}${rssi(u.rssi_dbm)}\n`;
  }
  const p = item.press;
  const line = `${p.time}  tag ${p.id}  ${p.tag ?? 'UNREGISTERED'}  ${p.address}${rssi(p.rssi_dbm)}${p.counter === null ? '' : `  counter ${p.counter}`}\n`;
  if (p.tag !== null) return line;
  return `${line}    to register it (vigia.yaml):\n      tags:\n        <name>:\n          id: "${p.id}"\n          person: { name: ..., phone: ..., notes: ... }\n    or from the call center, the signed command tags.enroll {"name": "<name>", "id": "${p.id}", "person": {"name": ...}}\n`;
}
