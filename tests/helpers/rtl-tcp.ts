import { createServer, type Server, type Socket } from 'node:net';
import { mulberry32 } from './random.js';
import { IQ_SAMPLE_RATE, trainToCu8 } from './iq.js';
import type { PulseTrain } from './ook.js';

/**
 * An RTL-SDR dongle as rtl_433 meets it over the network (`-d rtl_tcp:HOST:PORT`, the protocol of
 * rtl-sdr's `rtl_tcp` server): a 12-byte greeting (`RTL0`, tuner type, gain count), then an
 * endless stream of 8-bit I/Q samples, paced in real time. The stream is low noise until a test
 * transmits a pulse train, whose samples take their place. So rtl_433 runs exactly as on a
 * dongle (its live buffering and decoding), which a file read at full speed does not show.
 */
export interface RtlTcpDongle {
  readonly port: number;
  /** Queues a transmission; resolves with the wall times (ms) its first and last samples went out. */
  transmit(train: PulseTrain, opts?: { amplitude?: number }): Promise<{ startedAt: number; endedAt: number }>;
  /** The 5-byte commands rtl_433 sent (tuning, sample rate, gain), as [command, value]. */
  readonly commands: Array<[number, number]>;
  readonly connections: number;
  close(): Promise<void>;
}

const TUNER_R820T = 5;
const TICK_MS = 5;

export async function startRtlTcpDongle(opts: { sampleRate?: number; noise?: number } = {}): Promise<RtlTcpDongle> {
  const rate = opts.sampleRate ?? IQ_SAMPLE_RATE;
  const random = mulberry32(99);
  const sigma = opts.noise ?? 2;
  const pending: Array<{ bytes: Buffer; startedAt?: number; done: (times: { startedAt: number; endedAt: number }) => void }> = [];
  const commands: Array<[number, number]> = [];
  let client: Socket | undefined;
  let connections = 0;
  let timer: NodeJS.Timeout | undefined;

  const noise = (samples: number): Buffer => {
    const out = Buffer.alloc(samples * 2);
    for (let i = 0; i < out.length; i++) out[i] = Math.max(0, Math.min(255, Math.round(127.5 + sigma * (random() + random() + random() - 1.5) * 2)));
    return out;
  };

  const server: Server = createServer((socket) => {
    connections++;
    client?.destroy();
    client = socket;
    socket.setNoDelay(true);
    const hello = Buffer.alloc(12);
    hello.write('RTL0', 0, 'latin1');
    hello.writeUInt32BE(TUNER_R820T, 4);
    hello.writeUInt32BE(29, 8);
    socket.write(hello);
    let partial = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      partial = Buffer.concat([partial, chunk]);
      while (partial.length >= 5) {
        commands.push([partial[0]!, partial.readUInt32BE(1)]);
        partial = partial.subarray(5);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      if (client === socket) client = undefined;
    });
    // Samples at the dongle's pace: each tick sends what the elapsed time is owed.
    const started = performance.now();
    let sent = 0;
    clearInterval(timer);
    timer = setInterval(() => {
      if (client !== socket) return;
      const due = Math.floor(((performance.now() - started) / 1000) * rate) - sent;
      let samples = due;
      const chunks: Buffer[] = [];
      const at = performance.timeOrigin + performance.now();
      const finished: Array<() => void> = [];
      while (samples > 0) {
        const head = pending[0];
        if (!head) {
          chunks.push(noise(samples));
          break;
        }
        head.startedAt ??= at;
        const take = Math.min(samples * 2, head.bytes.length);
        chunks.push(head.bytes.subarray(0, take));
        head.bytes = head.bytes.subarray(take);
        samples -= take / 2;
        if (head.bytes.length === 0) {
          pending.shift();
          finished.push(() => head.done({ startedAt: head.startedAt!, endedAt: at }));
        }
      }
      if (due > 0) socket.write(Buffer.concat(chunks));
      sent += Math.max(0, due);
      for (const done of finished) done();
    }, TICK_MS);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    port,
    commands,
    get connections() {
      return connections;
    },
    transmit(train, o = {}) {
      const bytes = trainToCu8(train, { sampleRate: rate, amplitude: o.amplitude ?? 100, noise: sigma, leadInMs: 0, leadOutMs: 0, seed: pending.length + 1 });
      return new Promise((done) => pending.push({ bytes, done }));
    },
    async close() {
      clearInterval(timer);
      client?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
