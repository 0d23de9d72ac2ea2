import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay, DEFAULT_BACKOFF } from '../src/core/backoff.js';

const middle = () => 0.5;
const lowest = () => 0;
const highest = () => 1;

describe('backoffDelay', () => {
  it('grows by the factor from the minimum up to the maximum', () => {
    const opts = { minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 };
    expect([0, 1, 2, 3, 4, 10].map((n) => backoffDelay(n, opts, middle))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, { ...opts, factor: 3 }, middle))).toEqual([100, 300, 900, 1000]);
  });

  it('defaults to 500 ms doubling up to 30 s, ±20 %', () => {
    expect(DEFAULT_BACKOFF).toMatchObject({ minDelayMs: 500, maxDelayMs: 30_000, factor: 2, jitter: 0.2 });
    expect([0, 1, 5, 6, 7].map((n) => backoffDelay(n, {}, middle))).toEqual([500, 1000, 16_000, 30_000, 30_000]);
    expect(backoffDelay(0, {}, lowest)).toBe(400);
    expect(backoffDelay(0, {}, highest)).toBe(600);
  });

  it('spreads each delay by ± the jitter fraction, in whole milliseconds', () => {
    const opts = { minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 };
    expect(backoffDelay(1, opts, lowest)).toBe(160);
    expect(backoffDelay(1, opts, highest)).toBe(240);
    expect(backoffDelay(1, opts, () => 0.999)).toBe(240); // 239.92
    expect(backoffDelay(1, { ...opts, jitter: 0 }, highest)).toBe(200);
  });

  it('lets the jitter spread around the maximum unless capJitter clamps it there', () => {
    const opts = { minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 };
    expect(backoffDelay(10, opts, highest)).toBe(1200);
    expect(backoffDelay(10, { ...opts, capJitter: true }, highest)).toBe(1000);
    expect(backoffDelay(10, { ...opts, capJitter: true }, lowest)).toBe(800);
  });

  it('stays finite however many failures there were', () => {
    expect(backoffDelay(5000, {}, middle)).toBe(30_000);
    expect(backoffDelay(5000, { minDelayMs: 0 }, middle)).toBe(0);
  });
});

describe('Backoff', () => {
  it('hands out growing delays and counts the failures', () => {
    const backoff = new Backoff({ minDelayMs: 100, maxDelayMs: 1000, jitter: 0.2 }, middle);
    expect(backoff.failures).toBe(0);
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect(backoff.failures).toBe(6);
  });

  it('starts over from the minimum after reset()', () => {
    const backoff = new Backoff({ minDelayMs: 100, maxDelayMs: 1000, jitter: 0 });
    backoff.next();
    backoff.next();
    backoff.reset();
    expect(backoff.failures).toBe(0);
    expect(backoff.next()).toBe(100);
    expect(backoff.failures).toBe(1);
  });

  it('treats the failure of an attempt that was up for resetAfterMs as a first one', () => {
    const backoff = new Backoff({ minDelayMs: 100, maxDelayMs: 1000, jitter: 0, resetAfterMs: 5000 });
    expect([backoff.next(), backoff.next(), backoff.next(4999)]).toEqual([100, 200, 400]);
    expect(backoff.next(undefined)).toBe(800);
    expect(backoff.next(5000)).toBe(100);
    expect(backoff.failures).toBe(1);
    expect(backoff.next()).toBe(200);
  });

  it('draws one random number per delay from the injected source', () => {
    const draws = [0, 1, 0.5];
    const backoff = new Backoff({ minDelayMs: 1000, maxDelayMs: 60_000, jitter: 0.3 }, () => draws.shift() ?? Number.NaN);
    expect([backoff.next(), backoff.next(), backoff.next()]).toEqual([700, 2600, 4000]);
    expect(draws).toEqual([]);
  });
});
