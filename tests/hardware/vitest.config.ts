import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:hardware`: the GPIO drivers on a real kernel (gpio-sim in a QEMU VM). The first
// run installs packages and builds the rig, hence the long hook timeout.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['tests/hardware/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 20 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
