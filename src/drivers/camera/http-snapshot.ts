import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { redactUrl } from '../../core/redact.js';
import { BaseFrameSource, type FrameSourceDeps } from './source.js';
import type { BackoffOptions } from '../../core/backoff.js';
import { basicAuthorization, chooseChallenge, DigestSession, parseWwwAuthenticate } from './http-auth.js';
import { isJpeg } from './jpeg.js';

export interface HttpSnapshotSourceOptions {
  cameraId: string;
  /** Snapshot URL, e.g. an ONVIF GetSnapshotUri answer. Credentials may be given here or below. */
  url: string;
  /** Poll period, measured start to start (default 1000 ms). */
  intervalMs?: number;
  username?: string;
  password?: string;
  /**
   * 'auto' (default) answers whatever the camera challenges with, preferring Digest, and Basic
   * only over https;
   * 'digest' refuses to send the password as Basic; 'basic' sends it up front.
   */
  auth?: 'auto' | 'basic' | 'digest';
  /** Whole-request timeout (default 5000 ms). */
  timeoutMs?: number;
  /** Largest accepted body (default 10 MB). */
  maxBytes?: number;
  headers?: Record<string, string>;
  /** HTTPS: extra CA, or accept the self-signed certificates many cameras ship with. */
  tls?: { ca?: string | Buffer; rejectUnauthorized?: boolean };
  backoff?: BackoffOptions;
  /** The URL is a secret (a token in it): messages show only its scheme and host. */
  privateUrl?: boolean;
}

/** Thrown for answers that are not a usable snapshot; the message says why. */
export class SnapshotError extends Error {
  override name = 'SnapshotError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

interface Response {
  status: number;
  headers: IncomingMessage['headers'];
  challenges: string[];
  body: Buffer;
}

const MAX_ERROR_BODY = 16 * 1024;

/**
 * Polls a camera's JPEG snapshot URL. Basic and Digest (RFC 7616: MD5, SHA-256, SHA-512-256,
 * qop=auth) are answered from the camera's challenge; a Digest challenge is reused with an
 * incrementing nonce count, so a healthy camera costs one request per frame. Only image/jpeg
 * bodies that start with the JPEG magic are accepted; anything else is an error and backs off.
 */
export class HttpSnapshotSource extends BaseFrameSource {
  readonly #opts: HttpSnapshotSourceOptions;
  readonly #url: URL;
  readonly #username: string | undefined;
  readonly #password: string;
  #agent: http.Agent | undefined;
  #digest: DigestSession | undefined;
  #basic = false;
  #timer: NodeJS.Timeout | undefined;
  #request: http.ClientRequest | undefined;

  constructor(opts: HttpSnapshotSourceOptions, deps: FrameSourceDeps = {}) {
    super(opts.cameraId, deps, opts.backoff);
    this.#opts = opts;
    const url = new URL(opts.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`snapshot URL must be http(s), got ${url.protocol}`);
    this.#username = opts.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
    this.#password = opts.password ?? decodeURIComponent(url.password);
    url.username = '';
    url.password = '';
    this.#url = url;
    this.#basic = opts.auth === 'basic' && this.#username !== undefined;
  }

  protected open(gen: number): void {
    const Agent = this.#url.protocol === 'https:' ? https.Agent : http.Agent;
    this.#agent ??= new Agent({ keepAlive: true, maxSockets: 1, ...(this.#url.protocol === 'https:' ? this.#opts.tls : {}) });
    this.#poll(gen);
  }

  protected async close(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#request?.destroy(new Error('source stopped'));
    this.#request = undefined;
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  #poll(gen: number): void {
    const started = this.clock.monoNow();
    this.#snapshot(gen).then(
      (jpeg) => {
        if (!this.isCurrent(gen)) return;
        this.emitFrame(gen, jpeg);
        if (!this.isCurrent(gen)) return;
        const interval = this.#opts.intervalMs ?? 1000;
        const wait = Math.max(0, interval - (this.clock.monoNow() - started));
        this.#timer = setTimeout(() => this.#poll(gen), wait);
      },
      (err: unknown) => {
        if (!this.isCurrent(gen)) return;
        if (err instanceof SnapshotError && (err.status === 401 || err.status === 403)) this.#digest = undefined;
        // The next attempt starts on fresh connections.
        this.#agent?.destroy();
        this.#agent = undefined;
        this.fail(gen, err);
      },
    );
  }

  async #snapshot(gen: number): Promise<Buffer> {
    let res = await this.#get(gen, this.#authorization());
    if (res.status === 401 && this.#username !== undefined) {
      const challenge = chooseChallenge(parseWwwAuthenticate(res.challenges));
      if (!challenge) throw new SnapshotError(`${this.#where()}: 401 with no usable authentication challenge (${res.challenges.join('; ') || 'none'})`, 401);
      if (challenge.scheme === 'digest') {
        this.#digest = new DigestSession(challenge, this.#username, this.#password);
        this.#basic = false;
      } else {
        if (this.#opts.auth === 'digest') throw new SnapshotError(`${this.#where()}: camera offers only Basic authentication, but auth is 'digest'`, 401);
        // Basic is the password in clear: over plain http, whoever answers (a spoofed camera on the
        // pole's network) would get it. Only an explicit `auth: basic` sends it there.
        if (this.#url.protocol === 'http:' && this.#opts.auth !== 'basic') {
          throw new SnapshotError(
            `${this.#where()}: camera asks for Basic authentication over plain http; use https, or set auth: basic to send the password in clear`,
            401,
          );
        }
        this.#digest = undefined;
        this.#basic = true;
      }
      res = await this.#get(gen, this.#authorization());
    }
    if (res.status === 401 || res.status === 403) {
      throw new SnapshotError(
        `${this.#where()}: authentication failed (HTTP ${res.status}${this.#username === undefined ? ', no credentials configured' : ''})`,
        res.status,
      );
    }
    if (res.status !== 200) throw new SnapshotError(`${this.#where()}: HTTP ${res.status}${bodyHint(res)}`, res.status);
    return res.body;
  }

  #authorization(): string | undefined {
    if (this.#username === undefined) return undefined;
    if (this.#digest) return this.#digest.authorization('GET', this.#url.pathname + this.#url.search);
    if (this.#basic) return basicAuthorization(this.#username, this.#password);
    return undefined;
  }

  #where(): string {
    return `snapshot ${this.#opts.privateUrl ? `${this.#url.protocol}//${this.#url.host}/…` : redactUrl(this.#url.href)}`;
  }

  #get(gen: number, authorization: string | undefined): Promise<Response> {
    const maxBytes = this.#opts.maxBytes ?? 10 * 1024 * 1024;
    const timeoutMs = this.#opts.timeoutMs ?? 5000;
    const lib = this.#url.protocol === 'https:' ? https : http;
    return new Promise<Response>((resolve, reject) => {
      if (!this.isCurrent(gen)) {
        reject(new Error('source stopped'));
        return;
      }
      let settled = false;
      const settle = (err: Error | undefined, res?: Response) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.#request === req) this.#request = undefined;
        if (err) {
          req.destroy();
          reject(err);
        } else resolve(res!);
      };
      const headers: Record<string, string> = { Accept: 'image/jpeg', 'User-Agent': 'vigia', ...this.#opts.headers };
      if (authorization) headers.Authorization = authorization;
      const req = lib.request(this.#url, { method: 'GET', headers, agent: this.#agent });
      this.#request = req;
      const timer = setTimeout(() => settle(new SnapshotError(`${this.#where()}: no complete answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => settle(new SnapshotError(`${this.#where()}: ${err.message}`)));
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        const challenges: string[] = [];
        for (let k = 0; k + 1 < res.rawHeaders.length; k += 2) {
          if (res.rawHeaders[k]!.toLowerCase() === 'www-authenticate') challenges.push(res.rawHeaders[k + 1]!);
        }
        const limit = status === 200 ? maxBytes : MAX_ERROR_BODY;
        const declared = Number(res.headers['content-length']);
        if (status === 200) {
          const type = (res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
          if (type !== 'image/jpeg') {
            settle(new SnapshotError(`${this.#where()}: not a JPEG (Content-Type ${JSON.stringify(res.headers['content-type'] ?? '')})`, status));
            return;
          }
          if (Number.isFinite(declared) && declared > maxBytes) {
            settle(new SnapshotError(`${this.#where()}: body of ${declared} bytes is over the ${maxBytes}-byte cap`, status));
            return;
          }
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > limit) {
            if (status === 200) settle(new SnapshotError(`${this.#where()}: body over the ${maxBytes}-byte cap`, status));
            else settle(undefined, { status, headers: res.headers, challenges, body: Buffer.concat(chunks) });
            res.destroy(); // the rest is not wanted: do not leave the kept-alive socket half read
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (err) => settle(new SnapshotError(`${this.#where()}: ${err.message}`)));
        res.on('close', () => settle(new SnapshotError(`${this.#where()}: connection closed before the body was complete`)));
        res.on('end', () => {
          const body = Buffer.concat(chunks, size);
          if (status === 200) {
            if (Number.isFinite(declared) && declared !== size) {
              settle(new SnapshotError(`${this.#where()}: body of ${size} bytes, ${declared} announced`, status));
              return;
            }
            if (!isJpeg(body)) {
              settle(new SnapshotError(`${this.#where()}: body is not a JPEG (starts with ${body.subarray(0, 4).toString('hex') || 'nothing'})`, status));
              return;
            }
          }
          settle(undefined, { status, headers: res.headers, challenges, body });
        });
      });
      req.end();
    });
  }
}

function bodyHint(res: Response): string {
  const type = String(res.headers['content-type'] ?? '');
  if (!/^text\//.test(type) || res.body.length === 0) return '';
  const text = res.body.toString('utf8', 0, Math.min(res.body.length, 200)).replace(/\s+/g, ' ').trim();
  return text ? `: ${text}` : '';
}
