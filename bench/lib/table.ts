// The readable half of a benchmark's output: numbers formatted for people, in aligned columns.

/** A figure for a table cell: thousands separators, fixed decimals, '–' when missing. */
export function fmt(x: number | string | null | undefined, digits = 0): string {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'string') return x;
  if (!Number.isFinite(x)) return String(x);
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain-text table: header row, a rule, then the rows; the first column left-aligned, the others right-aligned. */
export function table(header: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | null | undefined>>): string {
  const all = [header, ...rows].map((r) => r.map((c) => String(c ?? '–')));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(all[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}
