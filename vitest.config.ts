import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The GPIO tests on a real kernel boot a VM: `npm run test:hardware`, with their own config.
    exclude: [...configDefaults.exclude, 'tests/hardware/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Broker and daemon tests start real processes; two cores, so keep parallelism modest.
    poolOptions: { forks: { maxForks: 2 } },
    pool: 'forks',
  },
});
