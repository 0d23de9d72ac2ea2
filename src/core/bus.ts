import { EventEmitter } from 'node:events';
import type { VigiaEvent } from './event.js';
import type { LinkState } from '../gateway/uplink.js';

/**
 * Notifications between extensions. Events themselves do not travel on the bus to reach the
 * outbox (producers call Context.emit, which stores them first); the bus tells others afterwards.
 */
export interface BusEvents {
  'event.accepted': [event: VigiaEvent];
  'link.state': [state: LinkState];
  'clock.synced': [source: string];
}

export class EventBus extends EventEmitter<BusEvents> {}
