import { type ChildProcess, spawn } from 'node:child_process';
import { canConnect, freePort } from './ports.js';

/**
 * A camera on RTSP for tests: Debian's `rtsp-server-perl` relay on loopback ports, with ffmpeg
 * publishing a test pattern into it (`/<path>`), as an NVR or a camera's own server would offer a
 * stream. The relay carries RTP over UDP only (its SETUP has no TCP interleaving), so readers use
 * `rtsp_transport: udp`. The publisher is started again if it stops.
 */
export interface RtspCamera {
  /** What a reader opens: rtsp://127.0.0.1:PORT/PATH. */
  readonly url: string;
  stop(): Promise<void>;
}

export async function startRtspCamera(path = 'kit'): Promise<RtspCamera> {
  const clientPort = await freePort();
  const sourcePort = await freePort();
  // UDP ports the relay uses for RTP, from here up: a random even base keeps parallel tests apart.
  const rtpBase = 30_000 + 2 * Math.floor(Math.random() * 10_000);
  const children: ChildProcess[] = [];
  let running = true;
  const server = spawn(
    'rtsp-server-perl',
    [
      '--clientport',
      String(clientPort),
      '--serverport',
      String(sourcePort),
      '--client_listen_address',
      '127.0.0.1',
      '--source_listen_address',
      '127.0.0.1',
      '--rtp_start_port',
      String(rtpBase),
    ],
    { stdio: 'ignore' },
  );
  children.push(server);
  const deadline = Date.now() + 20_000;
  while (!(await canConnect(sourcePort, 1_000))) {
    if (Date.now() > deadline || server.exitCode !== null) throw new Error(`rtsp-server-perl did not listen on ${sourcePort}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const publish = () => {
    if (!running) return;
    const ffmpeg = spawn(
      'ffmpeg',
      [
        '-hide_banner',
        '-loglevel',
        'quiet',
        '-re',
        '-f',
        'lavfi',
        '-i',
        'testsrc=size=1280x720:rate=10',
        '-c:v',
        'mpeg4',
        '-q:v',
        '5',
        '-g',
        '10',
        '-f',
        'rtsp',
        '-rtsp_transport',
        'udp',
        `rtsp://127.0.0.1:${sourcePort}/${path}`,
      ],
      { stdio: 'ignore' },
    );
    children.push(ffmpeg);
    ffmpeg.on('exit', () => running && setTimeout(publish, 200));
  };
  publish();
  return {
    url: `rtsp://127.0.0.1:${clientPort}/${path}`,
    async stop() {
      running = false;
      for (const child of children) child.kill('SIGKILL');
    },
  };
}
