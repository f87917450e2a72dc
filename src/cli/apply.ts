// igpu-split apply: flags → one engine call (applyLab: plan, question, lock, journal,
// stages in the rolling order, resume) → the end-to-end verify → what it printed. A
// converged lab: nothing is done, and it says so.

import type { Command } from 'commander';
import { confirm } from './confirm.ts';
import {
  addLabRunOptions,
  type LabRunOptions,
  openLabRun,
  renderChains,
  renderPlanSections,
} from './lab-run.ts';
import { jsonNeedsYes, numberOption } from './option-checks.ts';
import { jsonText } from './output.ts';
import { addConsentFlags } from './vm-plan.ts';

interface ApplyFlags extends LabRunOptions {
  yes?: boolean;
  resume?: boolean;
  forceStop?: boolean;
  rebootTimeout: number;
  verify?: boolean;
}

export function registerApply(program: Command): void {
  const command = addConsentFlags(
    addLabRunOptions(
      program.command('apply').description('apply the whole plan, host by host (asks unless --yes)'),
    ),
  )
    .option('--yes', 'do not ask')
    .option('--resume', 'continue an apply that was interrupted (its journal says what is done)')
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request');
  numberOption(
    command,
    '--reboot-timeout <seconds>',
    'how long a host or guest gets to come back',
    { min: 1, max: 7200, seconds: true },
    900,
  )
    .option('--no-verify', 'skip the end-to-end verify afterwards')
    .action(async (options: ApplyFlags) => {
      jsonNeedsYes(options);
      const [
        { applyLab },
        { planSections },
        { verifyLab, worstOfChains },
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
          if (!json) process.stdout.write(`${renderPlanSections(planSections(plan))}\n`);
        },
      });
      try {
        const result = await applyLab(lab, connections, {
          labFile: options.lab,
          resume: options.resume,
          parallel: options.parallel,
          changeMachine: options.changeMachine,
          resetEfiKeys: options.resetEfiKeys,
          consents: [
            options.changeMachine ? '--change-machine' : '',
            options.resetEfiKeys ? '--reset-efi-keys' : '',
          ].filter(Boolean),
          forceStop: options.forceStop,
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
        if (result.converged) {
          process.stdout.write(
            json ? jsonText('apply', { plan, done: [] }) : 'the lab is converged: nothing to do\n',
          );
          return;
        }
        if (options.verify === false) {
          if (json) process.stdout.write(jsonText('apply', { plan, done: result.done }));
          return;
        }
        // A fresh plugin needs a moment to pull its image and register its devices.
        const chains = await verifyLab(lab, connections, { settleMs: 180_000 });
        process.stdout.write(
          json ? jsonText('apply', { plan, done: result.done, chains }) : `\n${renderChains(chains)}`,
        );
        process.exitCode = worstOfChains(chains) === 'fail' ? 1 : 0;
      } finally {
        await connections.close();
      }
    });
}
