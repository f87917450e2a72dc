// What the lab-wide commands (plan, apply, verify, status, rollback, demo) share: their
// options, opening the lab's connections, and rendering plans, stages and chains.

import type { Command } from 'commander';
import type { Lab } from '../config/lab.ts';
import type { LabConnections } from '../engine/connections.ts';
import type { Journal } from '../engine/journal.ts';
import type { LabPlan } from '../engine/plan.ts';
import type { Stage } from '../engine/scheduler.ts';
import type { VmChain } from '../engine/verify.ts';
import { addSshOptions, type HostOptions } from './host-options.ts';
import { addRequestTimeout, numberOption, type TimeoutOptions, timeoutsOf } from './option-checks.ts';
import { whileDrawing } from './output.ts';
import { renderChecks } from './render-doctor.ts';
import { renderLayerPlan } from './render-plan.ts';

export interface LabRunOptions extends HostOptions, TimeoutOptions {
  lab: string;
  json?: boolean;
  parallel: number;
  changeMachine?: boolean;
  resetEfiKeys?: boolean;
}

export function addLabRunOptions(command: Command): Command {
  command
    .option('--lab <file>', 'the lab file', 'igpu-split.yaml')
    .option('--json', 'print the result as JSON');
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
  const lab = await loadLab(options.lab);
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
  return planSections(plan)
    .map((section) => {
      const text = renderLayerPlan(
        section.title,
        section.checks.filter((c) => c.status !== 'pass'),
        section.steps,
      );
      return section.refused ? `${text}  not applicable: ${section.refused}\n` : text;
    })
    .join('\n');
}

/**
 * Runs the stages with listr2: a task per host group (plain lines when not a terminal).
 * After a failure no stage starts, and the run waits for the ones in flight.
 */
export async function runWithProgress(
  stages: Stage[],
  journal: Journal,
  parallel: number,
  quiet: boolean,
): Promise<void> {
  const [{ Listr }, { RunState, runStage, stageGroups }] = await Promise.all([
    import('listr2'),
    import('../engine/scheduler.ts'),
  ]);
  const state = new RunState();
  const groups = stageGroups(stages);
  type Parent = { newListr: (tasks: unknown[], options?: unknown) => unknown };
  const task = (group: { group: string; stages: Stage[] }) => ({
    title:
      group.group === 'lab'
        ? 'lab: mapping'
        : group.group === 'lab-end'
          ? 'cluster'
          : `host ${group.group.slice('host:'.length)}`,
    task: (_: unknown, parent: Parent) =>
      parent.newListr(
        group.stages.map((stage) => ({
          title: stage.title,
          skip: () => (journal.has(stage) ? 'done by an earlier run' : false),
          task: async (_ctx: unknown, t: { output: string }) => {
            await runStage(
              stage,
              journal,
              (line) => {
                t.output = line;
              },
              state,
            );
          },
        })),
        { concurrent: false, exitOnError: true },
      ),
  });
  const hosts = groups.filter((g) => g.group.startsWith('host:'));
  const list = new Listr(
    [
      ...groups.filter((g) => g.group === 'lab').map(task),
      {
        title: parallel > 1 ? `hosts, ${parallel} at a time` : 'hosts, one at a time',
        enabled: hosts.length > 0,
        task: (_: unknown, parent: Parent) =>
          parent.newListr(hosts.map(task), { concurrent: parallel, exitOnError: true }),
      },
      ...groups.filter((g) => g.group === 'lab-end').map(task),
    ] as never,
    {
      // A terminal that reports no width (a pty nobody sized) wraps every character: plain lines then.
      renderer: quiet ? 'silent' : process.stdout.isTTY && !process.stdout.columns ? 'simple' : 'default',
      fallbackRenderer: 'simple',
      rendererOptions: { collapseSubtasks: false },
      exitOnError: true,
      // Interrupts are the CLI's (main.ts): listr2's own handler exits with 127.
      registerSignalListeners: false,
    } as never,
  );
  try {
    await whileDrawing(() => list.run());
  } finally {
    await state.settle();
  }
}

export function renderChains(chains: readonly VmChain[]): string {
  return chains
    .map(
      (chain) => `VM ${chain.vmid}${chain.node ? ` → node ${chain.node}` : ''}\n${renderChecks(chain.links)}`,
    )
    .join('\n');
}
