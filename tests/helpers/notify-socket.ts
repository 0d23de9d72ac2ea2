import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { findSocat } from './socat.js';

/**
 * A stand-in for systemd's notify socket: a real AF_UNIX datagram socket bound by socat
 * (`UNIX-RECV`), which writes every datagram to its stdout. The daemon ends each datagram with a
 * newline, so every line is one assignment (`READY=1`, `STATUS=...`), in the order they arrived.
 */
export class NotifySocket {
  readonly lines: string[] = [];
  #child: ChildProcess | undefined;
  #partial = '';

  constructor(readonly path: string) {}

  async start(): Promise<void> {
    const child = spawn(findSocat(), ['-u', `UNIX-RECV:${this.path}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    let stderr = '';
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout!.on('data', (b: Buffer) => {
      const text = this.#partial + b.toString();
      const parts = text.split('\n');
      this.#partial = parts.pop()!;
      this.lines.push(...parts);
    });
    for (let i = 0; i < 400 && !existsSync(this.path); i++) {
      if (child.exitCode !== null) throw new Error(`socat exited: ${stderr}`);
      await sleep(25);
    }
    if (!existsSync(this.path)) throw new Error(`socat did not bind ${this.path}: ${stderr}`);
  }

  count(line: string): number {
    return this.lines.filter((l) => l === line).length;
  }

  /** Resolves once `predicate` holds for the lines received so far. */
  async waitFor(what: string, predicate: (lines: readonly string[]) => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate(this.lines)) {
      if (Date.now() > deadline) throw new Error(`notify socket: no ${what} within ${timeoutMs} ms; received:\n${this.lines.join('\n')}`);
      await sleep(20);
    }
  }

  stop(): void {
    this.#child?.kill('SIGKILL');
  }
}
