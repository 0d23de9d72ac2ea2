import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Role } from './users.js';

/**
 * Console sessions: a random id in an HttpOnly, SameSite=Strict cookie, and a CSRF token the page
 * sends back in a header with every change (a cross-site form can carry the cookie in some
 * browsers, never a custom header). Sessions live in the server's memory: a restart logs everyone
 * out, which a 24/7 floor notices at once and which leaves nothing to steal on disk.
 */

export interface Session {
  id: string;
  user: string;
  role: Role;
  csrf: string;
  created: number;
  seen: number;
}

/** A session unused this long ends (an operator away from the desk). */
export const IDLE_MS = 12 * 3600 * 1000;
/** Every session ends after this, used or not (a shift and a half). */
export const MAX_AGE_MS = 24 * 3600 * 1000;

export class Sessions {
  readonly #byId = new Map<string, Session>();

  constructor(private readonly now: () => number = Date.now) {}

  create(user: string, role: Role): Session {
    const t = this.now();
    const s: Session = { id: randomBytes(32).toString('base64url'), user, role, csrf: randomBytes(32).toString('base64url'), created: t, seen: t };
    this.#byId.set(s.id, s);
    this.#sweep(t);
    return s;
  }

  /** The live session for a cookie value, refreshed; undefined when unknown or expired. */
  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.#byId.get(id);
    if (!s) return undefined;
    const t = this.now();
    if (t - s.seen > IDLE_MS || t - s.created > MAX_AGE_MS) {
      this.#byId.delete(id);
      return undefined;
    }
    s.seen = t;
    return s;
  }

  end(id: string): void {
    this.#byId.delete(id);
  }

  /** Ends every session of a user (removed, or role changed). */
  endUser(user: string): void {
    for (const [id, s] of this.#byId) if (s.user === user) this.#byId.delete(id);
  }

  #sweep(t: number): void {
    for (const [id, s] of this.#byId) if (t - s.seen > IDLE_MS || t - s.created > MAX_AGE_MS) this.#byId.delete(id);
  }
}

/** Constant-time comparison of a CSRF token. */
export function sameToken(expected: string, given: string | undefined): boolean {
  if (!given) return false;
  const a = Buffer.from(expected);
  const b = Buffer.from(given);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Failed logins: at most 5 per user name and 20 per client address in 5 minutes (a call center's
 * operators may share one address behind NAT). Only failures count, so operators logging in at a
 * change of shift are never held back by each other.
 */
export class LoginLimiter {
  readonly #failures = new Map<string, number[]>();
  static readonly WINDOW_MS = 5 * 60 * 1000;
  static readonly PER_USER = 5;
  static readonly PER_REMOTE = 20;

  constructor(private readonly now: () => number = Date.now) {}

  /** Whether another attempt may be made now. */
  allow(remote: string, user: string): boolean {
    return this.#recent(`u:${user}`) < LoginLimiter.PER_USER && this.#recent(`r:${remote}`) < LoginLimiter.PER_REMOTE;
  }

  readonly #refused = new Map<string, number>();

  /** True for the first refusal of this name and address in a window (the one worth auditing). */
  firstRefusal(remote: string, user: string): boolean {
    const key = `${remote}\u0000${user}`;
    const t = this.now();
    const last = this.#refused.get(key);
    if (last !== undefined && t - last < LoginLimiter.WINDOW_MS) return false;
    if (this.#refused.size > 10_000) this.#refused.clear();
    this.#refused.set(key, t);
    return true;
  }

  fail(remote: string, user: string): void {
    if (this.#failures.size > 10_000) this.#failures.clear();
    for (const key of [`u:${user}`, `r:${remote}`]) {
      const list = this.#failures.get(key) ?? [];
      list.push(this.now());
      this.#failures.set(key, list);
    }
  }

  #recent(key: string): number {
    const cutoff = this.now() - LoginLimiter.WINDOW_MS;
    const list = (this.#failures.get(key) ?? []).filter((t) => t > cutoff);
    if (list.length === 0) this.#failures.delete(key);
    else this.#failures.set(key, list);
    return list.length;
  }
}
