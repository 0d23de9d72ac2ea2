import type { EventEmitter } from 'node:events';

/**
 * What a Bluetooth LE scanner hands to the rest of the daemon: one advertisement as the adapter
 * heard it. A tag repeats its advertisement every 100 ms to 1 s, and a press keeps its button flag
 * set for a few seconds: turning adverts into presses is the job of the feature that reads them.
 */
export interface Advert {
  /** The advertiser's Bluetooth address (AA:BB:CC:DD:EE:FF); tags with random addresses change it. */
  address: string;
  /** Received signal strength, dBm; null when the adapter did not report one. */
  rssiDbm: number | null;
  /** Manufacturer-specific data by company identifier (the payload after the two id bytes). */
  manufacturerData: ReadonlyMap<number, Uint8Array>;
  /** When it was heard, monotonic ms in the Clock's time base. */
  monoMs: number;
}

export interface ScannerStats {
  /** Advertisements reported. */
  adverts: number;
  /** Scanning was (re)started after the adapter, bluetoothd or the bus went away. */
  restarts: number;
  /** Scanning is on now. */
  scanning: boolean;
}

export interface AdvertScanner extends Pick<EventEmitter<{ advert: [Advert]; error: [Error] }>, 'on' | 'off' | 'once'> {
  /** The adapter, e.g. `hci0`. */
  readonly id: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): ScannerStats;
}
