/**
 * Command authentication: the signed envelope every call-center command travels in.
 *
 * A command is published on `<prefix>/<site>/<device>/cmd/<name>` with a UTF-8 JSON payload
 *
 *   {"msg": "<JSON text>", "sig": "<base64 signature>"}
 *
 * where `msg` is a *string* holding the command itself, for example
 *
 *   {"v":1,"site":"la-serena","device":"pole-0142","cmd":"alarm.ack","ts":1732000000000,
 *    "nonce":"q7Xc2mJf0pLw9RtA","args":{"input":"door"}}
 *
 *   v       always 1
 *   site    the device's site, device its id, cmd the command name (must equal the topic's <name>)
 *   ts      milliseconds since the Unix epoch, an integer
 *   nonce   16 to 64 characters of [A-Za-z0-9_-], never reused
 *   args    optional JSON object, the command's arguments (default {})
 *
 * No other field is allowed, neither in `msg` nor next to `msg` and `sig`, and no key may appear twice
 * in one object, at any depth (parsers disagree on which of two duplicates counts).
 *
 * `sig` is the standard, padded base64 of the signature over the exact UTF-8 bytes of the `msg`
 * string. Signing the text as sent, rather than re-serialised JSON, means a signer in any language
 * needs no canonical JSON: it builds a string, signs its bytes and embeds it. Two algorithms:
 *   hmac-sha256  HMAC-SHA256 with the shared key (commands.key, at least 16 bytes)
 *   ed25519      Ed25519; the call center signs with its private key, devices hold the public key (PEM)
 *
 * Site, device and command name are inside the signed text, so a command signed for one device or
 * one command cannot be replayed onto another; `ts` (checked once the clock is synchronised) and
 * `nonce` (remembered for the replay window) stop replays of the same command.
 *
 * Producing a valid HMAC-signed command from a shell (the signature is just openssl's output):
 *
 *   KEY='the value of commands.key'; NONCE=$(openssl rand -hex 12)
 *   TS=$(( $(date +%s) * 1000 ))
 *   MSG='{"v":1,"site":"la-serena","device":"pole-0142","cmd":"alarm.ack","ts":'$TS',"nonce":"'$NONCE'","args":{"input":"door"}}'
 *   SIG=$(printf '%s' "$MSG" | openssl dgst -sha256 -hmac "$KEY" -binary | base64)
 *   jq -cn --arg msg "$MSG" --arg sig "$SIG" '{msg: $msg, sig: $sig}' > payload.json
 *   mosquitto_pub -t vigia/la-serena/pole-0142/cmd/alarm.ack -f payload.json
 *
 * With Ed25519 (`openssl genpkey -algorithm ed25519 -out cc.key`, then
 * `openssl pkey -in cc.key -pubout -out cc.pub` for the devices), the signature line becomes
 *   SIG=$(printf '%s' "$MSG" > msg.txt && openssl pkeyutl -sign -inkey cc.key -rawin -in msg.txt | openssl base64 -A)
 *
 * `vigia cmd sign` does the same through signCommand() below.
 */
import { createHmac, createPrivateKey, randomBytes, sign as signBytes, timingSafeEqual, verify as verifyBytes, type KeyObject } from 'node:crypto';
import { firstDuplicateKey } from '../core/json-keys.js';
import { decodeCanonicalBase64, ed25519PublicKey, MIN_HMAC_KEY_BYTES } from '../core/keys.js';

export type CommandAuthAlgorithm = 'hmac-sha256' | 'ed25519';

export type CommandAuthOptions = {
  auth: CommandAuthAlgorithm;
  /** HMAC key, or the Ed25519 public key (PEM) for verifying / private key (PEM) for signing. */
  key: string;
  /** Commands whose timestamp is further than this from the (synchronised) clock are refused. */
  replayWindowMs: number;
  site: string;
  device: string;
};

export type VerifiedCommand = { ok: true; cmd: string; args: Record<string, unknown>; ts: number; nonce: string };

export type CommandRejectReason = 'malformed' | 'unsigned' | 'bad_signature' | 'wrong_target' | 'stale' | 'replayed' | 'too_large';

export type CommandRejection = { ok: false; reason: CommandRejectReason; detail: string };

export interface CommandClock {
  /** Wall-clock time, ms since the Unix epoch. */
  wallNow(): number;
  /** Whether wallNow() can be trusted (NTP, GPS, RTC). */
  synced(): boolean;
  /**
   * The last wall time the device trusted, from an earlier run too (null if it never synced).
   * A command signed a replay window before it is refused even while the clock is unsynced: its
   * nonce may have been forgotten, and the real time is not earlier than the mark.
   */
  notBefore?(): number | null;
}

/** Nonces of accepted commands, remembered until they expire so that a replay is refused. */
export interface NonceStore {
  seen(nonce: string): boolean;
  remember(nonce: string, expiresAtMs: number): void;
  /** Forgets nonces that expired before nowMs. */
  prune(nowMs: number): void;
  /**
   * When the store lost nonces (a corrupt database replaced): commands signed at or before this
   * instant (ms since the epoch) are refused, since a replay of one of them could not be told.
   */
  forgottenUntil?(): number | undefined;
}

/** Largest payload accepted; a command is a few hundred bytes. */
export const MAX_COMMAND_BYTES = 64 * 1024;

export const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,64}$/;

const SIG_BYTES: Record<CommandAuthAlgorithm, number> = { 'hmac-sha256': 32, ed25519: 64 };
const OUTER_FIELDS = new Set(['msg', 'sig']);
const INNER_FIELDS = new Set(['v', 'site', 'device', 'cmd', 'ts', 'nonce', 'args']);
const MAX_ARGS_DEPTH = 32;
const LONE_SURROGATE = /\p{Surrogate}/u;

/**
 * Nonces in memory, with a hard cap on the number of entries (oldest remembered dropped first) so
 * that a flood cannot exhaust memory. Lost on restart; the daemon uses SqliteNonceStore.
 */
export class MemoryNonceStore implements NonceStore {
  readonly #expires = new Map<string, number>();
  readonly maxEntries: number;

  constructor(maxEntries = 100_000) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError('maxEntries must be a positive integer');
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.#expires.size;
  }

  seen(nonce: string): boolean {
    return this.#expires.has(nonce);
  }

  remember(nonce: string, expiresAtMs: number): void {
    // Re-inserting moves the nonce to the young end of the insertion order.
    this.#expires.delete(nonce);
    this.#expires.set(nonce, expiresAtMs);
    while (this.#expires.size > this.maxEntries) {
      const oldest = this.#expires.keys().next();
      if (oldest.done) break;
      this.#expires.delete(oldest.value);
    }
  }

  prune(nowMs: number): void {
    for (const [nonce, expires] of this.#expires) if (expires < nowMs) this.#expires.delete(nonce);
  }
}

type Checked = { ok: true; cmd: string; args: Record<string, unknown>; ts: number; nonce: string };

/**
 * Checks signed commands for one device. verify() never throws for any topic name or payload; it
 * only calls the clock and the nonce store once the signature and target are right, and errors of
 * those two (e.g. a failing database) propagate, so the command is not executed.
 *
 * The constructor throws on an unusable key (empty or short HMAC key, a PEM that is not an Ed25519
 * public key) so a bad configuration is reported at start-up. Error messages never contain key
 * material.
 */
export class CommandVerifier {
  readonly #auth: CommandAuthAlgorithm;
  readonly #hmacKey: Buffer | undefined;
  readonly #publicKey: KeyObject | undefined;
  readonly #windowMs: number;
  readonly #site: string;
  readonly #device: string;

  constructor(
    opts: CommandAuthOptions,
    private readonly nonces: NonceStore,
    private readonly clock: CommandClock,
  ) {
    if (!Number.isFinite(opts.replayWindowMs) || opts.replayWindowMs <= 0) throw new RangeError('replayWindowMs must be a positive number');
    this.#auth = opts.auth;
    this.#windowMs = opts.replayWindowMs;
    this.#site = opts.site;
    this.#device = opts.device;
    if (opts.auth === 'hmac-sha256') {
      this.#hmacKey = hmacKey(opts.key);
    } else if (opts.auth === 'ed25519') {
      this.#publicKey = ed25519PublicKey(opts.key);
    } else {
      throw new Error(`unknown command auth ${JSON.stringify(opts.auth)}`);
    }
  }

  verify(topicCmd: string, payload: Buffer): VerifiedCommand | CommandRejection {
    let checked: Checked | CommandRejection;
    try {
      checked = this.#check(topicCmd, payload);
    } catch {
      // Not expected (every step is guarded), but no input may escape as an exception.
      return reject('malformed', 'command could not be read');
    }
    if (!checked.ok) return checked;

    const now = this.clock.wallNow();
    if (this.clock.synced()) {
      const skew = now - checked.ts;
      if (!(Math.abs(skew) <= this.#windowMs)) {
        return reject('stale', `timestamp is ${seconds(Math.abs(skew))} s in the ${skew > 0 ? 'past' : 'future'}; the window is ${seconds(this.#windowMs)} s`);
      }
    }
    const mark = this.clock.notBefore?.() ?? null;
    if (mark !== null && checked.ts < mark - this.#windowMs) {
      return reject(
        'stale',
        `signed at ${new Date(checked.ts).toISOString()}, more than the replay window before ${new Date(mark).toISOString()}, a time this device already trusted`,
      );
    }
    const forgottenUntil = this.nonces.forgottenUntil?.();
    if (forgottenUntil !== undefined && checked.ts <= forgottenUntil) {
      return reject('stale', `signed before ${new Date(forgottenUntil).toISOString()}, when this device lost its record of used nonces; sign it again`);
    }
    // Without a synchronised clock the age cannot be judged; the nonce still can.
    if (this.nonces.seen(checked.nonce)) return reject('replayed', `nonce ${checked.nonce} was already used`);
    this.nonces.remember(checked.nonce, Math.max(checked.ts, now) + this.#windowMs);
    return checked;
  }

  #check(topicCmd: string, payload: Buffer): Checked | CommandRejection {
    if (!(payload instanceof Uint8Array)) return reject('malformed', 'payload is not binary data');
    if (payload.byteLength > MAX_COMMAND_BYTES) return reject('too_large', `payload has ${payload.byteLength} bytes, the limit is ${MAX_COMMAND_BYTES}`);

    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(payload);
    } catch {
      return reject('malformed', 'payload is not valid UTF-8');
    }
    let outer: unknown;
    try {
      outer = JSON.parse(text);
    } catch {
      return reject('malformed', 'payload is not JSON');
    }
    if (!isPlainObject(outer)) return reject('malformed', 'payload must be a JSON object {"msg": ..., "sig": ...}');
    const outerDuplicate = firstDuplicateKey(text);
    if (outerDuplicate !== undefined) return reject('malformed', `duplicate key ${quote(outerDuplicate)} in the payload`);
    const sig = Object.hasOwn(outer, 'sig') ? outer.sig : undefined;
    if (sig === undefined || sig === null || sig === '') return reject('unsigned', 'payload has no signature ("sig")');
    if (typeof sig !== 'string') return reject('malformed', '"sig" must be a base64 string');
    const msg = Object.hasOwn(outer, 'msg') ? outer.msg : undefined;
    if (typeof msg !== 'string') return reject('malformed', '"msg" must be a string holding the command JSON');
    const extra = Object.keys(outer).find((k) => !OUTER_FIELDS.has(k));
    if (extra !== undefined) return reject('malformed', `unknown field ${quote(extra)} next to "msg" and "sig"`);
    // Lone surrogates have no UTF-8 encoding: two different strings would sign the same bytes.
    if (LONE_SURROGATE.test(msg)) return reject('malformed', '"msg" contains an unpaired surrogate');

    const signature = decodeCanonicalBase64(sig);
    if (!signature) return reject('bad_signature', '"sig" is not canonical, padded base64');
    if (signature.length !== SIG_BYTES[this.#auth]) {
      return reject('bad_signature', `signature has ${signature.length} bytes, ${this.#auth} needs ${SIG_BYTES[this.#auth]}`);
    }
    if (!this.#signatureValid(Buffer.from(msg, 'utf8'), signature)) return reject('bad_signature', `${this.#auth} signature does not match "msg"`);

    // Only authenticated text reaches the parser from here on.
    let inner: unknown;
    try {
      inner = JSON.parse(msg);
    } catch {
      return reject('malformed', '"msg" is not JSON');
    }
    if (!isPlainObject(inner)) return reject('malformed', '"msg" must be a JSON object');
    // JSON.parse keeps the last duplicate, another parser the first: the signer may have meant the other one.
    const innerDuplicate = firstDuplicateKey(msg);
    if (innerDuplicate !== undefined) return reject('malformed', `duplicate key ${quote(innerDuplicate)} in "msg": each key may appear once per object`);
    const unknownField = Object.keys(inner).find((k) => !INNER_FIELDS.has(k));
    if (unknownField !== undefined) return reject('malformed', `unknown field ${quote(unknownField)} in "msg"`);
    if (inner.v !== 1) return reject('malformed', `unsupported version ${quote(inner.v)}, expected 1`);
    for (const field of ['site', 'device', 'cmd'] as const) {
      const value = inner[field];
      if (typeof value !== 'string' || value === '') return reject('malformed', `"${field}" must be a non-empty string`);
    }
    const { site, device, cmd, ts, nonce } = inner as { site: string; device: string; cmd: string; ts: unknown; nonce: unknown };
    if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) return reject('malformed', '"ts" must be a non-negative integer (ms since the epoch)');
    if (typeof nonce !== 'string' || !NONCE_PATTERN.test(nonce)) return reject('malformed', '"nonce" must be 16 to 64 characters of A-Z a-z 0-9 _ -');
    const rawArgs = Object.hasOwn(inner, 'args') ? inner.args : undefined;
    let args: Record<string, unknown> = {};
    if (rawArgs !== undefined) {
      if (!isPlainObject(rawArgs)) return reject('malformed', '"args" must be a JSON object');
      const problem = argsProblem(rawArgs, 1);
      if (problem) return reject('malformed', problem);
      args = rawArgs;
    }

    if (site !== this.#site) return reject('wrong_target', `signed for site ${quote(site)}, this is ${quote(this.#site)}`);
    if (device !== this.#device) return reject('wrong_target', `signed for device ${quote(device)}, this is ${quote(this.#device)}`);
    if (cmd !== topicCmd) return reject('wrong_target', `signed for command ${quote(cmd)}, received on the topic of ${quote(topicCmd)}`);
    return { ok: true, cmd, args, ts, nonce };
  }

  #signatureValid(data: Buffer, signature: Buffer): boolean {
    if (this.#hmacKey) {
      const expected = createHmac('sha256', this.#hmacKey).update(data).digest();
      return expected.length === signature.length && timingSafeEqual(expected, signature);
    }
    if (this.#publicKey) {
      try {
        return verifyBytes(null, data, this.#publicKey, signature);
      } catch {
        return false;
      }
    }
    return false;
  }
}

export type SignCommandOptions = {
  auth: CommandAuthAlgorithm;
  /** HMAC key, or the Ed25519 private key (PEM). */
  key: string;
  site: string;
  device: string;
  cmd: string;
  args?: Record<string, unknown>;
  /** Default: now. */
  ts?: number;
  /** Default: 18 random bytes, base64url (24 characters). */
  nonce?: string;
};

/** Builds the MQTT payload of a signed command (for `vigia cmd sign`, tests and integrators). */
export function signCommand(opts: SignCommandOptions): string {
  const ts = opts.ts ?? Date.now();
  const nonce = opts.nonce ?? randomBytes(18).toString('base64url');
  if (!Number.isSafeInteger(ts) || ts < 0) throw new RangeError('ts must be a non-negative integer (ms since the epoch)');
  if (!NONCE_PATTERN.test(nonce)) throw new RangeError('nonce must be 16 to 64 characters of A-Z a-z 0-9 _ -');
  for (const field of ['site', 'device', 'cmd'] as const) {
    if (typeof opts[field] !== 'string' || opts[field] === '') throw new TypeError(`${field} must be a non-empty string`);
  }
  const args = opts.args ?? {};
  if (!isPlainObject(args)) throw new TypeError('args must be a plain object');
  const msg = JSON.stringify({ v: 1, site: opts.site, device: opts.device, cmd: opts.cmd, ts, nonce, args });
  const data = Buffer.from(msg, 'utf8');
  let signature: Buffer;
  if (opts.auth === 'hmac-sha256') {
    signature = createHmac('sha256', hmacKey(opts.key)).update(data).digest();
  } else if (opts.auth === 'ed25519') {
    signature = signBytes(null, data, ed25519PrivateKey(opts.key));
  } else {
    throw new Error(`unknown command auth ${JSON.stringify(opts.auth)}`);
  }
  return JSON.stringify({ msg, sig: signature.toString('base64') });
}

function hmacKey(key: string): Buffer {
  if (typeof key !== 'string') throw new TypeError('the HMAC key must be a string');
  const bytes = Buffer.from(key, 'utf8');
  if (bytes.length < MIN_HMAC_KEY_BYTES) {
    throw new Error(`the HMAC key has ${bytes.length} bytes, at least ${MIN_HMAC_KEY_BYTES} are needed (e.g. openssl rand -base64 32)`);
  }
  return bytes;
}

function ed25519PrivateKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new Error('the Ed25519 signing key is not a readable PEM private key');
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`the signing key is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}

function reject(reason: CommandRejectReason, detail: string): CommandRejection {
  return { ok: false, reason, detail };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** Signed args are trusted, but "__proto__" keys or absurd nesting are refused all the same. */
function argsProblem(value: unknown, depth: number): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth > MAX_ARGS_DEPTH) return `"args" is nested deeper than ${MAX_ARGS_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const item of value) {
      const problem = argsProblem(item, depth + 1);
      if (problem) return problem;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    if (key === '__proto__') return '"args" may not contain a "__proto__" key';
    const problem = argsProblem((value as Record<string, unknown>)[key], depth + 1);
    if (problem) return problem;
  }
  return undefined;
}

/** A value from the payload, quoted and shortened for a log line or reply. */
function quote(value: unknown): string {
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = typeof value;
  }
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1);
}
