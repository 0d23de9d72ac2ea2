import type { GeoStamp } from './event.js';
import type { LocationRegistry } from './extension.js';

/** One location provider at a time; the newest wins, and removing it restores the one before. */
export class LocationSlot implements LocationRegistry {
  #providers: Array<() => GeoStamp | null> = [];

  provide(source: () => GeoStamp | null): () => void {
    this.#providers.push(source);
    return () => {
      this.#providers = this.#providers.filter((p) => p !== source);
    };
  }

  current(): GeoStamp | null {
    return this.#providers.at(-1)?.() ?? null;
  }
}
