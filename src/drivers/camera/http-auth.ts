import { createHash, randomBytes } from 'node:crypto';

/** HTTP authentication for camera endpoints: Basic and Digest (RFC 7616, MD5 / SHA-256 / SHA-512-256). */

export interface AuthChallenge {
  /** Lower-case scheme: "basic", "digest"... */
  scheme: string;
  /** Parameter names in lower case; values unquoted. */
  params: Record<string, string>;
}

const TOKEN = /[^\s,="]/;

/**
 * Parses WWW-Authenticate header values. One value may hold several challenges
 * (`Digest realm="a", nonce="b", Basic realm="a"`), and a response may carry several headers.
 */
export function parseWwwAuthenticate(values: string | string[]): AuthChallenge[] {
  const out: AuthChallenge[] = [];
  for (const s of Array.isArray(values) ? values : [values]) {
    let cur: AuthChallenge | undefined;
    let i = 0;
    const skip = (re: RegExp) => {
      while (i < s.length && re.test(s[i]!)) i++;
    };
    const token = () => {
      const from = i;
      while (i < s.length && TOKEN.test(s[i]!)) i++;
      return s.slice(from, i);
    };
    while (i < s.length) {
      skip(/[\s,]/);
      if (i >= s.length) break;
      const name = token();
      if (!name) {
        i++;
        continue;
      }
      skip(/\s/);
      if (s[i] === '=' && cur) {
        i++;
        skip(/\s/);
        let value = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            value += s[i++];
          }
          i++; // closing quote
        } else {
          const from = i;
          while (i < s.length && !/[\s,]/.test(s[i]!)) i++;
          value = s.slice(from, i);
        }
        cur.params[name.toLowerCase()] = value;
      } else if (s[i] === '=') {
        // token68 or a parameter with no scheme: skip it
        skip(/[^,]/);
      } else {
        cur = { scheme: name.toLowerCase(), params: {} };
        out.push(cur);
      }
    }
  }
  return out;
}

const DIGEST_HASHES: Record<string, { hash: string; rank: number }> = {
  md5: { hash: 'md5', rank: 1 },
  'sha-256': { hash: 'sha256', rank: 2 },
  'sha-512-256': { hash: 'sha512-256', rank: 3 },
};

function digestAlgorithm(challenge: AuthChallenge): { name: string; hash: string; sess: boolean; rank: number } | undefined {
  const name = challenge.params.algorithm ?? 'MD5';
  const lower = name.toLowerCase();
  const sess = lower.endsWith('-sess');
  const entry = DIGEST_HASHES[sess ? lower.slice(0, -5) : lower];
  return entry ? { name, hash: entry.hash, sess, rank: entry.rank } : undefined;
}

/** The best challenge we can answer: Digest with the strongest hash, else Basic. */
export function chooseChallenge(challenges: AuthChallenge[]): AuthChallenge | undefined {
  let best: AuthChallenge | undefined;
  let bestRank = 0;
  for (const c of challenges) {
    if (c.scheme === 'digest' && c.params.nonce !== undefined) {
      const alg = digestAlgorithm(c);
      if (alg && alg.rank > bestRank) {
        best = c;
        bestRank = alg.rank;
      }
    }
  }
  return best ?? challenges.find((c) => c.scheme === 'basic');
}

export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, (c) => `\\${c}`)}"`;
}

/**
 * Answers one Digest challenge for successive requests, counting nonce uses (nc) so the
 * challenge can be reused without a 401 round trip per request.
 */
export class DigestSession {
  readonly algorithm: string;
  readonly qop: 'auth' | 'auth-int' | undefined;
  #hash: string;
  #sess: boolean;
  #nc = 0;
  #cnonce: string;
  #ha1Base: string | undefined;

  constructor(
    readonly challenge: AuthChallenge,
    private readonly username: string,
    private readonly password: string,
    private readonly cnonce: () => string = () => randomBytes(16).toString('hex'),
  ) {
    if (challenge.scheme !== 'digest') throw new Error(`not a Digest challenge: ${challenge.scheme}`);
    if (challenge.params.nonce === undefined) throw new Error('Digest challenge without a nonce');
    const alg = digestAlgorithm(challenge);
    if (!alg) throw new Error(`unsupported Digest algorithm ${challenge.params.algorithm}`);
    this.algorithm = alg.name;
    this.#hash = alg.hash;
    this.#sess = alg.sess;
    const offered = (challenge.params.qop ?? '').split(',').map((q) => q.trim().toLowerCase());
    this.qop = offered.includes('auth') ? 'auth' : offered.includes('auth-int') ? 'auth-int' : undefined;
    if (challenge.params.qop !== undefined && !this.qop) throw new Error(`unsupported Digest qop ${challenge.params.qop}`);
    this.#cnonce = this.cnonce();
  }

  #h(data: string): string {
    return createHash(this.#hash).update(data, 'utf8').digest('hex');
  }

  /** The Authorization header for one request (method and request-target as sent). */
  authorization(method: string, uri: string, body: Buffer = Buffer.alloc(0)): string {
    const p = this.challenge.params;
    const realm = p.realm ?? '';
    const nonce = p.nonce ?? '';
    this.#nc++;
    const nc = this.#nc.toString(16).padStart(8, '0');
    this.#ha1Base ??= this.#h(`${this.username}:${realm}:${this.password}`);
    const ha1 = this.#sess ? this.#h(`${this.#ha1Base}:${nonce}:${this.#cnonce}`) : this.#ha1Base;
    const ha2 = this.qop === 'auth-int' ? this.#h(`${method}:${uri}:${createHash(this.#hash).update(body).digest('hex')}`) : this.#h(`${method}:${uri}`);
    const response = this.qop ? this.#h(`${ha1}:${nonce}:${nc}:${this.#cnonce}:${this.qop}:${ha2}`) : this.#h(`${ha1}:${nonce}:${ha2}`);
    const userhash = p.userhash?.toLowerCase() === 'true';
    const parts = [
      `username=${quote(userhash ? this.#h(`${this.username}:${realm}`) : this.username)}`,
      `realm=${quote(realm)}`,
      `nonce=${quote(nonce)}`,
      `uri=${quote(uri)}`,
      `algorithm=${this.algorithm}`,
      `response=${quote(response)}`,
    ];
    if (p.opaque !== undefined) parts.push(`opaque=${quote(p.opaque)}`);
    if (this.qop) parts.push(`qop=${this.qop}`, `nc=${nc}`, `cnonce=${quote(this.#cnonce)}`);
    if (userhash) parts.push('userhash=true');
    return `Digest ${parts.join(', ')}`;
  }
}
