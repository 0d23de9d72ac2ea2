// Small numeric and formatting helpers.
import { readFileSync } from 'node:fs';

export const median = (xs) => {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
};

/** Nearest-rank percentile (p in 0..100). */
export const percentile = (xs, p) => {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return null;
  const rank = Math.min(v.length, Math.max(1, Math.ceil((p / 100) * v.length)));
  return v[rank - 1];
};

export const round = (x, digits = 0) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits)));

export const ratio = (a, b, digits = 2) => (a == null || b == null || b === 0 ? null : round(a / b, digits));

export function fmt(x, digits = 0) {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'string') return x;
  if (!Number.isFinite(x)) return String(x);
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A plain-text table: header row, then rows of cells (strings). */
export function table(header, rows) {
  const all = [header, ...rows].map((r) => r.map((c) => String(c ?? '–')));
  const widths = header.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(all[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...all.slice(1).map(line)].join('\n');
}

/** /proc/<pid>/io as numbers. */
export function procIo(pid = 'self') {
  const out = {};
  for (const line of readFileSync(`/proc/${pid}/io`, 'utf8').split('\n')) {
    const [k, v] = line.split(':');
    if (k && v !== undefined) out[k.trim()] = Number(v.trim());
  }
  return out;
}

/** A VmXXX field of /proc/<pid>/status, in MiB. */
export function procMem(pid, field = 'VmRSS') {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : null;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
