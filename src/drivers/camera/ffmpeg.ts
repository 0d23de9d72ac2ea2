import { setPriority } from 'node:os';
import { type ChildProcess, spawn } from 'node:child_process';
import type { Writable } from 'node:stream';
import { redactUrl } from '../../core/redact.js';
import { BaseFrameSource, type FrameSourceDeps } from './source.js';
import type { BackoffOptions } from '../../core/backoff.js';
import { DEFAULT_MAX_FRAME_BYTES, JpegSplitter } from './jpeg.js';

export type FfmpegInputKind = 'rtsp' | 'http' | 'v4l2' | 'file' | 'other';

export interface FfmpegSourceOptions {
  cameraId: string;
  /** Anything ffmpeg reads: rtsp://, http(s):// MJPEG, /dev/videoN, a file, udp://... */
  url: string;
  /** Frames per second to emit (`-vf fps=N`). */
  fps: number;
  /** MJPEG quality, 2 (best) .. 31 (`-q:v`); default 5. */
  quality?: number;
  /** Downscale wider frames to this width, keeping the aspect ratio; never upscales. */
  maxWidth?: number;
  /** How to open the input; default from the URL. */
  input?: FfmpegInputKind | 'auto';
  /** Files only: read at the native frame rate (`-re`), as a camera would deliver. Default false. */
  realtime?: boolean;
  /** Files only: loop forever (`-stream_loop -1`). Default false: at the end ffmpeg exits and is restarted like any exit. */
  loop?: boolean;
  /** V4L2 capture settings (`-input_format`, `-video_size`, `-framerate`). */
  v4l2?: { inputFormat?: string; videoSize?: string; framerate?: number };
  /** Extra options placed before `-i` (e.g. `['-fflags', 'nobuffer']`); with a private URL they apply to the input list, not the camera. */
  extraInputArgs?: string[];
  /** Options of the camera input itself (demuxer or protocol, e.g. `{ rtsp_flags: 'listen' }`), wherever the URL goes. */
  inputOptions?: Record<string, string>;
  /**
   * The URL is a secret as a whole (a token in it): keep it off the command line and out of
   * messages even without `user:password@`. A URL with credentials is always kept off.
   */
  privateUrl?: boolean;
  ffmpegPath?: string;
  /** Frames above this are discarded as they stream (default 20 MB). */
  maxFrameBytes?: number;
  /** Kill and restart ffmpeg when no frame arrives for this long, including at startup (default 20 s). */
  stallTimeoutMs?: number;
  /** After SIGTERM, wait this long before SIGKILL (default 3 s). */
  killTimeoutMs?: number;
  /** Lines of ffmpeg stderr kept for error messages (default 20). */
  stderrLines?: number;
  backoff?: BackoffOptions;
  /** Scheduling niceness of the ffmpeg process (default 10: below the daemon; 0 leaves it). */
  niceness?: number;
}

/** Niceness of background work (video decoding, inference): alarms and MQTT always run first. */
export const BACKGROUND_NICENESS = 10;

export function detectInputKind(url: string): FfmpegInputKind {
  if (/^rtsps?:\/\//i.test(url)) return 'rtsp';
  if (/^https?:\/\//i.test(url)) return 'http';
  if (/^\/dev\/video\d+$/.test(url) || url.startsWith('/dev/v4l/')) return 'v4l2';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) return 'other';
  return 'file';
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
/** `scheme://user[:password]@`: credentials in the URL. */
const USERINFO = /^[a-z][a-z0-9+.-]*:\/\/[^/@\s]*@/i;
/** The input list arrives on this descriptor, fed by the daemon. */
const INPUT_LIST_FD = 3;

/** Whether the URL must not appear on ffmpeg's command line: it carries credentials, or is a secret as a whole. */
export function keepsUrlPrivate(opts: Pick<FfmpegSourceOptions, 'url' | 'privateUrl'>): boolean {
  return SCHEME.test(opts.url) && (opts.privateUrl === true || USERINFO.test(opts.url));
}

/** Options of the camera input: TCP for RTSP (UDP loses packets through NAT and LTE), then the caller's. */
function inputOptions(opts: FfmpegSourceOptions, kind: FfmpegInputKind): Array<[string, string]> {
  const options: Record<string, string> = kind === 'rtsp' ? { rtsp_transport: 'tcp' } : {};
  Object.assign(options, opts.inputOptions);
  for (const key of Object.keys(options)) if (!/^\w+$/.test(key)) throw new RangeError(`bad ffmpeg option name ${JSON.stringify(key)}`);
  return Object.entries(options);
}

/** ffconcat quoting: inside '...' everything is literal, so only a quote needs its own escape. */
const quote = (text: string): string => `'${text.replaceAll("'", "'\\''")}'`;

/**
 * The ffconcat list that hands ffmpeg a private URL, or undefined when the URL may go on the
 * command line. Why a list on a descriptor: /proc/<pid>/cmdline is readable by every local user,
 * ffmpeg has no option file and does not expand environment variables, and the concat demuxer is
 * the one way ffmpeg 5.x reads an input URL (and its options, `option` directive) from data. It
 * comes through an inherited pipe, so it is never on disk; /proc/<pid>/fd is private to the
 * daemon's user. Concat opens the camera with the usual demuxer and ends when it ends, so
 * reconnects and the stall watchdog are unchanged.
 */
export function ffmpegInputList(opts: FfmpegSourceOptions): string | undefined {
  if (!keepsUrlPrivate(opts)) return undefined;
  if (/[\r\n\0]/.test(opts.url)) throw new RangeError('a camera URL cannot contain line breaks');
  const kind = !opts.input || opts.input === 'auto' ? detectInputKind(opts.url) : opts.input;
  const lines = ['ffconcat version 1.0', `file ${quote(opts.url)}`];
  for (const [key, value] of inputOptions(opts, kind)) lines.push(`option ${key} ${quote(value)}`);
  return `${lines.join('\n')}\n`;
}

/** Protocols the list's camera may use: the list's own pipe, the URL's scheme and what it runs over. */
function protocolWhitelist(url: string): string {
  const scheme = SCHEME.exec(url)![1]!.toLowerCase();
  return [...new Set(['pipe', scheme, 'tcp', 'udp', 'tls', 'rtp', 'srtp', 'http', 'https', 'httpproxy', 'crypto'])].join(',');
}

/** How a camera's URL appears in messages: credentials masked; a private URL only as scheme and host. */
export function displayUrl(opts: Pick<FfmpegSourceOptions, 'url' | 'privateUrl'>): string {
  if (!opts.privateUrl || !SCHEME.test(opts.url)) return redactUrl(opts.url);
  try {
    const url = new URL(opts.url);
    return `${url.protocol}//${url.host}/…`;
  } catch {
    return `${SCHEME.exec(opts.url)![0]}…`;
  }
}

/** The full ffmpeg command line for a source (without the program name). */
export function ffmpegArgs(opts: FfmpegSourceOptions): string[] {
  if (!(opts.fps > 0 && opts.fps <= 120)) throw new RangeError(`fps must be in (0, 120], got ${opts.fps}`);
  const quality = opts.quality ?? 5;
  if (!Number.isInteger(quality) || quality < 2 || quality > 31) throw new RangeError(`quality must be an integer from 2 to 31, got ${quality}`);
  if (opts.maxWidth !== undefined && !(Number.isInteger(opts.maxWidth) && opts.maxWidth >= 16))
    throw new RangeError(`maxWidth must be an integer >= 16, got ${opts.maxWidth}`);
  const kind = !opts.input || opts.input === 'auto' ? detectInputKind(opts.url) : opts.input;
  const args = ['-hide_banner', '-nostdin', '-nostats', '-loglevel', 'error'];
  const list = ffmpegInputList(opts);
  switch (kind) {
    case 'v4l2': {
      args.push('-f', 'v4l2');
      const v = opts.v4l2 ?? {};
      if (v.inputFormat) args.push('-input_format', v.inputFormat);
      if (v.videoSize) args.push('-video_size', v.videoSize);
      if (v.framerate) args.push('-framerate', String(v.framerate));
      break;
    }
    case 'file':
      if (opts.realtime) args.push('-re');
      if (opts.loop) args.push('-stream_loop', '-1');
      break;
    default:
      break;
  }
  if (list === undefined) for (const [key, value] of inputOptions(opts, kind)) args.push(`-${key}`, value);
  args.push(...(opts.extraInputArgs ?? []));
  // -safe 0: the list names a URL, not a relative file name.
  if (list !== undefined) args.push('-f', 'concat', '-safe', '0', '-protocol_whitelist', protocolWhitelist(opts.url), '-i', `pipe:${INPUT_LIST_FD}`);
  else args.push('-i', opts.url);
  args.push('-an', '-sn', '-dn');
  const filters = [`fps=${opts.fps}`];
  if (opts.maxWidth !== undefined) filters.push(`scale='min(iw,${opts.maxWidth})':-2`);
  args.push('-vf', filters.join(','), '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', String(quality), 'pipe:1');
  return args;
}

/** The last lines of a text stream, bounded in count and length. */
export class LineRing {
  #lines: string[] = [];
  #partial = '';
  constructor(
    private readonly max = 20,
    private readonly maxLineLength = 500,
  ) {}

  push(chunk: Buffer | string): void {
    const text = this.#partial + chunk.toString();
    const parts = text.split(/\r?\n|\r/);
    this.#partial = (parts.pop() ?? '').slice(-this.maxLineLength);
    for (const line of parts) this.#add(line);
  }

  lines(): string[] {
    return this.#partial.trim() ? [...this.#lines, this.#partial.trim()].slice(-this.max) : [...this.#lines];
  }

  #add(line: string): void {
    const trimmed = line.trim();
    if (!trimmed) return;
    this.#lines.push(trimmed.length > this.maxLineLength ? `${trimmed.slice(0, this.maxLineLength)}…` : trimmed);
    if (this.#lines.length > this.max) this.#lines.shift();
  }
}

interface Running {
  child: ChildProcess;
  /** Resolves once the process has exited (or never started). */
  exited: Promise<void>;
}

/**
 * JPEG frames from anything ffmpeg can open. ffmpeg decodes, drops to the configured frame rate,
 * optionally scales, and writes MJPEG to stdout, which is split into frames here. The process is
 * supervised: any exit (error, end of stream, stall) is followed by a restart with backoff.
 */
export class FfmpegSource extends BaseFrameSource {
  readonly #opts: FfmpegSourceOptions;
  readonly #args: string[];
  readonly #inputList: string | undefined;
  #running: Running | undefined;
  #stderr: LineRing;

  constructor(opts: FfmpegSourceOptions, deps: FrameSourceDeps = {}) {
    super(opts.cameraId, deps, opts.backoff);
    this.#opts = opts;
    this.#args = ffmpegArgs(opts);
    this.#inputList = ffmpegInputList(opts);
    this.#stderr = new LineRing(opts.stderrLines ?? 20);
  }

  /** The ffmpeg process id while one runs. */
  get pid(): number | undefined {
    return this.#running?.child.pid;
  }

  get args(): readonly string[] {
    return this.#args;
  }

  /** Recent ffmpeg stderr lines (of the current or last process). */
  stderrTail(): string[] {
    return this.#stderr.lines().map((line) => this.#redact(line));
  }

  /** ffmpeg's messages name the URL it opened, with or without the credentials: mask both. */
  #redact(text: string): string {
    if (!this.#opts.privateUrl) return redactUrl(text);
    const shown = displayUrl(this.#opts);
    const bare = this.#opts.url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1');
    return redactUrl(text.replaceAll(this.#opts.url, shown).replaceAll(bare, shown));
  }

  protected open(gen: number): void {
    const program = this.#opts.ffmpegPath ?? 'ffmpeg';
    const stderr = new LineRing(this.#opts.stderrLines ?? 20);
    this.#stderr = stderr;
    const splitter = new JpegSplitter({ maxFrameBytes: this.#opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES });
    const list = this.#inputList;
    const child = spawn(program, this.#args, { stdio: ['ignore', 'pipe', 'pipe', list === undefined ? 'ignore' : 'pipe'] });
    if (list !== undefined) {
      const input = child.stdio[3] as Writable | null;
      input?.on('error', () => {}); // ffmpeg gone before reading it: its exit reports why
      input?.end(list);
    }
    // Decoding video is background work: at a lower priority it never delays an alarm. Its
    // threads are created after this, by the process's main thread, and inherit the priority.
    if (child.pid !== undefined && (this.#opts.niceness ?? BACKGROUND_NICENESS) !== 0) {
      try {
        setPriority(child.pid, this.#opts.niceness ?? BACKGROUND_NICENESS);
      } catch {
        // Not allowed (a container without CAP_SYS_NICE can still lower its own priority, so rarely).
      }
    }
    let resolveExited!: () => void;
    const exited = new Promise<void>((resolve) => (resolveExited = resolve));
    const running: Running = { child, exited };
    this.#running = running;
    const stallMs = this.#opts.stallTimeoutMs ?? 20_000;
    let stalled = false;
    const watchdog = setTimeout(() => {
      stalled = true;
      this.logger?.warn({ camera: this.cameraId, stall_ms: stallMs }, 'ffmpeg produced no frame in time; killing it');
      void this.#terminate(running);
    }, stallMs);
    let seen = splitter.stats();
    child.stdout?.on('data', (chunk: Buffer) => {
      try {
        const frames = splitter.push(chunk);
        if (frames.length > 0) watchdog.refresh();
        for (const frame of frames) this.emitFrame(gen, frame);
        const now = splitter.stats();
        for (let k = seen.oversize; k < now.oversize; k++) this.drop(gen, `frame larger than ${splitter.maxFrameBytes} bytes`);
        for (let k = seen.corrupt; k < now.corrupt; k++) this.drop(gen, 'truncated or malformed JPEG in the stream');
        seen = now;
      } catch (err) {
        this.logger?.error({ err, camera: this.cameraId }, 'error handling ffmpeg output');
      }
    });
    child.stdout?.on('error', () => {});
    child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk));
    child.stderr?.on('error', () => {});
    child.on('exit', () => resolveExited());
    child.on('error', (err) => {
      // Spawn failure (ENOENT, EACCES) or a failed kill; 'close' follows a spawn failure.
      if (child.pid === undefined) {
        resolveExited();
        clearTimeout(watchdog);
        if (this.#running === running) this.#running = undefined;
        this.fail(gen, new Error(`cannot run ${program}: ${err.message}`));
      } else this.logger?.warn({ err, camera: this.cameraId }, 'ffmpeg process error');
    });
    child.on('close', (code, signal) => {
      resolveExited();
      clearTimeout(watchdog);
      if (this.#running === running) this.#running = undefined;
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      const why = stalled ? `no frame for ${stallMs} ms; ffmpeg ${how}` : `ffmpeg ${how}`;
      const tail = this.#redact(stderr.lines().slice(-3).join(' | '));
      this.fail(gen, new Error(`${why} reading ${displayUrl(this.#opts)}${tail ? `: ${tail}` : ''}`));
    });
  }

  protected async close(): Promise<void> {
    const running = this.#running;
    this.#running = undefined;
    if (running) await this.#terminate(running);
  }

  /** SIGTERM, then SIGKILL if it is still there after killTimeoutMs; resolves once it has exited. */
  async #terminate(running: Running): Promise<void> {
    const { child } = running;
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      await running.exited;
      return;
    }
    child.kill('SIGTERM');
    const timer = setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) {
        this.logger?.warn({ camera: this.cameraId, pid: child.pid }, 'ffmpeg ignored SIGTERM; sending SIGKILL');
        child.kill('SIGKILL');
      }
    }, this.#opts.killTimeoutMs ?? 3_000);
    try {
      await running.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
