// The lab lock around work that is not an apply: a whole-lab rollback, and the layer
// commands that change the lab (mapping, vm, guest and cluster apply and rollback). The
// same lock apply takes, so no two runs change one lab at once. A layer command does not
// continue an interrupted apply, so that apply's journal is said and kept, not refused:
// the layer commands are also how a user finishes or undoes by hand what an apply that
// cannot resume left.

import type { Lab } from '../config/lab.ts';
import { IgpuSplitError } from '../core/errors.ts';
import { onInterrupt } from '../core/interrupt.ts';
import type { LabConnections } from './connections.ts';
import { Journal } from './journal.ts';
import { type RollbackReport, rollbackLab } from './rollback.ts';

/**
 * Runs `work` holding the lab lock. `warn` hears of an interrupted apply's journal (kept);
 * a damaged journal refuses before the lock is taken, and leaves nothing behind.
 */
export async function withLabLock<T>(
  labFile: string,
  warn: (line: string) => void,
  work: () => Promise<T>,
): Promise<T> {
  const journal = new Journal(labFile);
  const earlier = await journal.earlierRun();
  // `true`: an unfinished journal is no refusal here; a live holder or a foreign lock is.
  await journal.lock(true);
  const stopHolding = onInterrupt(() => {
    journal.releaseNow();
    return undefined;
  });
  try {
    if (earlier)
      warn(
        `${earlier}; this command changes only its own layer and keeps that journal (igpu-split apply --resume continues it)`,
      );
    return await work();
  } finally {
    stopHolding();
    // Never started, so never owns the journal: release takes only the lock.
    await journal.release(true);
  }
}

export interface RollbackLabOptions {
  labFile: string;
  /** Roll back although an interrupted apply left its journal, then remove that journal. */
  discardJournal?: boolean;
  /** Asked before anything changes; it throws to decline. Absent: no question (--yes). */
  confirm?: () => Promise<void>;
  forceStop?: boolean;
  /** Each undone step, as it is undone. */
  say?: (line: string) => void;
  /** What the user must know before the question (the journal to be discarded). */
  warn?: (line: string) => void;
}

/** `igpu-split rollback`: every layer's rollback in reverse, under the lab lock. */
export async function rollbackWholeLab(
  lab: Lab,
  connections: LabConnections,
  options: RollbackLabOptions,
): Promise<RollbackReport> {
  const journal = new Journal(options.labFile);
  const discard = options.discardJournal === true;
  let locked = false;
  try {
    // Never beside an apply: the same lab-wide lock, taken once the user agreed. With
    // discardJournal an interrupted apply's journal is no obstacle; a live apply still is.
    const blocked = await journal.refusal(discard);
    if (blocked) throw blocked;
    // A journal too damaged to read is what discardJournal is for: it is said, then removed.
    const earlier = discard
      ? await journal
          .earlierRun()
          // expected: IgpuSplitError (a damaged journal) — said; the rest is thrown.
          .catch((error: unknown) =>
            error instanceof IgpuSplitError ? error.message : Promise.reject(error),
          )
      : undefined;
    if (earlier) options.warn?.(`${earlier}; rollback undoes it and then removes its journal`);
    await options.confirm?.();
    await journal.lock(discard);
    locked = true;
    const report = await rollbackLab(lab, connections, { forceStop: options.forceStop, say: options.say });
    if (earlier) {
      await journal.finish();
      // Rollback restarts only the VMs it stops itself, and leaves cordons to their owner.
      const line = `removed the interrupted apply’s journal (${earlier}): start by hand any VM it left stopped, and uncordon any node it left drained (igpu-split cluster uncordon --node …)`;
      report.notes.push(line);
      report.log.push(line);
      options.say?.(line);
    }
    return report;
  } finally {
    if (locked) await journal.unlock();
  }
}
