// What the lab-wide commands (plan, apply, verify, status, rollback, demo) share: their
// options, opening the lab's connections, and rendering plans and chains.

import type { Command } from 'commander';
import type { Lab } from '../config/lab.ts';
import type { LabConnections } from '../engine/connections.ts';
import type { LabPlan, PlanSection } from '../engine/plan.ts';
import type { VmChain } from '../engine/verify.ts';
import { addSshOptions, type HostOptions } from './host-options.ts';
import { sayLabNotes } from './lab-notes.ts';
import {
  addLabOption,
  addRequestTimeout,
  JSON_HELP,
  numberOption,
  type TimeoutOptions,
  timeoutsOf,
} from './option-checks.ts';
import { renderChecks } from './render-doctor.ts';
import { renderLayerPlan, type ShownDiffs } from './render-plan.ts';

export interface LabRunOptions extends HostOptions, TimeoutOptions {
  lab: string;
  json?: boolean;
  /** Only plan and apply take --parallel: it bounds how many hosts are worked on at once. */
  parallel?: number;
  changeMachine?: boolean;
  resetEfiKeys?: boolean;
  /** --skip-host, repeatable (plan and apply; the fleet rollout takes the same). */
  skipHost?: string[];
  /** --allow-api-outage (plan and apply): a single control plane may roll. */
  allowApiOutage?: boolean;
}

/** `--skip-host <node>`: a Proxmox host whose chains (its VMs, guests, drains) are left out. */
export function addSkipHostOption(command: Command): Command {
  return command
    .option(
      '--skip-host <node>',
      'leave this Proxmox host out, with its VMs, guests and drains (repeatable): for a host that cannot be reached',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option(
      '--allow-api-outage',
      "let the host of the cluster's only control-plane node take its turn: the Kubernetes API is down meanwhile",
    );
}

export function addLabRunOptions(command: Command, { parallel = false } = {}): Command {
  addLabOption(command).option('--json', JSON_HELP);
  if (parallel)
    numberOption(
      command,
      '--parallel <n>',
      'hosts worked on at once (reads are always parallel, bounded)',
      { min: 1, max: 64, integer: true },
      1,
    );
  return addRequestTimeout(addSshOptions(command));
}

export async function openLabRun(options: LabRunOptions): Promise<{ lab: Lab; connections: LabConnections }> {
  const [{ loadLab }, { connectLab }, { dirname, join }] = await Promise.all([
    import('../config/load.ts'),
    import('../engine/connections.ts'),
    import('node:path'),
  ]);
  const lab = sayLabNotes(await loadLab(options.lab));
  const connections = await connectLab(
    lab,
    {
      identity: options.identity,
      knownHosts: options.knownHosts,
      acceptNewHostKey: options.acceptNewHostKey,
      ...timeoutsOf(options),
    },
    join(dirname(options.lab), 'igpu-split-talos'),
  );
  return { lab, connections };
}

export async function renderLabPlan(plan: LabPlan): Promise<string> {
  const { planSections } = await import('../engine/plan.ts');
  return renderPlanSections(planSections(plan), plan.skippedHosts);
}

export function renderPlanSections(
  sections: readonly PlanSection[],
  skipped: readonly string[] = [],
): string {
  const shown: ShownDiffs = new Map();
  const text = sections
    .map((section) => {
      if (section.unreachable) return renderUnreachable(section.title, section.unreachable);
      // The drain pre-flight has no steps: each host's verdict is shown, a pass too.
      if (section.layer === 'rollout')
        return `${section.title}\n\n${renderChecks(section.checks)}${section.refused ? '  nothing is applied until the failing drain check above is fixed\n' : ''}`;
      const text = renderLayerPlan(
        section.title,
        section.checks.filter((c) => c.status !== 'pass'),
        section.steps,
        shown,
      );
      return section.refused ? `${text}  not applicable: ${section.refused}\n` : text;
    })
    .join('\n');
  return skipped.length > 0 ? `${text}\n${renderSkipped(skipped)}` : text;
}

/** A part that could not be read: one line with the reason, one with the fix. */
function renderUnreachable(title: string, { reason, fix }: { reason: string; fix: string }): string {
  return `${title}\n\n  UNREACHABLE  ${reason}\n               fix: ${fix}\n`;
}

/** `skipped: pve2 (--skip-host)`. */
export function renderSkipped(skipped: readonly string[]): string {
  return `skipped: ${skipped.map((node) => `${node} (--skip-host)`).join(', ')}\n`;
}

export function renderChains(chains: readonly VmChain[]): string {
  return chains
    .map(
      (chain) => `VM ${chain.vmid}${chain.node ? ` → node ${chain.node}` : ''}\n${renderChecks(chain.links)}`,
    )
    .join('\n');
}
