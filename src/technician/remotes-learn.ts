import type { PressReport, UnknownCode } from '../features/remotes.js';

/**
 * `vigia remotes learn`: a technician enrolling a new remote presses it and sees its code, with
 * the YAML that registers it. The running daemon holds the receiver, so the presses come from it
 * (known remotes are shown with their name and role, so a kit's remotes can be checked one by one).
 */

export type UnknownReport = UnknownCode;

export type LearnItem = { press: PressReport } | { unknown: UnknownReport };

const rssi = (db: number | null) => (db === null ? '' : `  ${db.toFixed(1)} dB`);
const button = (b: number | null) => (b === null ? '' : `  button ${b}`);

/** One line per press; an unknown code gets the configuration that registers it. */
export function formatLearnItem(item: LearnItem): string {
  if ('unknown' in item) {
    const u = item.unknown;
    return `heard lately: ${u.code}${button(u.button)}  ${u.presses} press${u.presses === 1 ? '' : 'es'}, last ${u.last_seen}${rssi(u.rssi_db)}\n`;
  }
  const p = item.press;
  const who = p.replayed ? `REPLAYED code word of ${p.remote} (refused)` : p.remote ? `${p.remote} (${p.role})` : 'UNKNOWN';
  const line = `${p.time}  ${p.code}${button(p.button)}  ${who}  via ${p.receiver}${rssi(p.rssi_db)}${p.tristate ? `  tristate ${p.tristate}` : ''}\n`;
  if (p.remote !== null) return line;
  return `${line}    to register it (vigia.yaml):\n      remotes:\n        <name>:\n          code: ${p.code}\n          household: { name: ..., address: ..., phone: ... }\n`;
}
