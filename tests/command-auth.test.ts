import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CommandVerifier,
  MAX_COMMAND_BYTES,
  MemoryNonceStore,
  NONCE_PATTERN,
  signCommand,
  type CommandAuthOptions,
  type CommandRejection,
  type NonceStore,
  type VerifiedCommand,
} from '../src/gateway/command-auth.js';
import { ClockSync } from '../src/core/clock-sync.js';
import { mulberry32 } from './helpers/random.js';

const KEY = 'test-hmac-key-0123456789abcdef-XYZ';
const SITE = 'la-serena';
const DEVICE = 'pole-0142';
const NOW = 1_732_000_000_000;
const WINDOW = 5 * 60_000;

class TestClock {
  constructor(
    public now = NOW,
    public isSynced = true,
    public trusted: number | null = null,
  ) {}
  wallNow(): number {
    return this.now;
  }
  synced(): boolean {
    return this.isSynced;
  }
  notBefore(): number | null {
    return this.trusted;
  }
}

/** Records what the verifier remembers, on top of a real store. */
class SpyStore implements NonceStore {
  readonly inner = new MemoryNonceStore();
  readonly remembered: Array<{ nonce: string; expiresAtMs: number }> = [];
  seen(nonce: string): boolean {
    return this.inner.seen(nonce);
  }
  remember(nonce: string, expiresAtMs: number): void {
    this.remembered.push({ nonce, expiresAtMs });
    this.inner.remember(nonce, expiresAtMs);
  }
  prune(nowMs: number): void {
    this.inner.prune(nowMs);
  }
}

let nonceCounter = 0;
const freshNonce = () => `nonce-${String(++nonceCounter).padStart(12, '0')}`;

function setup(over: Partial<CommandAuthOptions> = {}, clock = new TestClock(), store: NonceStore = new MemoryNonceStore()) {
  const opts: CommandAuthOptions = { auth: 'hmac-sha256', key: KEY, replayWindowMs: WINDOW, site: SITE, device: DEVICE, ...over };
  return { verifier: new CommandVerifier(opts, store, clock), clock, store };
}

function signed(over: Partial<Parameters<typeof signCommand>[0]> = {}): Buffer {
  return Buffer.from(
    signCommand({
      auth: 'hmac-sha256',
      key: KEY,
      site: SITE,
      device: DEVICE,
      cmd: 'alarm.ack',
      args: { input: 'door' },
      ts: NOW,
      nonce: freshNonce(),
      ...over,
    }),
  );
}

const hmacB64 = (msg: string, key = KEY) => createHmac('sha256', key).update(Buffer.from(msg, 'utf8')).digest('base64');

/** An envelope around arbitrary msg text, correctly HMAC-signed: reaches the inner checks. */
function signedText(msg: string, key = KEY): Buffer {
  return Buffer.from(JSON.stringify({ msg, sig: hmacB64(msg, key) }));
}

function innerMsg(over: Record<string, unknown> = {}): Record<string, unknown> {
  return { v: 1, site: SITE, device: DEVICE, cmd: 'alarm.ack', ts: NOW, nonce: freshNonce(), args: { input: 'door' }, ...over };
}

function expectOk(result: VerifiedCommand | CommandRejection): VerifiedCommand {
  if (!result.ok) throw new Error(`expected acceptance, got ${result.reason}: ${result.detail}`);
  return result;
}

function expectReject(result: VerifiedCommand | CommandRejection, reason: CommandRejection['reason']): CommandRejection {
  if (result.ok) throw new Error(`expected ${reason}, but the command was accepted`);
  expect(result.reason, result.detail).toBe(reason);
  expect(result.detail.length).toBeGreaterThan(0);
  expect(result.detail).not.toContain(KEY);
  return result;
}

function envelope(payload: Buffer): { msg: string; sig: string } {
  return JSON.parse(payload.toString('utf8')) as { msg: string; sig: string };
}

describe('CommandVerifier: valid commands', () => {
  it('accepts an HMAC-SHA256 signed command and returns its contents', () => {
    const { verifier } = setup();
    const result = expectOk(verifier.verify('alarm.ack', signed({ nonce: 'abcdefgh_ijklmn-0123', args: { input: 'door', level: 2 } })));
    expect(result).toEqual({ ok: true, cmd: 'alarm.ack', args: { input: 'door', level: 2 }, ts: NOW, nonce: 'abcdefgh_ijklmn-0123' });
  });

  it('defaults args to {} when the message has none', () => {
    const { verifier } = setup();
    const { args: _omit, ...withoutArgs } = innerMsg();
    const result = expectOk(verifier.verify('alarm.ack', signedText(JSON.stringify(withoutArgs))));
    expect(result.args).toEqual({});
  });

  it('accepts an Ed25519 signed command with the public key, and refuses other keys and HMAC signatures', () => {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const pub = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const priv = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const { verifier } = setup({ auth: 'ed25519', key: pub });

    const good = signCommand({ auth: 'ed25519', key: priv, site: SITE, device: DEVICE, cmd: 'siren.set', args: { on: true }, ts: NOW, nonce: freshNonce() });
    expect(expectOk(verifier.verify('siren.set', Buffer.from(good))).args).toEqual({ on: true });

    const other = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const forged = signCommand({ auth: 'ed25519', key: other, site: SITE, device: DEVICE, cmd: 'siren.set', ts: NOW, nonce: freshNonce() });
    expectReject(verifier.verify('siren.set', Buffer.from(forged)), 'bad_signature');

    // An HMAC signature has the wrong length for Ed25519.
    expectReject(verifier.verify('alarm.ack', signed()), 'bad_signature');
  });

  it('accepts exactly at the edges of the replay window', () => {
    const { verifier } = setup();
    expectOk(verifier.verify('alarm.ack', signed({ ts: NOW - WINDOW })));
    expectOk(verifier.verify('alarm.ack', signed({ ts: NOW + WINDOW })));
  });

  it('signCommand picks a fresh, well-formed nonce and refuses bad input', () => {
    const a = envelope(Buffer.from(signCommand({ auth: 'hmac-sha256', key: KEY, site: SITE, device: DEVICE, cmd: 'ping' })));
    const b = envelope(Buffer.from(signCommand({ auth: 'hmac-sha256', key: KEY, site: SITE, device: DEVICE, cmd: 'ping' })));
    const na = (JSON.parse(a.msg) as { nonce: string }).nonce;
    const nb = (JSON.parse(b.msg) as { nonce: string }).nonce;
    expect(na).toMatch(NONCE_PATTERN);
    expect(na).not.toBe(nb);
    expect(() => signCommand({ auth: 'hmac-sha256', key: KEY, site: SITE, device: DEVICE, cmd: 'ping', nonce: 'short' })).toThrow(/nonce/);
    expect(() => signCommand({ auth: 'hmac-sha256', key: KEY, site: SITE, device: DEVICE, cmd: 'ping', ts: 1.5 })).toThrow(/ts/);
  });
});

describe('CommandVerifier: rejections', () => {
  it('refuses a tampered msg or signature', () => {
    const { verifier } = setup();
    const { msg, sig } = envelope(signed());
    const tamperedMsg = msg.replace('"door"', '"gate"');
    expect(tamperedMsg).not.toBe(msg);
    expectReject(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg: tamperedMsg, sig }))), 'bad_signature');

    const raw = Buffer.from(sig, 'base64');
    raw[0] = raw[0]! ^ 1;
    expectReject(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg, sig: raw.toString('base64') }))), 'bad_signature');

    // Same JSON value, different bytes: the signature covers the text, not its meaning.
    const reencoded = msg.replace('"door"', '"do\\u006fr"');
    expectReject(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg: reencoded, sig }))), 'bad_signature');
  });

  it('refuses a command signed with another key', () => {
    const { verifier } = setup();
    expectReject(verifier.verify('alarm.ack', signed({ key: 'another-key-of-enough-length-42' })), 'bad_signature');
  });

  it('refuses signatures that are not canonical padded base64', () => {
    const { verifier } = setup();
    const { msg, sig } = envelope(signed());
    expect(sig.endsWith('=')).toBe(true);
    const variants = [
      `${sig}\n`,
      ` ${sig}`,
      sig.replace(/=+$/, ''),
      `${sig}==`,
      sig.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''),
      `${sig.slice(0, 20)}\n${sig.slice(20)}`,
    ];
    // A non-zero value in the unused low bits decodes to the same bytes with a lenient decoder.
    const last = sig.at(-2)!;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    variants.push(`${sig.slice(0, -2)}${alphabet[alphabet.indexOf(last) ^ 1]}=`);
    for (const variant of variants) {
      if (variant === sig) continue;
      expectReject(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg, sig: variant }))), 'bad_signature');
    }
    // The untouched payload still verifies, so the variants failed for their encoding only.
    expectOk(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg, sig }))));
  });

  it('refuses commands signed for another site, device or command as wrong_target', () => {
    const { verifier } = setup();
    expect(expectReject(verifier.verify('alarm.ack', signed({ site: 'coquimbo' })), 'wrong_target').detail).toMatch(/site/);
    expect(expectReject(verifier.verify('alarm.ack', signed({ device: 'pole-0143' })), 'wrong_target').detail).toMatch(/device/);
    // Signed for siren.set, published on the alarm.ack topic.
    expect(expectReject(verifier.verify('alarm.ack', signed({ cmd: 'siren.set' })), 'wrong_target').detail).toMatch(/command/);
  });

  it('does not burn the nonce of a command it refuses before the nonce check', () => {
    const { verifier } = setup();
    const nonce = freshNonce();
    expectReject(verifier.verify('siren.set', signed({ nonce })), 'wrong_target');
    expectReject(verifier.verify('alarm.ack', signed({ nonce, ts: NOW - WINDOW - 1 })), 'stale');
    expectOk(verifier.verify('alarm.ack', signed({ nonce })));
  });

  it('refuses stale commands in both directions when the clock is synced', () => {
    const { verifier } = setup();
    expect(expectReject(verifier.verify('alarm.ack', signed({ ts: NOW - WINDOW - 1 })), 'stale').detail).toMatch(/past/);
    expect(expectReject(verifier.verify('alarm.ack', signed({ ts: NOW + WINDOW + 1 })), 'stale').detail).toMatch(/future/);
    expectReject(verifier.verify('alarm.ack', signed({ ts: 0 })), 'stale');
  });

  it('skips the age check while the clock is not synced, but still refuses replays', () => {
    const clock = new TestClock(NOW, false);
    const store = new SpyStore();
    const { verifier } = setup({}, clock, store);
    const old = signed({ ts: NOW - 10 * WINDOW });
    expectOk(verifier.verify('alarm.ack', old));
    expectOk(verifier.verify('alarm.ack', signed({ ts: NOW + 10 * WINDOW })));
    expectReject(verifier.verify('alarm.ack', old), 'replayed');
    // Remembered until max(ts, now) + window.
    expect(store.remembered.map((r) => r.expiresAtMs)).toEqual([NOW + WINDOW, NOW + 11 * WINDOW]);

    clock.isSynced = true;
    expectReject(verifier.verify('alarm.ack', signed({ ts: NOW - 10 * WINDOW })), 'stale');
  });

  it('refuses, even before the clock syncs, a command older than a time the device already trusted', () => {
    // A pole rebooted without NTP or RTC: its clock reads a year ago; it trusted NOW in an earlier run.
    const clock = new TestClock(NOW - 365 * 86_400_000, false, NOW);
    const { verifier } = setup({}, clock);
    const yearOld = signed({ cmd: 'output.set', args: { output: 'siren', pattern: 'on' }, ts: NOW - 365 * 86_400_000 });
    expect(expectReject(verifier.verify('output.set', yearOld), 'stale').detail).toMatch(/a time this device already trusted/);
    expectReject(verifier.verify('alarm.ack', signed({ ts: NOW - WINDOW - 1 })), 'stale');
    // Within the window of the mark (the nonce still guards it), and anything newer, is accepted.
    expectOk(verifier.verify('alarm.ack', signed({ ts: NOW - WINDOW })));
    expectOk(verifier.verify('alarm.ack', signed({ ts: NOW + 60_000 })));
  });

  it('keeps the trusted time across restarts, so a forgotten nonce cannot be replayed after a reboot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-mark-'));
    const markFile = join(dir, 'trusted-time');
    const wall = { now: NOW };
    const clock = { wallNow: () => wall.now, monoNow: () => 0 };
    const first = new ClockSync(clock as never, { source: 'assume-synced', syncFile: join(dir, 'none'), pollIntervalMs: 1000, markFile });
    first.start();
    wall.now = NOW + 3_600_000;
    expect(first.mark()).toBe(NOW + 3_600_000);
    first.stop();

    // The reboot: the clock reads 2025 and nothing has synced it yet.
    wall.now = Date.UTC(2025, 0, 1);
    const second = new ClockSync(clock as never, { source: 'never', syncFile: join(dir, 'none'), pollIntervalMs: 1000, markFile });
    second.start();
    expect(second.synced()).toBe(false);
    expect(second.notBefore()).toBe(NOW + 3_600_000);
    const { verifier } = setup({}, { wallNow: () => wall.now, synced: () => second.synced(), notBefore: () => second.notBefore() } as never);
    // Accepted an hour before the mark: its nonce was pruned, yet the replay is refused.
    expectReject(verifier.verify('alarm.ack', signed({ ts: NOW })), 'stale');
    second.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('remembers an accepted nonce until ts + window when synced', () => {
    const store = new SpyStore();
    const { verifier } = setup({}, new TestClock(), store);
    expectOk(verifier.verify('alarm.ack', signed({ ts: NOW + 1000, nonce: 'remember-me-please' })));
    expectOk(verifier.verify('alarm.ack', signed({ ts: NOW - 1000, nonce: 'remember-me-too-please' })));
    expect(store.remembered).toEqual([
      { nonce: 'remember-me-please', expiresAtMs: NOW + 1000 + WINDOW },
      { nonce: 'remember-me-too-please', expiresAtMs: NOW + WINDOW },
    ]);
  });

  it('refuses a replayed nonce, also inside a differently signed command', () => {
    const { verifier } = setup();
    const payload = signed({ nonce: 'once-only-nonce-0001' });
    expectOk(verifier.verify('alarm.ack', payload));
    expectReject(verifier.verify('alarm.ack', payload), 'replayed');
    expectReject(verifier.verify('siren.set', signed({ nonce: 'once-only-nonce-0001', cmd: 'siren.set', args: { on: false } })), 'replayed');
  });

  it('refuses unsigned payloads', () => {
    const { verifier } = setup();
    const { msg } = envelope(signed());
    expectReject(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg }))), 'unsigned');
    expectReject(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg, sig: '' }))), 'unsigned');
    expectReject(verifier.verify('alarm.ack', Buffer.from(JSON.stringify({ msg, sig: null }))), 'unsigned');
    // The bare command, without an envelope.
    expectReject(verifier.verify('alarm.ack', Buffer.from(msg)), 'unsigned');
  });

  it('refuses payloads over the size limit before reading them', () => {
    const { verifier } = setup();
    expectReject(verifier.verify('alarm.ack', Buffer.alloc(MAX_COMMAND_BYTES + 1, 0xff)), 'too_large');
    const big = innerMsg({ args: { pad: 'x'.repeat(MAX_COMMAND_BYTES) } });
    expectReject(verifier.verify('alarm.ack', signedText(JSON.stringify(big))), 'too_large');
    // Just under the limit is read normally.
    const pad = 'y'.repeat(MAX_COMMAND_BYTES - 400);
    const fits = signedText(JSON.stringify(innerMsg({ args: { pad } })));
    expect(fits.length).toBeLessThanOrEqual(MAX_COMMAND_BYTES);
    expect(expectOk(verifier.verify('alarm.ack', fits)).args).toEqual({ pad });
  });

  it('refuses malformed envelopes', () => {
    const { verifier } = setup();
    const { msg, sig } = envelope(signed());
    const cases: Array<[string, Buffer]> = [
      ['empty', Buffer.alloc(0)],
      ['not JSON', Buffer.from('{"msg": "x", "sig": ')],
      ['invalid UTF-8', Buffer.concat([Buffer.from(`{"msg":${JSON.stringify(msg)},"sig":"`), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])],
      ['byte order mark', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ msg, sig }))])],
      ['array', Buffer.from(JSON.stringify([msg, sig]))],
      ['string', Buffer.from(JSON.stringify(msg))],
      ['number', Buffer.from('42')],
      ['null', Buffer.from('null')],
      ['msg missing', Buffer.from(JSON.stringify({ sig }))],
      ['msg is an object', Buffer.from(JSON.stringify({ msg: JSON.parse(msg) as unknown, sig }))],
      ['sig is a number', Buffer.from(JSON.stringify({ msg, sig: 12345 }))],
      ['sig is an array', Buffer.from(JSON.stringify({ msg, sig: [sig] }))],
      ['extra field', Buffer.from(JSON.stringify({ msg, sig, kid: 'a' }))],
      ['__proto__ field', Buffer.from(`{"msg":${JSON.stringify(msg)},"sig":"${sig}","__proto__":{"polluted":true}}`)],
      ['unpaired surrogate in msg', Buffer.from(`{"msg":${JSON.stringify(msg.replace('door', 'do\ud800r'))},"sig":"${sig}"}`)],
    ];
    for (const [name, payload] of cases) {
      const result = verifier.verify('alarm.ack', payload);
      expect(result.ok, name).toBe(false);
      expect(result.ok ? undefined : result.reason, name).toBe('malformed');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses correctly signed but malformed messages', () => {
    const { verifier } = setup();
    const deep = (n: number): unknown => (n === 0 ? 1 : [deep(n - 1)]);
    const cases: Array<[string, string]> = [
      ['not JSON', '{"v":1,'],
      ['empty', ''],
      ['array', JSON.stringify([innerMsg()])],
      ['string', JSON.stringify('alarm.ack')],
      ['null', 'null'],
      ['no version', JSON.stringify({ ...innerMsg(), v: undefined })],
      ['version 2', JSON.stringify(innerMsg({ v: 2 }))],
      ['version "1"', JSON.stringify(innerMsg({ v: '1' }))],
      ['site is a number', JSON.stringify(innerMsg({ site: 7 }))],
      ['device missing', JSON.stringify({ ...innerMsg(), device: undefined })],
      ['cmd empty', JSON.stringify(innerMsg({ cmd: '' }))],
      ['ts is a string', JSON.stringify(innerMsg({ ts: String(NOW) }))],
      ['ts has a fraction', JSON.stringify(innerMsg({ ts: NOW + 0.5 }))],
      ['ts is negative', JSON.stringify(innerMsg({ ts: -1 }))],
      ['ts is huge', JSON.stringify(innerMsg()).replace(`"ts":${NOW}`, '"ts":1e400')],
      ['ts beyond safe integers', JSON.stringify(innerMsg({ ts: 2 ** 60 }))],
      ['nonce too short', JSON.stringify(innerMsg({ nonce: 'abc' }))],
      ['nonce too long', JSON.stringify(innerMsg({ nonce: 'a'.repeat(65) }))],
      ['nonce with bad characters', JSON.stringify(innerMsg({ nonce: 'abcdefgh/ijklmnop' }))],
      ['nonce is a number', JSON.stringify(innerMsg({ nonce: 1234567890123456 }))],
      ['args is an array', JSON.stringify(innerMsg({ args: ['door'] }))],
      ['args is null', JSON.stringify(innerMsg({ args: null }))],
      ['args is a string', JSON.stringify(innerMsg({ args: 'door' }))],
      ['unknown field', JSON.stringify(innerMsg({ exp: NOW }))],
      ['__proto__ in msg', JSON.stringify(innerMsg()).replace('{', '{"__proto__":{"polluted":1},')],
      ['__proto__ in args', JSON.stringify(innerMsg()).replace('"args":{', '"args":{"__proto__":{"polluted":1},')],
      ['__proto__ nested in args', JSON.stringify(innerMsg()).replace('"args":{', '"args":{"list":[{"__proto__":{"polluted":1}}],')],
      ['args nested too deep', JSON.stringify(innerMsg({ args: { deep: deep(100) } }))],
    ];
    for (const [name, msg] of cases) {
      const result = verifier.verify('alarm.ack', signedText(msg));
      expect(result.ok, name).toBe(false);
      expect(result.ok ? undefined : result.reason, `${name}: ${result.ok ? '' : result.detail}`).toBe('malformed');
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A well-formed message through the same path is accepted.
    expectOk(verifier.verify('alarm.ack', signedText(JSON.stringify(innerMsg({ args: { deep: deep(20) } })))));
  });

  it('refuses a signed msg with a duplicate key at any depth, however the key is spelled', () => {
    const { verifier } = setup();
    const body = (nonce: string, cmd: string, args: string) =>
      `{"v":1,"site":"${SITE}","device":"${DEVICE}","cmd":"${cmd}","ts":${NOW},"nonce":"${nonce}","args":${args}}`;
    const cases: Array<[string, string, string]> = [
      // The signer reads "output.set", JSON.parse keeps the last "cmd".
      ['duplicate cmd', 'ping', body(freshNonce(), 'output.set', '{}').replace('"ts"', '"cmd":"ping","ts"')],
      ['duplicate args.output', 'output.set', body(freshNonce(), 'output.set', '{"output":"strobe","pattern":"on","output":"siren"}')],
      ['duplicate spelled with an escape', 'ping', body(freshNonce(), 'output.set', '{}').replace('"ts"', '"\\u0063md":"ping","ts"')],
      ['duplicate inside an array of objects', 'output.set', body(freshNonce(), 'output.set', '{"steps":[{"on":true,"ms":5,"ms":50000}]}')],
      ['duplicate args', 'output.set', body(freshNonce(), 'output.set', '{"output":"strobe"}').replace('"ts"', '"args":{"output":"siren"},"ts"')],
    ];
    for (const [name, topicCmd, msg] of cases) {
      expect(() => JSON.parse(msg), name).not.toThrow();
      const rejection = expectReject(verifier.verify(topicCmd, signedText(msg)), 'malformed');
      expect(rejection.detail, name).toMatch(/duplicate key/);
    }
    // The same key in sibling objects, or in each element of an array, is no duplicate.
    const siblings = body(freshNonce(), 'output.set', '{"a":{"x":1,"y":{"x":2}},"b":{"x":3},"list":[{"x":1},{"x":2}],"text":"\\"x\\":1,\\"x\\":2"}');
    expect(expectOk(verifier.verify('output.set', signedText(siblings))).args).toMatchObject({ a: { x: 1 }, b: { x: 3 } });
  });

  it('refuses an envelope with a duplicate "msg" or "sig"', () => {
    const { verifier } = setup();
    const { msg, sig } = envelope(signed());
    const other = envelope(signed({ args: { input: 'panic' } }));
    // An auditor reading the first "msg" would see another command than the one verified.
    const twoMessages = Buffer.from(`{"msg":${JSON.stringify(other.msg)},"msg":${JSON.stringify(msg)},"sig":"${sig}"}`);
    expect(expectReject(verifier.verify('alarm.ack', twoMessages), 'malformed').detail).toMatch(/duplicate key "msg"/);
    const twoSignatures = Buffer.from(`{"msg":${JSON.stringify(msg)},"sig":"${other.sig}","sig":"${sig}"}`);
    expect(expectReject(verifier.verify('alarm.ack', twoSignatures), 'malformed').detail).toMatch(/duplicate key "sig"/);
  });

  it('never throws for payloads that are not buffers', () => {
    const { verifier } = setup();
    for (const bad of [undefined, null, 'string', 42, {}, [1, 2]]) {
      expectReject(verifier.verify('alarm.ack', bad as unknown as Buffer), 'malformed');
    }
  });
});

describe('CommandVerifier: keys', () => {
  it('refuses unusable keys at construction without echoing them', () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    const privPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const rsaPub = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const cases: Array<[Partial<CommandAuthOptions>, RegExp]> = [
      [{ key: '' }, /HMAC key/],
      [{ key: 'short-key' }, /at least 16/],
      [{ auth: 'ed25519', key: privPem }, /private key/],
      [{ auth: 'ed25519', key: rsaPub }, /not Ed25519/],
      [{ auth: 'ed25519', key: '-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n' }, /not a readable PEM/],
      [{ replayWindowMs: 0 }, /replayWindowMs/],
    ];
    for (const [over, message] of cases) {
      let error: Error | undefined;
      try {
        setup(over);
      } catch (err) {
        error = err as Error;
      }
      expect(error?.message).toMatch(message);
      if (over.key && over.key.length > 0) {
        expect(error?.message).not.toContain(over.key);
        for (const line of over.key.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----'))) expect(error?.message).not.toContain(line);
      }
    }
  });
});

describe('openssl interoperability', () => {
  it('accepts an HMAC signature produced by the openssl CLI over the msg bytes', () => {
    const { verifier } = setup();
    const msg = JSON.stringify(innerMsg({ args: { note: 'señal ñandú – 東京 🚨' } }));
    const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', KEY, '-binary'], { input: Buffer.from(msg, 'utf8') });
    expect(mac.length).toBe(32);
    const payload = Buffer.from(JSON.stringify({ msg, sig: mac.toString('base64') }));
    expect(expectOk(verifier.verify('alarm.ack', payload)).args).toEqual({ note: 'señal ñandú – 東京 🚨' });
  });

  it('accepts an Ed25519 signature produced by openssl pkeyutl', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vigia-cmd-auth-'));
    try {
      execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', join(dir, 'cc.key')]);
      const pub = execFileSync('openssl', ['pkey', '-in', join(dir, 'cc.key'), '-pubout']).toString();
      const msg = JSON.stringify(innerMsg({ cmd: 'siren.set', args: { on: true } }));
      writeFileSync(join(dir, 'msg.txt'), msg);
      const sigB64 = execFileSync('openssl', ['pkeyutl', '-sign', '-inkey', join(dir, 'cc.key'), '-rawin', '-in', join(dir, 'msg.txt')]).toString('base64');
      const { verifier } = setup({ auth: 'ed25519', key: pub });
      expectOk(verifier.verify('siren.set', Buffer.from(JSON.stringify({ msg, sig: sigB64 }))));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('MemoryNonceStore', () => {
  it('keeps at most maxEntries, dropping the oldest remembered first', () => {
    const store = new MemoryNonceStore(3);
    for (const n of ['a', 'b', 'c']) store.remember(n, NOW + 1000);
    store.remember('a', NOW + 1000); // refreshed: now the youngest
    store.remember('d', NOW + 1000);
    expect(store.size).toBe(3);
    expect(['a', 'b', 'c', 'd'].map((n) => store.seen(n))).toEqual([true, false, true, true]);
  });

  it('holds a flood to its cap', () => {
    const store = new MemoryNonceStore();
    expect(store.maxEntries).toBe(100_000);
    for (let i = 0; i < 150_000; i++) store.remember(`flood-${i}`, NOW + WINDOW);
    expect(store.size).toBe(100_000);
    expect(store.seen('flood-0')).toBe(false);
    expect(store.seen('flood-149999')).toBe(true);
  });

  it('prune forgets only nonces that expired before now', () => {
    const store = new MemoryNonceStore();
    store.remember('past', NOW - 1);
    store.remember('edge', NOW);
    store.remember('future', NOW + 1);
    store.prune(NOW);
    expect([store.seen('past'), store.seen('edge'), store.seen('future')]).toEqual([false, true, true]);
    expect(store.size).toBe(2);
  });

  it('refuses a non-positive cap', () => {
    expect(() => new MemoryNonceStore(0)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Fuzz: random and mutated payloads. Set FUZZ_SEED to reproduce or explore another sequence.

class Rng {
  constructor(readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
}

const FUZZ_STRINGS = [
  '',
  'alarm.ack',
  SITE,
  DEVICE,
  '__proto__',
  'constructor',
  'prototype',
  'polluted',
  'ñandú',
  '東京',
  '🚨',
  '\u0000',
  '\ud800',
  '\u202e',
  'a'.repeat(300),
];
const FUZZ_NUMBERS = [0, -0, 1, -1, NOW, 1e308, -1e308, 5e-324, 2 ** 53, 2 ** 53 + 2, 0.1, 1732000000000.5];

function randomJson(rng: Rng, depth = 0): unknown {
  const kind = rng.int(depth > 5 ? 4 : 7);
  switch (kind) {
    case 0:
      return rng.pick(FUZZ_NUMBERS);
    case 1:
      return rng.chance(0.5) ? rng.pick(FUZZ_STRINGS) : rng.bytes(rng.int(20)).toString('latin1');
    case 2:
      return rng.pick([true, false, null]);
    case 3:
      return rng.int(1_000_000) - 500_000;
    case 4:
    case 5: {
      const out: unknown[] = [];
      for (let i = rng.int(5); i > 0; i--) out.push(randomJson(rng, depth + 1));
      return out;
    }
    default: {
      const out: Record<string, unknown> = {};
      for (let i = rng.int(5); i > 0; i--) {
        Object.defineProperty(out, rng.pick([...FUZZ_STRINGS, 'v', 'msg', 'sig', 'site', 'nonce', 'args']), {
          value: randomJson(rng, depth + 1),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      }
      return out;
    }
  }
}

/** A JSON text with many "__proto__" keys, which JSON.stringify of an object literal cannot produce. */
function protoJson(rng: Rng): string {
  const inner = rng.pick(['{"polluted":true}', '{"isAdmin":true}', '[1,2]', '"x"', 'null']);
  return rng.pick([
    `{"__proto__":${inner}}`,
    `{"a":{"__proto__":${inner}},"constructor":{"prototype":{"polluted":1}}}`,
    `[{"__proto__":${inner}},{"__proto__":{"__proto__":${inner}}}]`,
  ]);
}

function ed25519FromSeed(seed: Buffer): { privatePem: string; publicPem: string } {
  const der = Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]);
  const priv: KeyObject = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return {
    privatePem: priv.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicPem: createPublicKey(priv).export({ type: 'spki', format: 'pem' }).toString(),
  };
}

describe('fuzz', () => {
  it('verify() never throws, refuses every altered payload and never pollutes prototypes', () => {
    const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) >>> 0 : 0x5eed_c0de;
    const rng = new Rng(mulberry32(seed));
    const ITERATIONS = 4000;
    const ed = ed25519FromSeed(rng.bytes(32));
    const clock = new TestClock();
    const verifiers = {
      'hmac-sha256': new CommandVerifier({ auth: 'hmac-sha256', key: KEY, replayWindowMs: WINDOW, site: SITE, device: DEVICE }, new MemoryNonceStore(), clock),
      ed25519: new CommandVerifier({ auth: 'ed25519', key: ed.publicPem, replayWindowMs: WINDOW, site: SITE, device: DEVICE }, new MemoryNonceStore(), clock),
    } as const;
    const signingKey = { 'hmac-sha256': KEY, ed25519: ed.privatePem } as const;
    const protoNamesBefore = Object.getOwnPropertyNames(Object.prototype).sort();
    const arrayNamesBefore = Object.getOwnPropertyNames(Array.prototype).sort();
    const reasons = new Set(['malformed', 'unsigned', 'bad_signature', 'wrong_target', 'stale', 'replayed', 'too_large']);
    const tally: Record<string, number> = {};
    let controlsAccepted = 0;

    const nonce = () => rng.bytes(18).toString('base64url');
    const validFor = (auth: keyof typeof verifiers) => {
      const args = rng.chance(0.5) ? { input: rng.pick(FUZZ_STRINGS.filter((s) => s !== '__proto__' && s !== '\ud800')), level: rng.int(10) } : {};
      return signCommand({
        auth,
        key: signingKey[auth],
        site: SITE,
        device: DEVICE,
        cmd: 'alarm.ack',
        args,
        ts: NOW + rng.int(2 * WINDOW) - WINDOW,
        nonce: nonce(),
      });
    };
    const setIn = (msg: string, field: string, valueJson: string) => {
      const obj = JSON.parse(msg) as Record<string, unknown>;
      const parts = Object.keys(obj).map((k) => `${JSON.stringify(k)}:${k === field ? valueJson : JSON.stringify(obj[k])}`);
      if (!(field in obj)) parts.push(`${JSON.stringify(field)}:${valueJson}`);
      return `{${parts.join(',')}}`;
    };

    for (let i = 0; i < ITERATIONS; i++) {
      const auth = rng.chance(0.6) ? 'hmac-sha256' : 'ed25519';
      const verifier = verifiers[auth];
      const topic = rng.chance(0.9) ? 'alarm.ack' : rng.pick(['', 'siren.set', '__proto__', '+', '#', '\ud800', 'a'.repeat(1000)]);
      clock.isSynced = rng.chance(0.8);
      const original = validFor(auth);
      const orig = JSON.parse(original) as { msg: string; sig: string };
      let payload: Buffer;
      let kind: string;
      const mode = rng.int(100);

      if (mode < 8) {
        kind = 'random bytes';
        payload = rng.bytes(rng.chance(0.05) ? MAX_COMMAND_BYTES + rng.int(1000) : rng.int(400));
      } else if (mode < 18) {
        kind = 'random JSON';
        payload = Buffer.from(rng.chance(0.3) ? protoJson(rng) : (JSON.stringify(randomJson(rng)) ?? 'null'));
      } else if (mode < 24) {
        kind = 'random envelope';
        const msg = rng.chance(0.5) ? (JSON.stringify(randomJson(rng)) ?? '') : protoJson(rng);
        payload = Buffer.from(JSON.stringify({ msg, sig: rng.bytes(rng.pick([32, 64, 16, 0])).toString('base64') }));
      } else if (mode < 30) {
        kind = 'deep nesting';
        const n = rng.int(30_000) + 1;
        payload = Buffer.from(rng.chance(0.5) ? '['.repeat(n) + ']'.repeat(n) : `{"msg":${JSON.stringify('['.repeat(n))},"sig":"${orig.sig}"}`);
      } else if (mode < 38) {
        kind = 'signed garbage';
        // Correctly signed, so the inner parser is reached; none of these is a valid command.
        const msg = rng.pick([
          () => JSON.stringify(randomJson(rng)) ?? '',
          () => protoJson(rng),
          () => setIn(orig.msg, 'args', protoJson(rng)),
          () => setIn(orig.msg, 'ts', rng.pick(['1e400', '-1', '1.5', '"1732000000000"', '9007199254740993', '[]'])),
          () => setIn(orig.msg, 'nonce', JSON.stringify(rng.pick(['', 'short', 'x'.repeat(65), 'has space in it!!', '\ud800'.repeat(20)]))),
          () => setIn(orig.msg, 'v', rng.pick(['2', '"1"', '1.0e0x', 'null', '0'])),
          () => setIn(orig.msg, rng.pick(['site', 'device', 'cmd']), JSON.stringify(rng.pick(['', 'other', 7, null, ['x']]))),
          () => setIn(orig.msg, 'args', `{"n":${'['.repeat(40)}${']'.repeat(40)}}`),
          () => setIn(orig.msg, 'args', rng.pick(['[]', 'null', '"x"', '42'])),
          () => setIn(orig.msg, rng.pick(['__proto__', 'constructor', 'extra']), '{"polluted":true}'),
        ])();
        const data = Buffer.from(msg, 'utf8');
        const sig = auth === 'hmac-sha256' ? createHmac('sha256', KEY).update(data).digest() : sign(null, data, createPrivateKey(ed.privatePem));
        payload = Buffer.from(JSON.stringify({ msg, sig: sig.toString('base64') }));
      } else if (mode < 42) {
        kind = 'control';
        payload = Buffer.from(original);
      } else if (mode < 62) {
        const bytes = Buffer.from(original);
        const op = rng.int(5);
        kind = ['bit flip', 'truncation', 'byte insert', 'byte delete', 'byte overwrite'][op]!;
        if (op === 0) {
          for (let n = rng.int(3) + 1; n > 0; n--) {
            const at = rng.int(bytes.length);
            bytes[at] = bytes[at]! ^ (1 << rng.int(8));
          }
          payload = bytes;
        } else if (op === 1) {
          payload = bytes.subarray(0, rng.int(bytes.length));
        } else if (op === 2) {
          const at = rng.int(bytes.length + 1);
          payload = Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.int(4) + 1), bytes.subarray(at)]);
        } else if (op === 3) {
          const at = rng.int(bytes.length);
          payload = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + rng.int(8) + 1)]);
        } else {
          const at = rng.int(bytes.length);
          bytes[at] = rng.pick([0x22, 0x5c, 0x7b, 0x7d, 0x00, 0xff, 0x20, 0x3d, 0x2b]);
          payload = bytes;
        }
      } else {
        // Structured edits of a valid payload, keeping the original signature.
        const edits: Array<[string, () => string]> = [
          ['swap msg and sig', () => JSON.stringify({ msg: orig.sig, sig: orig.msg })],
          [
            'swap site and device',
            () =>
              JSON.stringify({
                msg: orig.msg.replace(`"${SITE}"`, '"\0S"').replace(`"${DEVICE}"`, `"${SITE}"`).replace('"\0S"', `"${DEVICE}"`),
                sig: orig.sig,
              }),
          ],
          ['other device', () => JSON.stringify({ msg: orig.msg.replace(DEVICE, 'pole-0143'), sig: orig.sig })],
          ['other command', () => JSON.stringify({ msg: orig.msg.replace('alarm.ack', 'siren.set'), sig: orig.sig })],
          [
            'huge ts',
            () => JSON.stringify({ msg: orig.msg.replace(/"ts":\d+/, rng.pick(['"ts":1e400', '"ts":99999999999999999999999', '"ts":-0'])), sig: orig.sig }),
          ],
          [
            'nested args',
            () => JSON.stringify({ msg: orig.msg.replace(/"args":\{.*\}\}$/, `"args":{"a":${'['.repeat(50)}${']'.repeat(50)}}}`), sig: orig.sig }),
          ],
          [
            'unicode in msg',
            () => JSON.stringify({ msg: orig.msg.replace('alarm', rng.pick(['alarm\u200b', 'a\u0301larm', 'аlarm', 'alarm\ud83d\udea8'])), sig: orig.sig }),
          ],
          ['escaped char in msg', () => JSON.stringify({ msg: orig.msg.replace('"v":1', '"\\u0076":1'), sig: orig.sig })],
          [
            'reordered msg',
            () => JSON.stringify({ msg: JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(orig.msg) as object).reverse())), sig: orig.sig }),
          ],
          ['whitespace in msg', () => JSON.stringify({ msg: rng.chance(0.5) ? `${orig.msg} ` : orig.msg.replace(',', ', '), sig: orig.sig })],
          ['__proto__ in msg', () => JSON.stringify({ msg: orig.msg.replace('{', '{"__proto__":{"polluted":true},'), sig: orig.sig })],
          ['__proto__ in envelope', () => `{"__proto__":{"polluted":true},"msg":${JSON.stringify(orig.msg)},"sig":"${orig.sig}"}`],
          ['duplicate msg key', () => `{"msg":${JSON.stringify(orig.msg)},"sig":"${orig.sig}","msg":${JSON.stringify(orig.msg.replace('"v":1', '"v":1 '))}}`],
          ['sig char changed', () => JSON.stringify({ msg: orig.msg, sig: orig.sig.slice(0, 5) + (orig.sig[5] === 'A' ? 'B' : 'A') + orig.sig.slice(6) })],
          [
            'sig re-encoded',
            () =>
              JSON.stringify({
                msg: orig.msg,
                sig: rng.pick([
                  `${orig.sig}\n`,
                  orig.sig.replace(/=+$/, ''),
                  Buffer.from(orig.sig, 'base64').toString('base64url'),
                  `${orig.sig}=`,
                  `=${orig.sig}`,
                ]),
              }),
          ],
          ['sig type', () => JSON.stringify({ msg: orig.msg, sig: rng.pick([[orig.sig], { s: orig.sig }, 1e308, true]) })],
          [
            'wrong key',
            () =>
              signCommand({
                auth,
                key: auth === 'hmac-sha256' ? `${KEY}!` : ed25519FromSeed(rng.bytes(32)).privatePem,
                site: SITE,
                device: DEVICE,
                cmd: 'alarm.ack',
                ts: NOW,
                nonce: nonce(),
              }),
          ],
          [
            'wrong target',
            () =>
              signCommand({
                auth,
                key: signingKey[auth],
                site: rng.pick([SITE, 'coquimbo']),
                device: rng.pick([DEVICE, 'pole-0143']),
                cmd: rng.pick(['siren.set', 'alarm.ackx'].filter((c) => c !== topic)),
                ts: NOW,
                nonce: nonce(),
              }),
          ],
          ['extra envelope field', () => JSON.stringify({ msg: orig.msg, sig: orig.sig, [rng.pick(['kid', 'constructor', 'v', 'args'])]: 1 })],
          ['array envelope', () => JSON.stringify([orig.msg, orig.sig])],
          // These keep msg and sig identical and may be accepted:
          ['pretty envelope', () => JSON.stringify({ sig: orig.sig, msg: orig.msg }, null, 2)],
          ['escaped envelope', () => `{"\\u006dsg":${JSON.stringify(orig.msg).replace('v', '\\u0076')},"sig":"${orig.sig}"}`],
        ];
        const [name, edit] = rng.pick(edits);
        kind = name;
        payload = Buffer.from(edit());
      }

      let judgedIdentical = false;
      try {
        const parsed = JSON.parse(payload.toString('utf8')) as unknown;
        judgedIdentical =
          typeof parsed === 'object' &&
          parsed !== null &&
          (parsed as Record<string, unknown>).msg === orig.msg &&
          (parsed as Record<string, unknown>).sig === orig.sig;
      } catch {
        // not JSON: not identical
      }

      try {
        let result: VerifiedCommand | CommandRejection;
        try {
          result = verifier.verify(topic, payload);
        } catch (err) {
          throw new Error(`verify() threw: ${(err as Error).stack ?? String(err)}`);
        }
        if (typeof result !== 'object' || result === null || typeof result.ok !== 'boolean') throw new Error('result has no ok flag');
        if (result.ok) {
          if (!judgedIdentical) throw new Error(`accepted an altered payload (msg or sig differ)`);
          if (topic !== 'alarm.ack') throw new Error(`accepted on topic ${JSON.stringify(topic)}`);
          if (Object.getPrototypeOf(result.args) !== Object.prototype || Array.isArray(result.args)) throw new Error('args is not a plain object');
          if (kind === 'control') controlsAccepted++;
          tally.accepted = (tally.accepted ?? 0) + 1;
        } else {
          if (!reasons.has(result.reason)) throw new Error(`unknown reason ${String(result.reason)}`);
          if (typeof result.detail !== 'string' || result.detail.length === 0) throw new Error('empty detail');
          if (result.detail.includes(KEY) || result.detail.includes(ed.privatePem.split('\n')[1]!) || result.detail.includes(ed.publicPem.split('\n')[1]!)) {
            throw new Error('detail contains key material');
          }
          if (kind === 'control' && topic === 'alarm.ack') throw new Error(`refused an untouched valid payload: ${result.reason}: ${result.detail}`);
          tally[result.reason] = (tally[result.reason] ?? 0) + 1;
        }
        const polluted = ({} as Record<string, unknown>).polluted ?? ({} as Record<string, unknown>).isAdmin;
        if (polluted !== undefined) throw new Error('Object.prototype was polluted');
      } catch (err) {
        const preview = payload.length > 300 ? `${payload.subarray(0, 300).toString('hex')}… (${payload.length} bytes)` : payload.toString('hex');
        const message = `fuzz failure with FUZZ_SEED=${seed} at iteration ${i} (${auth}, ${kind}, topic ${JSON.stringify(topic.slice(0, 40))}): ${(err as Error).message}\npayload hex: ${preview}`;
        console.error(message);
        throw new Error(message);
      }
    }

    expect(Object.getOwnPropertyNames(Object.prototype).sort(), `FUZZ_SEED=${seed}`).toEqual(protoNamesBefore);
    expect(Object.getOwnPropertyNames(Array.prototype).sort(), `FUZZ_SEED=${seed}`).toEqual(arrayNamesBefore);
    // The harness is not vacuous: untouched payloads pass and every stage refuses something.
    expect(controlsAccepted, `FUZZ_SEED=${seed}`).toBeGreaterThan(50);
    for (const reason of ['malformed', 'unsigned', 'bad_signature', 'wrong_target', 'too_large'])
      expect(tally[reason] ?? 0, `${reason}, FUZZ_SEED=${seed}`).toBeGreaterThan(0);
  });
});
