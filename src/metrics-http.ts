import { createServer, type Server } from 'node:http';
import type { Logger } from './core/logger.js';

export interface MetricsEndpoint {
  /** The port it listens on (the configured one, or the one the system chose for 0). */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The HTTP side of the metrics: GET /metrics answers the exposition, anything else 404. A scrape
 * that fails is a 500 and a log line; the daemon goes on.
 */
export async function serveMetrics(
  listen: { host: string; port: number },
  source: { scrape(): Promise<string>; readonly contentType: string },
  logger: Logger,
): Promise<MetricsEndpoint> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    source.scrape().then(
      (text) => res.writeHead(200, { 'content-type': source.contentType }).end(text),
      (err: unknown) => {
        logger.error({ err }, 'metrics scrape failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('scrape failed\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'metrics endpoint error'));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  logger.info({ host: listen.host, port }, 'metrics endpoint listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
