// Summaries of measured samples.

/** Median of the finite numbers among xs, or null if there are none. */
export function median(xs: ReadonlyArray<number | null | undefined>): number | null {
  const v = xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** Nearest-rank percentile (p in 0..100), or null for no samples. */
export function percentile(xs: readonly number[], p: number): number | null {
  const v = [...xs].sort((a, b) => a - b);
  if (v.length === 0) return null;
  const rank = Math.min(v.length, Math.max(1, Math.ceil((p / 100) * v.length)));
  return v[rank - 1]!;
}

/** x rounded to `digits` decimals; null for a missing or non-finite figure. */
export function round(x: number | null | undefined, digits = 0): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(digits));
}

/** a / b rounded, or null when either is missing or b is 0. */
export function ratio(a: number | null | undefined, b: number | null | undefined, digits = 2): number | null {
  return a == null || b == null || b === 0 ? null : round(a / b, digits);
}

/** a - b, or null when either is missing. */
export function difference(a: number | null | undefined, b: number | null | undefined): number | null {
  return a == null || b == null ? null : a - b;
}
