/**
 * A strict reader of Prometheus' text exposition format (0.0.4), for tests: every line must be a
 * HELP, a TYPE or a sample of a family declared before it; names, labels, escapes and values must
 * be well formed; no sample repeats; histograms have ascending `le` buckets, cumulative counts and a
 * `+Inf` bucket equal to `_count`. Anything else throws, naming the line.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string | undefined;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: (-?\\d+))?$`);
const LABEL_PAIR = new RegExp(`^(${LABEL})="((?:[^"\\\\\\n]|\\\\[\\\\"n])*)"(,|$)`);
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const SUFFIXES: Record<Family['type'], string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

function parseValue(text: string, where: string): number {
  // Prometheus reads values with Go's ParseFloat, which takes NaN and Inf in any case (prom-client writes `Nan`).
  if (/^\+?inf$/i.test(text)) return Infinity;
  if (/^-inf$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return Number.NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`${where}: bad value ${JSON.stringify(text)}`);
  return Number(text);
}

function parseLabels(text: string, where: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const m = LABEL_PAIR.exec(rest);
    if (!m) throw new Error(`${where}: bad labels ${JSON.stringify(text)}`);
    if (Object.hasOwn(labels, m[1]!)) throw new Error(`${where}: label ${m[1]} repeated`);
    labels[m[1]!] = m[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    rest = rest.slice(m[0].length);
    if (m[3] === '' && rest.length > 0) throw new Error(`${where}: text after the labels`);
  }
  return labels;
}

export function parseExposition(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline');
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const familyOf = (sample: string): Family | undefined => {
    for (const [name, f] of families) if (SUFFIXES[f.type].some((s) => `${name}${s}` === sample)) return f;
    return undefined;
  };
  text
    .slice(0, -1)
    .split('\n')
    .forEach((line, i) => {
      const where = `line ${i + 1}`;
      if (line === '') return;
      if (line.startsWith('#')) {
        const m = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`).exec(line);
        if (!m) return; // a plain comment
        const [, kind, name, rest] = m as unknown as [string, string, string, string];
        const family = families.get(name) ?? { type: 'untyped' as const, help: undefined, samples: [] };
        if (kind === 'HELP') {
          if (family.help !== undefined) throw new Error(`${where}: second HELP for ${name}`);
          family.help = rest;
        } else {
          if (!TYPES.has(rest)) throw new Error(`${where}: unknown type ${rest}`);
          if (families.has(name) && families.get(name)!.samples.length > 0) throw new Error(`${where}: TYPE for ${name} after its samples`);
          family.type = rest as Family['type'];
        }
        families.set(name, family);
        return;
      }
      const m = SAMPLE.exec(line);
      if (!m) throw new Error(`${where}: not a sample: ${JSON.stringify(line)}`);
      const family = familyOf(m[1]!);
      if (!family) throw new Error(`${where}: sample ${m[1]} of no declared family`);
      const labels = parseLabels(m[2] ?? '', where);
      const key = `${m[1]}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seen.has(key)) throw new Error(`${where}: sample repeated`);
      seen.add(key);
      family.samples.push({ name: m[1]!, labels, value: parseValue(m[3]!, where) });
    });
  for (const [name, f] of families) if (f.type === 'histogram') checkHistogram(name, f);
  return families;
}

function checkHistogram(name: string, f: Family): void {
  const series = new Map<string, Sample[]>();
  const keyOf = (labels: Record<string, string>) =>
    JSON.stringify(
      Object.entries(labels)
        .filter(([k]) => k !== 'le')
        .sort(),
    );
  for (const s of f.samples.filter((x) => x.name === `${name}_bucket`)) {
    if (s.labels.le === undefined) throw new Error(`${name}: bucket without le`);
    series.set(keyOf(s.labels), [...(series.get(keyOf(s.labels)) ?? []), s]);
  }
  for (const [key, buckets] of series) {
    const bounds = buckets.map((b) => parseValue(b.labels.le!, name));
    if (bounds.some((b, i) => i > 0 && b <= bounds[i - 1]!)) throw new Error(`${name}${key}: le not ascending`);
    if (bounds.at(-1) !== Infinity) throw new Error(`${name}${key}: no +Inf bucket`);
    if (buckets.some((b, i) => i > 0 && b.value < buckets[i - 1]!.value)) throw new Error(`${name}${key}: buckets not cumulative`);
    const count = f.samples.find((s) => s.name === `${name}_count` && keyOf(s.labels) === key);
    if (!count || count.value !== buckets.at(-1)!.value) throw new Error(`${name}${key}: _count differs from the +Inf bucket`);
  }
}

/** The value of one sample, or undefined. */
export function sampleValue(families: Map<string, Family>, family: string, labels: Record<string, string> = {}, name = family): number | undefined {
  return families
    .get(family)
    ?.samples.find(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v) && Object.keys(s.labels).length >= Object.keys(labels).length,
    )?.value;
}
