// The lab lock around a layer command's changes (mapping, vm, guest and cluster apply and
// rollback): the same lock apply and rollback take, so no two runs change one lab at once.
// A layer command does not continue an interrupted apply, so that apply's journal is said
// (one line on stderr) and kept, not refused: the layer commands are also how a user
// finishes or undoes by hand what an apply that cannot resume left.

import { onInterrupt } from '../core/interrupt.ts';

/** Takes the lab lock; the returned function lets go of it (the journal, if any, stays). */
export async function holdLabLock(labFile: string): Promise<() => Promise<void>> {
  const { Journal } = await import('../engine/journal.ts');
  const journal = new Journal(labFile);
  // Read before the lock is taken: a damaged journal refuses here and leaves nothing behind.
  const earlier = await journal.earlierRun();
  // `true`: an unfinished journal is no refusal here; a live holder or a foreign lock is.
  await journal.lock(true);
  const stopHolding = onInterrupt(() => {
    journal.releaseNow();
    return undefined;
  });
  if (earlier)
    process.stderr.write(
      `igpu-split: ${earlier}; this command changes only its own layer and keeps that journal (igpu-split apply --resume continues it)\n`,
    );
  return async () => {
    stopHolding();
    // Never started, so never owns the journal: release takes only the lock.
    await journal.release(true);
  };
}

export async function withLabLock<T>(labFile: string, work: () => Promise<T>): Promise<T> {
  const release = await holdLabLock(labFile);
  try {
    return await work();
  } finally {
    await release();
  }
}
