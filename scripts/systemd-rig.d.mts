// Types of systemd-rig.mjs, for the TypeScript tests that boot a Debian system with systemd.

export interface SystemdImage {
  key: string;
  suite: string;
  packages: string[];
  abi: string;
  nodeVersion: string;
  npmVersion: string;
  user: string;
  hostname: string;
  builtAt: string;
  buildSeconds: number;
  /** The cache directory of this image. */
  dir: string;
  /** The raw ext4 root file system (read-only; each VM writes to an overlay of it). */
  image: string;
  initrd: string;
  kernel: string;
  sshKey: string;
  knownHosts: string;
  manifest: string;
  /** Whether it came from the cache rather than being built now. */
  cached: boolean;
}

export interface SshResult {
  /** ssh's exit status: the command's, or 255 when the connection failed; null if killed. */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface SystemdVm {
  /** The host port (on 127.0.0.1) forwarded to the guest's sshd. */
  sshPort: number;
  /** The host ends of the guest's ttyS1, ttyS2...: UNIX sockets to connect to (see `serialPorts`). */
  serialSockets: string[];
  /** QEMU started to the first command answered over SSH. */
  bootMs: number;
  /** The serial console (kernel and systemd), kept after the VM is gone. */
  consoleFile: string;
  /** Resolves with QEMU's exit code (or signal) once it is gone. */
  exited: Promise<number | string | null>;
  /** Runs a shell command line as the technician; rejects only when it outlives timeoutMs (120 s). */
  ssh(command: string, opts?: { timeoutMs?: number }): Promise<SshResult>;
  /** Copies a file or directory into the guest (recursively); rejects on failure. */
  scp(localPath: string, remotePath: string): Promise<void>;
  /** `systemctl reboot`, then waits for SSH under a new boot id; resolves with the milliseconds that took. */
  reboot(): Promise<number>;
  /** `systemctl poweroff`; rejects unless QEMU exits with 0 within timeoutMs (120 s). */
  stop(opts?: { timeoutMs?: number }): Promise<void>;
  /** SIGKILL to QEMU: a power cut. */
  kill(): Promise<void>;
}

export function prepareSystemdImage(): SystemdImage;
/** `serialPorts`: how many UARTs beyond the console (ttyS1...) to give the guest; default 0. */
export function bootSystemdVm(opts?: { memoryMb?: number; cpus?: number; image?: SystemdImage; serialPorts?: number }): Promise<SystemdVm>;
