import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:fleet`: a short fleet run (50 devices) on a real three-node RabbitMQ cluster, with
// an outage, a node killed under load and a hotlist delta to every device. A few minutes: the
// cluster's start alone takes most of one on two cores.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['tests/fleet/**/*.test.ts'],
    testTimeout: 20 * 60_000,
    hookTimeout: 5 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
