/** The part of Node-RED's embedding API (`require('node-red')`) the runtime uses; the package ships no types. */
declare module 'node-red' {
  import type { IncomingMessage, Server, ServerResponse } from 'node:http';
  import type { EventEmitter } from 'node:events';

  type RequestHandler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

  interface NodeRedApp {
    init(server: Server, settings: Record<string, unknown>): void;
    start(): Promise<void>;
    stop(): Promise<void>;
    readonly httpAdmin: RequestHandler;
    readonly httpNode: RequestHandler;
    readonly events: EventEmitter;
    readonly version: () => string;
    readonly runtime: { _: { telemetry: { enable(): void; disable(): void } } };
  }
  const RED: NodeRedApp;
  export default RED;
}
