import { EventEmitter } from 'node:events';
import type { Advert, AdvertScanner, ScannerStats } from './types.js';

/**
 * A Bluetooth LE scanner with no radio, for `hardware.backend: sim` (the demo, `vigia sim`): the
 * adverts it reports are the ones handed to `hear()`, as if the adapter had just received them.
 */
export class SimAdvertScanner extends EventEmitter<{ advert: [Advert]; error: [Error] }> implements AdvertScanner {
  readonly #stats = { adverts: 0, restarts: 0 };
  #scanning = false;

  constructor(readonly id: string) {
    super();
  }

  async start(): Promise<void> {
    this.#scanning = true;
  }

  async stop(): Promise<void> {
    this.#scanning = false;
  }

  hear(advert: Advert): void {
    if (!this.#scanning) throw new Error('the scanner is stopped');
    this.#stats.adverts++;
    this.emit('advert', advert);
  }

  stats(): ScannerStats {
    return { ...this.#stats, scanning: this.#scanning };
  }
}
