const CR = 0x0d;
const LF = 0x0a;

export interface LineSplitterHandlers {
  /** A complete line, without its terminator. Empty lines (as between CR and LF) are not reported. */
  line(bytes: Buffer): void;
  /** A line grew past the cap: its bytes so far are dropped, and the rest up to the next terminator. */
  overlong(droppedSoFar: number): void;
}

/**
 * Splits a byte stream into lines ended by CR, LF or CRLF, holding at most `maxLineBytes` of an
 * unfinished line. A device at the wrong baud rate or sending binary never grows memory: once a
 * line passes the cap it is reported as overlong at once and skipped up to the next terminator.
 */
export class LineSplitter {
  #parts: Buffer[] = [];
  #pending = 0;
  #discarding = false;

  constructor(
    private readonly maxLineBytes: number,
    private readonly handlers: LineSplitterHandlers,
  ) {
    if (!Number.isInteger(maxLineBytes) || maxLineBytes < 1) throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (byte !== CR && byte !== LF) continue;
      this.#take(chunk, start, i);
      this.#endLine();
      start = i + 1;
    }
    this.#take(chunk, start, chunk.length);
  }

  /** Forgets any unfinished line (after a reconnect its start belongs to another connection). */
  reset(): void {
    this.#parts = [];
    this.#pending = 0;
    this.#discarding = false;
  }

  /** Bytes of the unfinished line held now. */
  get pendingBytes(): number {
    return this.#pending;
  }

  #take(chunk: Buffer, from: number, to: number): void {
    const length = to - from;
    if (length === 0 || this.#discarding) return;
    if (this.#pending + length > this.maxLineBytes) {
      const dropped = this.#pending + length;
      this.reset();
      this.#discarding = true;
      this.handlers.overlong(dropped);
      return;
    }
    // A copy, so a held fragment does not pin the whole (up to 64 kB) read buffer it came in.
    this.#parts.push(Buffer.from(chunk.subarray(from, to)));
    this.#pending += length;
  }

  #endLine(): void {
    if (this.#discarding) {
      this.#discarding = false;
      return;
    }
    if (this.#pending === 0) return;
    const line = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#pending);
    this.#parts = [];
    this.#pending = 0;
    this.handlers.line(line);
  }
}
