import type { EventEmitter } from 'node:events';

/**
 * What a 433 MHz receiver hands to the rest of the daemon: one decoded transmission of a remote
 * ("frame"). A press of a button sends the same frame several times in a row (a fixed-code remote
 * repeats it for as long as the button is held); turning repeats into one press is the job of the
 * feature that uses the frames, not of the receiver. Two receivers exist: an RTL-SDR dongle
 * through `rtl_433`, and a plain OOK receiver module on a GPIO line whose pulse timings are
 * decoded here. Both name the same remote the same way, so a remote enrolled on one works on the
 * other.
 */

export interface RemoteFrame {
  /**
   * The frame family. `ev1527` for the common fixed-code remotes (EV1527, PT2262/SC2262 and clones:
   * 24 bits, sync of 1:31 pulse units, bits of 1:3 and 3:1); `rcswitch-N` for the other fixed-code
   * timings rc-switch knows (N is its protocol number); `hcs200` for Microchip KeeLoq hopping-code
   * remotes (rtl_433 only).
   */
  protocol: string;
  /**
   * The remote itself, without the button: for `ev1527` the upper 20 bits as 5 lowercase hex
   * digits; for `hcs200` the 28-bit serial as 7 hex digits; otherwise the whole code in hex.
   */
  id: string;
  /** The button (EV1527's low 4 data bits, HCS200's button field); null when the protocol has none. */
  button: number | null;
  /** The part that changes at every press (HCS200's encrypted hopping word, hex); null for fixed codes. */
  rolling: string | null;
  /** The whole frame as received, hex (for `vigia remotes learn` and diagnostics). */
  raw: string;
  /** For 24-bit frames: the same code read as 12 PT2262 tri-state digits (0, 1, F); null otherwise. */
  tristate: string | null;
  /** Signal strength as the receiver measured it (rtl_433's RSSI in dB); null when it cannot. */
  rssiDb: number | null;
  /** When the frame was received, monotonic ms in the Clock's time base. */
  monoMs: number;
}

export interface ReceiverStats {
  /** Frames decoded. */
  frames: number;
  /** Input the receiver saw but could not decode as a frame of a known family (noise, other devices). */
  undecoded: number;
  /** The receiver process or line failed and was restarted. */
  restarts: number;
}

export interface RemoteReceiver extends Pick<EventEmitter<{ frame: [RemoteFrame]; error: [Error] }>, 'on' | 'off' | 'once'> {
  /** `rtl_433` or `gpio:<line>`. */
  readonly id: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): ReceiverStats;
}

/**
 * PT2262 tri-state digits of a 24-bit code, two bits each from the top: 00 → 0, 11 → 1, 01 → F
 * (floating pin). 10 is not a PT2262 digit (an EV1527 code, whose bits are free): null then.
 */
export function pt2262Tristate(code: number): string | null {
  let digits = '';
  for (let shift = 22; shift >= 0; shift -= 2) {
    const pair = (code >> shift) & 0b11;
    if (pair === 0b10) return null;
    digits += pair === 0b00 ? '0' : pair === 0b11 ? '1' : 'F';
  }
  return digits;
}
