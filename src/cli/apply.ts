// igpu-split apply: flags → one engine call (applyLab: plan, question, lock, journal,
// stages in the rolling order, resume) → the end-to-end verify → what it printed. A
// converged lab: nothing is done, and it says so.

import type { Command } from 'commander';
import { EXIT, worstExitCode } from '../core/errors.ts';
import { onInterrupt } from '../core/interrupt.ts';
import { counted } from '../core/text.ts';
import type { PendingStep } from '../engine/journal.ts';
import { confirm } from './confirm.ts';
import {
  addLabRunOptions,
  addSkipHostOption,
  type LabRunOptions,
  openLabRun,
  renderChains,
  renderPlanSections,
  renderSkipped,
} from './lab-run.ts';
import { addRebootTimeout, addYesOption, FORCE_HELP, jsonNeedsYes } from './option-checks.ts';
import { jsonText } from './output.ts';
import { addConsentFlags } from './vm-plan.ts';

interface ApplyFlags extends LabRunOptions {
  yes?: boolean;
  resume?: boolean;
  forceStop?: boolean;
  force?: boolean;
  rebootTimeout: number;
  verify?: boolean;
  takeOver?: boolean;
}

export function registerApply(program: Command): void {
  const command = addSkipHostOption(
    addConsentFlags(
      addLabRunOptions(
        program.command('apply').description('apply the whole plan, host by host (asks unless --yes)'),
        { parallel: true },
      ),
    ),
  )
    .option('--resume', 'continue an apply that was interrupted (its journal says what is done)')
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request')
    .option('--force', FORCE_HELP)
    .option(
      '--take-over',
      'take the rollout lock (the Lease igpu-split-rollout in the lab namespace) that another machine let expire',
    );
  addRebootTimeout(addYesOption(command))
    .option('--no-verify', 'skip the end-to-end verify afterwards')
    .action(async (options: ApplyFlags) => {
      jsonNeedsYes(options);
      // Until applyLab holds the lab (it says what to do then), an interrupt has changed nothing:
      // on a loaded machine start-up alone can take seconds.
      const starting = onInterrupt(() => 'nothing was changed');
      const [
        { applyLab },
        { labWithout, planSections },
        { exitCodeOf, verifyLab, worstOfChains },
        { progressReporter },
        { planView },
      ] = await Promise.all([
        import('../engine/apply-lab.ts'),
        import('../engine/plan.ts'),
        import('../engine/verify.ts'),
        import('./progress.ts'),
        import('./json.ts'),
      ]);
      const { lab, connections } = await openLabRun(options);
      const json = options.json === true;
      const reporter = await progressReporter({
        quiet: json,
        // The plan is on the screen before the question (and before a refusal).
        onPlan: ({ plan }) => {
          if (!json) process.stdout.write(`${renderPlanSections(planSections(plan), plan.skippedHosts)}\n`);
        },
      });
      starting();
      try {
        const result = await applyLab(lab, connections, {
          labFile: options.lab,
          skipHosts: options.skipHost,
          allowApiOutage: options.allowApiOutage === true,
          resume: options.resume,
          takeOver: options.takeOver === true,
          parallel: options.parallel,
          changeMachine: options.changeMachine,
          resetEfiKeys: options.resetEfiKeys,
          consents: [
            options.changeMachine ? '--change-machine' : '',
            options.resetEfiKeys ? '--reset-efi-keys' : '',
          ].filter(Boolean),
          forceStop: options.forceStop,
          force: options.force === true,
          rebootTimeoutMs: options.rebootTimeout * 1000,
          reporter,
          confirm: options.yes
            ? undefined
            : async (plan) => {
                const { disturbanceSummary, labDisturbances } = await import('../engine/disturbances.ts');
                await confirm(
                  'apply this plan?',
                  'igpu-split plan',
                  disturbanceSummary(labDisturbances(lab, plan)),
                );
              },
        }).finally(() => reporter.finish());
        const plan = await planView(result.plan);
        const { pending } = result;
        const skipped = result.plan.skippedHosts;
        // What a script reads beside the plan: the manual steps left to the user.
        const ended = { done: result.done, pending };
        if (result.converged) {
          process.stdout.write(
            json
              ? jsonText('apply', { plan, ...ended })
              : `${skipped.length > 0 ? renderSkipped(skipped) : ''}the lab is converged: nothing to do\n`,
          );
          return;
        }
        if (!json) process.stdout.write(renderEnd(pending, skipped));
        // Waiting for the user is exit 3 unless something is worse (README, "Exit codes").
        if (options.verify === false) {
          if (json) process.stdout.write(jsonText('apply', { plan, ...ended }));
          process.exitCode = pending.length > 0 ? EXIT.manualStep : EXIT.ok;
          return;
        }
        // A fresh plugin needs a moment to pull its image and register its devices. The
        // chains of skipped hosts were not applied: they are named in the summary, not verified.
        const chains = await verifyLab(labWithout(lab, result.plan.skippedHosts), connections, {
          settleMs: 180_000,
        });
        process.stdout.write(
          json ? jsonText('apply', { plan, ...ended, chains }) : `\n${renderChains(chains)}`,
        );
        process.exitCode = worstExitCode([
          exitCodeOf(worstOfChains(chains)),
          pending.length > 0 ? EXIT.manualStep : EXIT.ok,
        ]);
      } finally {
        await connections.close();
      }
    });
}

/** After the stages: the hosts left out and the manual steps waiting, each with its commands and files. */
function renderEnd(pending: readonly PendingStep[], skipped: readonly string[]): string {
  const lines = skipped.length > 0 ? [renderSkipped(skipped).trimEnd()] : [];
  if (pending.length > 0) {
    lines.push(`pending: ${counted(pending.length, 'manual step')}`);
    for (const step of pending) {
      lines.push(`  ${step.target}: ${step.reason}; files written: ${step.files.join(', ')}`);
      for (const command of step.commands) lines.push(`    $ ${command}`);
    }
    lines.push(
      '  then igpu-split verify (or apply) sees the change on the Kubernetes node and marks it done',
    );
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}
