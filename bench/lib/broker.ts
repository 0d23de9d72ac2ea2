// Brokers for the benchmarks: the test helpers' Mosquitto, with room to queue more than any
// benchmark sends to a subscriber that falls behind (a drop there would look like a loss).
import { type Broker, type BrokerOptions, startMosquitto } from '../../tests/helpers/mosquitto.js';

export const startBenchBroker = (opts: BrokerOptions = {}): Promise<Broker> => startMosquitto({ maxQueuedMessages: 2_000_000, ...opts });
