// The contract every layer of the chain (host, mapping, VM, guest, cluster) keeps, so one
// engine runs them all: gather (every read, no change) → plan (pure: facts in, steps out)
// → apply (carry out the steps) → verify (checks). docs/architecture.md draws it.

/**
 * `pending`: the link waits for a step only the user can take (Talos without talosctl: the
 * printed commands); worse than a warning, since it is not done, but no failure.
 */
export type CheckStatus = 'pass' | 'warn' | 'pending' | 'fail';

/** One verdict line: what was checked, what we saw, and what to do when it is not a pass. */
export interface Check {
  /** Stable dotted id, e.g. `gvt.enabled`; scripts may match on it. */
  id: string;
  status: CheckStatus;
  /** What we saw, in one line, naming the file or value it came from. */
  evidence: string;
  /** What to change; present whenever status is not `pass`. */
  fix?: string;
}

/**
 * What a step disturbs while it runs. The engine reads it (engine/stages): any disturbance
 * on a Proxmox host drains that host's Kubernetes nodes first and uncordons them after,
 * and a `host-reboot` step is the host reboot the engine carries out and waits for.
 * `guest-drain`: the step drains its own node and uncordons it after (`talosctl upgrade`,
 * knowledge/pins.ts TALOS_UPGRADE_DRAIN); its reboot needs no drain of the engine's.
 */
export type Disturbance = 'host-reboot' | 'vm-restart' | 'guest-reboot' | 'node-drain' | 'guest-drain';

export interface Step {
  /** Stable id, unique within a plan, e.g. `host/pve1/kernel-cmdline`. */
  id: string;
  /** The host, VM, guest or cluster object the step acts on. */
  target: string;
  description: string;
  /** Unified diff when the step edits a file or a config. */
  diff?: string;
  disturbs: Disturbance[];
  /** The command the step runs on its target, shown in the plan. */
  command?: string;
  /** It overrides a value the user set: apply refuses it without --force. */
  needsForce?: boolean;
  /** It changes something the user must agree to: apply refuses it without these options. */
  consents?: string[];
}

/**
 * What every layer's plan is: checks (what was seen), steps in the order apply carries them
 * out (a step needs the ones before it), and — when the layer cannot be applied — why, in
 * one line. A layer's own plan type adds what its apply needs; the lab plan's sections,
 * its refusal and `plan --json` read only these three.
 */
export interface LayerPlan<S extends Step = Step> {
  checks: Check[];
  steps: S[];
  /** Set when this part cannot be applied: apply refuses the whole plan while any part says so. */
  refused?: string;
}

/** How a layer's apply reports progress: one line at a time, never to stdout itself. */
export interface ApplyContext {
  say(line: string): void;
}

/**
 * A layer of the chain, bound to its target. The engine runs every layer the same way:
 * gather → plan → (show, confirm) → apply → verify. Options a layer's apply takes (consents,
 * time limits, journal hooks) are bound when the layer is made, not passed here.
 */
export interface Layer<Facts, Plan extends LayerPlan, Result = void> {
  readonly name: string;
  /** Every read the plan needs (files, APIs, Image Factory lookups); changes nothing. */
  gather(): Promise<Facts>;
  /** Pure: the same facts give the same plan. */
  plan(facts: Facts): Plan;
  apply(plan: Plan, context: ApplyContext): Promise<Result>;
  /** Reads afresh what it checks: after apply the target may have rebooted. */
  verify(): Promise<Check[]>;
}

/** The disturbances a list of steps causes. */
/** How a change that reboots, restarts and drains nothing is summed up before its question. */
export const NOTHING_DISTURBED = 'no reboot, restart or drain';

export function disturbancesOf(steps: readonly Step[]): Set<Disturbance> {
  return new Set(steps.flatMap((step) => step.disturbs));
}

/**
 * The disturbances the engine drains a node for: all but what a step that drains its node
 * itself (`guest-drain`) does to that node — its drain and its guest's reboot.
 */
export function drainingDisturbances(steps: readonly Step[]): Set<Disturbance> {
  const covered: Disturbance[] = ['guest-drain', 'guest-reboot', 'node-drain'];
  return new Set(
    steps.flatMap((step) =>
      step.disturbs.includes('guest-drain')
        ? step.disturbs.filter((d) => !covered.includes(d))
        : step.disturbs,
    ),
  );
}

const severity: Record<CheckStatus, number> = { pass: 0, warn: 1, pending: 2, fail: 3 };

export function worstStatus(checks: readonly Check[]): CheckStatus {
  let worst: CheckStatus = 'pass';
  for (const check of checks) if (severity[check.status] > severity[worst]) worst = check.status;
  return worst;
}
