// The scheduler: runs an apply's stages in order — the lab-wide ones alone, then the host
// groups N at a time (each in sequence), then the lab-wide end — journalling each as it
// ends and starting none after a failure.

import { bounded } from '../core/bounded.ts';
import { IgpuSplitError, TargetError } from '../core/errors.ts';
import { runAsStage } from './changes.ts';
import type { Journal } from './journal.ts';

export interface Stage {
  id: string;
  /** `lab` (first), `host:<node>` (in host order), `lab-end` (last). */
  group: string;
  /** What the stage will do: a journal entry for a different plan does not count. */
  fingerprint: string;
  title: string;
  run(say: (line: string) => void): Promise<void>;
}

/** Shared by the stages of one run: once one fails no other starts, and the run waits for those in flight. */
export class RunState {
  failed: unknown;
  private readonly running = new Set<Promise<unknown>>();

  track<T>(work: Promise<T>): Promise<T> {
    this.running.add(work);
    return work.finally(() => this.running.delete(work));
  }

  async settle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }
}

/** One thing that happened while stages ran. */
export type StageEvent =
  | { kind: 'stage-start'; stage: Stage }
  | { kind: 'stage-line'; stage: Stage; line: string }
  | { kind: 'stage-end'; stage: Stage; result: 'done' | 'skipped' | 'failed' };

/** Runs one stage unless the journal has it, and journals it when it ends. */
export async function runStage(
  stage: Stage,
  journal: Journal,
  report: (event: StageEvent) => void,
  state?: RunState,
): Promise<'done' | 'skipped'> {
  if (journal.has(stage)) {
    report({ kind: 'stage-end', stage, result: 'skipped' });
    return 'skipped';
  }
  if (state?.failed !== undefined) {
    report({ kind: 'stage-end', stage, result: 'failed' });
    throw new IgpuSplitError(`${stage.title}: not started, another host failed`, {
      fix: 'fix that failure, then apply --resume',
    });
  }
  report({ kind: 'stage-start', stage });
  // The stage counts as begun (resumable) from its first change, not from its start.
  const work = runAsStage(
    () => journal.begin(stage),
    () => journal.unbegin(stage),
    () => stage.run((line) => report({ kind: 'stage-line', stage, line })),
  ).catch((error: unknown) => {
    // expected: anything a stage throws — it is reported as one line naming the stage, and rethrown.
    const reported =
      error instanceof IgpuSplitError
        ? error
        : new TargetError(`${stage.title}: ${(error as Error)?.message ?? String(error)}`, {
            target: stage.group.replace(/^host:/, ''),
            fix: 'fix the cause, then igpu-split apply --resume',
            cause: error,
          });
    if (state && state.failed === undefined) state.failed = reported;
    report({ kind: 'stage-end', stage, result: 'failed' });
    throw reported;
  });
  await (state ? state.track(work) : work);
  await journal.record(stage);
  report({ kind: 'stage-end', stage, result: 'done' });
  return 'done';
}

/** The stages in run order: lab-wide first, then one group per host, then the lab-wide end. */
export function stageGroups(stages: readonly Stage[]): { group: string; stages: Stage[] }[] {
  const names = [...new Set(stages.map((s) => s.group))];
  const order = [
    ...names.filter((n) => n === 'lab'),
    ...names.filter((n) => n.startsWith('host:')),
    ...names.filter((n) => n === 'lab-end'),
  ];
  return order.map((group) => ({ group, stages: stages.filter((s) => s.group === group) }));
}

/** Host groups wave by wave; a failure in one wave starts no later wave. */
async function runWaves(
  journal: Journal,
  hostGroups: { group: string; stages: Stage[] }[],
  waves: readonly (readonly string[])[],
  parallel: number,
  runGroup: (group: { group: string; stages: Stage[] }) => Promise<void>,
  state: RunState,
  beforeWave?: (hosts: readonly string[]) => Promise<void>,
): Promise<void> {
  const waved = new Set(waves.flat());
  const groupOf = (host: string) => hostGroups.find((g) => g.group === `host:${host}`);
  await bounded(
    hostGroups.filter((g) => !waved.has(g.group.slice('host:'.length))),
    parallel,
    runGroup,
  );
  let first = true;
  for (const wave of waves) {
    const groups = wave.flatMap((host) => groupOf(host) ?? []);
    // A wave the journal has whole is done; the wave an interrupted run left half-done goes
    // on with no wait (its own nodes are the ones down); only a fresh wave waits.
    const left = groups.filter((g) => g.stages.some((s) => !journal.has(s)));
    if (left.length === 0) continue;
    if (state.failed !== undefined) return;
    const fresh = left.every((g) => g.stages.every((s) => !journal.has(s)));
    if (!first && fresh) await beforeWave?.(wave);
    first = false;
    await bounded(groups, parallel, runGroup);
  }
}

/**
 * Runs the stages: the lab-wide ones alone, host groups `parallel` at a time (each in
 * order), journalling each as it ends. After a failure no stage starts and the run waits
 * for the ones in flight before it reports. `afterStage` sees every finished stage.
 */
export async function runStages(
  stages: Stage[],
  journal: Journal,
  options: {
    parallel?: number;
    report?: (event: StageEvent) => void;
    afterStage?: (id: string) => Promise<void>;
    /**
     * The rollout's waves (host nodes): waves run one after another, the hosts of one side by
     * side (`parallel` at most); hosts in no wave take nothing down and go first.
     */
    waves?: readonly (readonly string[])[];
    /** Before each wave (not the first): waits for the cluster to be whole again. */
    beforeWave?: (hosts: readonly string[]) => Promise<void>;
  } = {},
): Promise<{ done: string[]; skipped: string[] }> {
  const report = options.report ?? (() => {});
  const done: string[] = [];
  const skipped: string[] = [];
  const state = new RunState();
  const runGroup = async ({ stages: list }: { stages: Stage[] }) => {
    for (const stage of list) {
      const result = await runStage(stage, journal, report, state);
      (result === 'done' ? done : skipped).push(stage.id);
      await options.afterStage?.(stage.id);
    }
  };
  const groups = stageGroups(stages);
  for (const group of groups.filter((g) => g.group === 'lab')) await runGroup(group);
  const hostGroups = groups.filter((g) => g.group.startsWith('host:'));
  try {
    if (!options.waves) await bounded(hostGroups, options.parallel ?? 1, runGroup);
    else
      await runWaves(
        journal,
        hostGroups,
        options.waves,
        options.parallel ?? 1,
        runGroup,
        state,
        options.beforeWave,
      );
  } finally {
    await state.settle();
  }
  for (const group of groups.filter((g) => g.group === 'lab-end')) await runGroup(group);
  return { done, skipped };
}
