import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

type Handler = (args: Record<string, unknown>) => unknown;
/** Starts a stream: `send` writes one item to the client; the returned function ends it (the client went away). */
export type StreamHandler = (args: Record<string, unknown>, send: (item: unknown) => void) => (() => void) | Promise<() => void>;

const MAX_REQUEST_BYTES = 1 << 20;
/** A stream whose client reads slower than this much is queued is ended rather than grown without bound. */
const MAX_STREAM_BACKLOG_BYTES = 1 << 20;

/**
 * The local control socket (UNIX, mode 0660): `vigia status` and `vigia sim` talk to the running
 * daemon through it. One JSON request per line, one JSON reply per line. A stream operation
 * (`vigia gpio watch`) answers `{ok: true, result: {stream: true}}`, then writes one `{item}` line
 * per item on that connection until the client closes it.
 */
export class ControlServer {
  readonly name = 'control';
  #server: Server | undefined;
  #handlers = new Map<string, Handler>();
  #streams = new Map<string, StreamHandler>();
  #sockets = new Set<Socket>();

  constructor(
    readonly socketPath: string,
    private readonly logger: Logger,
  ) {}

  handle(op: string, handler: Handler): void {
    this.#handlers.set(op, handler);
  }

  handleStream(op: string, handler: StreamHandler): void {
    this.#streams.set(op, handler);
  }

  async start(): Promise<void> {
    mkdirSync(dirname(this.socketPath), { recursive: true });
    if (existsSync(this.socketPath)) {
      if (await isAlive(this.socketPath)) throw new Error(`another daemon is listening on ${this.socketPath}`);
      unlinkSync(this.socketPath); // left behind by a crash
    }
    const server = createServer((socket) => this.#serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
    chmodSync(this.socketPath, 0o660);
    this.#server = server;
  }

  async stop(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    this.#server = undefined;
  }

  #serve(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let buffer = '';
    let streaming = false;
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (streaming) return; // a streaming connection carries nothing more from the client
      buffer += chunk;
      if (buffer.length > MAX_REQUEST_BYTES) return void socket.end(`${JSON.stringify({ ok: false, error: 'request too large' })}\n`);
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const stream = this.#streamOf(line);
        if (stream) {
          streaming = true;
          void this.#startStream(socket, stream);
          return;
        }
        void this.#answer(line).then((reply) => socket.writable && socket.write(`${JSON.stringify(reply)}\n`));
      }
    });
  }

  #streamOf(line: string): { op: string; handler: StreamHandler; args: Record<string, unknown> } | undefined {
    let req: { op?: unknown; args?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return undefined; // answered as a bad request
    }
    const handler = typeof req.op === 'string' ? this.#streams.get(req.op) : undefined;
    if (!handler) return undefined;
    return { op: req.op as string, handler, args: req.args && typeof req.args === 'object' ? (req.args as Record<string, unknown>) : {} };
  }

  async #startStream(socket: Socket, { op, handler, args }: { op: string; handler: StreamHandler; args: Record<string, unknown> }): Promise<void> {
    const write = (reply: unknown) => socket.writable && socket.write(`${JSON.stringify(reply)}\n`);
    const send = (item: unknown) => {
      if (socket.writableLength > MAX_STREAM_BACKLOG_BYTES) {
        socket.end(`${JSON.stringify({ ok: false, error: 'the client reads too slowly: stream ended' })}\n`);
        return;
      }
      write({ item });
    };
    let stop: () => void;
    try {
      stop = await handler(args, send);
    } catch (err) {
      this.logger.warn({ op, err: (err as Error).message }, 'control stream refused');
      const code = (err as { code?: unknown }).code;
      socket.end(`${JSON.stringify({ ok: false, error: (err as Error).message, ...(typeof code === 'string' ? { code } : {}) })}\n`);
      return;
    }
    if (socket.destroyed) return stop();
    socket.once('close', stop);
    write({ ok: true, result: { stream: true } });
  }

  async #answer(line: string): Promise<{ ok: boolean; result?: unknown; error?: string; code?: string }> {
    let req: { op?: unknown; args?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return { ok: false, error: 'request is not JSON' };
    }
    const handler = typeof req.op === 'string' ? this.#handlers.get(req.op) : undefined;
    if (!handler) return { ok: false, error: `unknown operation ${JSON.stringify(req.op)} (available: ${this.#ops().join(', ')})` };
    try {
      const args = req.args && typeof req.args === 'object' ? (req.args as Record<string, unknown>) : {};
      return { ok: true, result: await handler(args) };
    } catch (err) {
      this.logger.warn({ op: req.op, err: (err as Error).message }, 'control request failed');
      const code = (err as { code?: unknown }).code;
      return { ok: false, error: (err as Error).message, ...(typeof code === 'string' ? { code } : {}) };
    }
  }

  #ops(): string[] {
    return [...this.#handlers.keys(), ...this.#streams.keys()];
  }
}

function isAlive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Sends one request to a running daemon and returns its result (throws with the daemon's error). */
export function controlRequest(socketPath: string, op: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(socketPath);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify({ op, args })}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.end();
      const reply = JSON.parse(buffer.slice(0, nl)) as { ok: boolean; result?: unknown; error?: string; code?: string };
      if (reply.ok) resolve(reply.result);
      else reject(Object.assign(new Error(reply.error), reply.code ? { code: reply.code } : {}));
    });
    // The daemon died or closed the connection before answering: fail now, not at the timeout.
    socket.once('close', () => {
      clearTimeout(timer);
      reject(new Error(`the daemon closed the connection before answering ${op}`));
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(connectionError(socketPath, err));
    });
  });
}

/** The daemon is not running (`code` NOT_RUNNING), or the socket cannot be used: said plainly. */
function connectionError(socketPath: string, err: NodeJS.ErrnoException): Error {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED')
    return Object.assign(new Error(`the daemon is not running (no control socket at ${socketPath})`), { code: DAEMON_NOT_RUNNING });
  if (err.code === 'EACCES') return new Error(`permission denied on ${socketPath} (run as the vigia user or a member of its group)`);
  return err;
}

/** The `code` of the error a request gets when no daemon listens on the socket. */
export const DAEMON_NOT_RUNNING = 'NOT_RUNNING';

/** A stream from the running daemon (see ControlServer): `items` yields each item until close() or the daemon goes away. */
export interface ControlStream {
  /** Resolves once the daemon has accepted the stream; rejects with its refusal. */
  readonly started: Promise<void>;
  /** Resolves when the stream ends: closed here, or by the daemon (with its reason, if it gave one). */
  readonly ended: Promise<string | null>;
  close(): void;
}

/** Opens a stream operation (`gpio.watch`) and calls `onItem` for each item the daemon writes. */
export function controlStream(socketPath: string, op: string, args: Record<string, unknown>, onItem: (item: unknown) => void): ControlStream {
  const socket = createConnection(socketPath);
  let buffer = '';
  let accepted = false;
  let reason: string | null = null;
  let started!: { resolve: () => void; reject: (err: Error) => void };
  const startedP = new Promise<void>((resolve, reject) => (started = { resolve, reject }));
  startedP.catch(() => undefined); // read through `started` by the caller
  socket.setEncoding('utf8');
  socket.once('connect', () => socket.write(`${JSON.stringify({ op, args })}\n`));
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = JSON.parse(buffer.slice(0, nl)) as { ok?: boolean; item?: unknown; error?: string; code?: string };
      buffer = buffer.slice(nl + 1);
      if ('item' in line) onItem(line.item);
      else if (line.ok && !accepted) {
        accepted = true;
        started.resolve();
      } else if (line.ok === false) {
        reason = line.error ?? 'refused';
        if (!accepted) started.reject(Object.assign(new Error(reason), line.code ? { code: line.code } : {}));
      }
    }
  });
  const ended = new Promise<string | null>((resolve) => {
    socket.once('close', () => {
      if (!accepted) started.reject(new Error(reason ?? `the daemon closed the connection before answering ${op}`));
      resolve(reason);
    });
  });
  socket.once('error', (err: NodeJS.ErrnoException) => {
    if (!accepted) started.reject(connectionError(socketPath, err));
    reason ??= err.message;
  });
  return { started: startedP, ended, close: () => socket.end() };
}
