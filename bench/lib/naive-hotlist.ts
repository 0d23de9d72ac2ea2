// The hotlist benchmark's baseline: the obvious implementation of a stolen-vehicle list. Split the
// CSV, one object per row in a Map keyed by the plate. No validation, exact match only.

export interface NaiveEntry {
  plate: string;
  reason: string | undefined;
  source: string | undefined;
  added: string | undefined;
  expires: string | null;
}

const normalise = (plate: string) => plate.toUpperCase().replace(/[^A-Z0-9]/g, '');

export function naiveLoad(text: string): Map<string, NaiveEntry> {
  const map = new Map<string, NaiveEntry>();
  const lines = text.split('\n');
  for (let k = 1; k < lines.length; k++) {
    const line = lines[k]!;
    if (!line) continue;
    const f = line.includes('"') ? splitQuoted(line) : line.split(',');
    const plate = normalise(f[0]!);
    map.set(plate, { plate, reason: f[1], source: f[2], added: f[3], expires: f[4] || null });
  }
  return map;
}

/** The entry for a read, unless it had expired by `now` (an entry counts through its expiry day). */
export function naiveLookup(map: Map<string, NaiveEntry>, plate: string, now: number, dayMs: number): NaiveEntry[] {
  const e = map.get(normalise(plate));
  return e && !(e.expires && Date.parse(e.expires) + dayMs - 1 < now) ? [e] : [];
}

function splitQuoted(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}
