import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The VM tests have their own configs: `npm run test:hardware` (GPIO on a real kernel) and
    // `npm run test:powercut` (power cuts).
    exclude: [...configDefaults.exclude, 'tests/hardware/**', 'tests/powercut/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Broker and daemon tests start real processes; two cores, so keep parallelism modest.
    poolOptions: { forks: { maxForks: 2 } },
    pool: 'forks',
  },
});
