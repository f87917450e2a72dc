// The shape every layer shares so one engine can run them all:
//   gather (facts, no side effects) → plan (steps) → apply (run steps) → verify (checks).

export type CheckStatus = 'pass' | 'warn' | 'fail';

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

/** What a step disturbs while it runs; the engine orders drains and reboots from this. */
export type Disturbance = 'host-reboot' | 'vm-restart' | 'guest-reboot' | 'node-drain';

export interface Step {
  /** Stable id, unique within a plan, e.g. `host/pve1/kernel-cmdline`. */
  id: string;
  /** The host, VM, guest or cluster object the step acts on. */
  target: string;
  description: string;
  /** Unified diff when the step edits a file or a config. */
  diff?: string;
  disturbs: Disturbance[];
  /** Ids of steps that must finish first. */
  needs: string[];
  /** The command the step runs on its target, shown in the plan. */
  command?: string;
  /** It overrides a value the user set: apply refuses it without --force. */
  needsForce?: boolean;
  /** It changes something the user must agree to: apply refuses it without these options. */
  consents?: string[];
}

/**
 * A layer of the chain (host, mapping, vm, guest, cluster), bound to its target. The
 * engine runs every layer the same way: gather → plan → (show, confirm) → apply → verify.
 */
export interface Layer<Facts, Plan extends { steps: Step[] }, ApplyOptions, Result> {
  readonly name: string;
  gather(): Promise<Facts>;
  plan(facts: Facts): Plan;
  apply(plan: Plan, options: ApplyOptions): Promise<Result>;
  verify(facts: Facts): Promise<Check[]>;
}

const severity: Record<CheckStatus, number> = { pass: 0, warn: 1, fail: 2 };

export function worstStatus(checks: readonly Check[]): CheckStatus {
  let worst: CheckStatus = 'pass';
  for (const check of checks) if (severity[check.status] > severity[worst]) worst = check.status;
  return worst;
}
