// igpu-split apply: shows the whole plan, asks (unless --yes), takes the lab lock, and
// runs it in the rolling order with progress per host; the journal lets --resume
// continue after an interruption. A converged lab: nothing is done, and it says so.
//
// The lock is taken only once the user has agreed and before the first change, and let go
// on every way out before a change; after taking it, a plan shown before the question is
// made again from fresh facts, and a different one is refused. With --yes there is no
// question, so the lock comes first and the plan is made once, under it.

import type { Command } from 'commander';
import { RefusedError } from '../core/errors.ts';
import { onInterrupt } from '../core/interrupt.ts';
import type { Journal } from '../engine/journal.ts';
import type { LabPlan } from '../engine/plan.ts';
import { confirm } from './confirm.ts';
import {
  addLabRunOptions,
  type LabRunOptions,
  openLabRun,
  renderChains,
  renderLabPlan,
  runWithProgress,
} from './lab-run.ts';
import { jsonNeedsYes, numberOption } from './option-checks.ts';
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
        { planLab, planRefusal, planDigest },
        { applyStages },
        { Journal },
        { verifyLab, worstOfChains },
      ] = await Promise.all([
        import('../engine/plan.ts'),
        import('../engine/apply.ts'),
        import('../engine/journal.ts'),
        import('../engine/verify.ts'),
      ]);
      const parallel = options.parallel;
      const { lab, connections } = await openLabRun(options);
      const journal = new Journal(options.lab);
      const resume = options.resume === true;
      let locked = false;
      let finished = false;
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
      const makePlan = async () => {
        const plan = await planLab(lab, connections, { ...options, parallel: parallel * 8 });
        const refused = planRefusal(plan);
        return { plan, refused };
      };
      try {
        // Another apply, or an unfinished one, is named before anything is read.
        const blocked = await journal.refusal(resume);
        if (blocked) throw blocked;
        if (options.yes) await takeLock();
        else if (resume) await journal.start(true);
        let { plan, refused } = await makePlan();
        if (!options.json) process.stdout.write(`${await renderLabPlan(plan)}\n`);
        if (refused)
          throw new RefusedError(`the plan cannot be applied: ${refused}`, { fix: 'see the plan above' });
        const stagesOf = (p: LabPlan, j: Journal) =>
          applyStages(lab, p, connections, j, {
            consents: [
              options.changeMachine ? '--change-machine' : '',
              options.resetEfiKeys ? '--reset-efi-keys' : '',
            ].filter(Boolean),
            forceStop: options.forceStop,
            rebootTimeoutMs: options.rebootTimeout * 1000,
          });
        let stages = stagesOf(plan, journal);
        if (stages.length === 0) {
          // A journal a finished run could not remove goes now (under the lock).
          if (resume && !locked) await takeLock();
          finished = true;
          if (!options.json) process.stdout.write('the lab is converged: nothing to do\n');
          else process.stdout.write(`${JSON.stringify({ plan, done: [] })}\n`);
          return;
        }
        if (!options.yes) {
          await confirm('apply this plan?', 'igpu-split plan');
          await takeLock();
          // The lab may have moved while the question was open: the plan is made again.
          const before = planDigest(plan);
          ({ plan, refused } = await makePlan());
          if (refused || planDigest(plan) !== before)
            throw new RefusedError('the lab changed since the plan was shown: nothing was changed', {
              fix: 'run igpu-split plan again, then apply',
            });
          stages = stagesOf(plan, journal);
        }
        try {
          await runWithProgress(stages, journal, parallel, options.json === true);
        } catch (error) {
          if (journal.changed)
            process.stderr.write(
              `igpu-split: the finished stages are journalled in ${journal.dir}; fix the cause below, then: igpu-split apply --resume\n`,
            );
          throw error;
        }
        finished = true;
        if (options.verify === false) {
          if (options.json)
            process.stdout.write(`${JSON.stringify({ plan, done: stages.map((s) => s.id) }, null, 2)}\n`);
        } else {
          // A fresh plugin needs a moment to pull its image and register its devices.
          const chains = await verifyLab(lab, connections, { settleMs: 180_000 });
          if (!options.json) process.stdout.write(`\n${renderChains(chains)}`);
          else process.stdout.write(`${JSON.stringify({ plan, chains }, null, 2)}\n`);
          process.exitCode = worstOfChains(chains) === 'fail' ? 1 : 0;
        }
      } finally {
        letGo();
        // A run that stopped half-way keeps its lock and journal, for apply --resume.
        if (locked) await journal.release(finished);
        await connections.close();
      }
    });
}
