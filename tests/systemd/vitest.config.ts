import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:vm`: a Debian 12 system with systemd as PID 1 in QEMU, reached over SSH. The first
// run builds the image (packages from Debian's archive), hence the long hook timeout.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['tests/systemd/**/*.test.ts'],
    testTimeout: 10 * 60_000,
    hookTimeout: 20 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
