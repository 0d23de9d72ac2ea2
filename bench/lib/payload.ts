// Event bodies for the outbox benchmark: a realistic plate-read payload (~300 bytes of JSON), varied
// per event so nothing compresses or caches unrealistically, and envelopes shaped like Vigía's for
// the baselines that publish without the daemon.
import { randomUUID } from 'node:crypto';

const LETTERS = 'BCDFGHJKLPRSTVWXYZ';
const letter = (k: number) => LETTERS[k % LETTERS.length]!;
const plate = (i: number) => letter(i) + letter(i >> 3) + letter(i >> 7) + letter(i >> 11) + String(10 + (i % 90));

export function readPayload(i: number) {
  return {
    plate: plate(i),
    country: 'CL',
    confidence: Number((0.8 + ((i * 7919) % 200) / 1000).toFixed(3)),
    camera: 'cam-north-1',
    lane: 1 + (i % 3),
    direction: i % 2 ? 'inbound' : 'outbound',
    speed_kmh: Number((30 + ((i * 31) % 600) / 10).toFixed(1)),
    vehicle: { class: 'car', color: 'white', make: 'toyota' },
    bbox: [400 + (i % 50), 280 + (i % 40), 600 + (i % 50), 350 + (i % 40)],
    frame: 100000 + i,
    image: `sha256:${`${i.toString(16).padStart(8, '0')}c0ffee9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f`.slice(0, 64)}`,
  };
}

export const READ_PAYLOAD_BYTES = Buffer.byteLength(JSON.stringify(readPayload(12345)));

/** An envelope shaped like Vigía's (id first, so subscribers can read it quickly), for the baselines. */
export function envelope(seq: number, type: string, priority: string, payload: object, device = 'baseline', id: string = randomUUID()): string {
  return JSON.stringify({
    id,
    device,
    site: 'bench',
    type,
    priority,
    time: new Date().toISOString(),
    clock: 'synced',
    boot_id: '00000000-0000-0000-0000-000000000000',
    mono_ms: Math.round(performance.now()),
    seq,
    payload,
  });
}

/** A UUID-shaped id that names (run, seq), so a counter can tell exactly which events went missing. */
export const streamId = (run: number, seq: number): string =>
  `b0000000-0000-4000-8000-${(run & 0xffff).toString(16).padStart(4, '0')}${seq.toString(16).padStart(8, '0')}`;
