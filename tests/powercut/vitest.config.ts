import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:powercut`: power cuts (SIGKILL to QEMU) under load, with the daemon's data on a
// virtio disk in the hardware rig's VM. Long: every cut is a boot under TCG emulation.
export default defineConfig({
  test: {
    root: fileURLToPath(new URL('../..', import.meta.url)),
    include: ['tests/powercut/**/*.test.ts'],
    testTimeout: 60 * 60_000,
    hookTimeout: 20 * 60_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
