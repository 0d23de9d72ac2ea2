import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

/**
 * Runs WAL checkpoints on its own connection and thread. A checkpoint copies the WAL into the
 * database and fsyncs it, which can take tens of ms on an SD card; done inside a commit on the main
 * thread it would land on whichever alarm happened to trigger it.
 *
 * 'close-now' is the synchronous stop for a corrupt file about to be moved aside: the connection
 * closes at once, without a last checkpoint, and `closed` (a shared Int32Array) is set and
 * notified, so the main thread can wait for it with Atomics.wait. A connection closing after the
 * rename would delete the -wal and -shm by their old names: the fresh database's.
 */
const { file, intervalMs, closed } = workerData as { file: string; intervalMs: number; closed: Int32Array };
const db = new Database(file);
db.pragma('busy_timeout = 50');
// Until this arrives the outbox counts no worker as running (one that dies opening the file never checkpoints).
parentPort!.postMessage('ready');
// Each checkpoint is announced before and after, for the outbox's statistics and its debug log
// (the power-cut test cuts the power on the announcement).
const checkpoint = () => {
  const started = performance.now();
  parentPort!.postMessage({ checkpoint: 'start' });
  try {
    const [result] = db.pragma('wal_checkpoint(PASSIVE)') as Array<{ busy: number; log: number; checkpointed: number }>;
    parentPort!.postMessage({ checkpoint: 'done', ms: performance.now() - started, frames: result?.checkpointed ?? 0 });
  } catch {
    /* busy or the file moved aside: try again next time */
    parentPort!.postMessage({ checkpoint: 'done', ms: performance.now() - started, frames: 0 });
  }
};
const timer = setInterval(checkpoint, intervalMs);
parentPort!.on('message', (msg) => {
  if (msg !== 'stop' && msg !== 'close-now') return;
  clearInterval(timer);
  if (msg === 'stop') checkpoint();
  db.close();
  Atomics.store(closed, 0, 1);
  Atomics.notify(closed, 0);
  parentPort!.postMessage('stopped');
});
