// A Proxmox host's own stage: its changes, then — when a step disturbs `host-reboot` — the
// reboot and the wait for it, the host's VMs started again, and the host verified.

import type { HostAccess } from '../../access/host.ts';
import { TargetError } from '../../core/errors.ts';
import { disturbancesOf } from '../../core/model.ts';
import { counted } from '../../core/text.ts';
import { hostLayer } from '../../host/layer.ts';
import type { HostPlan } from '../../host/plan.ts';
import { rebootAndWait } from '../../linux/reboot.ts';
import type { HostPart } from '../plan.ts';
import { restoreHaAfterTurn, setHaForTurn } from '../rollout/ha.ts';
import type { Stage } from '../scheduler.ts';
import { fingerprintOf, REBOOT_TIMEOUT_MS, type StageContext } from './context.ts';
import { startStoppedVms } from './vms.ts';

/**
 * `restart`: the VMs of this host that no VM stage of this run starts (that stage starts the
 * ones it changes).
 */
export function hostStage(context: StageContext, part: HostPart, plan: HostPlan, restart: number[]): Stage {
  const { connections, journal } = context;
  const reboots = disturbancesOf(plan.steps).has('host-reboot');
  return {
    id: `${part.node}/host`,
    group: `host:${part.node}`,
    fingerprint: fingerprintOf(plan.steps.map((s) => s.id + (s.diff ?? ''))),
    title: `host ${part.node}: ${counted(plan.steps.length, 'change')}${reboots ? ', reboot' : ''}`,
    run: async (say) => {
      let host: HostAccess = await connections.host(part.node);
      try {
        const layer = hostLayer(host, {
          // The host lock names this lab's runs: a resumed run takes over its own, never another's.
          apply: {
            force: context.options.force === true,
            lockOwner: `lab ${journal.dir}`,
            takeOverLock: journal.resumed,
          },
        });
        const result = await layer.apply(plan, { say });
        say(`host ${part.node}: ${counted(result.done.length, 'step')} applied`);
        if (result.manual) {
          // The reboot is the user's (MOK enrolment at the console): the journal keeps the commands.
          await journal.markPending({
            stage: `${part.node}/host@${fingerprintOf(plan.steps.map((s) => s.id + (s.diff ?? '')))}`,
            target: part.node,
            reason: result.manual.reason,
            commands: result.manual.commands,
            files: [],
          });
          say(`host ${part.node}: waiting for a manual step (${result.manual.reason})`);
          return;
        }
        if (reboots) {
          // HA would move a vGPU VM off this host on the reboot: `ignored` for the turn (rollout/ha.ts).
          await setHaForTurn(connections.proxmox, journal, part.node, part.ha?.changes ?? [], say);
          host = await reboot(context, part, host);
          say(`host ${part.node}: rebooted`);
          await startStoppedVms(context, part.node, [...restart, ...othersOn(context, part)], say);
        }
        const failed = (await hostLayer(host).verify()).filter((c) => c.status === 'fail');
        if (failed.length > 0) {
          throw new TargetError(`host ${part.node} does not verify: ${failed[0]?.evidence}`, {
            target: host.target,
            fix: failed[0]?.fix ?? 'run igpu-split host verify',
          });
        }
        await restoreHaAfterTurn(connections.proxmox, journal, part.node, say);
      } finally {
        await host.close();
      }
    },
  };
}

/**
 * The host's VMs the lab file does not name that ran when the plan read them (the rollout's
 * list): a reboot stops them too, so they are recorded and started again like the lab's.
 */
function othersOn({ plan, lab }: Pick<StageContext, 'plan' | 'lab'>, part: HostPart): number[] {
  const named = new Set(lab.vms.map((vm) => vm.vmid));
  const turn = plan.rollout?.disruptions.find((d) => d.node === part.node);
  return (turn?.vms ?? []).filter((vmid) => !named.has(vmid));
}

/**
 * The reboot stops the host's VMs: the journal says they ran, so they run again even if this
 * run is interrupted before it starts them.
 */
async function reboot(context: StageContext, part: HostPart, host: HostAccess): Promise<HostAccess> {
  const { connections, journal, options } = context;
  for (const vmid of [...part.vmids, ...othersOn({ plan: context.plan, lab: context.lab }, part)])
    if ((await connections.proxmox.vmStatus(part.node, vmid)).status === 'running')
      await journal.markStopped(vmid, true);
  return rebootAndWait(host, {
    reconnect: () => connections.host(part.node),
    timeoutMs: options.rebootTimeoutMs ?? REBOOT_TIMEOUT_MS,
    pollMs: options.pollMs,
  });
}
