import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';

// An IP camera's snapshot endpoint behind HTTP Digest (RFC 7616), as ONVIF cameras serve it:
// the server side, written independently of the client under test.

export interface DigestCameraOptions {
  user: string;
  pass: string;
  /** Challenged in this order, e.g. ['SHA-256', 'MD5']. */
  algorithms: string[];
  qop: string;
  /** Also offer Basic, which a client must not pick over Digest. */
  alsoBasic?: boolean;
  image: Buffer;
}

/** One line per request answered: its Authorization header and the status sent. */
export type DigestCameraLog = Array<{ auth: string | undefined; status: number }>;

function digestHash(alg: string, s: string): string {
  const name = alg.toUpperCase().replace(/-SESS$/, '');
  return createHash(name === 'MD5' ? 'md5' : name === 'SHA-256' ? 'sha256' : 'sha512-256')
    .update(s)
    .digest('hex');
}

function parseAuthParams(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) out[m[1]!] = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!;
  return out;
}

/** A request handler serving `image` to requests that authenticate; nonce counts must grow. */
export function digestCamera(opts: DigestCameraOptions) {
  const realm = 'IP Camera(12345)';
  const nonces = new Map<string, number>(); // nonce → last nc
  return (req: IncomingMessage, res: ServerResponse, log: DigestCameraLog) => {
    const auth = req.headers.authorization;
    const reply = (status: number) => {
      log.push({ auth, status });
      if (status === 200) {
        res.writeHead(200, { 'Content-Type': 'image/jpeg', 'Content-Length': opts.image.length });
        res.end(opts.image);
        return;
      }
      const nonce = randomBytes(12).toString('hex');
      nonces.set(nonce, 0);
      const challenges = opts.algorithms.map((a) => `Digest realm="${realm}", qop="${opts.qop}", algorithm=${a}, nonce="${nonce}", opaque="op-aque"`);
      if (opts.alsoBasic) challenges.push(`Basic realm="${realm}"`);
      res.writeHead(401, { 'WWW-Authenticate': challenges, 'Content-Type': 'text/html' });
      res.end('<html>401 Unauthorized</html>');
    };
    if (!auth?.startsWith('Digest ')) return reply(401);
    const p = parseAuthParams(auth.slice(7));
    const last = p.nonce === undefined ? undefined : nonces.get(p.nonce);
    const alg = p.algorithm ?? 'MD5';
    if (last === undefined || p.username !== opts.user || p.realm !== realm || p.uri !== req.url || p.opaque !== 'op-aque') return reply(401);
    if (!opts.algorithms.includes(alg) || p.qop !== 'auth' || !p.nc || !p.cnonce) return reply(401);
    const nc = parseInt(p.nc, 16);
    if (!(nc > last)) return reply(401); // replayed nonce count
    const ha1 = digestHash(alg, `${opts.user}:${realm}:${opts.pass}`);
    const ha2 = digestHash(alg, `${req.method}:${p.uri}`);
    const expected = digestHash(alg, `${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:auth:${ha2}`);
    if (p.response !== expected) return reply(401);
    nonces.set(p.nonce!, nc);
    reply(200);
  };
}
