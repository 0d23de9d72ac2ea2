import type { FlowNode } from './flows.js';

/**
 * A client of Node-RED's admin API (the one the editor uses), for `vigia flows`. It logs in with
 * the password grant, as `node-red-admin` does, and speaks the v2 flows API so a deploy made on
 * top of someone else's change is refused (409) instead of overwriting it.
 */

export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class AdminClient {
  #token: string | undefined;

  constructor(readonly baseUrl: string) {}

  /** `scope` is what the token may do: `*` to deploy, `read` to look (a read-only user gets nothing more). */
  async login(username: string, password: string, scope: '*' | 'read' = '*'): Promise<void> {
    const res = await this.#fetch('auth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
    });
    if (res.status === 401 || res.status === 403) throw new AdminApiError(res.status, `login refused for ${username} (wrong user or password)`);
    if (!res.ok) throw new AdminApiError(res.status, `login failed: HTTP ${res.status}`);
    const body = (await res.json()) as { access_token?: string };
    if (!body.access_token) throw new AdminApiError(res.status, 'login answered without a token');
    this.#token = body.access_token;
  }

  async getFlows(): Promise<{ rev: string; flows: FlowNode[] }> {
    const res = await this.#fetch('flows', { headers: this.#headers() });
    await this.#check(res, 'reading the flows');
    return (await res.json()) as { rev: string; flows: FlowNode[] };
  }

  /** Replaces every flow (a full deploy); `rev` guards against a deploy made meanwhile. */
  async setFlows(flows: FlowNode[], rev?: string): Promise<{ rev: string }> {
    const res = await this.#fetch('flows', {
      method: 'POST',
      headers: { ...this.#headers(), 'content-type': 'application/json', 'Node-RED-Deployment-Type': 'full' },
      body: JSON.stringify(rev ? { rev, flows } : { flows }),
    });
    if (res.status === 409) throw new AdminApiError(409, 'the flows changed on the device since they were read; try again');
    await this.#check(res, 'deploying');
    return (await res.json()) as { rev: string };
  }

  async revokeToken(): Promise<void> {
    if (!this.#token) return;
    await this.#fetch('auth/revoke', {
      method: 'POST',
      headers: { ...this.#headers(), 'content-type': 'application/json' },
      body: JSON.stringify({ token: this.#token }),
    }).catch(() => undefined);
    this.#token = undefined;
  }

  #headers(): Record<string, string> {
    return { 'Node-RED-API-Version': 'v2', ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}) };
  }

  async #check(res: Response, what: string): Promise<void> {
    if (res.ok) return;
    if (res.status === 401) throw new AdminApiError(401, `${what}: refused (401: not logged in, the session expired, or the user may only read)`);
    let detail = '';
    try {
      const body = (await res.json()) as { message?: string; error?: string };
      detail = body.message ?? body.error ?? '';
    } catch {
      /* no body */
    }
    throw new AdminApiError(res.status, `${what}: HTTP ${res.status}${detail ? ` ${detail}` : ''}`);
  }

  async #fetch(path: string, init: RequestInit): Promise<Response> {
    try {
      return await fetch(new URL(path, this.baseUrl), { ...init, signal: AbortSignal.timeout(15_000) });
    } catch (err) {
      throw new AdminApiError(
        0,
        `cannot reach Node-RED at ${this.baseUrl}: ${(err as Error).cause ? String((err as Error & { cause: Error }).cause.message) : (err as Error).message}`,
      );
    }
  }
}
