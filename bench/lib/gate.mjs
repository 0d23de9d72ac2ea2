// A TCP proxy on 127.0.0.1 in front of a broker: the benchmark decides when the device can connect.
import { connect, createServer } from 'node:net';

export async function startGate(upstreamPort, { open = true } = {}) {
  let isOpen = open;
  let stopped = false;
  const pairs = new Set();
  const server = createServer({ allowHalfOpen: false }, (down) => {
    down.on('error', () => {});
    if (!isOpen || stopped) return void down.destroy();
    down.setNoDelay(true);
    const up = connect({ host: '127.0.0.1', port: upstreamPort });
    up.setNoDelay(true);
    up.on('error', () => {});
    let resolveClosed;
    const pair = { down, up, closed: new Promise((r) => (resolveClosed = r)) };
    let downClosed = false;
    let upClosed = false;
    pairs.add(pair);
    const settle = () => {
      if (downClosed && upClosed) {
        pairs.delete(pair);
        resolveClosed();
      }
    };
    down.once('close', () => {
      downClosed = true;
      up.destroy();
      settle();
    });
    up.once('close', () => {
      upClosed = true;
      down.destroy();
      settle();
    });
    down.pipe(up);
    up.pipe(down);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const destroyAll = async () => {
    const waiting = [];
    for (const p of pairs) {
      p.down.destroy();
      p.up.destroy();
      waiting.push(p.closed);
    }
    await Promise.all(waiting);
  };
  return {
    port: server.address().port,
    get isOpen() {
      return isOpen;
    },
    get active() {
      return pairs.size;
    },
    close() {
      isOpen = false;
      return destroyAll();
    },
    open() {
      isOpen = true;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      isOpen = false;
      const closing = new Promise((r) => server.close(() => r()));
      await destroyAll();
      await closing;
    },
  };
}
