import type { ConfigInput, Profile } from './schema.js';

type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
export type ConfigOverlay = DeepPartial<ConfigInput>;

/**
 * Defaults per deployment profile, in the shape of the YAML file. They are merged UNDER the user's
 * file (the file always wins) and only hold what differs from the schema defaults.
 */
export const PROFILE_DEFAULTS: Readonly<Record<Profile, ConfigOverlay>> = {
  // Smart pole: few events (panic buttons, telemetry); the schema defaults are sized for it. The
  // alarm behaviour (LED, strobe, snapshot) is what a pole is for.
  pole: { pole: { enabled: true } },

  gantry: {
    outbox: {
      // Plate-reader gantries produce a read per passing vehicle, thousands an hour, and have an
      // SSD: keep days of reads through a backhaul outage instead of evicting them.
      max_bytes: '4GiB',
      alarm_reserve_bytes: '64MiB',
      quota_bytes: { hit: '256MiB', read: '3GiB' },
    },
    // After an outage the backlog of reads is large; pace it so the central broker and the
    // link are not flooded (alarms and hits are never held back).
    mqtt: { drain_rate: 200 },
  },

  community: {
    // A neighbourhood kit: a press of a remote sounds the siren for the street as well as calling
    // the call center, and remotes arrive through an RTL-SDR dongle unless a module is configured.
    pole: { enabled: true, siren_pattern: 'on', siren_for: '3m' },
    radio: { receiver: 'rtl_433' },
  },

  patrol: {
    // A patrol car drops off cellular coverage for whole shifts; its reads are still useful when
    // it comes back, so keep them longer. clock.sync_source stays auto: GPS or commands sync it.
    outbox: { ttl: { read: '14d' } },
    // Moving vehicle: report position and health more often.
    telemetry: { interval: '15s' },
  },
};

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep merge of plain objects; `top` wins, anything that is not a plain object replaces. Never mutates. */
export function mergeUnder(base: unknown, top: unknown): unknown {
  if (top === undefined) return structuredClone(base);
  if (!isPlainObject(base) || !isPlainObject(top)) return top;
  const out: Record<string, unknown> = { ...structuredClone(base) };
  for (const [key, value] of Object.entries(top)) out[key] = mergeUnder(base[key], value);
  return out;
}

/** The profile named in a raw (unvalidated) document, if it is a known one. */
export function profileOf(raw: unknown): Profile | undefined {
  const profile = isPlainObject(raw) && isPlainObject(raw.device) ? raw.device.profile : undefined;
  return typeof profile === 'string' && Object.hasOwn(PROFILE_DEFAULTS, profile) ? (profile as Profile) : undefined;
}

/** The raw document with its profile's defaults merged under it (unchanged if the profile is unknown). */
export function applyProfileDefaults(raw: unknown): unknown {
  const profile = profileOf(raw);
  return profile ? mergeUnder(PROFILE_DEFAULTS[profile], raw) : raw;
}
