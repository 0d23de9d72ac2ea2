import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * TCP proxy in front of a broker that lets a test decide exactly when the
 * device under test can (re)connect.
 */
export interface Gate {
  /** Port on 127.0.0.1 that clients should connect to instead of the broker. */
  readonly port: number;
  /** Whether new connections are currently let through. */
  readonly isOpen: boolean;
  /** Number of proxied connections currently alive. */
  readonly active: number;
  /**
   * Refuses new connections (accepted, then destroyed at once) and destroys the
   * current ones. Resolves when every current connection is closed.
   */
  close(): Promise<void>;
  /** Lets new connections through again. */
  open(): void;
  /** Destroys all connections and closes the listening socket. Idempotent. */
  stop(): Promise<void>;
}

export interface GateOptions {
  /** Let connections through from the start. Default true; false keeps the device offline until open(). */
  open?: boolean;
}

interface Pair {
  downstream: Socket;
  upstream: Socket;
  closed: Promise<void>;
}

/** Starts a gate on an ephemeral 127.0.0.1 port forwarding to 127.0.0.1:upstreamPort. Starts open unless told otherwise. */
export async function startGate(upstreamPort: number, { open = true }: GateOptions = {}): Promise<Gate> {
  let isOpen = open;
  let stopped = false;
  const pairs = new Set<Pair>();

  const server: Server = createServer({ allowHalfOpen: false }, (downstream) => {
    downstream.on('error', () => {});
    if (!isOpen || stopped) {
      downstream.destroy();
      return;
    }
    downstream.setNoDelay(true);
    const upstream = connect({ host: '127.0.0.1', port: upstreamPort });
    upstream.setNoDelay(true);
    upstream.on('error', () => {});

    let downClosed = false;
    let upClosed = false;
    let resolveClosed!: () => void;
    const pair: Pair = {
      downstream,
      upstream,
      closed: new Promise<void>((resolve) => {
        resolveClosed = resolve;
      }),
    };
    pairs.add(pair);
    const settle = (): void => {
      if (downClosed && upClosed) {
        pairs.delete(pair);
        resolveClosed();
      }
    };
    // Either side ending, erroring or closing tears down the other side.
    downstream.once('close', () => {
      downClosed = true;
      upstream.destroy();
      settle();
    });
    upstream.once('close', () => {
      upClosed = true;
      downstream.destroy();
      settle();
    });
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('startGate: could not read the bound port');

  const destroyAll = async (): Promise<void> => {
    const waiting: Promise<void>[] = [];
    for (const pair of pairs) {
      pair.downstream.destroy();
      pair.upstream.destroy();
      waiting.push(pair.closed);
    }
    await Promise.all(waiting);
  };

  return {
    port: address.port,
    get isOpen(): boolean {
      return isOpen;
    },
    get active(): number {
      return pairs.size;
    },
    close(): Promise<void> {
      isOpen = false;
      return destroyAll();
    },
    open(): void {
      isOpen = true;
    },
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      isOpen = false;
      const closing = new Promise<void>((resolve) => server.close(() => resolve()));
      await destroyAll();
      await closing;
    },
  };
}
