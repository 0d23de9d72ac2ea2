import { createHmac } from 'node:crypto';
import { normalisePlateText } from './plate-text.js';

/**
 * Keyed hash of a plate (HMAC-SHA256, hex) for `privacy.reads: hashed`. Without the key the hash
 * cannot be reversed by trying every plate (there are only a few hundred million); with it, the
 * call center can still answer "did this plate pass?" by hashing the plate it looks for.
 */
export function plateHash(key: string, plate: string): string {
  return createHmac('sha256', key).update(normalisePlateText(plate)).digest('hex');
}
