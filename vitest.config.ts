import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // The VM tests have their own configs: `npm run test:hardware` (GPIO on a real kernel),
    // `npm run test:powercut` (power cuts), `npm run test:vm` (a system with systemd) and
    // `npm run test:fleet` (a fleet on a broker cluster).
    exclude: [...configDefaults.exclude, 'tests/hardware/**', 'tests/powercut/**', 'tests/systemd/**', 'tests/fleet/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Broker and daemon tests start real processes; two cores, so keep parallelism modest.
    poolOptions: { forks: { maxForks: 2 } },
    pool: 'forks',
  },
});
