// Applying a lab: the one function the CLI, the demo, the benchmarks and every test
// (the kill points included) call, so what the tests prove is what users run.
//
// lock → journal → plan → (question) → stages → finish. The lab lock is taken once the
// user has agreed and before the first change, and let go on every way out before a
// change; after taking it, a plan shown before the question is made again from fresh
// facts, and a different one is refused. Without a question (--yes) the lock comes first
// and the plan is made once, under it. A run that stops half-way keeps its lock and
// journal, so `apply --resume` continues it.

import { holderIdentity } from '../cluster/progress.ts';
import { type TalosEtcd, waitQuorum } from '../cluster/quorum.ts';
import type { Lab } from '../config/lab.ts';
import { RefusedError } from '../core/errors.ts';
import { onInterrupt } from '../core/interrupt.ts';
import { onWait, type WaitEvent } from '../core/waits.ts';
import { hostPlanRefusal } from '../host/apply.ts';
import type { LabConnections } from './connections.ts';
import { Journal, type PendingStep } from './journal.ts';
import {
  type LabPlan,
  labWithout,
  type PlanOptions,
  planDigest,
  planLab,
  planRefusal,
  unreachableRefusal,
} from './plan.ts';
import { rolloutFacts, startRollout } from './rollout/progress-run.ts';
import { runStages, type Stage, type StageEvent, stageGroups } from './scheduler.ts';
import { REBOOT_TIMEOUT_MS } from './stages/context.ts';
import { type ApplyOptions, applyStages, waitingStage } from './stages/index.ts';

/** Everything an apply reports, in order; the library never prints (talosctl's Reporter). */
export type ApplyEvent =
  /** The plan, before the question; `refused` stops the run right after. */
  | { kind: 'plan'; plan: LabPlan; refused?: string }
  /** The stages about to run, grouped as they run (`parallel` host groups at a time). */
  | { kind: 'stages'; groups: { group: string; stages: Stage[] }[]; parallel: number }
  | StageEvent
  /** A wait that lasts (a reboot, a task, a drain, the gathering): `stage` when a stage waits. */
  | { kind: 'waiting'; wait: WaitEvent; stage?: Stage }
  /** The run stopped half-way: its journal is in `dir` for `apply --resume`. */
  | { kind: 'journal-kept'; dir: string };

export interface Reporter {
  report(event: ApplyEvent): void;
}

export interface ApplyLabOptions extends ApplyOptions, Omit<PlanOptions, 'parallel'> {
  /** The lab file: the journal and the lock live beside it. */
  labFile: string;
  /** A cluster with one etcd member may lose its API while that member's host takes its turn. */
  allowApiOutage?: boolean;
  /** Continue an interrupted apply from its journal. */
  resume?: boolean;
  /** Asked once the plan is shown; it throws to decline. Absent: no question (--yes). */
  confirm?: (plan: LabPlan) => Promise<void>;
  reporter?: Reporter;
  /** Hosts worked on at once (reads run 8 times as wide). */
  parallel?: number;
  /** The journal to use (tests look into it); by default the one beside the lab file. */
  journal?: Journal;
  /** Sees every finished stage (the kill-point tests die here). */
  afterStage?: (id: string) => Promise<void>;
  /**
   * A plan the caller made and showed just before, applied as it is when there is no
   * question — only for a lab nothing else can change meanwhile (the demo's simulators).
   */
  plan?: LabPlan;
  /** Take the rollout Lease another machine let expire (--take-over). */
  takeOver?: boolean;
  /** Who holds the rollout Lease (`user@machine`; tests play two machines). */
  identity?: string;
  /** How long the rollout Lease holds unrenewed (60 s). */
  leaseSeconds?: number;
}

export interface ApplyLabResult {
  plan: LabPlan;
  /** Nothing was left to do. */
  converged: boolean;
  done: string[];
  skipped: string[];
  /** Steps this run could only write to files, waiting for the user (exit 3). */
  pending: PendingStep[];
}

export async function applyLab(
  lab: Lab,
  connections: LabConnections,
  options: ApplyLabOptions,
): Promise<ApplyLabResult> {
  const journal = options.journal ?? new Journal(options.labFile);
  const resume = options.resume === true;
  const parallel = options.parallel ?? 1;
  const report = (event: ApplyEvent) => options.reporter?.report(event);
  let locked = false;
  let finished = false;
  const stopWaits = onWait((wait) => report({ kind: 'waiting', wait, stage: waitingStage() }));
  const letGo = onInterrupt(() => {
    if (!locked) return 'nothing was changed';
    return journal.releaseNow()
      ? 'nothing was changed; the lab lock is released'
      : `the finished stages are journalled in ${journal.dir}: continue with igpu-split apply --resume`;
  });
  const takeLock = async () => {
    await journal.lock(resume);
    locked = true;
    // What an interrupted run left (cordoned nodes, stopped VMs) shapes the stages.
    await journal.start(resume);
  };
  const identity = options.identity ?? holderIdentity();
  // Hosts left out with --skip-host or the skip label on a node.
  let skipHosts = [...(options.skipHosts ?? [])];
  const makePlan = () =>
    planLab(lab, connections, {
      ...options,
      skipHosts,
      parallel: parallel * 8,
      rollout: { parallel, allowApiOutage: options.allowApiOutage },
    });
  // Hosts left out have no stage: neither their VMs nor their drains.
  const stagesOf = (plan: LabPlan) =>
    applyStages(labWithout(lab, skipHosts), plan, connections, journal, options);
  try {
    // Another apply, or an unfinished one, is named before anything is read.
    const blocked = await journal.refusal(resume);
    if (blocked) throw blocked;
    // Another machine's rollout (its Lease) too; the skip labels join --skip-host.
    const facts = await rolloutFacts(lab, connections.kube, { identity, takeOver: options.takeOver });
    if (facts.refused) throw facts.refused;
    skipHosts = [...new Set([...skipHosts, ...facts.skipHosts])];
    if (!options.confirm) await takeLock();
    else if (resume) await journal.start(true);
    let plan = !options.confirm && options.plan ? options.plan : await makePlan();
    const refused = planRefusal(plan);
    const cut = unreachableRefusal(plan);
    report({ kind: 'plan', plan, refused: refused ?? cut?.message });
    if (refused)
      throw new RefusedError(`the plan cannot be applied: ${refused}`, { fix: 'see the plan above' });
    if (cut) throw cut;
    // A host step that needs --force (a value of the user's overridden, a next kernel that loses the split).
    const unforced = plan.hosts
      .map((h) => h.host && hostPlanRefusal(h.host, { force: options.force }))
      .find(Boolean);
    if (unforced) throw unforced;
    let stages = stagesOf(plan);
    if (stages.length === 0) {
      // A journal a finished run could not remove goes now (under the lock).
      if (resume && !locked) await takeLock();
      finished = true;
      return { plan, converged: true, done: [], skipped: [], pending: [] };
    }
    if (options.confirm) {
      await options.confirm(plan);
      await takeLock();
      // The lab may have moved while the question was open: the plan is made again.
      const shown = planDigest(plan);
      plan = await makePlan();
      if (planRefusal(plan) || unreachableRefusal(plan) || planDigest(plan) !== shown)
        throw new RefusedError('the lab changed since the plan was shown: nothing was changed', {
          fix: 'run igpu-split plan again, then apply',
        });
      stages = stagesOf(plan);
    }
    report({ kind: 'stages', groups: stageGroups(stages), parallel });
    // The rollout Lease, before the first change; the stages mark their host turns on the nodes.
    const rollout = await startRollout(lab, connections.kube, journal, stages, {
      identity,
      run: `${identity}/${journal.runStartedAt}`,
      takeOver: options.takeOver,
      skipHosts,
      leaseSeconds: options.leaseSeconds,
    });
    try {
      const waves = plan.rollout;
      const result = await runStages(rollout.stages, journal, {
        parallel,
        report,
        afterStage: async (id) => {
          await rollout.after(id);
          await options.afterStage?.(id);
        },
        ...(waves?.disruptions.some((d) => d.nodes.length > 0)
          ? {
              waves: waves.waves,
              // Before the next wave, quorum is whole again and the API answers.
              // A wave that takes no node down needs no wait.
              beforeWave: async (hosts) => {
                if (!waves.disruptions.some((d) => hosts.includes(d.node) && d.nodes.length > 0)) return;
                const talos = talosMembers(lab, waves.members, connections.talosctl);
                await waitQuorum(connections.kube, waves.members, {
                  timeoutMs: options.rebootTimeoutMs ?? REBOOT_TIMEOUT_MS,
                  pollMs: options.pollMs,
                  before: `the turn of ${hosts.join(', ')}`,
                  ...(talos ? { talos } : {}),
                });
              },
            }
          : {}),
      });
      finished = true;
      await rollout.finish(true);
      return { plan, converged: false, ...result, pending: journal.pending(stages) };
    } catch (error) {
      // expected: anything a stage threw — said with where the journal is, and rethrown.
      await rollout.finish(false);
      if (journal.changed) report({ kind: 'journal-kept', dir: journal.dir });
      throw error;
    }
  } finally {
    stopWaits();
    letGo();
    // A run that stopped half-way keeps its lock and journal, for apply --resume.
    if (locked) await journal.release(finished);
  }
}

/**
 * The etcd members the lab file names as Talos VMs (their talosctl address), for
 * `talosctl etcd status` when talosctl is here; undefined otherwise.
 */
export function talosMembers(
  lab: Lab,
  members: readonly string[],
  talosctl: TalosEtcd['talosctl'] | undefined,
): TalosEtcd | undefined {
  if (!talosctl) return undefined;
  const nodes = Object.fromEntries(
    lab.vms.flatMap((vm) =>
      vm.os === 'talos' && vm.kubernetesNode && members.includes(vm.kubernetesNode) && vm.talos
        ? [[vm.kubernetesNode, vm.talos.node] as const]
        : [],
    ),
  );
  return Object.keys(nodes).length > 0 ? { nodes, talosctl } : undefined;
}
