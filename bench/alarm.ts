// Panic press to call center: the time from a button edge on a (simulated) GPIO line to the
// `alarm.panic` event arriving at a subscriber of a local Mosquitto, through the real daemon
// (debounce, outbox commit with fsync, MQTT), and to the button's LED showing "received". Measured
// with the daemon idle and with plate reading saturated (two cameras streaming a looped video into
// two inference workers on this 2-core machine), so the ratio loaded/idle shows what ANPR costs an
// alarm.
//
//   npm run bench -- alarm [--quick]
//
// Press time is taken in this process just before the control request that moves the line, so the
// figures include the local control-socket hop: an upper bound of the daemon's own latency.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chileanPlate, scene } from '../src/anpr/synthetic.js';
import { DaemonProcess } from '../tests/helpers/daemon.js';
import type { Broker } from '../tests/helpers/mosquitto.js';
import { startBenchBroker } from './lib/broker.js';
import { onCleanup, scoped, trackDir } from './lib/cleanup.js';
import type { StatusReply } from './lib/daemon-replies.js';
import { writeBenchDeviceConfig } from './lib/device.js';
import { timePresses } from './lib/presses.js';
import { percentile, ratio, round } from './lib/stats.js';
import { fmt, table } from './lib/table.js';

const quick = process.argv.includes('--quick');
const PRESSES = quick ? 200 : 1000;

const HARDWARE = {
  backend: 'sim',
  inputs: { panic: { line: 'GPIO17', kind: 'panic', stuck: '1h' } },
  outputs: { strobe: { line: 'GPIO23', kind: 'strobe' }, button_led: { line: 'GPIO25', kind: 'led' } },
};
const POLE = { led_output: 'button_led', strobe_output: 'strobe' };

/** A 4 s MJPEG video of a street scene with a Chilean plate, for the cameras to loop. */
async function makeVideo(dir: string): Promise<string> {
  const jpeg = await scene(chileanPlate(['BB', 'CL', '12'], { x: 480, y: 430, w: 320, h: 106 }));
  const still = join(dir, 'scene.jpg');
  const video = join(dir, 'street.avi');
  writeFileSync(still, jpeg);
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-loop', '1', '-framerate', '10', '-i', still, '-t', '4', '-c:v', 'mjpeg', '-q:v', '3', video]);
  return video;
}

interface PhaseResult {
  name: string;
  presses: number;
  received: number;
  lost: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
  led: { p50: number | null; p99: number | null } | undefined;
  fps: number | null;
}

async function phase(name: string, broker: Broker, over: { anpr?: { enabled: boolean } & Record<string, unknown> }): Promise<PhaseResult> {
  const cfg = writeBenchDeviceConfig(broker.url, { hardware: HARDWARE, pole: POLE, ...over });
  const daemon = new DaemonProcess(cfg.file, cfg.socket);
  onCleanup(() => daemon.kill('SIGKILL'));
  await daemon.start(60_000);
  const status = () => daemon.request<StatusReply>('status');

  let anprBefore: StatusReply['anpr'];
  if (over.anpr?.enabled) {
    // Saturated means every worker busy: wait until frames are being read.
    for (let i = 0; i < 300; i++) {
      const s = (await status()).anpr;
      if ((s?.workers?.completed ?? 0) >= 4) break;
      await sleep(100);
    }
    anprBefore = (await status()).anpr;
    if (!((anprBefore?.workers?.completed ?? 0) > 0)) throw new Error(`ANPR is not reading frames:\n${JSON.stringify(anprBefore)}`);
  }

  const t0 = performance.now();
  const { latencies, received } = await timePresses(broker, daemon, PRESSES);
  const seconds = (performance.now() - t0) / 1000;
  const after = await status();
  let fps: number | null = null;
  if (anprBefore) fps = round(((after.anpr?.workers?.completed ?? 0) - (anprBefore.workers?.completed ?? 0)) / seconds, 1);
  await daemon.kill('SIGTERM');
  cfg.remove();
  return {
    name,
    presses: PRESSES,
    received,
    lost: PRESSES - Math.min(PRESSES, received),
    p50: round(percentile(latencies, 50), 2),
    p99: round(percentile(latencies, 99), 2),
    max: round(Math.max(...latencies), 2),
    led: after['field-io']?.pole?.led_latency_ms,
    fps,
  };
}

await scoped(async () => {
  const broker = await startBenchBroker();
  onCleanup(() => broker.stop());
  const dir = trackDir(mkdtempSync(join(tmpdir(), 'vigia-bench-alarm-')));
  const video = await makeVideo(dir);

  const idle = await phase('idle', broker, {});
  const loaded = await phase('ANPR saturated', broker, {
    anpr: {
      enabled: true,
      workers: 2,
      threads_per_worker: 1,
      cameras: [
        { id: 'lane-1', kind: 'stream', url: video, loop: true, fps: 10 },
        { id: 'lane-2', kind: 'stream', url: video, loop: true, fps: 10 },
      ],
      motion: { enabled: false },
    },
  });

  const rows = [idle, loaded].map((r) => [
    r.name,
    fmt(r.presses),
    fmt(r.received),
    fmt(r.lost),
    fmt(r.p50, 2),
    fmt(r.p99, 2),
    fmt(r.max, 2),
    fmt(r.led?.p50, 2),
    fmt(r.led?.p99, 2),
    r.fps === null ? '–' : fmt(r.fps, 1),
  ]);
  console.log(`\nPanic press → alarm.panic at a Mosquitto subscriber (${PRESSES} presses per phase, ms)\n`);
  console.log(table(['phase', 'presses', 'received', 'lost', 'p50', 'p99', 'max', 'LED p50', 'LED p99', 'ANPR fps'], rows));
  console.log(
    '\nLED: from the edge to the button LED showing "received" (after the alarm is on disk), measured in the daemon.\n' +
      `Loaded/idle p99 ratio: ${fmt(ratio(loaded.p99, idle.p99), 2)}. Targets: p99 <= 20 ms loaded, LED p99 <= 15 ms, lost = 0.\n`,
  );
  console.log(
    JSON.stringify({
      press_to_broker_p50_ms: idle.p50,
      press_to_broker_p99_ms: idle.p99,
      press_to_broker_p99_ms_loaded: loaded.p99,
      press_to_broker_p50_ms_loaded: loaded.p50,
      press_to_led_p99_ms: Math.max(idle.led?.p99 ?? 0, loaded.led?.p99 ?? 0),
      loaded_idle_p99_ratio: ratio(loaded.p99, idle.p99),
      anpr_fps_during_load: loaded.fps,
      lost: idle.lost + loaded.lost,
      presses: PRESSES * 2,
    }),
  );
});
