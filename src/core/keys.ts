import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Minimum HMAC key length: a short key can be brute-forced offline from one observed command. */
export const MIN_HMAC_KEY_BYTES = 16;

/**
 * Canonical, padded base64 only, at most `maxLength` characters. A lenient decoder would let
 * several strings stand for one signature.
 */
export function decodeCanonicalBase64(text: string, maxLength = 1024): Buffer | undefined {
  if (text.length % 4 !== 0 || text.length > maxLength || !BASE64.test(text)) return undefined;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : undefined;
}

/**
 * The Ed25519 public key a device verifies with (command signatures, hotlists). A private key is
 * refused: devices in the street must never hold the signing key. `what` names the key in errors.
 */
export function ed25519PublicKey(pem: string, what = 'the Ed25519 key'): KeyObject {
  if (typeof pem !== 'string') throw new TypeError(`${what} must be a PEM string`);
  let isPrivate = false;
  try {
    createPrivateKey(pem);
    isPrivate = true;
  } catch {
    // Expected: a public key.
  }
  if (isPrivate) throw new Error(`${what} is a private key; devices need only the public key (openssl pkey -in cc.key -pubout)`);
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new Error(`${what} is not a readable PEM public key`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${what} is a ${key.asymmetricKeyType ?? 'unknown'} key, not Ed25519`);
  return key;
}
