// igpu-split apply: shows the whole plan, asks (unless --yes), takes the lab lock, and
// runs it in the rolling order with progress per host; the journal lets --resume
// continue after an interruption. A converged lab: nothing is done, and it says so.

import type { Command } from 'commander';
import { UsageError } from '../core/errors.ts';
import { confirm } from './confirm.ts';
import {
  addLabRunOptions,
  type LabRunOptions,
  openLabRun,
  parallelOf,
  renderChains,
  renderLabPlan,
  runWithProgress,
} from './lab-run.ts';
import { jsonNeedsYes, secondsOption } from './option-checks.ts';
import { addConsentFlags } from './vm-plan.ts';

interface ApplyFlags extends LabRunOptions {
  yes?: boolean;
  resume?: boolean;
  forceStop?: boolean;
  rebootTimeout: string;
  verify?: boolean;
}

export function registerApply(program: Command): void {
  addConsentFlags(
    addLabRunOptions(
      program.command('apply').description('apply the whole plan, host by host (asks unless --yes)'),
    ),
  )
    .option('--yes', 'do not ask')
    .option('--resume', 'continue an apply that was interrupted (its journal says what is done)')
    .option('--force-stop', 'power a VM off when its guest ignores the shutdown request')
    .option('--reboot-timeout <seconds>', 'how long a host or guest gets to come back', '900')
    .option('--no-verify', 'skip the end-to-end verify afterwards')
    .action(async (options: ApplyFlags) => {
      const seconds = secondsOption(options.rebootTimeout, '--reboot-timeout') / 1000;
      jsonNeedsYes(options);
      const [{ planLab, planRefusal }, { applyStages, Journal }, { verifyLab, worstOfChains }] =
        await Promise.all([
          import('../engine/plan.ts'),
          import('../engine/apply.ts'),
          import('../engine/verify.ts'),
        ]);
      const parallel = parallelOf(options);
      const { lab, connections } = await openLabRun(options);
      const journal = new Journal(options.lab);
      // The lock is taken outside the try: a refused apply must not release another's lock.
      try {
        await journal.lock(options.resume === true);
      } catch (error) {
        await connections.close();
        throw error;
      }
      let finished = false;
      try {
        // The journal first: an interrupted run may have left nodes cordoned even when the
        // plan is now empty.
        await journal.start(options.resume === true);
        const plan = await planLab(lab, connections, { ...options, parallel: parallel * 8 });
        if (!options.json) process.stdout.write(`${await renderLabPlan(plan)}\n`);
        const refused = planRefusal(plan);
        if (refused)
          throw new UsageError(`the plan cannot be applied: ${refused}`, { fix: 'see the plan above' });
        const consents = [
          options.changeMachine ? '--change-machine' : '',
          options.resetEfiKeys ? '--reset-efi-keys' : '',
        ].filter(Boolean);
        const stages = applyStages(lab, plan, connections, journal, {
          consents,
          forceStop: options.forceStop,
          rebootTimeoutMs: seconds * 1000,
        });
        if (stages.length === 0) {
          finished = true;
          if (!options.json) process.stdout.write('the lab is converged: nothing to do\n');
          else process.stdout.write(`${JSON.stringify({ plan, done: [] })}\n`);
          return;
        }
        if (!options.yes && !(await confirm('apply this plan?', 'igpu-split plan'))) {
          finished = !options.resume;
          return;
        }
        try {
          await runWithProgress(stages, journal, parallel, options.json === true);
        } catch (error) {
          process.stderr.write(
            `igpu-split: the finished stages are journalled in ${journal.dir}; fix the cause below, then: igpu-split apply --resume\n`,
          );
          throw error;
        }
        finished = true;
        if (options.verify !== false) {
          // A fresh plugin needs a moment to pull its image and register its devices.
          const chains = await verifyLab(lab, connections, { settleMs: 180_000 });
          if (!options.json) process.stdout.write(`\n${renderChains(chains)}`);
          else process.stdout.write(`${JSON.stringify({ plan, chains }, null, 2)}\n`);
          process.exitCode = worstOfChains(chains) === 'fail' ? 1 : 0;
        }
      } finally {
        // A run that stopped half-way keeps its lock and journal, for apply --resume.
        if (finished) {
          await journal.finish();
          await journal.unlock();
        }
        await connections.close();
      }
    });
}
