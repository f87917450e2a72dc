// An apply's rollout as operators see it in the cluster (src/cluster/progress.ts): the Lease
// taken before the first change and renewed while the stages run, every GPU node's host
// turn on its label and annotation, the summary ConfigMap. A run that ends well lets the
// Lease go; one that fails keeps it, unrenewed, so it is resumed from this machine or, once
// it expired, taken over from another with --take-over.

import type { KubeApi } from '../../cluster/kube.ts';
import {
  acquireLease,
  hostsSkippedByLabel,
  isForeignProgress,
  LEASE_SECONDS,
  type LeaseOptions,
  leaseRefusal,
  RolloutProgress,
  type RolloutStage,
  releaseLease,
  renewLease,
  rolloutStageOf,
} from '../../cluster/progress.ts';
import type { Lab } from '../../config/lab.ts';
import type { Journal } from '../journal.ts';
import type { Stage } from '../scheduler.ts';

export interface RolloutRunOptions {
  /** `user@machine` (holderIdentity). */
  identity: string;
  /** The run's id, kept by a resume. */
  run: string;
  takeOver?: boolean;
  /** Hosts left out (--skip-host and the skip label). */
  skipHosts: readonly string[];
  /** How long the Lease holds unrenewed (tests shorten it). */
  leaseSeconds?: number;
  now?: () => Date;
}

export interface RolloutRun {
  /** The stages, each marking its host turn on the nodes before it runs (and `failed` if it fails). */
  stages: Stage[];
  /** After each stage (done or journalled before): the last of a host turn marks it `done`. */
  after(id: string): Promise<void>;
  /** Ends the run: the Lease is let go when it ended well, kept (unrenewed) when not. */
  finish(ok: boolean): Promise<void>;
}

const hostOf = (stage: Pick<Stage, 'group'>) =>
  stage.group.startsWith('host:') ? stage.group.slice('host:'.length) : undefined;

/** Takes the Lease, claims the nodes and wraps the stages; refused in one line when another machine holds the lab. */
export async function startRollout(
  lab: Lab,
  kube: KubeApi,
  journal: Journal,
  stages: readonly Stage[],
  options: RolloutRunOptions,
): Promise<RolloutRun> {
  const namespace = lab.kubernetes.namespace;
  const lease: LeaseOptions = {
    namespace,
    identity: options.identity,
    takeOver: options.takeOver,
    now: options.now,
    durationSeconds: options.leaseSeconds ?? LEASE_SECONDS,
  };
  await acquireLease(kube, lease);
  const progress = new RolloutProgress(kube, {
    namespace,
    identity: options.identity,
    run: options.run,
    lab,
    now: options.now,
  });
  const states = new Map<string, RolloutStage>();
  for (const { node } of lab.hosts) {
    const turn = stages.filter((s) => hostOf(s) === node);
    if (options.skipHosts.includes(node)) states.set(node, 'skipped');
    else states.set(node, turn.every((s) => journal.has(s)) ? 'done' : 'pending');
  }
  let lost: unknown;
  const timer = setInterval(
    () => {
      renewLease(kube, lease).catch((error: unknown) => {
        // expected: anything — the next stage boundary stops the run with it
        lost ??= error;
      });
    },
    ((options.leaseSeconds ?? LEASE_SECONDS) * 1000) / 3,
  );
  timer.unref();
  try {
    await progress.claim(states);
  } catch (error) {
    // expected: anything (a foreign annotation) — nothing was changed: the Lease is let go, the error thrown
    clearInterval(timer);
    await releaseLease(kube, lease);
    throw error;
  }
  const lastOf = new Map<string, string>();
  for (const stage of stages) {
    const host = hostOf(stage);
    if (host) lastOf.set(host, stage.id);
  }
  const wrap = (stage: Stage): Stage => {
    const host = hostOf(stage);
    const state = rolloutStageOf(stage.id);
    if (!host || !state) return stage;
    return {
      ...stage,
      run: async (say) => {
        if (lost) throw lost;
        await progress.mark(host, state, stage.title);
        try {
          await stage.run(say);
        } catch (error) {
          // expected: anything the stage threw — marked `failed` (unless the marks are someone else's now), rethrown
          if (!isForeignProgress(error))
            await progress.mark(host, 'failed', stage.title).catch(() => {
              // expected: anything — the stage's own failure is what is reported
            });
          throw error;
        }
      },
    };
  };
  return {
    stages: stages.map(wrap),
    after: async (id) => {
      if (lost) throw lost;
      const stage = stages.find((s) => s.id === id);
      const host = stage && hostOf(stage);
      if (host && lastOf.get(host) === id) await progress.mark(host, 'done', 'host turn done');
    },
    finish: async (ok) => {
      clearInterval(timer);
      if (ok) await releaseLease(kube, lease);
    },
  };
}

/**
 * Before the plan: the hosts whose nodes carry the skip label, and a refusal when another
 * machine's Lease holds the lab. A cluster that cannot be read gives neither: the plan
 * marks it unreachable and apply refuses with that.
 */
export async function rolloutFacts(
  lab: Lab,
  kube: KubeApi,
  lease: Omit<LeaseOptions, 'namespace'>,
): Promise<{ skipHosts: string[]; refused?: Error }> {
  try {
    const skipHosts = await hostsSkippedByLabel(kube, lab);
    const refused = await leaseRefusal(kube, { ...lease, namespace: lab.kubernetes.namespace });
    return { skipHosts, refused };
  } catch {
    // expected: anything — the cluster's read in the plan says what is wrong
    return { skipHosts: [] };
  }
}
