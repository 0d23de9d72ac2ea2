// Brokers for the benchmarks: the test helpers' Mosquitto, with room to queue more than any
// benchmark sends to a subscriber that falls behind (a drop there would look like a loss). Its
// max_inflight_messages (100) does not limit the MQTT 5 subscribers: for them Mosquitto takes the
// in-flight limit from the client's Receive Maximum (1000 for the ingest) instead.
import { type Broker, type BrokerOptions, startMosquitto } from '../../tests/helpers/mosquitto.js';

export const startBenchBroker = (opts: BrokerOptions = {}): Promise<Broker> => startMosquitto({ maxQueuedMessages: 2_000_000, ...opts });
