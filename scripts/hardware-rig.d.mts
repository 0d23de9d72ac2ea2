// Types of hardware-rig.mjs, for the TypeScript tests that boot the rig themselves.

export interface Rig {
  abi: string;
  version: string;
  kernel: string;
  initrd: string;
  gpiod2?: string;
  cacheDir: string;
  cached: boolean;
}

export interface VmOptions {
  outDir?: string;
  env?: Record<string, string>;
  cwd?: string;
  binds?: string[];
  onConsole?: (text: string) => void;
  /** A raw ext4 image attached as a virtio disk, mounted at `mountAt` (under /tmp or /run) before the command runs. */
  disk?: { image: string; mountAt: string };
  /** QEMU user networking: the host's loopback is 10.0.2.2 in the guest. */
  net?: boolean;
}

export interface VmExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether kill() ended it. */
  killed: boolean;
  /** The command's exit status, if it got to finish. */
  status: number | undefined;
  seconds: number;
  outDir: string;
  console: string;
  consoleFile: string;
}

export interface Vm {
  startedAt: number;
  outDir: string;
  exited: Promise<VmExit>;
  /** SIGKILL to QEMU: a power cut. */
  kill(): void;
}

export function prepareRig(): Rig;
/** The rig kernel's module tree (depmod run), kept in the rig's cache. */
export function kernelModules(rig: Rig): string;
export function startVm(rig: Rig, command: string[], opts?: VmOptions): Vm;
export function runInVm(
  rig: Rig,
  command: string[],
  opts?: VmOptions & { timeoutMs?: number },
): Promise<{ status: number; seconds: number; outDir: string; console: string; consoleFile: string }>;
/** `~/.cache/<name>` (or under $XDG_CACHE_HOME), unless `override` names a directory. */
export function cacheDirectory(name: string, override?: string): string;
