// What every stage builder reads: the lab, its plan, the connections (watched, so the
// journal knows which stages began a change), the journal and the run's options.

import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { Lab } from '../../config/lab.ts';
import type { LabConnections } from '../connections.ts';
import type { Journal } from '../journal.ts';
import type { LabPlan } from '../plan.ts';
import type { Stage } from '../scheduler.ts';

export interface ApplyOptions {
  consents?: string[];
  /** Host steps that need --force (overridden values, a next kernel that loses the split) may run. */
  force?: boolean;
  rebootTimeoutMs?: number;
  pollMs?: number;
  shutdownTimeoutSeconds?: number;
  forceStop?: boolean;
  drainTimeoutMs?: number;
}

export interface StageContext {
  lab: Lab;
  plan: LabPlan;
  connections: LabConnections;
  journal: Journal;
  options: ApplyOptions;
}

/** What a stage will do, as a short hash: a journal entry for a different plan does not count. */
export function fingerprintOf(parts: readonly string[]): string {
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, 12);
}

/** How long a host or guest gets to come back from a reboot, unless the run says otherwise. */
export const REBOOT_TIMEOUT_MS = 900_000;

/** The stage the code running now belongs to: a wait event (core/waits.ts) names it. */
const running = new AsyncLocalStorage<Stage>();

/** The same stage, its work run as that stage (so the waits it makes are told apart per host). */
export function asRunning(stage: Stage): Stage {
  const named: Stage = { ...stage, run: (say) => running.run(named, () => stage.run(say)) };
  return named;
}

/** The stage whose code waits now, if any (wait listeners run in the waiting code's context). */
export function waitingStage(): Stage | undefined {
  return running.getStore();
}
