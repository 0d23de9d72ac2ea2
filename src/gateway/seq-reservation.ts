import { readFileSync } from 'node:fs';
import { writeFileDurably } from '../core/durable-file.js';

/** Sequence numbers reserved per write: one fsync per this many events. */
export const SEQ_BLOCK = 100_000;

/**
 * The highest event sequence number the device may have handed out, kept in a file beside the
 * outbox rather than in it: when a corrupt outbox is replaced by a fresh one, numbering goes on
 * above everything the old file could have used, so no number is ever seen twice at the central
 * side. Numbers are reserved a block at a time (the classic hi/lo scheme): the file is written
 * and fsynced once per SEQ_BLOCK events, before any number of the block is used.
 */
export class SeqReservation {
  #through: number;

  constructor(readonly file: string) {
    this.#through = readReserved(file);
  }

  /** Every number up to this one may have been handed out already (0: none reserved yet). */
  get through(): number {
    return this.#through;
  }

  /** Makes sure `seq` is reserved, writing the next block durably if it is not. */
  ensure(seq: number): void {
    if (seq <= this.#through) return;
    const through = seq + SEQ_BLOCK;
    writeFileDurably(this.file, `${through}\n`);
    this.#through = through;
  }
}

function readReserved(file: string): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 0;
  }
  const n = Number(text.trim());
  // An unreadable reservation is no reservation: a fresh outbox then starts at 1, as before.
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}
