import { EventEmitter } from 'node:events';
import type { Clock } from '../../core/clock.js';
import { type Bias, describeRef, type EdgeEvent, type GpioBackend, type GpioLogger, type InputLine, type LineRef } from '../gpio/types.js';
import { OokDecoder, type OokDecoderOptions, toRemoteFrame } from './ook.js';
import type { ReceiverStats, RemoteFrame, RemoteReceiver } from './types.js';

/**
 * 433 MHz remotes through a plain OOK receiver module (RXB6, SRX882, XY-MK-5V...) whose data pin
 * is on a GPIO input: the module outputs the carrier's envelope, and the pulse timings between
 * edges are decoded by OokDecoder (ook.ts), which says how and why.
 *
 * Durations come from the edges' timestamps, not from when the events reach us: only the
 * character-device backend stamps edges in the kernel; the sysfs backend stamps them on receipt in
 * user space, milliseconds late and jittery, which cannot resolve 250-450 µs pulses. The bias is
 * off by default because the module drives the pin itself, push-pull. Nothing is opened before
 * start().
 */

export interface GpioReceiverOptions {
  backend: GpioBackend;
  /** The line the module's data pin is on. */
  line: LineRef;
  /** The module's data pin reads low while it hears a carrier (an inverting level shifter); default false. */
  activeLow?: boolean;
  /** Default 'disabled': the module drives the line. */
  bias?: Bias;
  /** Default `vigia:radio`. */
  consumer?: string;
  decoder?: OokDecoderOptions;
  logger?: GpioLogger;
  /** Not needed (edges carry their own time, in the Clock's base); taken so that every receiver is built from the same context. */
  clock?: Clock;
}

export class GpioRemoteReceiver extends EventEmitter<{ frame: [RemoteFrame]; error: [Error] }> implements RemoteReceiver {
  readonly id: string;
  readonly #opts: GpioReceiverOptions;
  readonly #decoder: OokDecoder;
  #line: InputLine | null = null;
  #starting: Promise<void> | null = null;
  /** The previous edge's time: a frame is complete at the edge that ends its sync gap, and its last edge began that gap. */
  #lastEdgeMs = Number.NaN;

  constructor(opts: GpioReceiverOptions) {
    super();
    this.#opts = opts;
    this.id = `gpio:${describeRef(opts.line)}`;
    this.#decoder = new OokDecoder(opts.decoder);
  }

  start(): Promise<void> {
    if (this.#line) return Promise.resolve();
    this.#starting ??= this.#open().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  async stop(): Promise<void> {
    if (this.#starting) await this.#starting.catch(() => undefined);
    const line = this.#line;
    if (!line) return;
    this.#line = null;
    line.off('edge', this.#onEdge);
    line.off('error', this.#onError);
    this.#decoder.reset();
    this.#lastEdgeMs = Number.NaN;
    await line.close();
  }

  stats(): ReceiverStats {
    const { frames, undecoded } = this.#decoder.stats();
    return { frames, undecoded, restarts: 0 };
  }

  async #open(): Promise<void> {
    const { backend, logger } = this.#opts;
    const line = await backend.input(this.#opts.line, {
      activeLow: this.#opts.activeLow ?? false,
      bias: this.#opts.bias ?? 'disabled',
      consumer: this.#opts.consumer ?? 'vigia:radio',
    });
    line.on('edge', this.#onEdge);
    line.on('error', this.#onError);
    this.#line = line;
    if (backend.kind === 'sysfs')
      logger?.warn(
        { line: line.id },
        'GPIO sysfs stamps edges on receipt, too late to time 433 MHz pulses: remotes will rarely decode (use the chardev backend)',
      );
    else logger?.info({ line: line.id }, '433 MHz receiver module listening');
  }

  readonly #onEdge = (edge: EdgeEvent): void => {
    const previousMs = this.#lastEdgeMs;
    this.#lastEdgeMs = edge.monoMs;
    const frame = this.#decoder.edge(edge.value, edge.monoMs * 1000);
    if (frame) this.emit('frame', toRemoteFrame(frame, previousMs));
  };

  readonly #onError = (error: Error): void => {
    // Like the GPIO lines themselves: an error nobody listens to is not a crash.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  };
}
