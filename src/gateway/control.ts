import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

type Handler = (args: Record<string, unknown>) => unknown;

const MAX_REQUEST_BYTES = 1 << 20;

/**
 * The local control socket (UNIX, mode 0660): `vigia status` and `vigia sim` talk to the running
 * daemon through it. One JSON request per line, one JSON reply per line.
 */
export class ControlServer {
  readonly name = 'control';
  #server: Server | undefined;
  #handlers = new Map<string, Handler>();
  #sockets = new Set<Socket>();

  constructor(
    readonly socketPath: string,
    private readonly logger: Logger,
  ) {}

  handle(op: string, handler: Handler): void {
    this.#handlers.set(op, handler);
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
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_REQUEST_BYTES) return void socket.end(`${JSON.stringify({ ok: false, error: 'request too large' })}\n`);
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        void this.#answer(line).then((reply) => socket.writable && socket.write(`${JSON.stringify(reply)}\n`));
      }
    });
  }

  async #answer(line: string): Promise<{ ok: boolean; result?: unknown; error?: string; code?: string }> {
    let req: { op?: unknown; args?: unknown };
    try {
      req = JSON.parse(line) as typeof req;
    } catch {
      return { ok: false, error: 'request is not JSON' };
    }
    const handler = typeof req.op === 'string' ? this.#handlers.get(req.op) : undefined;
    if (!handler) return { ok: false, error: `unknown operation ${JSON.stringify(req.op)} (available: ${[...this.#handlers.keys()].join(', ')})` };
    try {
      const args = req.args && typeof req.args === 'object' ? (req.args as Record<string, unknown>) : {};
      return { ok: true, result: await handler(args) };
    } catch (err) {
      this.logger.warn({ op: req.op, err: (err as Error).message }, 'control request failed');
      const code = (err as { code?: unknown }).code;
      return { ok: false, error: (err as Error).message, ...(typeof code === 'string' ? { code } : {}) };
    }
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
      reject(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? new Error(`the daemon is not running (no control socket at ${socketPath})`)
          : err.code === 'EACCES'
            ? new Error(`permission denied on ${socketPath} (run as the vigia user or a member of its group)`)
            : err,
      );
    });
  });
}
